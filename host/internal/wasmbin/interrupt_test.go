package wasmbin

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// interruptWAT has functions that run forever (or for a very long time)
// in different ways.
const interruptWAT = `(module
  (global $sink (mut i64) (i64.const 0))
  (func (export "spin") (loop $l (br $l)))
  (func (export "spin_work") (param $n i64)
    (loop $l
      (local.set $n (i64.add (local.get $n) (i64.const 1)))
      (global.set $sink (local.get $n))
      (br_if $l (i64.ne (local.get $n) (i64.const 0)))))
  (func $fib (export "fib") (param i64) (result i64)
    (if (result i64) (i64.lt_u (local.get 0) (i64.const 2))
      (then (local.get 0))
      (else (i64.add (call $fib (i64.sub (local.get 0) (i64.const 1)))
                     (call $fib (i64.sub (local.get 0) (i64.const 2)))))))
  (func $noop)
  (func (export "call_loop") (loop $l (call $noop) (br $l)))
  (func $forever (export "tail_forever") (param i64) (return_call $forever (i64.add (local.get 0) (i64.const 1))))
  (func (export "quick") (result i32) (i32.const 7)))`

// TestInterrupt runs each long function on one goroutine, sets the
// interrupt flag from another after about 50 ms, and checks that the call
// traps promptly. fib(40) is naive exponential recursion without loops
// (about 1.6e9 calls); tail_forever has neither loops nor a growing stack.
func TestInterrupt(t *testing.T) {
	bin := mustInstrument(t, wat(t, interruptWAT), Options{Interrupt: true}).Wasm
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
	defer r.Close(ctx)
	compiled, err := r.CompileModule(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fn   string
		args []uint64
	}{
		{"spin", nil},
		{"spin_work", []uint64{1}},
		{"fib", []uint64{40}},
		{"call_loop", nil},
		{"tail_forever", []uint64{0}},
	} {
		t.Run(tc.fn, func(t *testing.T) {
			m, err := r.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName(""))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			flag := interruptFlag(t, m)
			latency, err := interruptAfter(t, m.ExportedFunction(tc.fn), flag, 50*time.Millisecond, tc.args...)
			if err == nil {
				t.Fatal("the call returned without error")
			}
			if !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("error %q is not the unreachable trap", err)
			}
			t.Logf("returned %v after the flag was set: %v", latency, err)
			// The module stays usable once the host clears the flag.
			flag.Set(0)
			if got := call(t, m, "quick"); got[0] != 7 {
				t.Errorf("quick() = %d after the interrupt", got[0])
			}
		})
	}
}

// interruptAfter calls fn on a new goroutine, sets flag to 1 after delay
// from yet another goroutine, and waits (polling, for at most 20 s) for
// the call to return. It returns the time from setting the flag to the
// return and the call's error. It fails the test if the call returned
// before the flag was set or did not return in time.
func interruptAfter(t *testing.T, fn api.Function, flag api.MutableGlobal, delay time.Duration, args ...uint64) (time.Duration, error) {
	t.Helper()
	var (
		returned atomic.Bool
		setAt    atomic.Int64
		earlyRet atomic.Bool
		callErr  error
	)
	go func() {
		_, callErr = fn.Call(context.Background(), args...)
		returned.Store(true)
	}()
	timer := time.AfterFunc(delay, func() {
		earlyRet.Store(returned.Load())
		now := time.Now().UnixNano()
		flag.Set(1)
		// Stored after Set so that a test reading setAt also sees Set done
		// (the race detector otherwise flags the later flag.Set(0)).
		setAt.Store(now)
	})
	defer timer.Stop()
	if !waitFor(20*time.Second, returned.Load) {
		t.Fatalf("the call did not return within 20 s of the interrupt flag being set")
	}
	if !waitFor(time.Second, func() bool { return setAt.Load() != 0 }) {
		t.Fatal("the flag was never set")
	}
	if earlyRet.Load() {
		t.Fatal("the call returned before the interrupt flag was set")
	}
	return time.Since(time.Unix(0, setAt.Load())), callErr
}

// TestInterruptStartFunction checks that a start function that never
// returns can be interrupted once it runs as the exported StartExport.
func TestInterruptStartFunction(t *testing.T) {
	res := mustInstrument(t, wat(t, `(module (func $s (loop (br 0))) (start $s))`), Options{Interrupt: true})
	m := instantiate(t, res.Wasm)
	if _, err := interruptAfter(t, m.ExportedFunction(res.StartExport), interruptFlag(t, m), 50*time.Millisecond); err == nil {
		t.Fatal("the start function returned without error")
	}
}

// TestGarbageCollectionDuringGuestLoop checks that a guest spinning in a
// loop does not stop the Go runtime from stopping the world: a forced
// garbage collection completes while the guest spins, and then the
// interrupt still works. Without the periodic exit to Go this test hangs
// until the test binary's -timeout (no goroutine, including this one, can
// run while the collection waits for the guest).
func TestGarbageCollectionDuringGuestLoop(t *testing.T) {
	for _, src := range []string{
		`(module (func (export "spin") (loop (br 0))))`,                     // no memory: one is added
		`(module (memory 1) (func (export "spin") (loop (br 0))))`,          // own memory
		`(module (memory 1 1 shared) (func (export "spin") (loop (br 0))))`, // shared memory
		`(module (func $f (export "spin") (return_call $f)))`,               // no loop, only calls
	} {
		res := mustInstrument(t, wat(t, src), Options{Interrupt: true})
		ctx := context.Background()
		r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
		m, err := r.InstantiateWithConfig(ctx, res.Wasm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		var returned atomic.Bool
		errc := make(chan error, 1)
		go func() {
			_, err := m.ExportedFunction("spin").Call(ctx)
			returned.Store(true)
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond) // let the guest start spinning
		start := time.Now()
		for i := 0; i < 3; i++ {
			runtime.GC()
		}
		gcTime := time.Since(start)
		if returned.Load() {
			t.Fatalf("%s: the guest returned early", src)
		}
		t.Logf("%s: 3 garbage collections took %v while the guest spun", src, gcTime)
		interruptFlag(t, m).Set(1)
		if !waitFor(20*time.Second, returned.Load) {
			t.Fatalf("%s: the guest did not stop within 20 s", src)
		}
		if err := <-errc; err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("%s: error %v, want the unreachable trap", src, err)
		}
		r.Close(ctx)
	}
}
