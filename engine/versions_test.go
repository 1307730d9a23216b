package engine

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/testutil"
)

// Version implements Functions for the shared test functions: each is at
// a version of its own (its name's length), so that the replay tests see
// invocations pin, and attempts record, versions that differ.
func (f *functions) Version(name string) (int, bool) { return len(name), testFns[name] != nil }

// versioned is a catalog of function versions for the engine: each
// version of a name runs one of the test guests (wfguest, echo-wat), the
// last one deployed is current, and a call runs the version it names (0:
// the current one), as the daemon's registry does.
type versioned struct {
	mu      sync.Mutex
	guests  map[string][]string // by name: the guest of each version, from 1
	deleted map[string]bool
	gates   map[string]chan struct{} // by task: its calls wait for the gate
	calls   []fn.Target
}

func newVersioned() *versioned {
	return &versioned{guests: map[string][]string{}, deleted: map[string]bool{}, gates: map[string]chan struct{}{}}
}

// deploy makes a new version of name that runs guest; it returns the
// version.
func (v *versioned) deploy(name, guest string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.guests[name] = append(v.guests[name], guest)
	delete(v.deleted, name)
	return len(v.guests[name])
}

// gate holds the calls of a task until the returned function is called.
func (v *versioned) gate(task string) (release func()) {
	ch := make(chan struct{})
	v.mu.Lock()
	v.gates[task] = ch
	v.mu.Unlock()
	return func() { close(ch) }
}

func (v *versioned) Invoke(ctx context.Context, t fn.Target, c fn.Call) (fn.Result, error) {
	v.mu.Lock()
	v.calls = append(v.calls, t)
	gs := v.guests[t.Name]
	version := t.Version
	if version == 0 && !v.deleted[t.Name] {
		version = len(gs)
	}
	gate := v.gates[c.Meta[abi.MetaWorkflowTask]]
	v.mu.Unlock()
	if version < 1 || version > len(gs) {
		return fn.Result{}, fmt.Errorf("no function %q version %d", t.Name, version)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return fn.Result{}, ctx.Err()
		}
	}
	res, err := testFns[gs[version-1]].Invoke(ctx, host.Call{Input: c.Input, Meta: c.Meta})
	return fn.Result{Output: res.Output}, err
}

func (v *versioned) Exists(name string) bool {
	_, ok := v.Version(name)
	return ok
}

func (v *versioned) Version(name string) (int, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := len(v.guests[name])
	return n, n > 0 && !v.deleted[name]
}

// openVersioned (re)opens the rig's engine with functions v.
func (r *rig) openVersioned(v *versioned) {
	r.t.Helper()
	if r.e != nil {
		r.e.Close(context.Background())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, Options{Log: r.conn, Functions: v, Definitions: r.defs, Node: r.node, Retain: r.retain, MaxValue: r.maxValue})
	if err != nil {
		r.t.Fatal(err)
	}
	r.e = e
}

// startedVersions lists, by task, the versions its TaskStarted events
// record.
func startedVersions(evs []*Event) map[string][]int {
	out := map[string][]int{}
	for _, ev := range evs {
		if ev.Type == EventTaskStarted {
			out[ev.Task] = append(out[ev.Task], ev.Version)
		}
	}
	return out
}

