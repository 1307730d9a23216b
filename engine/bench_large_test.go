package engine

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/fn"
)

const chainOfThree = `apiVersion: sluice/v1
kind: Workflow
name: three
output: ${ tasks.c.output }
tasks:
  a: { run: echo-wat, inputs: "${ input }" }
  b: { run: echo-wat, inputs: "${ tasks.a.output }", requires: [a] }
  c: { run: echo-wat, inputs: "${ tasks.b.output }", requires: [b] }
`

// BenchmarkLargeValue runs a 1 MiB value through a 3-task workflow (input
// -> a -> b -> c -> output, the value stored once in the log's blob store,
// fetched for each call, its output hashed and found stored) against three
// direct calls of the same function, on NATS Streaming's file store (fsync
// on), one after the other:
//
//	go test -run '^$' -bench LargeValue -benchtime 20x -count 3 ./engine/
func BenchmarkLargeValue(b *testing.B) {
	r := newRigOn(b, natsStreaming, true)
	r.defs.put(b, chainOfThree)
	in := randomBytes(1<<20, 7)
	ctx := context.Background()
	b.Run("path=workflow-3-tasks", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for i := 0; i < b.N; i++ {
			inv, err := r.e.Invoke(ctx, "three", in, InvokeOptions{Input: InputAuto})
			if err != nil {
				b.Fatal(err)
			}
			if inv, err = r.e.Wait(ctx, inv.ID); err != nil || inv.Status != StatusSucceeded || inv.OutputSize() != len(in) {
				b.Fatalf("%v %+v", err, inv)
			}
		}
	})
	b.Run("path=3-direct-calls", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for i := 0; i < b.N; i++ {
			v := in
			for j := 0; j < 3; j++ {
				res, err := r.fns.Invoke(ctx, fn.Function("echo-wat"), fn.Call{Input: v})
				if err != nil || len(res.Output) != len(in) {
					b.Fatalf("%v: %d bytes", err, len(res.Output))
				}
				v = res.Output
			}
		}
	})
}

// BenchmarkRetainedLargeValues measures the memory of an engine that
// retains 10,000 finished invocations that each carried a 1 MiB value
// (input -> a -> b -> output: 6 references), on NATS Streaming: the heap
// after GC and the process's RSS once it has replayed them, against the
// same before the engine opened. The events are written as the engine
// writes them; the values themselves are not needed to replay (the engine
// holds their references), so the log holds none (10 GiB).
//
//	go test -run '^$' -bench RetainedLargeValues -benchtime 1x -count 3 ./engine/
func BenchmarkRetainedLargeValues(b *testing.B) {
	const n, size = DefaultRetain, 1 << 20
	r := newRigOn(b, natsStreaming, false)
	r.defs.put(b, chainOfTwo)
	rev, _ := r.defs.Current("chain")
	at := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	done := make(chan error, 1)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("large-%06d", i)
		ref := func() *Data { return &Data{Blob: sha([]byte(id)), Size: size, Form: FormBase64} }
		for j, ev := range finishedChain(id, "gone", at, "chain", rev.Revision, "echo-wat", ref) {
			data, err := encodeEvent(ev)
			if err != nil {
				b.Fatal(err)
			}
			cb := func(uint64, error) {}
			if i == n-1 && j == 7 {
				cb = func(_ uint64, err error) { done <- err }
			}
			if err := r.conn.PublishAsync(EventStream(r.conn.Features(), id), eventlog.Message{Data: data}, cb); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	r.e.Close(ctx)
	r.e = nil
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		heapBefore, rssBefore := heap(), rss(b)
		e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: "replayer-" + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		e.mu.Lock()
		kept := len(e.st.invs)
		e.mu.Unlock()
		heapAfter, rssAfter := heap(), rss(b)
		runtime.KeepAlive(e)
		e.Close(ctx)
		if kept != n {
			b.Fatalf("%d invocations retained, want %d", kept, n)
		}
		b.ReportMetric(float64(heapAfter-heapBefore)/(1<<20), "MiB-heap")
		b.ReportMetric(float64(heapAfter-heapBefore)/n, "heap-bytes/invocation")
		b.ReportMetric(float64(rssAfter-rssBefore)/(1<<20), "MiB-RSS-growth")
		b.ReportMetric(float64(rssAfter)/(1<<20), "MiB-RSS")
	}
}

// rss is the process's resident set size.
func rss(b *testing.B) int64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatalf("RSS: %v", err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkLargeValueDisk measures the disk used by b.N invocations that
// each carried a 1 MiB value of their own through two tasks, on each log's
// file store, with the last 10 retained: NATS Streaming keeps every value
// (its blobs cannot be deleted), JetStream deletes those of the forgotten
// invocations with their events.
//
//	go test -run '^$' -bench LargeValueDisk -benchtime 100x ./engine/
func BenchmarkLargeValueDisk(b *testing.B) {
	for _, backend := range []string{natsStreaming, jetStream} {
		b.Run("log="+backend, func(b *testing.B) {
			r := newRigOn(b, backend, true)
			r.retain = 10
			r.restart()
			r.defs.put(b, chainOfTwo)
			base := du(b, r.dir)
			var names []string
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in := randomBytes(1<<20, int64(i))
				inv := r.invokeBytes("chain", in)
				if inv.Status != StatusSucceeded {
					b.Fatalf("%s: %s", inv.Status, inv.Error)
				}
				names = append(names, blobName(inv.ID, sha(in)))
			}
			waitDeleted(b, r.e)
			b.StopTimer()
			kept := 0
			for _, name := range names {
				if _, err := r.conn.Blobs().Get(context.Background(), name); err == nil {
					kept++
				}
			}
			b.ReportMetric(float64(kept), "values-kept")
			used := du(b, r.dir) - base
			b.ReportMetric(float64(used)/(1<<20), "MiB-on-disk")
			b.ReportMetric(float64(used)/float64(b.N), "bytes/invocation")
		})
	}
}
