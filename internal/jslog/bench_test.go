package jslog

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/eventlogtest"
)

// BenchmarkPublish measures publishing 1 KiB messages to the embedded
// server's file store (with an fsync per message, the default of a
// server outside a cluster, and without), waiting for each ack (sync) or not (async, acks
// awaited at the end), and a queue consuming them with manual acks.
func BenchmarkPublish(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run("fsync="+strconv.FormatBool(fsync), func(b *testing.B) { benchPublish(b, !fsync) })
	}
}

func benchPublish(b *testing.B, noSync bool) {
	e, err := StartEmbedded(EmbeddedOptions{Dir: b.TempDir(), Listen: "127.0.0.1:0", Auth: testAuth, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l, err := Connect(ctx, Options{URL: e.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	m := eventlog.Message{Data: make([]byte, 1024)}
	b.Run("sync", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Publish(ctx, "bench", m); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("async", func(b *testing.B) {
		var wg sync.WaitGroup
		for range b.N { // not b.Loop: the timer must cover waiting for the acks
			wg.Add(1)
			if err := l.PublishAsync("bench", m, func(_ uint64, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			}); err != nil {
				b.Fatal(err)
			}
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("queue", func(b *testing.B) {
		for range b.N {
			l.PublishAsync("bench.q", m, func(uint64, error) {})
		}
		done := make(chan struct{})
		n := 0
		b.ResetTimer()
		s, err := l.Subscribe("bench.q", eventlog.SubOptions{Queue: "q", Start: eventlog.First, ManualAck: true, MaxInflight: 256}, func(m *eventlog.Msg) {
			m.Ack()
			if n++; n == b.N {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		<-done
		b.StopTimer()
		s.Unsubscribe()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkDeleteInvocation: what the engine's deleter pays to delete a
// forgotten invocation's stream (5 events) on a stream holding many:
//
//	go test -run '^$' -bench DeleteInvocation -benchtime 2000x -count 3 ./internal/jslog/
func BenchmarkDeleteInvocation(b *testing.B) {
	e, err := StartEmbedded(EmbeddedOptions{Dir: b.TempDir(), Listen: "127.0.0.1:0", Auth: testAuth})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Shutdown()
	ctx := context.Background()
	l, err := Connect(ctx, Options{URL: e.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	name := func(i int) string { return fmt.Sprintf("sluice.wf.inv.bench%07d", i) }
	for i := range b.N {
		for j := range 5 {
			if err := l.PublishAsync(name(i), eventlog.Message{Data: []byte(fmt.Sprintf(`{"event":%d}`, j))}, func(uint64, error) {}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := l.Publish(ctx, name(b.N), eventlog.Message{Data: []byte("last")}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := l.Delete(ctx, name(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deletes/s")
}

// BenchmarkBlobStore: many 1 MiB values in the Object Store on the
// embedded file store (fsync on, the default), a restart, and the cost of
// a Get (see eventlogtest.BenchBlobs). Run it alone, once:
//
//	SLUICE_BENCH_BLOBS=1000,10000 go test -run '^$' -bench BlobStore -benchtime 1x -timeout 2h ./internal/jslog/
func BenchmarkBlobStore(b *testing.B) {
	srv := map[eventlog.Log]*Embedded{}
	eventlogtest.BenchBlobs(b, eventlogtest.BlobBench{
		Start: func(tb testing.TB, dir string) eventlog.Log {
			start := time.Now()
			e, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", Auth: testAuth})
			if err != nil {
				tb.Fatal(err)
			}
			started := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			l, err := Connect(ctx, Options{URL: e.URL()})
			if err != nil {
				e.Shutdown()
				tb.Fatal(err)
			}
			tb.Logf("server started in %s, connected in %s", started.Sub(start), time.Since(started))
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