func waitEnd(t *testing.T, r *rig, id string) *Invocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inv, err := r.e.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestPinnedVersions: an invocation calls the versions of its functions
// current when it started. f is redeployed (to another module) while the
// invocation waits between two calls of it, the engine restarts (replays)
// meanwhile: the second call still runs the old version, and a new
// invocation the new one. A child workflow started after the redeploy
// inherits its parent's version of f, and pins the current version of g,
// which its parent does not name.
func TestPinnedVersions(t *testing.T) {
	r := newRig(t, true)
	v := newVersioned()
	v.deploy("f", "wfguest") // version 1 doubles
	v.deploy("g", "wfguest")
	v.deploy("hold", "wfguest")
	r.openVersioned(v)
	r.defs.putRaw("kid", `
apiVersion: sluice/v1
kind: Workflow
name: kid
output: ${ [tasks.f.output, tasks.g.output] }
tasks:
  f: { run: f, inputs: { op: double, n: 10 } }
  g: { run: g, inputs: { op: double, n: 20 } }
`)
	r.defs.putRaw("pinned", `
apiVersion: sluice/v1
kind: Workflow
name: pinned
output: ${ [tasks.a.output, tasks.b.output, tasks.kid.output] }
tasks:
  a: { run: f, inputs: { op: double, n: 1 } }
  nap: { run: sleep, requires: [a], inputs: 1ms }
  hold: { run: hold, requires: [nap], inputs: { op: double, n: 0 } }
  b: { run: f, requires: [hold], inputs: { op: double, n: 2 } }
  kid: { run: workflow, requires: [hold], inputs: { workflow: kid } }
`)
	release := v.gate("hold")
	ctx := context.Background()
	old, err := r.e.Invoke(ctx, "pinned", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"f": 1, "hold": 1}; !reflect.DeepEqual(old.Versions, want) {
		t.Fatalf("pinned %v, want %v", old.Versions, want)
	}
	testutil.Eventually(t, 10*time.Second, "hold to run", func() bool {
		got, _ := r.e.Get(old.ID)
		return got.Tasks["hold"] != nil && got.Tasks["hold"].Status == TaskRunning
	})

	// redeployed: f and g now echo their input
	v.deploy("f", "echo-wat")
	v.deploy("g", "echo-wat")
	fresh, err := r.e.Invoke(ctx, "pinned", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"f": 2, "hold": 1}; !reflect.DeepEqual(fresh.Versions, want) {
		t.Fatalf("the new invocation pinned %v, want %v", fresh.Versions, want)
	}

	// a restart replays the pins
	r.openVersioned(v)
	if got, _ := r.e.Get(old.ID); !reflect.DeepEqual(got.Versions, map[string]int{"f": 1, "hold": 1}) {
		t.Fatalf("after a restart the invocation pins %v", got.Versions)
	}
	testutil.Eventually(t, 10*time.Second, "hold to run again", func() bool {
		got, _ := r.e.Get(old.ID)
		return got.Tasks["hold"] != nil && got.Tasks["hold"].Status == TaskRunning && got.Tasks["hold"].Attempts == 2
	})
	release()

	done := waitEnd(t, r, old.ID)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[{"n": 2}, {"n": 4}, [{"n": 20}, {"op": "double", "n": 20}]]`)
	if done.Tasks["b"].Version != 1 || done.Tasks["a"].Version != 1 || done.Tasks["nap"].Version != 0 {
		t.Fatalf("task versions a %d, b %d, nap %d", done.Tasks["a"].Version, done.Tasks["b"].Version, done.Tasks["nap"].Version)
	}
	if got, want := startedVersions(r.events(old.ID)), map[string][]int{"a": {1}, "nap": {0}, "hold": {1, 1}, "b": {1}, "kid": {0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("TaskStarted versions %v, want %v", got, want)
	}
	kid, err := r.e.Get(childID(old.ID, "kid", 1))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"f": 1, "g": 2}; !reflect.DeepEqual(kid.Versions, want) {
		t.Fatalf("the child pinned %v, want %v (f inherited, g current)", kid.Versions, want)
	}

	done = waitEnd(t, r, fresh.ID)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[{"op": "double", "n": 1}, {"op": "double", "n": 2}, [{"op": "double", "n": 10}, {"op": "double", "n": 20}]]`)

	// a third engine replaying the log from the start agrees
	other, err := Open(ctx, Options{Log: r.conn, Functions: v, Definitions: r.defs, Node: "node-b"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	for _, id := range []string{old.ID, fresh.ID} {
		live, _ := r.e.Get(id)
		replayed, err := other.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(live.Versions, replayed.Versions) || live.Tasks["b"].Version != replayed.Tasks["b"].Version {
			t.Fatalf("replayed %v/%d, live %v/%d", replayed.Versions, replayed.Tasks["b"].Version, live.Versions, live.Tasks["b"].Version)
		}
	}
}

// TestUnpinnedCallsCurrent: a function not deployed when the invocation
// started is not pinned; its task calls the version current when it runs,
// and records it.
func TestUnpinnedCallsCurrent(t *testing.T) {
	r := newRig(t, false)
	v := newVersioned()
	v.deploy("hold", "wfguest")
	r.openVersioned(v)
	r.defs.putRaw("late", `
apiVersion: sluice/v1
kind: Workflow
name: late
tasks:
  hold: { run: hold, inputs: { op: double, n: 0 } }
  l: { run: later, requires: [hold], inputs: { op: double, n: 3 } }
`)
	release := v.gate("hold")
	inv, err := r.e.Invoke(context.Background(), "late", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"hold": 1}; !reflect.DeepEqual(inv.Versions, want) {
		t.Fatalf("pinned %v, want %v", inv.Versions, want)
	}
	v.deploy("later", "echo-wat")
	v.deploy("later", "wfguest")
	release()
	done := waitEnd(t, r, inv.ID)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `{"n": 6}`)
	if done.Tasks["l"].Version != 2 {
		t.Fatalf("l called version %d, want the current 2", done.Tasks["l"].Version)
	}
}

