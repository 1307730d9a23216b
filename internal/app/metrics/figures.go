package metrics

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/engine"
)

// Live figures: the last minutes of this daemon's metrics, as rates and
// percentiles per function, trigger and workflow (GET /v1/figures). A
// sampler reads the counters every SamplePeriod and keeps what changed in
// a ring covering FiguresSpan. It reads them directly (atomics kept beside
// the Prometheus metrics, and the Sources), not through the exposition
// format: a sample with 1,000 functions and 1,000 triggers costs well
// under a millisecond, and an idle function costs nothing in the ring.
const (
	// SamplePeriod is the time between two samples: short enough that a
	// console's figures move while one looks, long enough that sampling
	// costs nothing measurable (one sample reads every function's and
	// trigger's counters).
	SamplePeriod = 5 * time.Second
	// FiguresSpan is how far back the ring reaches: the longest window a
	// figure may cover. 15 minutes is what an operator looks back on to
	// see a change; longer belongs to Prometheus.
	FiguresSpan = 15 * time.Minute
	// DefaultWindow is the window of GET /v1/figures without ?window=.
	DefaultWindow = 5 * time.Minute
	// samples is the ring's length.
	samples = int(FiguresSpan / SamplePeriod)
)

// fnCounts are the counters of one function the figures read: calls,
// errors and the duration histogram, kept as atomics beside the
// Prometheus metrics so that the sampler reads them without a gather.
// It also holds the function's children of the Prometheus vectors every
// call feeds, so that a call looks its function up once: a vector's
// WithLabelValues hashes its labels under a lock.
type fnCounts struct {
	calls, errors atomic.Uint64
	buckets       [len(callBucketsFixed) + 1]atomic.Uint64 // the last is +Inf
	series        fnSeries
}

// fnSeries are one function's children of the vectors every call feeds.
type fnSeries struct {
	calls, coldStarts prometheus.Counter
	seconds           prometheus.Observer
}

// lagCounts add up a trigger's message lags; series is the trigger's
// child of the lag histogram, as fnCounts.series.
type lagCounts struct {
	micros, n atomic.Uint64
	series    prometheus.Observer
}

// wfCounts count a workflow's ended invocations.
type wfCounts struct {
	ended, failed atomic.Uint64
}

// callBucketsFixed are callBuckets as an array, so that fnCounts has a
// fixed size; the upper bounds of the figures' duration histogram.
var callBucketsFixed = [20]float64(callBuckets)

// counters are the atomics the observers feed, by name.
type counters struct {
	fns, lags, wfs sync.Map // name → *fnCounts, *lagCounts, *wfCounts
	// fnSeries and lagSeries make a new function's and a new trigger's
	// Prometheus series (New sets them).
	fnSeries  func(function string) fnSeries
	lagSeries func(trigger string) prometheus.Observer
}

// named returns m's value for name, made by make the first time.
func named[T any](m *sync.Map, name string, make func() *T) *T {
	if v, ok := m.Load(name); ok {
		return v.(*T)
	}
	v, _ := m.LoadOrStore(name, make())
	return v.(*T)
}

func (c *counters) fn(name string) *fnCounts {
	return named(&c.fns, name, func() *fnCounts { return &fnCounts{series: c.fnSeries(name)} })
}

func (f *fnCounts) add(failed bool, took time.Duration) {
	f.calls.Add(1)
	if failed {
		f.errors.Add(1)
	}
	f.buckets[sort.SearchFloat64s(callBucketsFixed[:], took.Seconds())].Add(1)
}

func (c *counters) trigger(name string) *lagCounts {
	return named(&c.lags, name, func() *lagCounts { return &lagCounts{series: c.lagSeries(name)} })
}

func (l *lagCounts) add(lag time.Duration) {
	l.micros.Add(uint64(lag.Microseconds()))
	l.n.Add(1)
}

func (c *counters) ended(workflow, status string) {
	w := named(&c.wfs, workflow, func() *wfCounts { return new(wfCounts) })
	w.ended.Add(1)
	if status == engine.StatusFailed {
		w.failed.Add(1)
	}
}

