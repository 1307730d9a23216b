package engine

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// An undo reads the output of the task it undoes (task.output) when that
// output is stored apart, as an expression reads tasks.ID.output: the
// value, not null.
func TestUndoReadsOutputStoredApart(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: bigsaga
tasks:
  big:
    run: wfguest
    inputs: { op: text, s: "${ input }" }
    undo: { run: wfguest, inputs: { op: text, s: "${ 'release ' + string(len(task.output)) + ' ' + task.output[0:6] }" } }
  boom: { run: wfguest, requires: [big], inputs: { op: code, code: no_truck, msg: "no truck" } }
`)
	text := strings.Repeat("sluice ", 150_000) // 1,050,000 bytes: stored apart
	b, _ := json.Marshal(text)
	inv := r.invokeBytes("bigsaga", b)
	wantStatus(t, inv, StatusFailed)
	if inv.Compensation != Compensated || inv.ErrorCode != "no_truck" {
		t.Fatalf("compensation %q, code %q: %s", inv.Compensation, inv.ErrorCode, inv.Error)
	}
	if ref, _ := refsOf(t, r.events(inv.ID)); len(ref) == 0 {
		t.Fatal("big's output was not stored apart")
	}
	u := inv.Tasks["big/undo"]
	if u == nil || u.Status != TaskSucceeded || string(u.Output) != `"release 1050000 sluice"` {
		t.Fatalf("big/undo: %+v", u)
	}
}

// An undo whose expressions do not read task is not given the value
// stored apart to read (nothing is fetched for it), and one without
// inputs: (a function given task itself) receives the whole output.
func TestUndoDefaultInputStoredApart(t *testing.T) {
	t.Parallel()
	r := newRigOn(t, memory, false)
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: bigsaga2
tasks:
  big:
    run: wfguest
    inputs: { op: text, s: "${ input }" }
    undo: { run: echo-wat }
  boom: { run: wfguest, requires: [big], inputs: { op: fail, msg: "boom" } }
`)
	text := strings.Repeat("sluice ", 150_000)
	b, _ := json.Marshal(text)
	inv := r.invokeBytes("bigsaga2", b)
	wantStatus(t, inv, StatusFailed)
	u := inv.Tasks["big/undo"]
	if u == nil || u.Status != TaskSucceeded {
		t.Fatalf("big/undo: %+v", u)
	}
	r.e.mu.Lock()
	d := r.e.st.invs[inv.ID].tasks["big/undo"].output
	r.e.mu.Unlock()
	loaded, err := r.e.load(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	out := loaded.b
	var got struct {
		ID     string `json:"id"`
		Output string `json:"output"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("big/undo's output: %v", err)
	}
	if got.ID != "big" || got.Output != text {
		t.Fatalf("big/undo was given id %q and an output of %d bytes, want big and %d", got.ID, len(got.Output), len(text))
	}
}

// A task that failed before it started (here: run: names a workflow not
// created yet, found out when it was scheduled) is scheduled again by a
// redrive, by what exists then: a static task and a foreach's items.
func TestRedriveTaskFailedAtSchedule(t *testing.T) {
	r := newRig(t, false)
	r.defs.putRaw("late", `apiVersion: sluice/v1
kind: Workflow
name: late
output: ${ [tasks.one.output, tasks.each.output] }
tasks:
  one: { run: inner, inputs: 41 }
  each: { run: foreach, requires: [one], inputs: { foreach: "${ [1, 2, 3] }", parallel: 2, do: { run: inner, inputs: "${ item * 10 }" } } }
`)
	failed := r.run("late", "")
	wantStatus(t, failed, StatusFailed)
	if failed.FailedTask != "one" || !strings.Contains(failed.Error, `run: "inner" is neither a deployed function nor a workflow`) {
		t.Fatalf("failed task %q: %s", failed.FailedTask, failed.Error)
	}
	if a := failed.Tasks["one"].Attempts; a != 0 {
		t.Fatalf("one has %d attempts: it was to fail before it started", a)
	}
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: inner\noutput: ${ tasks.x.output.n }\ntasks:\n  x: { run: wfguest, inputs: { op: add, n: \"${ input }\" } }\n")
	redrive(t, r.e, failed.ID)
	done := waitDone(t, r.e, failed.ID)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[42, [11, 21, 31]]`)
	var scheduled int
	for _, ev := range r.events(failed.ID) {
		if ev.Type == EventTaskScheduled && ev.Task == "one" {
			scheduled++
			if scheduled == 2 && ev.Run != builtinWorkflow {
				t.Fatalf("one scheduled again as %q, want a workflow task", ev.Run)
			}
		}
	}
	if scheduled != 2 {
		t.Fatalf("one was scheduled %d times, want 2 (once more by the redrive)", scheduled)
	}
	// a replay folds the second TaskScheduled as the live engine did
	r.restart()
	again, err := r.e.Get(failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, again, StatusSucceeded)
	if again.Tasks["one"].Status != TaskSucceeded || again.Tasks["each/2"].Status != TaskSucceeded {
		t.Fatalf("after a replay: one %s, each/2 %s", again.Tasks["one"].Status, again.Tasks["each/2"].Status)
	}
}

