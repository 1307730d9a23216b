package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The loops' benchmarks: a foreach of n function items and a while and a
// repeat of n iterations, on NATS Streaming's memory store, one invocation
// at a time. What they show is how the engine's cost grows with n: the
// issue asked for 10,000 items to cost at most ~10× 1,000.
//
//	go test -run '^$' -bench 'Foreach|Loop' -benchtime 1x -count 5 ./engine/
const loopsWorkflows = `
apiVersion: sluice/v1
kind: Workflow
name: fan
tasks:
  each: { run: foreach, inputs: { foreach: "${ 0..(input - 1) }", parallel: 16, do: { run: echo-wat, inputs: "${ item }" } } }
---
apiVersion: sluice/v1
kind: Workflow
name: counter
tasks:
  loop: { run: while, inputs: { while: "${ index < input }", limit: 100000, do: { run: echo-wat, inputs: "${ index }" } } }
---
apiVersion: sluice/v1
kind: Workflow
name: times
tasks:
  loop: { run: repeat, inputs: { times: "${ input }", do: { run: noop, inputs: "${ index }" } } }
`

// BenchmarkForeach runs a foreach of n echo-wat items, 16 at once, and
// reports the time of one invocation per item and the events it wrote per
// item.
func BenchmarkForeach(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) { benchLoop(b, "fan", n) })
	}
}

// BenchmarkLoop runs a while of n echo-wat iterations and a repeat of n
// noop iterations (each reading its index).
func BenchmarkLoop(b *testing.B) {
	for _, wf := range []string{"counter", "times"} {
		for _, n := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("loop=%s/iterations=%d", wf, n), func(b *testing.B) { benchLoop(b, wf, n) })
		}
	}
}

func benchLoop(b *testing.B, workflow string, n int) {
	r := newRigOn(b, natsStreaming, false)
	for _, src := range strings.Split(loopsWorkflows, "\n---\n") {
		r.defs.put(b, src)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var took time.Duration
	events := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		inv, err := r.e.Invoke(ctx, workflow, []byte(strconv.Itoa(n)), InvokeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if inv, err = r.e.Wait(ctx, inv.ID); err != nil || inv.Status != StatusSucceeded {
			b.Fatalf("%v %+v", err, inv)
		}
		took += time.Since(start)
		b.StopTimer()
		events += len(r.events(inv.ID))
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(took.Seconds()*1e3/float64(b.N), "ms/invocation")
	b.ReportMetric(float64(took.Microseconds())/float64(b.N*n), "µs/item")
	b.ReportMetric(float64(events)/float64(b.N*n), "events/item")
}
