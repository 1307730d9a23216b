package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host"
)

// DefaultSamples is how many samples make each cold and warm figure by
// default: enough for a p99 that is not just the maximum (ten samples lie
// above it).
const DefaultSamples = 1000

// MinSamples is the fewest samples a figure may have.
const MinSamples = 10

// DefaultInput is the input of every call unless told otherwise: 1 KiB,
// the size of a small request.
var DefaultInput = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// ColdStartOptions configure ColdStart.
type ColdStartOptions struct {
	// ABI is the modules' kind; "" or abi.Auto detects it.
	ABI abi.Kind
	// Export is the function an Extism plugin's calls run ("": its only
	// one, or handle, as at deploy); modules of other kinds ignore it.
	Export string
	// Samples is the number of samples of each cold and warm figure
	// (DefaultSamples if 0).
	Samples int
	// Input is each call's input (DefaultInput if nil).
	Input []byte
	// Timer is the clock's cost (MeasureTimer if zero).
	Timer Timer
	// Progress, if set, is told how far the run is, in steps of the
	// module being measured, and what is being measured.
	Progress func(done, total int, what string)
}

// Steps of one module in Progress: compile, cache load, then the warm-up
// and the rounds of the cold and of the warm measurement.
const coldStartSteps = 2 + 2*(1+rounds)

func (o *ColdStartOptions) defaults() {
	if o.ABI == "" {
		o.ABI = abi.Auto
	}
	if o.Samples == 0 {
		o.Samples = DefaultSamples
	}
	if o.Input == nil {
		o.Input = DefaultInput
	}
	if o.Timer.MinSample == 0 {
		o.Timer = MeasureTimer()
	}
}

// ColdStart is what ColdStart measured for one module. Its JSON form has
// exactly the keys `sluice bench coldstart -o json` promises.
type ColdStart struct {
	Module string `json:"module"`
	ABI    string `json:"abi"`
	// CompileUS is the first compilation, with no cache: host.Load on a
	// new host (instrumentation and wazero's compiler).
	CompileUS float64 `json:"compile_us"`
	// CacheLoadUS is a new host with the on-disk compilation cache, and
	// Load of the module from it: what a restarted daemon pays.
	CacheLoadUS float64 `json:"cache_load_us"`
	// Cold is a fresh instance and its first call through sluice's
	// invoke path (host.Function.InvokeCold).
	ColdP50US float64 `json:"cold_p50_us"`
	ColdP99US float64 `json:"cold_p99_us"`
	// Warm is a call on a pooled reactor instance (host.Function.Invoke);
	// for a WASI command, whose every call is a fresh instance, the same
	// samples as Cold.
	WarmP50US float64 `json:"warm_p50_us"`
	WarmP99US float64 `json:"warm_p99_us"`
	// Floor is the same on bare wazero, measured in the same run,
	// interleaved with sluice; nil (JSON null) for a module that has no
	// floor (NoFloor says why).
	FloorColdP50US *float64 `json:"floor_cold_p50_us"`
	FloorWarmP50US *float64 `json:"floor_warm_p50_us"`

	// Size is the module's size in bytes.
	Size int `json:"-"`
	// The distributions behind the figures.
	Cold, Warm, FloorCold, FloorWarm Summary `json:"-"`
	// ColdBatch and WarmBatch are the calls timed together per sample
	// (1 unless a call is shorter than the timer's MinSample).
	ColdBatch, WarmBatch int `json:"-"`
	// SameOutput tells whether sluice and bare wazero gave the same
	// output for the input.
	SameOutput bool `json:"-"`
	// NoFloor says why the module has no bare-wazero floor (an Extism
	// plugin's); "" when it has one.
	NoFloor string `json:"-"`
}

// ColdOverFloor is the cold start's median over its floor's, 0 without a
// floor.
func (r *ColdStart) ColdOverFloor() float64 {
	if r.FloorColdP50US == nil {
		return 0
	}
	return r.ColdP50US / *r.FloorColdP50US
}

// WarmOverFloorUS is what sluice adds to the median warm call, in µs, 0
// without a floor.
func (r *ColdStart) WarmOverFloorUS() float64 {
	if r.FloorWarmP50US == nil {
		return 0
	}
	return r.WarmP50US - *r.FloorWarmP50US
}