// The same for a foreach's items that failed before they started: each is
// scheduled again, with its own item, and the foreach goes on.
func TestRedriveItemsFailedAtSchedule(t *testing.T) {
	r := newRig(t, false)
	r.defs.putRaw("lateitems", `apiVersion: sluice/v1
kind: Workflow
name: lateitems
output: ${ tasks.each.output }
tasks:
  each: { run: foreach, inputs: { foreach: "${ [1, 2, 3] }", do: { run: inner, inputs: "${ item * 10 }" } } }
`)
	failed := r.run("lateitems", "")
	wantStatus(t, failed, StatusFailed)
	if failed.FailedTask != "each" || !strings.Contains(failed.Error, `run: "inner" is neither`) {
		t.Fatalf("failed task %q: %s", failed.FailedTask, failed.Error)
	}
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: inner\noutput: ${ tasks.x.output.n }\ntasks:\n  x: { run: wfguest, inputs: { op: add, n: \"${ input }\" } }\n")
	redrive(t, r.e, failed.ID)
	done := waitDone(t, r.e, failed.ID)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[11, 21, 31]`)
}

// A signal sent before its invocation failed, that no wait had taken, is
// kept with the failed invocation: the wait a redrive runs takes it, as
// it would have without the failure. A succeeded invocation drops its.
func TestRedrivenWaitTakesSignalSentBefore(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: approve
output: ${ tasks.ok.output }
tasks:
  first: { run: wait, inputs: { signal: start } }
  boom: { run: wfguest, requires: [first], inputs: { op: add, n: 1 } }
  ok: { run: wait, requires: [boom], inputs: { signal: go } }
`)
	id := invokeOn(t, r.e, "approve", "")
	waitFor(t, r.e, id, "first", "start")
	signal(t, r.e, id, "go", `"approved early"`)
	r.fns.breakTask("boom", true)
	signal(t, r.e, id, "start", `1`)
	failed := waitDone(t, r.e, id)
	wantStatus(t, failed, StatusFailed)
	if failed.FailedTask != "boom" || len(failed.PendingSignals) != 1 || failed.PendingSignals[0] != "go" {
		t.Fatalf("failed task %q, signals kept %v, want [go]", failed.FailedTask, failed.PendingSignals)
	}
	r.fns.breakTask("boom", false)
	// a replay keeps it too
	r.restart()
	if again, err := r.e.Get(id); err != nil || len(again.PendingSignals) != 1 {
		t.Fatalf("after a replay: %v, signals %v", err, again.PendingSignals)
	}
	redrive(t, r.e, id)
	done := waitDone(t, r.e, id)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `"approved early"`)
	if len(done.PendingSignals) != 0 {
		t.Fatalf("the signal was not taken: %v", done.PendingSignals)
	}

	// a succeeded invocation keeps none
	id2 := invokeOn(t, r.e, "approve", "")
	signal(t, r.e, id2, "extra", `1`)
	signal(t, r.e, id2, "go", `2`)
	signal(t, r.e, id2, "start", `3`)
	if inv := waitDone(t, r.e, id2); inv.Status != StatusSucceeded || len(inv.PendingSignals) != 0 {
		t.Fatalf("succeeded: %s, signals %v", inv.Status, inv.PendingSignals)
	}
}

// failureCounts is an Observer that counts caught tasks and
// compensations' ends (a FailureObserver), as the metrics do.
type failureCounts struct {
	mu            sync.Mutex
	caught        map[string]int
	compensations map[string]int // workflow/outcome
}

func (f *failureCounts) InvocationEnded(string, string) {}
func (f *failureCounts) TaskEnded(string, string)       {}
func (f *failureCounts) Step(time.Duration)             {}
func (f *failureCounts) Appended(time.Duration, error)  {}
func (f *failureCounts) TaskCaught(workflow string)     { f.add(f.caught, workflow) }
func (f *failureCounts) CompensationEnded(w, o string)  { f.add(f.compensations, w+"/"+o) }
func (f *failureCounts) add(m map[string]int, k string) { f.mu.Lock(); m[k]++; f.mu.Unlock() }

// The engine tells its Observer, when it is a FailureObserver, of each
// task caught and each compensation's end, with its outcome.
func TestObserverCountsCaughtAndCompensations(t *testing.T) {
	r := newRig(t, false)
	obs := &failureCounts{caught: map[string]int{}, compensations: map[string]int{}}
	r.e.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: r.node, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: caught
tasks:
  a: { run: wfguest, inputs: { op: fail, msg: "no" }, catch: { run: noop, inputs: 1 } }
  b: { run: wfguest, inputs: { op: fail, msg: "no" }, catch: { run: noop, inputs: 2 } }
`)
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: saga
tasks:
  a: { run: noop, inputs: 1, undo: { run: noop } }
  b: { run: noop, requires: [a], inputs: 1, undo: { run: wfguest, inputs: { op: fail, msg: "refund refused" } } }
  c: { run: wfguest, requires: [b], inputs: { op: fail, msg: "no truck" } }
`)
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: fine
tasks:
  a: { run: noop, inputs: 1, undo: { run: noop } }
  c: { run: wfguest, requires: [a], inputs: { op: fail, msg: "no truck" } }
`)
	wantStatus(t, r.run("caught", ""), StatusSucceeded)
	wantStatus(t, r.run("saga", ""), StatusFailed)
	wantStatus(t, r.run("fine", ""), StatusFailed)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.caught["caught"] != 2 || len(obs.caught) != 1 {
		t.Errorf("caught: %v, want caught: 2", obs.caught)
	}
	if obs.compensations["saga/"+CompensationUndoFailed] != 1 || obs.compensations["fine/"+CompensationSucceeded] != 1 || len(obs.compensations) != 2 {
		t.Errorf("compensations: %v", obs.compensations)
	}
}
