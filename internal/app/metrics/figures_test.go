package metrics

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/triggers"
)

// Figures over a window are the rates of what happened in it, p50/p99
// interpolated from the histogram's deltas in it; what happened before
// the window, and what is idle, is left out; what is in flight shows.
func TestFiguresWindow(t *testing.T) {
	trig := map[string]triggers.QueueStats{}
	running := map[string]int{}
	m := New(Sources{
		Functions:   func() map[string]host.Stats { return map[string]host.Stats{"busy": {Active: 3}, "idle": {}} },
		Triggers:    func() map[string]triggers.QueueStats { return trig },
		Invocations: func() map[string]int { return running },
	})
	f := m.NewFigures("node-a")
	t0 := time.Unix(1_800_000_000, 0)
	// Before the window: 100 slow calls of "old".
	for range 100 {
		m.Call("old", host.Result{}, nil, 2*time.Second)
	}
	f.Sample(t0)
	// In the window: 90 calls of "fast" at ~1 ms, 10 failing at ~1 s.
	for range 90 {
		m.Call("fast", host.Result{}, nil, time.Millisecond)
	}
	for range 10 {
		m.Call("fast", host.Result{}, errors.New("boom"), time.Second)
	}
	trig["orders"] = triggers.QueueStats{Delivered: 50, Failed: 5, DeadLettered: 2, InFlight: 1}
	m.Lag("orders", 100*time.Millisecond)
	m.Lag("orders", 300*time.Millisecond)
	m.InvocationEnded("ship", "succeeded")
	m.InvocationEnded("ship", "failed")
	running["ship"] = 4
	f.Sample(t0.Add(SamplePeriod))
	for i := 2; i <= 12; i++ { // up to t0+60s: the window starts just after t0
		f.Sample(t0.Add(SamplePeriod * time.Duration(i)))
	}
	got := f.Snapshot(time.Minute, true)
	if got.Daemon != "node-a" || got.WindowSeconds != 60 {
		t.Fatalf("daemon %q window %v", got.Daemon, got.WindowSeconds)
	}
	if _, ok := got.Functions["old"]; ok {
		t.Errorf("calls before the window show: %+v", got.Functions["old"])
	}
	if _, ok := got.Functions["idle"]; ok {
		t.Error("an idle function shows")
	}
	fast := got.Functions["fast"]
	if fast.CallsPerSecond != 100.0/60 || fast.ErrorsPerSecond != 10.0/60 {
		t.Errorf("fast: %+v, want 100 calls and 10 errors in 60 s", fast)
	}
	if fast.P50ms < 0.5 || fast.P50ms > 2 {
		t.Errorf("fast p50 = %v ms, want about 1", fast.P50ms)
	}
	if fast.P99ms < 500 || fast.P99ms > 2000 {
		t.Errorf("fast p99 = %v ms, want about 1000", fast.P99ms)
	}
	if got.Functions["busy"].InFlight != 3 {
		t.Errorf("busy: %+v, want 3 in flight", got.Functions["busy"])
	}
	o := got.Triggers["orders"]
	if o.DeliveriesPerSecond != 50.0/60 || o.FailuresPerSecond != 5.0/60 || o.DeadLetters != 2 || o.InFlight != 1 ||
		math.Abs(o.LagSeconds-0.2) > 1e-9 {
		t.Errorf("orders: %+v", o)
	}
	if w := got.Workflows["ship"]; w.InvocationsPerSecond != 2.0/60 || w.FailedPerSecond != 1.0/60 || w.Running != 4 {
		t.Errorf("ship: %+v", w)
	}
	if s := got.Series["function:fast"]; len(s) != 1 || s[0][1] != 100 || s[0][2] != 10 {
		t.Errorf("series of fast: %v", s)
	}
	// Once the window has passed them, the calls leave the figures; the
	// gauges stay.
	for i := 13; i <= 24; i++ {
		f.Sample(t0.Add(SamplePeriod * time.Duration(i)))
	}
	later := f.Snapshot(time.Minute, false)
	if _, ok := later.Functions["fast"]; ok || later.Series != nil {
		t.Errorf("a minute later: %+v", later)
	}
	if later.Triggers["orders"].InFlight != 1 || later.Triggers["orders"].DeliveriesPerSecond != 0 {
		t.Errorf("a minute later, orders: %+v", later.Triggers["orders"])
	}
}

// The ring keeps FiguresSpan: a window longer than that is cut to it.
func TestFiguresRingBound(t *testing.T) {
	m := New(Sources{})
	f := m.NewFigures("n")
	t0 := time.Unix(1_800_000_000, 0)
	for i := range samples + 50 {
		m.Call("fn", host.Result{}, nil, time.Millisecond)
		f.Sample(t0.Add(time.Duration(i) * SamplePeriod))
	}
	if len(f.ring) != samples {
		t.Fatalf("ring holds %d samples, want %d", len(f.ring), samples)
	}
	got := f.Snapshot(time.Hour, false)
	if got.WindowSeconds != FiguresSpan.Seconds() {
		t.Errorf("window %v s, want %v", got.WindowSeconds, FiguresSpan.Seconds())
	}
	if want := float64(samples) / FiguresSpan.Seconds(); math.Abs(got.Functions["fn"].CallsPerSecond-want) > 1e-9 {
		t.Errorf("calls/s %v, want %v", got.Functions["fn"].CallsPerSecond, want)
	}
}

// BenchmarkSample measures one sample with 1,000 busy functions and
// 1,000 triggers (the cost the sampler adds every SamplePeriod, with
// nobody looking).
func BenchmarkSample(b *testing.B) {
	fns := map[string]host.Stats{}
	trig := map[string]triggers.QueueStats{}
	for i := range 1000 {
		fns[fmt.Sprintf("fn-%d", i)] = host.Stats{Active: i % 2}
		trig[fmt.Sprintf("trigger-%d", i)] = triggers.QueueStats{}
	}
	m := New(Sources{
		Functions: func() map[string]host.Stats { return fns },
		Triggers:  func() map[string]triggers.QueueStats { return trig },
	})
	f := m.NewFigures("n")
	now := time.Now()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		for j := range 1000 {
			m.counts.fn(fmt.Sprintf("fn-%d", j)).add(false, time.Millisecond)
			name := fmt.Sprintf("trigger-%d", j)
			st := trig[name]
			st.Delivered++
			trig[name] = st
		}
		b.StartTimer()
		f.Sample(now.Add(time.Duration(i) * SamplePeriod))
	}
}
