package wasmbin

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestBehaviourPreservedSchemes runs the behaviour cases with every loop
// on the global-counter fallback (local limit 0), and with a mix (limit
// 3: only functions with fewer than 3 parameters and locals get a counter
// local).
func TestBehaviourPreservedSchemes(t *testing.T) {
	for _, limit := range []uint64{0, 3} {
		for _, tc := range behaviourCases {
			t.Run(tc.name, func(t *testing.T) {
				res, err := instrument(wat(t, tc.wat), Options{Interrupt: true, MaxMemoryPages: 16}, limit)
				if err != nil {
					t.Fatalf("local limit %d: %v", limit, err)
				}
				runCase(t, tc, res.Wasm)
				validate(t, res.Wasm)
			})
		}
	}
}

// hostCallWAT has loops whose iterations call nothing, or the host (env.h)
// directly or through a table, or a guest function, or fill memory, or
// leave the function by a branch that is not taken. Each iteration counts
// in $iter; iteration $at calls env.set, which sets the interrupt flag.
const hostCallWAT = `(module
  (import "env" "h" (func $h))
  (import "env" "set" (func $set))
  (type $void (func))
  (table 1 funcref)
  (elem (i32.const 0) $h)
  (memory 1)
  (global $iter (mut i32) (i32.const 0))
  (func $nop)
  (func (export "no_calls") (param $at i32)
    (loop $l
      (global.set $iter (i32.add (global.get $iter) (i32.const 1)))
      (if (i32.eq (global.get $iter) (local.get $at)) (then (call $set)))
      (br $l)))
  (func (export "host") (param $at i32)
    (loop $l
      (global.set $iter (i32.add (global.get $iter) (i32.const 1)))
      (if (i32.eq (global.get $iter) (local.get $at)) (then (call $set)))
      (call $h)
      (br $l)))
  (func (export "indirect") (param $at i32)
    (loop $l
      (global.set $iter (i32.add (global.get $iter) (i32.const 1)))
      (if (i32.eq (global.get $iter) (local.get $at)) (then (call $set)))
      (call_indirect (type $void) (i32.const 0))
      (br $l)))
  (func (export "guest") (param $at i32)
    (loop $l
      (global.set $iter (i32.add (global.get $iter) (i32.const 1)))
      (if (i32.eq (global.get $iter) (local.get $at)) (then (call $set)))
      (call $nop)
      (br $l)))
  (func (export "fill") (param $at i32)
    (loop $l
      (global.set $iter (i32.add (global.get $iter) (i32.const 1)))
      (if (i32.eq (global.get $iter) (local.get $at)) (then (call $set)))
      (memory.fill (i32.const 0) (i32.const 7) (i32.const 4096))
      (br $l)))
  (func (export "exit_branch") (param $at i32)
    (loop $l
      (global.set $iter (i32.add (global.get $iter) (i32.const 1)))
      (if (i32.eq (global.get $iter) (local.get $at)) (then (call $set)))
      (br_if 1 (i32.eqz (global.get $iter)))
      (br $l)))
  (func (export "iter") (result i32) (global.get $iter))
  (func (export "reset") (global.set $iter (i32.const 0))))`

// hostCallRuntime returns a runtime with the env module hostCallWAT
// imports: h does nothing, set raises the calling module's interrupt flag
// as the host does (with the countdown at 0), or, if *lost is true, as
// when the guest's own update of the countdown undoes the host's 0 (the
// flag alone).
func hostCallRuntime(t *testing.T, lost *bool) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
	t.Cleanup(func() { r.Close(ctx) })
	_, err := r.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), nil, nil).Export("h").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, _ []uint64) {
		m.ExportedGlobal(InterruptExport).(api.MutableGlobal).Set(1)
		if lost == nil || !*lost {
			m.ExportedGlobal(CountdownExport).(api.MutableGlobal).Set(0)
		}
	}), nil, nil).Export("set").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLoopInterruptBound checks how many loop iterations a guest runs
// after the interrupt flag is set, deterministically: the guest sets it
// itself (through the host) at iteration at. With the counter local, a
// loop checks the flag before it calls the host or fills memory, and the
// entry of the guest functions it calls finds the countdown at 0, so at
// once; a loop that calls nothing (once it has set the flag), every
// YieldInterval iterations, also when a branch out of the function
// restarts its count at every iteration. With the global counter, every
// iteration checks the countdown. When the host's 0 is lost, a check of
// the countdown finds the flag within YieldInterval checks.
func TestLoopInterruptBound(t *testing.T) {
	for _, s := range schemes {
		for _, lost := range []bool{false, true} {
			name := s.name
			if lost {
				name += "/countdown_lost"
			}
			t.Run(name, func(t *testing.T) { loopInterruptBound(t, s.localLimit, lost) })
		}
	}
}

