package jslog

import (
	"sync"
	"testing"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/eventlogtest"
)

// TestConformance runs the event log's conformance suite on one embedded
// JetStream server: every case connects to it, the restart cases restart
// it on the same store and port, and a cut forces one connection to
// reconnect.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	srv := startServer(t, dir, "127.0.0.1:0")
	addr := srv.Addr()
	eventlogtest.Run(t, eventlogtest.Harness{
		Connect: func(tb testing.TB) eventlog.Log {
			mu.Lock()
			url := srv.URL()
			mu.Unlock()
			return connect(tb.(*testing.T), url, 1)
		},
		Restart: func(tb testing.TB) {
			mu.Lock()
			defer mu.Unlock()
			srv.Shutdown()
			srv = startServer(t, dir, addr)
		},
		Cut: func(tb testing.TB, l eventlog.Log) {
			if err := l.(*Log).nc.ForceReconnect(); err != nil {
				tb.Fatal(err)
			}
		},
	})
}
