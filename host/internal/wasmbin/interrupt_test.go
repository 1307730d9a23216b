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
  (func $short (param $n i32)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n))))
  (func (export "short_loops") (loop $l (call $short (i32.const 100)) (br $l)))
  (func (export "exit_in_loop") (local $i i64)
    (loop $l
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if 1 (i64.eqz (local.get $i)))
      (br $l)))
  (func (export "quick") (result i32) (i32.const 7)))`

// schemes are the two ways Instrument checks loops: with a counter local
// (the normal case) and with the global countdown (the fallback for a
// function that cannot get a local, forced here for every function).
var schemes = []struct {
	name       string
	localLimit uint64
}{
	{"counter local", maxLocals},
	{"global counter", 0},
}

// instrumentScheme instruments bin with Interrupt, giving a counter local
// only to functions with fewer than localLimit locals (see schemes).
func instrumentScheme(t testing.TB, bin []byte, localLimit uint64) Result {
	t.Helper()
	res, err := instrument(bin, Options{Interrupt: true}, localLimit)
	if err != nil {
		t.Fatalf("instrument: %v", err)
	}
	return res
}

// TestInterrupt runs each long function on one goroutine, sets the
// interrupt flag from another after about 50 ms, and checks that the call
// traps promptly. fib(40) is naive exponential recursion without loops
// (about 1.6e9 calls); tail_forever has neither loops nor a growing stack;
// short_loops calls a function with a short loop from a loop; exit_in_loop
// has a branch out of the function in its loop.
func TestInterrupt(t *testing.T) {
	for _, s := range schemes {
		t.Run(s.name, func(t *testing.T) {
			testInterrupt(t, instrumentScheme(t, wat(t, interruptWAT), s.localLimit).Wasm)
		})
	}
}

func testInterrupt(t *testing.T, bin []byte) {
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
		{"short_loops", nil},
		{"exit_in_loop", nil},
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
	for _, s := range schemes {
		res := instrumentScheme(t, wat(t, `(module (func $s (loop (br 0))) (start $s))`), s.localLimit)
		m := instantiate(t, res.Wasm)
		if _, err := interruptAfter(t, m.ExportedFunction(res.StartExport), interruptFlag(t, m), 50*time.Millisecond); err == nil {
			t.Fatalf("%s: the start function returned without error", s.name)
		}
	}
}

// TestGarbageCollectionDuringGuestLoop checks that a guest spinning in a
// loop does not stop the Go runtime from stopping the world: a forced
// garbage collection completes while the guest spins, and then the
// interrupt still works. Without the periodic exit to Go this test hangs
// until the test binary's -timeout (no goroutine, including this one, can
// run while the collection waits for the guest).
func TestGarbageCollectionDuringGuestLoop(t *testing.T) {
	for _, s := range schemes {
		t.Run(s.name, func(t *testing.T) { testGarbageCollectionDuringGuestLoop(t, s.localLimit) })
	}
}

func testGarbageCollectionDuringGuestLoop(t *testing.T, localLimit uint64) {
	for _, src := range []string{
		`(module (func (export "spin") (loop (br 0))))`,                     // no memory: one is added
		`(module (memory 1) (func (export "spin") (loop (br 0))))`,          // own memory
		`(module (memory 1 1 shared) (func (export "spin") (loop (br 0))))`, // shared memory
		`(module (func $f (export "spin") (return_call $f)))`,               // no loop, only calls
		// short loops, called from a loop
		`(module (func $f (local $i i32) (loop (br_if 0 (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1000)))))
		   (func (export "spin") (loop (call $f) (br 0))))`,
	} {
		res := instrumentScheme(t, wat(t, src), localLimit)
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
