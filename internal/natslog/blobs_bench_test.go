package natslog

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/eventlogtest"
	"github.com/sluicehq/sluice/internal/broker"
)

// BenchmarkBlobStore: many 1 MiB values on the embedded file store (fsync
// on, the default), a restart, and the cost of a Get (see
// eventlogtest.BenchBlobs). Run it alone, once:
//
//	SLUICE_BENCH_BLOBS=1000,10000 go test -run '^$' -bench BlobStore -benchtime 1x -timeout 2h ./internal/natslog/
func BenchmarkBlobStore(b *testing.B) {
	srv := map[eventlog.Log]*broker.Embedded{}
	eventlogtest.BenchBlobs(b, eventlogtest.BlobBench{
		Start: func(tb testing.TB, dir string) eventlog.Log {
			e, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "bench"})
			if err != nil {
				tb.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			l, err := Connect(ctx, broker.Options{URL: e.URL(), ClusterID: "bench", Name: "bench"})
			if err != nil {
				e.Shutdown()
				tb.Fatal(err)
			}
			srv[l] = e
			return l
		},
		Stop: func(tb testing.TB, l eventlog.Log) {
			l.Close()
			srv[l].Shutdown()
			delete(srv, l)
		},
	})
}