// fnDelta is what one function did during one sample period.
type fnDelta struct {
	calls, errors uint64
	buckets       []bucketDelta // only the buckets that moved
}

type bucketDelta struct {
	i int
	n uint64
}

type trigDelta struct {
	delivered, failed, dead uint64
	lagMicros, lagN         uint64
}

type wfDelta struct{ ended, failed uint64 }

// sample is one period: the deltas of what moved (nothing for what was
// idle), and the gauges at its end.
type sample struct {
	at    time.Time
	fns   map[string]fnDelta
	trigs map[string]trigDelta
	wfs   map[string]wfDelta
	// gauges at the sample's time: calls and messages in flight,
	// invocations running.
	active   map[string]int
	inflight map[string]int64
	running  map[string]int
}

// cumulative values at the last sample, to take deltas from.
type fnTotal struct {
	calls, errors uint64
	buckets       [len(callBucketsFixed) + 1]uint64
}
type trigTotal struct{ delivered, failed, dead, lagMicros, lagN uint64 }

// Figures samples one daemon's metrics into a ring and answers figures
// over a window of it.
type Figures struct {
	m    *Metrics
	node string

	mu      sync.Mutex
	ring    []*sample // oldest first, at most samples
	fnPrev  map[string]fnTotal
	trPrev  map[string]trigTotal
	wfPrev  map[string]wfDelta
	sampled chan struct{} // closed and replaced at each sample
	took    time.Duration // the last sample's cost
}

// NewFigures returns the figures of m's daemon, node naming it in every
// answer. Run samples.
func (m *Metrics) NewFigures(node string) *Figures {
	return &Figures{m: m, node: node, fnPrev: map[string]fnTotal{}, trPrev: map[string]trigTotal{},
		wfPrev: map[string]wfDelta{}, sampled: make(chan struct{})}
}

// Run samples every SamplePeriod until ctx ends.
func (f *Figures) Run(ctx context.Context) {
	t := time.NewTicker(SamplePeriod)
	defer t.Stop()
	f.Sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f.Sample(now)
		}
	}
}

// Sampled returns a channel closed at the next sample.
func (f *Figures) Sampled() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sampled
}

// SampleCost is how long the last sample took to read the counters.
func (f *Figures) SampleCost() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.took
}

