package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
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
// function. The invocation's own cost (InvocationCreated stored before
// Invoke returns, InvocationSucceeded stored before Wait returns) is
// included, spread over the N tasks.
func BenchmarkTaskOverhead(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("chain=%d", n), func(b *testing.B) {
			r := newRig(b, true)
			name := fmt.Sprintf("chain-%d", n)
			r.defs.put(b, chain(name, n))
			input := []byte(strings.Repeat("x", 1024))
			ctx := context.Background()
			direct := make([]time.Duration, 0, 1000)
			for i := 0; i < 1000; i++ {
				start := time.Now()
				if _, err := r.fns.Invoke(ctx, "echo-wat", input, nil); err != nil {
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
		})
	}
}

// BenchmarkInvocations measures invocations per second of a 5-task
// workflow (a diamond of echo-wat tasks) with many invocations in flight,
// on the file store.
func BenchmarkInvocations(b *testing.B) {
	r := newRig(b, true)
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

// BenchmarkReplay measures opening an engine on a log of about 100,000
// events (5-task invocations, all finished), from the first event; and
// from a checkpoint when only the last 100 finished invocations are
// retained.
func BenchmarkReplay(b *testing.B) {
	r := newRig(b, true)
	r.defs.put(b, chain("five", 5))
	ctx := context.Background()
	// 5 tasks = 3 events each + 2 per invocation: 17 events.
	const invocations = 100000 / 17
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for i := 0; i < invocations; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			inv, err := r.e.Invoke(ctx, "five", []byte("x"), InvokeOptions{Input: InputString})
			if err == nil {
				_, err = r.e.Wait(ctx, inv.ID)
			}
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, retain := range []int{DefaultRetain, 100} {
		b.Run(fmt.Sprintf("retain=%d", retain), func(b *testing.B) {
			if retain == 100 {
				// Let a checkpoint be written by an engine that retains 100.
				e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: "ckpt", Retain: retain})
				if err != nil {
					b.Fatal(err)
				}
				e.mu.Lock()
				e.sinceCkpt = checkpointEvery
				e.maybeCheckpoint()
				e.mu.Unlock()
				e.Close(ctx)
			}
			for i := 0; i < b.N; i++ {
				start := time.Now()
				e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: fmt.Sprintf("replayer-%d", i), Retain: retain})
				if err != nil {
					b.Fatal(err)
				}
				took := time.Since(start)
				e.mu.Lock()
				n, events, from := len(e.st.invs), e.st.seq, e.lastCkpt
				e.mu.Unlock()
				e.Close(ctx)
				b.ReportMetric(float64(took.Milliseconds()), "ms/replay")
				b.ReportMetric(float64(n), "invocations-in-memory")
				b.ReportMetric(float64(events), "events-in-log")
				b.ReportMetric(float64(events-from+1), "events-replayed")
			}
		})
	}
}
