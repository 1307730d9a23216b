package natslog

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/eventlogtest"
	"github.com/sluicehq/sluice/internal/broker"
)

// TestConformance runs the event log's conformance suite on one embedded
// NATS Streaming server with a file store: every case connects to it, and
// the restart cases restart it on the same store and port.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	start := func(listen string) *broker.Embedded {
		srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: dir, Listen: listen, ClusterID: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	var mu sync.Mutex
	srv := start("127.0.0.1:0")
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		srv.Shutdown()
	})
	url := srv.URL()
	eventlogtest.Run(t, eventlogtest.Harness{
		Connect: func(tb testing.TB) eventlog.Log {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := Connect(ctx, broker.Options{URL: url, ClusterID: "test", Name: "conformance"})
			if err != nil {
				tb.Fatal(err)
			}
			return l
		},
		Restart: func(tb testing.TB) {
			mu.Lock()
			defer mu.Unlock()
			srv.Shutdown()
			srv = start(strings.TrimPrefix(url, "nats://"))
		},
	})
}