// Sample reads the counters now and appends what moved since the last
// sample to the ring.
func (f *Figures) Sample(now time.Time) {
	start := time.Now()
	s := &sample{at: now, fns: map[string]fnDelta{}, trigs: map[string]trigDelta{}, wfs: map[string]wfDelta{}}
	src := f.m.src
	if src.Functions != nil {
		s.active = map[string]int{}
		for name, st := range src.Functions() {
			if st.Active > 0 {
				s.active[name] = st.Active
			}
		}
	}
	var trig map[string]trigTotal
	if src.Triggers != nil {
		stats := src.Triggers()
		trig = make(map[string]trigTotal, len(stats))
		s.inflight = map[string]int64{}
		for name, st := range stats {
			trig[name] = trigTotal{delivered: st.Delivered, failed: st.Failed, dead: st.DeadLettered}
			if st.InFlight > 0 {
				s.inflight[name] = st.InFlight
			}
		}
	}
	if src.Invocations != nil {
		s.running = map[string]int{}
		for wf, n := range src.Invocations() {
			if n > 0 {
				s.running[wf] = n
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m.counts.fns.Range(func(k, v any) bool {
		name, c := k.(string), v.(*fnCounts)
		var cur fnTotal
		cur.calls, cur.errors = c.calls.Load(), c.errors.Load()
		prev := f.fnPrev[name]
		if cur.calls == prev.calls {
			return true // idle: nothing in the ring
		}
		for i := range c.buckets {
			cur.buckets[i] = c.buckets[i].Load()
		}
		d := fnDelta{calls: cur.calls - prev.calls, errors: cur.errors - prev.errors}
		for i := range cur.buckets {
			if n := cur.buckets[i] - prev.buckets[i]; n > 0 {
				d.buckets = append(d.buckets, bucketDelta{i, n})
			}
		}
		s.fns[name] = d
		f.fnPrev[name] = cur
		return true
	})
	f.m.counts.lags.Range(func(k, v any) bool {
		l := v.(*lagCounts)
		t := trig[k.(string)]
		t.lagMicros, t.lagN = l.micros.Load(), l.n.Load()
		trig[k.(string)] = t
		return true
	})
	for name, cur := range trig {
		prev, seen := f.trPrev[name]
		if cur == prev {
			continue
		}
		if seen && cur.delivered < prev.delivered {
			prev = trigTotal{} // the trigger was made again: its counters started over
		}
		s.trigs[name] = trigDelta{delivered: cur.delivered - prev.delivered, failed: cur.failed - prev.failed,
			dead: cur.dead - prev.dead, lagMicros: cur.lagMicros - prev.lagMicros, lagN: cur.lagN - prev.lagN}
		f.trPrev[name] = cur
	}
	f.m.counts.wfs.Range(func(k, v any) bool {
		name, w := k.(string), v.(*wfCounts)
		cur := wfDelta{ended: w.ended.Load(), failed: w.failed.Load()}
		prev := f.wfPrev[name]
		if cur != prev {
			s.wfs[name] = wfDelta{ended: cur.ended - prev.ended, failed: cur.failed - prev.failed}
			f.wfPrev[name] = cur
		}
		return true
	})
	if len(f.ring) == samples {
		copy(f.ring, f.ring[1:])
		f.ring = f.ring[:samples-1]
	}
	f.ring = append(f.ring, s)
	f.took = time.Since(start)
	close(f.sampled)
	f.sampled = make(chan struct{})
}

// FunctionFigures are a function's figures over a window.
type FunctionFigures struct {
	CallsPerSecond  float64 `json:"calls_per_second"`
	ErrorsPerSecond float64 `json:"errors_per_second"`
	P50ms           float64 `json:"p50_ms"`
	P99ms           float64 `json:"p99_ms"`
	InFlight        int     `json:"in_flight"`
}

// TriggerFigures are a queue or timer trigger's figures over a window.
type TriggerFigures struct {
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`
	FailuresPerSecond   float64 `json:"failures_per_second"`
	// DeadLetters is the count of messages given up on in the window.
	DeadLetters uint64 `json:"dead_letters"`
	InFlight    int64  `json:"in_flight"`
	// LagSeconds is the mean time the window's messages waited in their
	// channel before the trigger took them.
	LagSeconds float64 `json:"lag_seconds"`
}

// WorkflowFigures are a workflow's figures over a window.
type WorkflowFigures struct {
	InvocationsPerSecond float64 `json:"invocations_per_second"`
	FailedPerSecond      float64 `json:"failed_per_second"`
	Running              int     `json:"running"`
}

// Snapshot is what GET /v1/figures answers: one daemon's figures over a
// window, entries with nothing in the window and nothing in flight left
// out. Series, when asked for, holds per sample period [unix seconds,
// calls, errors] of each function ("function:NAME") and [unix seconds,
// deliveries, failures] of each trigger ("trigger:NAME").
type Snapshot struct {
	Daemon        string                     `json:"daemon"`
	At            time.Time                  `json:"at"`
	WindowSeconds float64                    `json:"window_seconds"`
	Functions     map[string]FunctionFigures `json:"functions"`
	Triggers      map[string]TriggerFigures  `json:"triggers"`
	Workflows     map[string]WorkflowFigures `json:"workflows"`
	Series        map[string][][3]float64    `json:"series,omitempty"`
}

// Snapshot answers the figures over the last window (at most
// FiguresSpan), with the series if series is set.
func (f *Figures) Snapshot(window time.Duration, series bool) *Snapshot {
	window = min(max(window, SamplePeriod), FiguresSpan)
	out := &Snapshot{Daemon: f.node, WindowSeconds: window.Seconds(), Functions: map[string]FunctionFigures{},
		Triggers: map[string]TriggerFigures{}, Workflows: map[string]WorkflowFigures{}}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ring) == 0 {
		out.At = time.Now()
		return out
	}
	last := f.ring[len(f.ring)-1]
	out.At = last.at
	from := last.at.Add(-window)
	secs := window.Seconds()
	type fnSum struct {
		calls, errors uint64
		buckets       [len(callBucketsFixed) + 1]uint64
	}
	fns := map[string]*fnSum{}
	trigs := map[string]*trigDelta{}
	wfs := map[string]*wfDelta{}
	if series {
		out.Series = map[string][][3]float64{}
	}
	for _, s := range f.ring {
		if !s.at.After(from) {
			continue // a sample covers the period before its time
		}
		unix := float64(s.at.Unix())
		for name, d := range s.fns {
			sum := entry(fns, name)
			sum.calls += d.calls
			sum.errors += d.errors
			for _, b := range d.buckets {
				sum.buckets[b.i] += b.n
			}
			if series {
				k := "function:" + name
				out.Series[k] = append(out.Series[k], [3]float64{unix, float64(d.calls), float64(d.errors)})
			}
		}
		for name, d := range s.trigs {
			sum := entry(trigs, name)
			sum.delivered += d.delivered
			sum.failed += d.failed
			sum.dead += d.dead
			sum.lagMicros += d.lagMicros
			sum.lagN += d.lagN
			if series {
				k := "trigger:" + name
				out.Series[k] = append(out.Series[k], [3]float64{unix, float64(d.delivered), float64(d.failed)})
			}
		}
		for name, d := range s.wfs {
			sum := entry(wfs, name)
			sum.ended += d.ended
			sum.failed += d.failed
		}
	}
	for name, sum := range fns {
		out.Functions[name] = FunctionFigures{
			CallsPerSecond: float64(sum.calls) / secs, ErrorsPerSecond: float64(sum.errors) / secs,
			P50ms: quantile(0.5, sum.buckets[:]) * 1e3, P99ms: quantile(0.99, sum.buckets[:]) * 1e3,
			InFlight: last.active[name],
		}
	}
	for name, n := range last.active {
		if _, ok := out.Functions[name]; !ok {
			out.Functions[name] = FunctionFigures{InFlight: n}
		}
	}
	for name, sum := range trigs {
		t := TriggerFigures{DeliveriesPerSecond: float64(sum.delivered) / secs, FailuresPerSecond: float64(sum.failed) / secs,
			DeadLetters: sum.dead, InFlight: last.inflight[name]}
		if sum.lagN > 0 {
			t.LagSeconds = float64(sum.lagMicros) / float64(sum.lagN) / 1e6
		}
		out.Triggers[name] = t
	}
	for name, n := range last.inflight {
		if _, ok := out.Triggers[name]; !ok {
			out.Triggers[name] = TriggerFigures{InFlight: n}
		}
	}
	for name, sum := range wfs {
		out.Workflows[name] = WorkflowFigures{InvocationsPerSecond: float64(sum.ended) / secs,
			FailedPerSecond: float64(sum.failed) / secs, Running: last.running[name]}
	}
	for name, n := range last.running {
		if _, ok := out.Workflows[name]; !ok {
			out.Workflows[name] = WorkflowFigures{Running: n}
		}
	}
	return out
}

// quantile estimates the q-quantile of a histogram's counts (upper bounds
// callBucketsFixed, then +Inf) as Prometheus's histogram_quantile does:
// linear interpolation inside the bucket holding it, the first bucket
// starting at 0, and the +Inf bucket answered with the highest bound.
func quantile(q float64, counts []uint64) float64 {
	var total uint64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen uint64
	for i, n := range counts {
		if float64(seen+n) < rank || n == 0 {
			seen += n
			continue
		}
		if i == len(callBucketsFixed) {
			return callBucketsFixed[i-1]
		}
		lower := 0.0
		if i > 0 {
			lower = callBucketsFixed[i-1]
		}
		upper := callBucketsFixed[i]
		return lower + (upper-lower)*(rank-float64(seen))/float64(n)
	}
	return callBucketsFixed[len(callBucketsFixed)-1]
}

// entry is the value of a name in a map of sums, added if missing.
func entry[T any](m map[string]*T, name string) *T {
	v := m[name]
	if v == nil {
		v = new(T)
		m[name] = v
	}
	return v
}
