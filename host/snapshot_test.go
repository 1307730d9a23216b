package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// snapState returns the state of f's snapshot in its compiled module:
// slotTaking, slotReady, slotRefused, or -1 when there is none.
func snapState(t testing.TB, f *Function) (int, *snapshot) {
	t.Helper()
	e, err := f.host.acquire(context.Background(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.host.release(e)
	ms := &e.mod.snap
	ms.mu.Lock()
	defer ms.mu.Unlock()
	slot := ms.slots[f.snapKey]
	if slot == nil {
		return -1, nil
	}
	return slot.state, slot.snap
}

// snapSettled waits until f's snapshot, being made in the background, is
// made or refused, and returns its state as snapState does.
func snapSettled(t testing.TB, f *Function) (int, *snapshot) {
	t.Helper()
	var st int
	var snap *snapshot
	testutil.Eventually(t, 5*time.Minute, "the snapshot is made or refused", func() bool {
		st, snap = snapState(t, f)
		return st != slotTaking
	})
	return st, snap
}

func newHostWith(t *testing.T, cfg Config) *Host {
	t.Helper()
	h, err := New(context.Background(), cfg.WithCacheDir(sharedCache))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

// TestSnapshotMatchesFresh runs the same calls on instances made from a
// snapshot and on instances initialised one by one: every answer is the
// same, and so is the state the initialisation left (a counter, the
// environment, the arguments).
func TestSnapshotMatchesFresh(t *testing.T) {
	cases := []struct {
		guest string
		env   map[string]string
		calls []string
	}{
		{"goguest", map[string]string{"GREETING": "hello"}, []string{"count", "echo:x", "env:GREETING", "count", "meta:function", "error", "count"}},
		{"upper-go", nil, []string{"abc", strings.Repeat("z", 5000)}},
		{"wordcount-c", nil, []string{"one two\nthree", ""}},
		{"echo-wat", nil, []string{"a", strings.Repeat("b", 3000)}},
		{"http-go", nil, []string{"x"}},
		{"http-c", nil, []string{"x"}},
	}
	on := newHostWith(t, NewConfig())
	off := newHostWith(t, NewConfig().WithSnapshots(false))
	for _, tc := range cases {
		t.Run(tc.guest, func(t *testing.T) {
			spec := Spec{Name: tc.guest, Env: tc.env}
			fOn, fOff := load(t, on, tc.guest, spec), load(t, off, tc.guest, spec)
			// two instances each: the first takes the snapshot, the
			// second is made from it
			for round := 0; round < 2; round++ {
				for _, pooled := range []bool{false, true} {
					for _, in := range tc.calls {
						c := Call{Input: []byte(in), Meta: map[string]string{"function": tc.guest}}
						invoke := fOn.InvokeCold
						invokeOff := fOff.InvokeCold
						if pooled {
							invoke, invokeOff = fOn.Invoke, fOff.Invoke
						}
						a, errA := invoke(context.Background(), c)
						b, errB := invokeOff(context.Background(), c)
						if fmt.Sprint(errA) != fmt.Sprint(errB) || string(a.Output) != string(b.Output) || a.Status != b.Status {
							t.Fatalf("round %d, %q: from a snapshot %q %v (status %d), initialised %q %v (status %d)",
								round, in, a.Output, errA, a.Status, b.Output, errB, b.Status)
						}
					}
				}
			}
			if st, _ := snapSettled(t, fOn); st != slotReady {
				t.Fatalf("snapshot state %d, want ready", st)
			}
			if st, _ := snapState(t, fOff); st != -1 {
				t.Fatalf("snapshots are off but the state is %d", st)
			}
		})
	}
}

// TestSnapshotReseeds: two instances made from one snapshot of a Go guest
// draw different math/rand/v2 numbers and iterate a new map in different
// orders, and a map filled at initialisation still finds its keys.
func TestSnapshotReseeds(t *testing.T) {
	h, _ := newHost(t)
	if !h.cfg.snapshots {
		t.Log("snapshots are off: the instances are initialised one by one")
	}
	f := load(t, h, "goguest", Spec{})
	seen := map[string]bool{}
	for k := 0; k < 3; k++ {
		res, err := f.InvokeCold(context.Background(), Call{Input: []byte("rand")})
		if err != nil {
			t.Fatal(err)
		}
		out := string(res.Output)
		if !strings.HasSuffix(out, "primes=20") {
			t.Fatalf("instance %d: the map filled at initialisation lost keys: %q", k, out)
		}
		nums, order, _ := strings.Cut(out, " [")
		if seen[nums] || seen[order] {
			t.Fatalf("instance %d repeats another's random numbers or map order: %q", k, out)
		}
		seen[nums], seen[order] = true, true
	}
	if h.cfg.snapshots {
		st, snap := snapSettled(t, f)
		if st != slotReady || snap.nReseed == 0 || snap.nReseed > maxReseedBytes {
			t.Fatalf("snapshot state %d, %+v: want ready, re-seeding the Go runtime's generators", st, snap)
		}
	}
}

// reactorWAT is a sluice reactor whose _initialize runs init, and whose
// handle answers with the value of the global $n.
const reactorWAT = `(module
  (import "sluice" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (table $t 2 funcref)
  (func $f)
  (elem declare func $f)
  (func (export "_initialize") %s)
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param i32 i32) (result i32)
    (i32.store8 (i32.const 0) (i32.add (i32.const 48) (global.get $n)))
    (call $output (i32.const 0) (i32.const 1))
    (i32.const 0)))`

// TestSnapshotRefused: a module whose code can change a table, or whose
// initialisation traps, gets no snapshot; it runs as before.
func TestSnapshotRefused(t *testing.T) {
	cases := []struct {
		name, init string
		want       string // the output, or the error
	}{
		{"table.set", `(global.set $n (i32.const 3)) (if (i32.eqz (global.get $n)) (then (table.set $t (i32.const 0) (ref.func $f))))`, "3"},
		{"table.grow", `(global.set $n (i32.const 4)) (if (i32.eqz (global.get $n)) (then (drop (table.grow $t (ref.null func) (i32.const 1)))))`, "4"},
		{"trap", `(global.set $n (i32.const 5)) unreachable`, "trap"},
		{"global", `(global.set $n (i32.const 6))`, "6"}, // the control: snapshotted
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostWith(t, NewConfig())
			f, err := h.Load(context.Background(), Spec{Name: tc.name}, testutil.WAT(t, fmt.Sprintf(reactorWAT, tc.init)))
			if err != nil {
				t.Fatal(err)
			}
			for k := 0; k < 2; k++ {
				res, err := f.InvokeCold(context.Background(), Call{})
				switch {
				case tc.want == "trap":
					if !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "initialising the instance") {
						t.Fatalf("call %d: %v, want a trap while initialising", k, err)
					}
				case err != nil || string(res.Output) != tc.want:
					t.Fatalf("call %d: %q %v, want %q", k, res.Output, err, tc.want)
				}
			}
			st, _ := snapSettled(t, f)
			switch tc.name {
			case "global":
				if st != slotReady {
					t.Fatalf("snapshot state %d, want ready", st)
				}
			case "trap":
				if st != slotRefused {
					t.Fatalf("snapshot state %d, want refused", st)
				}
			default:
				if st != -1 {
					t.Fatalf("snapshot state %d: a module that can change its tables must not be snapshotted", st)
				}
			}
		})
	}
}

