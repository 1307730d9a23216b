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

// loopWAT sums 1..n in a tight loop, and has an empty function for
// measuring the cost of a call.
const loopWAT = `(module
  (func (export "sum") (param $n i64) (result i64) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (local.get $n)))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br_if $l (i64.ne (local.get $n) (i64.const 0))))
    (local.get $s))
  (func (export "nop")))`

// loopVariants are the three ways of running a guest compared by
// BenchmarkLoop and BenchmarkCall.
var loopVariants = []struct {
	name       string
	instrument bool
	closeOnCtx bool
}{
	{"plain", false, false},
	{"instrumented", true, false},
	{"closeOnContextDone", false, true},
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
				bin = mustInstrument(b, plain, Options{Interrupt: true}).Wasm
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

// BenchmarkLoop compares a loop of 1e6 iterations uninstrumented,
// instrumented (flag never set) and uninstrumented under wazero's
// WithCloseOnContextDone.
func BenchmarkLoop(b *testing.B) { benchGuest(b, "sum", 1_000_000) }

// BenchmarkCall compares the cost of calling an empty function.
func BenchmarkCall(b *testing.B) { benchGuest(b, "nop") }
