package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/testutil"
)

// chain is a workflow of n echo-wat tasks, each passing its output on.
func chain(name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: sluice/v1\nkind: Workflow\nname: %s\ntasks:\n", name)
	for i := 0; i < n; i++ {
		if i == 0 {
			b.WriteString("  t0: { run: echo-wat, inputs: \"${ input }\" }\n")
			continue
		}
		fmt.Fprintf(&b, "  t%d: { run: echo-wat, requires: [t%d], inputs: \"${ tasks.t%d.output }\" }\n", i, i-1, i-1)
	}
	return b.String()
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// BenchmarkTaskOverhead measures what the engine adds per task: a chain of
// N function tasks (echo-wat, 1 KiB), invoked and waited for one at a
// time on the file store (fsync on), minus N direct calls of the same
// function, on NATS Streaming (one stream of events) and on JetStream (a
// stream per invocation) side by side. The invocation's own cost
// (InvocationCreated stored before Invoke returns, InvocationSucceeded
// stored before Wait returns) is included, spread over the N tasks.
//
// log=jetstream-one-stream is JetStream with every event in one stream
// (the engine told the log has no families): what the stream per
// invocation costs or saves, apart from the broker.
func BenchmarkTaskOverhead(b *testing.B) {
	for _, backend := range []string{natsStreaming, jetStream, jetStream + "-one-stream"} {
		for _, n := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("log=%s/chain=%d", backend, n), func(b *testing.B) {
				measureTaskOverhead(b, benchRig(b, backend), n)
			})
		}
	}
}

// benchRig makes a rig on a file store; a backend named "X-one-stream" is
// log X with the engine told it has no families.
func benchRig(b *testing.B, backend string) *rig {
	r := newRigOn(b, strings.TrimSuffix(backend, "-one-stream"), true)
	if strings.HasSuffix(backend, "-one-stream") {
		r.e.Close(context.Background())
		r.conn = noFamilies{r.conn}
		r.open()
	}
	return r
}

// noFamilies is a log that says it has no families.
type noFamilies struct{ eventlog.Log }

func (n noFamilies) Features() eventlog.Features {
	f := n.Log.Features()
	f.Families = false
	return f
}

func measureTaskOverhead(b *testing.B, r *rig, n int) {
	name := fmt.Sprintf("chain-%d", n)
	r.defs.put(b, chain(name, n))
	input := []byte(strings.Repeat("x", 1024))
	ctx := context.Background()
	direct := make([]time.Duration, 0, 1000)
	for i := 0; i < 1000; i++ {
		start := time.Now()
		if _, err := r.fns.Invoke(ctx, fn.Function("echo-wat"), fn.Call{Input: input}); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(start))
	}
	call := percentile(direct, 0.5)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		inv, err := r.e.Invoke(ctx, name, input, InvokeOptions{Input: InputString})
		if err != nil {
			b.Fatal(err)
		}
		if inv, err = r.e.Wait(ctx, inv.ID); err != nil || inv.Status != StatusSucceeded {
			b.Fatalf("%v %+v", err, inv)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	per := func(p float64) float64 {
		return float64(percentile(lat, p)-time.Duration(n)*call) / float64(n) / 1e3
	}
	b.ReportMetric(per(0.5), "µs/task-p50")
	b.ReportMetric(per(0.99), "µs/task-p99")
	b.ReportMetric(float64(call)/1e3, "µs/direct-call")
}

// BenchmarkInvocations measures invocations per second of a 5-task
// workflow (a diamond of echo-wat tasks) with many invocations in flight,
// on the file store, on each log (see BenchmarkTaskOverhead).
func BenchmarkInvocations(b *testing.B) {
	for _, backend := range []string{natsStreaming, jetStream, jetStream + "-one-stream"} {
		b.Run("log="+backend, func(b *testing.B) { invocations(b, benchRig(b, backend)) })
	}
}

