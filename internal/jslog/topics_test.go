package jslog

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/eventlog"
)

// TestTopics: the topic list holds every user's topic with its count and
// last sequence, and none of sluice's own streams.
func TestTopics(t *testing.T) {
	l, _ := newLog(t)
	ctx := ctxT(t)
	empty, err := l.Topics(ctx)
	if err != nil || len(empty) != 0 {
		t.Fatalf("Topics on a new server = %v, %v; want none", empty, err)
	}
	orders := publish(t, l, "orders", "a", "b", "c")
	eu := publish(t, l, "orders.eu", "x")
	publish(t, l, "sluice.catalog", "own")
	publish(t, l, "sluice.logs.f", "own")
	publish(t, l, "sluice.wf.inv.abc", "own")
	gone := publish(t, l, "gone", "y")
	if err := l.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	got, err := l.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []eventlog.TopicInfo{
		{Name: "orders", Messages: 3, Last: orders[2]},
		{Name: "orders.eu", Messages: 1, Last: eu[0]},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Topics = %+v; want %+v (gone was at %d)", got, want, gone)
	}
}
