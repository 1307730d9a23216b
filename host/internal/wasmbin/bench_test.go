package wasmbin

import (
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// BenchmarkInstrument instruments the Go guest (about 3 MB).
func BenchmarkInstrument(b *testing.B) {
	bin := goGuest(b)
	b.SetBytes(int64(len(bin)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Instrument(bin, Options{Interrupt: true, MaxMemoryPages: 1024}); err != nil {
			b.Fatal(err)
		}
	}
}

// loopWAT sums 1..n in a tight loop, has an empty function for measuring
// the cost of a call, and a loop calling a function with a short loop.
const loopWAT = `(module
  (func $sum (export "sum") (param $n i64) (result i64) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (local.get $n)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br_if $l (i64.ne (local.get $n) (i64.const 0))))
    (local.get $s))
  (func (export "nop"))
  (func (export "calls") (param $n i64) (result i64) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (call $sum (i64.const 10))))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br_if $l (i64.ne (local.get $n) (i64.const 0))))
    (local.get $s)))`

// loopVariants are the ways of running a guest compared by BenchmarkLoop,
// BenchmarkLoopCalls and BenchmarkCall: uninstrumented, instrumented,
// instrumented with every loop on the global-counter fallback (the scheme
// Instrument used for all loops before loops got a counter local; its
// checks differ from the old ones only in comparing the countdown with
// "<= 0" instead of "== 0"), and uninstrumented under wazero's
// WithCloseOnContextDone.
var loopVariants = []struct {
	name       string
	instrument bool
	localLimit uint64
	closeOnCtx bool
}{
	{"plain", false, 0, false},
	{"instrumented", true, maxLocals, false},
	{"instrumentedGlobalCounter", true, 0, false},
	{"closeOnContextDone", false, 0, true},
}

// benchGuest runs fn of loopWAT under each variant.
func benchGuest(b *testing.B, fn string, args ...uint64) {
	plain := wat(b, loopWAT)
	for _, v := range loopVariants {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			cfg := wazero.NewRuntimeConfigCompiler()
			bin := plain
			if v.instrument {
				bin = instrumentScheme(b, plain, v.localLimit).Wasm
			}
			if v.closeOnCtx {
				cfg = cfg.WithCloseOnContextDone(true)
			}
			r := wazero.NewRuntimeWithConfig(ctx, cfg)
			defer r.Close(ctx)
			m, err := r.Instantiate(ctx, bin)
			if err != nil {
				b.Fatal(err)
			}
			f := m.ExportedFunction(fn)
			// A context with a deadline, as the daemon uses for every call.
			callCtx, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			for b.Loop() {
				if _, err := f.Call(callCtx, args...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoop compares a loop of 1e6 iterations run the loopVariants
// ways (the flag never set).
func BenchmarkLoop(b *testing.B) { benchGuest(b, "sum", 1_000_000) }

// BenchmarkLoopCalls compares a loop of 1e5 iterations, each calling a
// function whose loop runs 10 iterations: the calls flush the count.
func BenchmarkLoopCalls(b *testing.B) { benchGuest(b, "calls", 100_000) }

// BenchmarkCall compares the cost of calling an empty function.
func BenchmarkCall(b *testing.B) { benchGuest(b, "nop") }
