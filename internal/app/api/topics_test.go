package api

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/natslog"
)

// gaps shows a log's sequence s as 3s: a stream's sequences with gaps, as
// a store that numbers several streams together has them (eventlog).
type gaps struct{ eventlog.Log }

func (g gaps) Subscribe(stream string, o eventlog.SubOptions, h func(*eventlog.Msg)) (eventlog.Subscription, error) {
	if o.Start.Kind == eventlog.StartSeq {
		o.Start.Seq = (o.Start.Seq + 2) / 3
	}
	return g.Log.Subscribe(stream, o, func(m *eventlog.Msg) {
		c := *m
		c.Sequence *= 3
		h(&c)
	})
}

// TestTailStart: tail=N starts at the N-th last message, counted, also
// where the topic's sequences have gaps.
func TestTailStart(t *testing.T) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx := context.Background()
	l, err := natslog.Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := 0; i < 10; i++ {
		if _, err := l.Publish(ctx, "t", eventlog.Message{Data: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		log  eventlog.Log
		last uint64
		n    int
		want uint64
	}{
		{"last 4", l, 10, 4, 7},
		{"last 4 up to 8", l, 8, 4, 5},
		{"more than stored", l, 10, 50, 1},
		{"last 4 with gaps", gaps{l}, 30, 4, 21},
		{"last 1 with gaps", gaps{l}, 30, 1, 30},
		{"more than stored with gaps", gaps{l}, 30, 11, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tailStart(ctx, c.log, "t", c.last, c.n)
			if err != nil || got != c.want {
				t.Fatalf("tailStart(last %d, %d) = %d, %v; want %d", c.last, c.n, got, err, c.want)
			}
		})
	}
}