// TestPins: what an invocation pins, with and without a parent's pins;
// pins as the fold reads them from an event.
func TestPins(t *testing.T) {
	v := newVersioned()
	v.deploy("a", "wfguest")
	v.deploy("b", "wfguest")
	v.deploy("b", "wfguest")
	v.deploy("gone", "wfguest")
	v.deleted["gone"] = true
	e := &Engine{o: Options{Functions: v}}
	def := &Definition{functions: []string{"a", "b", "gone", "never"}}
	if got, want := e.pins(def, nil), map[string]int{"a": 1, "b": 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pins %v, want %v", got, want)
	}
	inherited := pinsOf(map[string]int{"b": 1, "gone": 1, "other": 9})
	if got, want := e.pins(def, inherited), map[string]int{"a": 1, "b": 1, "gone": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("inherited pins %v, want %v", got, want)
	}
	if got := e.pins(&Definition{}, inherited); got != nil {
		t.Fatalf("a definition naming no function pins %v", got)
	}
	p := pinsOf(map[string]int{"z": 3, "a": 1, "m": 2, "bad": 0, "worse": -4})
	if want := []pin{{"a", 1}, {"m", 2}, {"z", 3}}; !reflect.DeepEqual(p, want) {
		t.Fatalf("pinsOf %v, want %v", p, want)
	}
	for name, want := range map[string]int{"a": 1, "m": 2, "z": 3, "b": 0, "": 0, "zz": 0} {
		if got, ok := lookupPin(p, name); got != want || ok != (want != 0) {
			t.Fatalf("lookupPin %q = %d %v", name, got, ok)
		}
	}
	inv := &invState{}
	inv.repin(&Event{Versions: map[string]int{"a": 4}})
	inv.repin(&Event{})
	if !reflect.DeepEqual(versionsOf(inv.pins), map[string]int{"a": 4}) {
		t.Fatalf("repinned %v", inv.pins)
	}
}

// describeVersions renders what an invocation pinned and the version each
// task's last attempt called, for describe.
func describeVersions(b *strings.Builder, inv *invState) {
	if len(inv.pins) > 0 {
		fmt.Fprintf(b, "  pins %v\n", inv.pins)
	}
	ids := sortedKeys(inv.tasks)
	sort.Strings(ids)
	for _, id := range ids {
		if v := inv.tasks[id].version; v != 0 {
			fmt.Fprintf(b, "  task %s version=%d\n", id, v)
		}
	}
}

// TestRedriveRepins: a redrive pins the versions current at the redrive,
// so that redriving after fixing a function runs the fix; a dynamic
// task's inline child inherits its parent's pins.
func TestRedriveRepins(t *testing.T) {
	r := newRig(t, false)
	v := newVersioned()
	v.deploy("f", "wfguest") // version 1 fails on op fail
	r.openVersioned(v)
	r.defs.putRaw("fix", `
apiVersion: sluice/v1
kind: Workflow
name: fix
tasks:
  a: { run: f, inputs: { op: fail, msg: broken } }
  d: { run: dynamic, requires: [a], inputs: { run: f, inputs: inline } }
`)
	inv := r.run("fix", "")
	wantStatus(t, inv, StatusFailed)
	if want := map[string]int{"f": 1}; !reflect.DeepEqual(inv.Versions, want) {
		t.Fatalf("pinned %v, want %v", inv.Versions, want)
	}
	v.deploy("f", "echo-wat") // version 2, the fix
	again := redrive(t, r.e, inv.ID)
	if want := map[string]int{"f": 2}; !reflect.DeepEqual(again.Versions, want) {
		t.Fatalf("the redrive pinned %v, want %v", again.Versions, want)
	}
	done := waitEnd(t, r, inv.ID)
	wantStatus(t, done, StatusSucceeded)
	if done.Tasks["a"].Version != 2 {
		t.Fatalf("the redriven task called version %d", done.Tasks["a"].Version)
	}
	kid, err := r.e.Get(childID(inv.ID, "d", 1))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"f": 2}; !reflect.DeepEqual(kid.Versions, want) {
		t.Fatalf("the inline child pinned %v, want %v (its parent's)", kid.Versions, want)
	}
}