// ColdStartModule measures one module; path names it in the result.
func ColdStartModule(ctx context.Context, path string, wasm []byte, o ColdStartOptions) (*ColdStart, error) {
	o.defaults()
	if o.Samples < MinSamples {
		return nil, fmt.Errorf("%d samples: want at least %d", o.Samples, MinSamples)
	}
	step, steps := 0, func(what string) {}
	if o.Progress != nil {
		steps = func(what string) { o.Progress(step, coldStartSteps, what); step++ }
	}
	res := &ColdStart{Module: path, Size: len(wasm)}
	spec := host.Spec{Name: "bench", ABI: o.ABI, Export: o.Export}

	// The function measured, on a host with an on-disk cache that this
	// first Load fills (new hosts load from it below). It also tells the
	// module's kind: Export is for the Extism plugins of a list of modules.
	steps("compile")
	dir, err := os.MkdirTemp("", "sluice-bench-cache-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	h, err := host.New(ctx, host.NewConfig().WithCacheDir(dir))
	if err != nil {
		return nil, err
	}
	defer h.Close(ctx)
	f, err := h.Load(ctx, spec, wasm)
	if spec.Export != "" && errors.Is(err, host.ErrInvalidConfig) { // not a plugin
		spec.Export = ""
		f, err = h.Load(ctx, spec, wasm)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	kind := f.Spec().ABI
	res.ABI = string(kind)

	// First compilation: a new host each time, compiled code in memory.
	compile, err := repeat(3, 11, 2*time.Second, func() (time.Duration, error) {
		h, err := host.New(ctx, host.NewConfig())
		if err != nil {
			return 0, err
		}
		defer h.Close(ctx)
		start := time.Now()
		_, err = h.Load(ctx, spec, wasm)
		return time.Since(start), err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res.CompileUS = Micros(compile)

	// Cache load: new hosts load the module from the on-disk cache.
	steps("cache load")
	load, err := repeat(3, 11, 2*time.Second, func() (time.Duration, error) {
		start := time.Now()
		h, err := host.New(ctx, host.NewConfig().WithCacheDir(dir))
		if err != nil {
			return 0, err
		}
		defer h.Close(ctx)
		_, err = h.Load(ctx, spec, wasm)
		return time.Since(start), err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	res.CacheLoadUS = Micros(load)

	// Every call's output is kept and compared, so that nothing is
	// optimised away and both sides did the same work.
	var out []byte
	call := host.Call{Input: o.Input}
	sluiceCold := func() error {
		r, err := f.InvokeCold(ctx, call)
		out = r.Output
		return err
	}
	sluiceWarm := func() error {
		r, err := f.Invoke(ctx, call)
		out = r.Output
		return err
	}
	if err := sluiceWarm(); err != nil {
		return nil, fmt.Errorf("%s: call through sluice: %w", path, err)
	}
	var floorCold, floorWarm func() error // nil without a floor
	if res.NoFloor = noFloor(kind); res.NoFloor == "" {
		fl, err := newFloor(ctx, wasm, kind, o.Input)
		if err != nil {
			return nil, fmt.Errorf("%s on bare wazero: %w", path, err)
		}
		defer fl.close(ctx)
		floorCold = func() error { return fl.cold(ctx) }
		floorWarm = func() error { return fl.warm(ctx) }
		if err := floorWarm(); err != nil {
			return nil, fmt.Errorf("%s: call on bare wazero: %w", path, err)
		}
		res.SameOutput = bytes.Equal(out, fl.out)
	}

	measure := func(what string, a, b func() error) (sa, sb []time.Duration, batch int, err error) {
		steps(what + ": warm-up")
		// Warm-up: both sides, a tenth of the samples and at least
		// 100 ms each, which also estimates how long a call takes.
		minCalls := max(10, o.Samples/10)
		pa, err := warmUp(ctx, a, minCalls, 100*time.Millisecond)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: %s through sluice: %w", path, what, err)
		}
		pb := pa
		if b != nil {
			if pb, err = warmUp(ctx, b, minCalls, 100*time.Millisecond); err != nil {
				return nil, nil, 0, fmt.Errorf("%s: %s on bare wazero: %w", path, what, err)
			}
		}
		batch = o.Timer.batchFor(min(pa, pb))
		runtime.GC()
		if b == nil {
			sa, err = sampleAlone(ctx, a, o.Samples, batch, func() { steps(what) })
		} else {
			sa, sb, err = paired(ctx, a, b, o.Samples, batch, func() { steps(what) })
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%s: %s: %w", path, what, err)
		}
		return sa, sb, batch, nil
	}
	cold, fcold, batch, err := measure("cold start", sluiceCold, floorCold)
	if err != nil {
		return nil, err
	}
	res.Cold, res.FloorCold, res.ColdBatch = Summarize(cold), Summarize(fcold), batch
	if kind == abi.Reactor || kind == abi.Extism { // pooled instances
		warm, fwarm, batch, err := measure("warm call", sluiceWarm, floorWarm)
		if err != nil {
			return nil, err
		}
		res.Warm, res.FloorWarm, res.WarmBatch = Summarize(warm), Summarize(fwarm), batch
	} else {
		// A WASI command is a fresh instance on every call: its warm
		// path is its cold one, and measuring it again would only
		// sample the same thing twice.
		res.Warm, res.FloorWarm, res.WarmBatch = res.Cold, res.FloorCold, res.ColdBatch
		for i := 0; i < 1+rounds; i++ {
			steps("cold start")
		}
	}
	res.ColdP50US, res.ColdP99US = Micros(res.Cold.P50), Micros(res.Cold.P99)
	res.WarmP50US, res.WarmP99US = Micros(res.Warm.P50), Micros(res.Warm.P99)
	if res.NoFloor == "" {
		fc, fw := Micros(res.FloorCold.P50), Micros(res.FloorWarm.P50)
		res.FloorColdP50US, res.FloorWarmP50US = &fc, &fw
	}
	return res, nil
}

// sampleAlone takes the samples of an operation that has no floor to
// interleave with, in the same rounds as paired.
func sampleAlone(ctx context.Context, op func() error, samples, batch int, step func()) (s []time.Duration, err error) {
	s = make([]time.Duration, 0, samples)
	for r := 0; r < rounds; r++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s, err = sampleInto(s, op, samples/rounds+boolInt(r < samples%rounds), batch); err != nil {
			return nil, err
		}
		step()
	}
	return s, nil
}

// repeat runs op at least minReps and at most maxReps times, stopping
// after minReps once budget has passed, and returns the median.
func repeat(minReps, maxReps int, budget time.Duration, op func() (time.Duration, error)) (time.Duration, error) {
	start := time.Now()
	var d []time.Duration
	for len(d) < maxReps && (len(d) < minReps || time.Since(start) < budget) {
		runtime.GC()
		t, err := op()
		if err != nil {
			return 0, err
		}
		d = append(d, t)
	}
	return Summarize(d).P50, nil
}