func invocations(b *testing.B, r *rig) {
	r.defs.put(b, `
apiVersion: sluice/v1
kind: Workflow
name: diamond
output: ${ tasks.e.output }
tasks:
  a: { run: echo-wat, inputs: "${ input }" }
  b: { run: echo-wat, requires: [a], inputs: "${ tasks.a.output }" }
  c: { run: echo-wat, requires: [a], inputs: "${ tasks.a.output }" }
  d: { run: echo-wat, requires: [b, c], inputs: "${ tasks.b.output + tasks.c.output }" }
  e: { run: echo-wat, requires: [d], inputs: "${ tasks.d.output }" }
`)
	const inflight = 256
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			inv, err := r.e.Invoke(ctx, "diamond", []byte("payload"), InvokeOptions{Input: InputString})
			if err == nil {
				inv, err = r.e.Wait(ctx, inv.ID)
			}
			if err != nil || inv.Status != StatusSucceeded {
				b.Errorf("%v %+v", err, inv)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "invocations/s")
}

// fill runs n invocations of workflow, 256 in flight, and waits for them.
func fill(b *testing.B, r *rig, workflow string, n int) {
	ctx := context.Background()
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			inv, err := r.e.Invoke(ctx, workflow, []byte("x"), InvokeOptions{Input: InputString})
			if err == nil {
				if _, err = r.e.Wait(ctx, inv.ID); errors.Is(err, ErrNotFound) {
					err = nil // finished and already forgotten
				}
			}
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}

// waitDeleted waits until an engine has deleted the streams of the
// invocations it forgot.
func waitDeleted(t testing.TB, e *Engine) {
	testutil.Eventually(t, 10*time.Minute, "the forgotten invocations' streams to be deleted", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.deleting) == 0
	})
}

// du is the disk used under dir, in bytes (as du counts it: blocks).
func du(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkReplay measures opening an engine on a log of about 100,000
// events of finished invocations (5 tasks, 17 events each) written after
// a sleeper started, with the last 100 finished invocations retained, on
// NATS Streaming (replay from a checkpoint, which the sleeper pins at its
// first event) and on JetStream (the kept invocations' streams only: the
// others were deleted when forgotten).
func BenchmarkReplay(b *testing.B) {
	const retain = 100
	for _, backend := range []string{natsStreaming, jetStream} {
		b.Run("log="+backend, func(b *testing.B) {
			r := newRigOn(b, backend, true)
			r.retain = retain
			r.restart()
			r.defs.put(b, chain("five", 5))
			r.defs.put(b, sleeper)
			ctx := context.Background()
			if _, err := r.e.Invoke(ctx, "sleeper", nil, InvokeOptions{}); err != nil {
				b.Fatal(err)
			}
			fill(b, r, "five", 100000/17)
			waitDeleted(b, r.e)
			// Let a checkpoint be written (NATS Streaming).
			r.e.mu.Lock()
			r.e.sinceCkpt = checkpointEvery
			r.e.maybeCheckpoint()
			r.e.mu.Unlock()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: fmt.Sprintf("replayer-%d", i), Retain: retain})
				if err != nil {
					b.Fatal(err)
				}
				took := time.Since(start)
				e.mu.Lock()
				n := len(e.st.invs)
				e.mu.Unlock()
				replayed := e.ReplayedEvents()
				e.Close(ctx)
				b.ReportMetric(float64(took.Milliseconds()), "ms/replay")
				b.ReportMetric(float64(n), "invocations-in-memory")
				b.ReportMetric(float64(replayed), "events-replayed")
			}
		})
	}
}

// BenchmarkRetainedDisk measures the disk used by b.N finished
// invocations (a one-task workflow: 5 events each) once only the last
// DefaultRetain are retained, on NATS Streaming (the log keeps them all)
// and on JetStream (the forgotten invocations' streams are deleted): du of
// the store directory, with -benchtime 100000x for 100,000 invocations.
func BenchmarkRetainedDisk(b *testing.B) {
	for _, backend := range []string{natsStreaming, jetStream} {
		b.Run("log="+backend, func(b *testing.B) {
			r := newRigOn(b, backend, true)
			r.defs.put(b, quick)
			base := du(b, r.dir)
			b.ResetTimer()
			fill(b, r, "quick", b.N)
			waitDeleted(b, r.e)
			b.StopTimer()
			used := du(b, r.dir) - base
			b.ReportMetric(float64(used)/(1<<20), "MiB-on-disk")
			b.ReportMetric(float64(used)/float64(b.N), "bytes/invocation")
		})
	}
}
