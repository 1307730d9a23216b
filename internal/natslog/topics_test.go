package natslog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// TestTopics: the topic list holds every user's channel with its count
// and last sequence, more than one page of them, and none of sluice's
// own channels; a Log that cannot ask its server says so.
func TestTopics(t *testing.T) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test", Name: "topics-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	if _, err := l.Topics(ctx); !errors.Is(err, eventlog.ErrUnsupported) {
		t.Fatalf("Topics without the server's channel list: %v; want ErrUnsupported", err)
	}
	l.SetChannelsz(srv.Channelsz())
	publish(t, l, "orders", "a", "b", "c")
	publish(t, l, "sluice.catalog", "own")
	publish(t, l, "sluice.logs.f", "own")
	want := []eventlog.TopicInfo{{Name: "orders", Messages: 3, Last: 3}}
	// more channels than a page of the server's list
	for i := range channelsPage {
		name := fmt.Sprintf("t%04d", i)
		publish(t, l, name, "x")
		want = append(want, eventlog.TopicInfo{Name: name, Messages: 1, Last: 1})
	}
	got, err := l.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Topics: %d topics, want %d; first %+v", len(got), len(want), got[:min(3, len(got))])
	}
}