// TestSnapshotBudget: a snapshot is charged to the memory budget with its
// compiled module, and released with it.
func TestSnapshotBudget(t *testing.T) {
	h := newHostWith(t, NewConfig().WithMemoryBudget(1<<30).WithIdleTimeout(0))
	f := load(t, h, "upper-go", Spec{})
	if _, err := f.InvokeCold(context.Background(), Call{Input: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	_, snap := snapSettled(t, f)
	if snap == nil || snap.cost < int64(len(snap.data)) || len(snap.data) == 0 {
		t.Fatalf("snapshot %+v: want one holding the pages Go's initialisation wrote", snap)
	}
	h.mu.Lock()
	e := h.modules[f.key]
	h.mu.Unlock()
	want := uint64(estimateModule(e.mod.stats) + snap.cost)
	// what making it took is released once it is made
	testutil.Eventually(t, time.Minute, "the memory used while the snapshot was made is released", func() bool { return h.Stats().MemoryUsed == want })
	h.mu.Lock()
	cost := e.cost
	h.mu.Unlock()
	if used := h.Stats().MemoryUsed; used != want || cost != int64(want) {
		t.Fatalf("memory used %d, module charged %d: want the module's estimate plus its snapshot, %d", used, cost, want)
	}
	if _, ok := h.evictModule(time.Time{}); !ok {
		t.Fatal("the compiled module was not released")
	}
	if used := h.Stats().MemoryUsed; used != 0 {
		t.Fatalf("memory used %d after the module was released, want 0", used)
	}
	// compiled again, it takes its snapshot again
	if _, err := f.InvokeCold(context.Background(), Call{Input: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if st, _ := snapSettled(t, f); st != slotReady {
		t.Fatalf("snapshot state %d after recompiling, want ready", st)
	}
}

// randomTableWAT is a reactor whose initialisation fills a 256-byte table
// from random_get, and whose handle answers with the table.
const randomTableWAT = `(module
  (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
  (import "sluice" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "_initialize") (drop (call $rand (i32.const 1024) (i32.const 256))))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "sluice_handle") (param i32 i32) (result i32)
    (call $output (i32.const 1024) (i32.const 256))
    (i32.const 0)))`

// TestSnapshotRefusesRandomTable: a module not built by Go whose
// initialisation derives a table from random_get gets no snapshot (its
// table is not known to be a generator's state to re-seed), says why in
// the log, and each instance draws its own table.
func TestSnapshotRefusesRandomTable(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	h := newHostWith(t, NewConfig().WithLogger(slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))))
	f, err := h.Load(context.Background(), Spec{Name: "randtable"}, testutil.WAT(t, randomTableWAT))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for k := 0; k < 3; k++ {
		res, err := f.InvokeCold(context.Background(), Call{})
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(res.Output)] {
			t.Fatalf("instance %d has another's random table", k)
		}
		seen[string(res.Output)] = true
	}
	if st, _ := snapSettled(t, f); st != slotRefused {
		t.Fatalf("snapshot state %d, want refused", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "derive from randomness") || !strings.Contains(logs.String(), "not built by Go") {
		t.Fatalf("the log does not say why: %s", logs.String())
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSnapshotInBackground: the first instance of a function serves its
// call without waiting for its snapshot, which is made in the
// background; calls made meanwhile are served by instances initialised
// as before; later instances are made from the snapshot.
func TestSnapshotInBackground(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	snapshotMaking = func() { close(started); <-release }
	t.Cleanup(func() { snapshotMaking = nil })
	h := newHostWith(t, NewConfig())
	f := load(t, h, "wordcount-c", Spec{Name: "wc"})
	want := "3"
	call := func(cold bool) {
		t.Helper()
		invoke := f.Invoke
		if cold {
			invoke = f.InvokeCold
		}
		res, err := invoke(context.Background(), Call{Input: []byte("one two three")})
		if err != nil || !strings.Contains(string(res.Output), want) {
			t.Fatalf("%q %v, want the word count %s", res.Output, err, want)
		}
	}
	call(true)
	<-started // the snapshot is being made, and stays so until released
	for k := 0; k < 4; k++ {
		call(k%2 == 0)
	}
	if st, _ := snapState(t, f); st != slotTaking {
		t.Fatalf("snapshot state %d while it is made, want taking", st)
	}
	close(release)
	if st, _ := snapSettled(t, f); st != slotReady {
		t.Fatalf("snapshot state %d, want ready", st)
	}
	call(true)
}