func loopInterruptBound(t *testing.T, localLimit uint64, lost bool) {
	r := hostCallRuntime(t, &lost)
	ctx := context.Background()
	bin := instrumentScheme(t, wat(t, hostCallWAT), localLimit).Wasm
	m, err := r.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	flag := interruptFlag(t, m)
	for _, tc := range []struct {
		fn string
		// the flag is seen in the iteration that sets it: checked alone
		// (in a function with a counter local), or at a function entry
		// that finds the countdown at 0
		flagChecked, entry bool
	}{
		{"no_calls", false, false},
		{"host", true, false},
		{"indirect", true, false},
		{"guest", false, true},
		{"fill", true, false},
		{"exit_branch", false, false},
	} {
		prompt := (tc.flagChecked && localLimit != 0) || (!lost && (tc.flagChecked || tc.entry || localLimit == 0))
		for _, at := range []uint64{100, 12345, 3*YieldInterval - 1} {
			call(t, m, "reset")
			_, err := m.ExportedFunction(tc.fn).Call(ctx, at)
			if err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("%s(%d): error %v, want the unreachable trap", tc.fn, at, err)
			}
			flag.Set(0)
			iter := call(t, m, "iter")[0]
			late := iter - at // iterations begun after the flag was set
			t.Logf("%s(%d): trapped %d iterations late", tc.fn, at, late)
			switch {
			case iter < at:
				t.Errorf("%s(%d): trapped at iteration %d, before the flag was set", tc.fn, at, iter)
			case prompt && late > 1:
				t.Errorf("%s(%d): trapped %d iterations late, want at most 1", tc.fn, at, late)
			case late >= YieldInterval:
				t.Errorf("%s(%d): trapped %d iterations late, want fewer than YieldInterval", tc.fn, at, late)
			}
		}
	}
}

// TestInterruptHostCalls interrupts, from another goroutine, endless loops
// whose only calls are to the host.
func TestInterruptHostCalls(t *testing.T) {
	for _, s := range schemes {
		t.Run(s.name, func(t *testing.T) {
			r := hostCallRuntime(t, nil)
			ctx := context.Background()
			bin := instrumentScheme(t, wat(t, hostCallWAT), s.localLimit).Wasm
			for _, fn := range []string{"host", "indirect", "fill", "exit_branch"} {
				m, err := r.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					t.Fatal(err)
				}
				// at 0: the guest never sets the flag itself
				if _, err := interruptAfter(t, m.ExportedFunction(fn), interruptFlag(t, m), 20*time.Millisecond, 0); err == nil {
					t.Fatalf("%s: returned without error", fn)
				}
				m.Close(ctx)
			}
		})
	}
}

// TestYieldWithShortLoops checks that loops too short to reach their own
// slow path still make the guest exit to Go regularly: a loop calling a
// function whose loop runs just under YieldInterval iterations. Were the
// callee's iterations not charged to the countdown when it returns, the
// guest would exit to Go only every YieldInterval calls, about 10^8
// iterations (a tenth of a second or more), and every garbage collection
// would wait that long for it.
func TestYieldWithShortLoops(t *testing.T) {
	src := `(module
  (global $sink (mut i32) (i32.const 0))
  (func $inner (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 9999))))
    (global.set $sink (local.get $i)))
  (func (export "spin") (loop $l (call $inner) (br $l))))`
	for _, s := range schemes {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
			defer r.Close(ctx)
			m, err := r.InstantiateWithConfig(ctx, instrumentScheme(t, wat(t, src), s.localLimit).Wasm, wazero.NewModuleConfig().WithName(""))
			if err != nil {
				t.Fatal(err)
			}
			var returned atomic.Bool
			go func() {
				m.ExportedFunction("spin").Call(ctx)
				returned.Store(true)
			}()
			time.Sleep(20 * time.Millisecond)
			var gcs []time.Duration
			for range 9 {
				start := time.Now()
				runtime.GC()
				gcs = append(gcs, time.Since(start))
			}
			slices.Sort(gcs)
			t.Logf("garbage collections while the guest spun: %v", gcs)
			if median := gcs[len(gcs)/2]; median > 50*time.Millisecond {
				t.Errorf("median garbage collection took %v, want well under 50ms", median)
			}
			interruptFlag(t, m).Set(1)
			if !waitFor(20*time.Second, returned.Load) {
				t.Fatal("the guest did not stop")
			}
		})
	}
}

// TestCGuestGlobalCounter runs the C guest with every loop on the
// global-counter fallback.
func TestCGuestGlobalCounter(t *testing.T) {
	bin := cGuest(t, "c", cGuestSource)
	want, err := runWASI(t, bin, nil, nil)
	if err != nil {
		t.Fatalf("original: %v", err)
	}
	res, err := instrument(bin, Options{Interrupt: true, MaxMemoryPages: 16384}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runWASI(t, res.Wasm, nil, nil)
	if err != nil {
		t.Fatalf("instrumented: %v", err)
	}
	if got != want {
		t.Fatalf("output differs\n got: %q\nwant: %q", got, want)
	}
	checkSpinInterrupted(t, res.Wasm)
}
