package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

func redrive(t *testing.T, e *Engine, id string) *Invocation {
	t.Helper()
	inv, err := e.Redrive(context.Background(), id)
	if err != nil {
		t.Fatalf("redrive %s: %v", id, err)
	}
	if inv.Redrives == 0 {
		t.Fatalf("redrive %s: not applied: %+v", id, inv)
	}
	return inv
}

func (f *functions) callsOf(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *functions) breakTask(task string, broken bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.panics[task] = broken
}

// startsOf counts the TaskStarted events of each task.
func startsOf(evs []*Event) map[string]int {
	n := map[string]int{}
	for _, ev := range evs {
		if ev.Type == EventTaskStarted {
			n[ev.Task]++
		}
	}
	return n
}

// TestRedriveForeachItem: a foreach of 100 items whose item 50 failed is
// redriven once the cause is fixed: item 50 runs again, as its attempt 2,
// and no item that had succeeded does.
func TestRedriveForeachItem(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: items
output: ${ sum(map(tasks.each.output, .n)) }
tasks:
  each: { run: foreach, inputs: { foreach: "${ 0..99 }", do: { run: wfguest, inputs: { op: double, n: "${ item }" } } } }
`)
	r.fns.breakTask("each/50", true)
	failed := r.run("items", "")
	wantStatus(t, failed, StatusFailed)
	if failed.FailedTask != "each" || !strings.Contains(failed.Error, "each/50") {
		t.Fatalf("failed task %s: %s", failed.FailedTask, failed.Error)
	}
	succeeded := map[string]bool{}
	for id, task := range failed.Tasks {
		if task.Status == TaskSucceeded {
			succeeded[id] = true
		}
	}
	calls := r.fns.callsOf("wfguest")
	r.fns.breakTask("each/50", false)
	redrive(t, r.e, failed.ID)
	done := waitDone(t, r.e, failed.ID)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `9900`)
	if done.FailedTask != "" || done.Error != "" || done.Redrives != 1 {
		t.Fatalf("after the redrive: failed task %q, error %q, redrives %d", done.FailedTask, done.Error, done.Redrives)
	}
	starts := startsOf(r.events(failed.ID))
	if starts["each/50"] != 2 || done.Tasks["each/50"].Attempts != 2 {
		t.Fatalf("item 50: %d starts, %d attempts", starts["each/50"], done.Tasks["each/50"].Attempts)
	}
	for id := range succeeded {
		if starts[id] != 1 {
			t.Fatalf("task %s had succeeded and started %d times", id, starts[id])
		}
	}
	// what runs again: item 50, and the items canceled or never scheduled
	// when it failed. Counted from the log: a call of an item canceled
	// when the invocation failed may reach the function after calls was
	// read (its goroutine was under way), and count among those after.
	started, redriven := 0, false
	for _, ev := range r.events(failed.ID) {
		redriven = redriven || ev.Type == EventInvocationRedriven
		if redriven && ev.Type == EventTaskStarted && ev.Task != "each" {
			started++
		}
	}
	if want := 100 - len(succeeded); started != want || r.fns.callsOf("wfguest")-calls < want {
		t.Fatalf("%d items started after the redrive (%d calls), want %d (%d items had succeeded)", started, r.fns.callsOf("wfguest")-calls, want, len(succeeded))
	}
}

// TestRedriveFixedFunction: a function task that failed for good (its
// retries spent) runs again after the function is fixed, with its next
// attempt and its retries counted afresh; the task before it is not run
// again, the task after it runs, and wf events shows the redrive.
func TestRedriveFixedFunction(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: chain
output: ${ tasks.c.output.n }
tasks:
  a: { run: wfguest, inputs: { op: add, n: 1 } }
  b: { run: wfguest, requires: [a], inputs: { op: flaky, fails: 3 }, retry: { max: 1, backoff: 1ms } }
  c: { run: wfguest, requires: [b], inputs: { op: add, n: "${ tasks.a.output.n + tasks.b.output.attempt }" } }
`)
	failed := r.run("chain", "")
	wantStatus(t, failed, StatusFailed)
	if failed.FailedTask != "b" || failed.Tasks["b"].Attempts != 2 {
		t.Fatalf("failed task %s after %d attempts: %s", failed.FailedTask, failed.Tasks["b"].Attempts, failed.Error)
	}
	redrive(t, r.e, failed.ID)
	done := waitDone(t, r.e, failed.ID)
	wantStatus(t, done, StatusSucceeded)
	// b's attempt 3 fails (flaky fails attempts 1 to 3), its retry (one,
	// counted afresh) is attempt 4, which succeeds: c gets 2 + 4.
	wantJSON(t, done.Output, `7`)
	starts := startsOf(r.events(failed.ID))
	if starts["a"] != 1 || starts["b"] != 4 || starts["c"] != 1 {
		t.Fatalf("TaskStarted per task: %v", starts)
	}
	var line string
	for _, ev := range r.events(failed.ID) {
		if ev.Type == EventInvocationRedriven {
			line = ev.String()
		}
	}
	if !strings.Contains(line, "InvocationRedriven   by=node-a") {
		t.Fatalf("the redrive's line: %q", line)
	}
}

// TestRedriveCanceled: a canceled invocation continues: its canceled wait
// waits again, its succeeded task keeps its output.
func TestRedriveCanceled(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: held
output: ${ [tasks.first.output.n, tasks.ok.output] }
tasks:
  first: { run: wfguest, inputs: { op: add, n: 1 } }
  ok: { run: wait, requires: [first], inputs: { signal: go } }
`)
	id := invokeOn(t, r.e, "held", "")
	waitFor(t, r.e, id, "ok", "go")
	canceled, err := r.e.Cancel(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, canceled, StatusCanceled)
	inv := redrive(t, r.e, id)
	if inv.Status != StatusRunning || inv.Error != "" || inv.Finished != nil {
		t.Fatalf("redriven: %+v", inv)
	}
	waitFor(t, r.e, id, "ok", "go")
	signal(t, r.e, id, "go", `"now"`)
	done := waitDone(t, r.e, id)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[2, "now"]`)
	if s := startsOf(r.events(id)); s["first"] != 1 || s["ok"] != 2 {
		t.Fatalf("TaskStarted per task: %v", s)
	}
}

// TestRedriveChildWorkflow: a workflow task whose child failed runs a new
// child (its next attempt) when the root is redriven; the child itself
// is not redriven.
func TestRedriveChildWorkflow(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: leaf\ntasks:\n  x: { run: wfguest, inputs: { op: add, n: \"${ input }\" } }\n")
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: parent
output: ${ tasks.kid.output.n }
tasks:
  kid: { run: workflow, inputs: { workflow: leaf, input: 41 } }
`)
	r.fns.breakTask("x", true)
	failed := r.run("parent", "")
	wantStatus(t, failed, StatusFailed)
	child := childID(failed.ID, "kid", 1)
	if _, err := r.e.Redrive(context.Background(), child); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "is a child workflow of "+failed.ID+"/kid: redrive its root, "+failed.ID) {
		t.Fatalf("redrive a child: %v", err)
	}
	r.fns.breakTask("x", false)
	redrive(t, r.e, failed.ID)
	done := waitDone(t, r.e, failed.ID)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `42`)
	if done.Tasks["kid"].Attempts != 2 {
		t.Fatalf("kid: %d attempts", done.Tasks["kid"].Attempts)
	}
	old, err := r.e.Get(child)
	if err != nil || old.Status != StatusFailed {
		t.Fatalf("the first child: %v %+v", err, old)
	}
	if c, err := r.e.Get(childID(failed.ID, "kid", 2)); err != nil || c.Status != StatusSucceeded {
		t.Fatalf("the second child: %v %+v", err, c)
	}
}

// TestRedriveRefused: only a failed or canceled root invocation known to
// the engine is redriven.
func TestRedriveRefused(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: w\ntasks:\n  ok: { run: wait, inputs: { signal: go } }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: quick\ntasks:\n  x: { run: noop }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: saga\ntasks:\n  a: { run: noop, undo: { run: noop } }\n  b: { run: fail, requires: [a] }\n")
	running := invokeOn(t, r.e, "w", "")
	ok := r.run("quick", "").ID
	compensated := r.run("saga", "")
	wantStatus(t, compensated, StatusFailed)
	if compensated.Compensation != Compensated {
		t.Fatalf("the saga was not compensated: %+v", compensated)
	}
	for _, c := range []struct {
		id   string
		want error
		says string
	}{
		{"nope", ErrNotFound, `no invocation "nope"`},
		{running, ErrConflict, "is running: only a failed or canceled invocation is redriven"},
		{ok, ErrConflict, "has succeeded: only a failed or canceled invocation is redriven"},
		{compensated.ID, ErrConflict, "was compensated: its undo tasks have put back what its tasks did"},
	} {
		if _, err := r.e.Redrive(context.Background(), c.id); !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("redrive %s: %v, want %v saying %q", c.id, err, c.want, c.says)
		}
	}
}

// TestRedriveOnAnotherNode: a node that did not run an invocation
// redrives it and becomes its owner; the first node stops driving it,
// and both folds agree. On both kinds of log (on JetStream the event goes
// to the invocation's own stream).
func TestRedriveOnAnotherNode(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{natsStreaming, jetStream} {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, true)
			r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: chain
output: ${ tasks.b.output.n }
tasks:
  a: { run: wfguest, inputs: { op: add, n: 1 } }
  b: { run: wfguest, requires: [a], inputs: { op: add, n: "${ tasks.a.output.n }" } }
`)
			r.fns.breakTask("b", true)
			failed := r.run("chain", "")
			wantStatus(t, failed, StatusFailed)
			ctx := context.Background()
			other, err := Open(ctx, Options{Log: r.connect(), Functions: r.fns, Definitions: r.defs, Node: "node-b"})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close(ctx)
			r.fns.breakTask("b", false)
			inv := redrive(t, other, failed.ID)
			if inv.Owner != "node-b" {
				t.Fatalf("owner after the redrive: %s", inv.Owner)
			}
			done := waitDone(t, other, failed.ID)
			wantStatus(t, done, StatusSucceeded)
			wantJSON(t, done.Output, `3`)
			testutil.Eventually(t, 10*time.Second, "node-a to see the end", func() bool {
				inv, err := r.e.Get(failed.ID)
				return err == nil && inv.Status == StatusSucceeded && inv.Owner == "node-b"
			})
			if s := startsOf(r.events(failed.ID)); s["a"] != 1 || s["b"] != 2 {
				t.Fatalf("TaskStarted per task: %v", s)
			}
		})
	}
}

// TestRedriveGivesTheDeadlineAgain: an invocation that failed at its
// deadline, redriven, has its whole timeout again from the redrive (not
// from its start, long past): it waits for its signal and succeeds.
func TestRedriveGivesTheDeadlineAgain(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: late\ntimeout: 400ms\noutput: ${ tasks.w.output }\ntasks:\n  w: { run: wait, inputs: { signal: go } }\n")
	inv := r.run("late", "")
	wantStatus(t, inv, StatusFailed)
	if inv.ErrorCode != codeDeadline {
		t.Fatalf("code %q, want %s: %+v", inv.ErrorCode, codeDeadline, inv)
	}
	again := redrive(t, r.e, inv.ID)
	if again.Status != StatusRunning {
		t.Fatalf("redriven past its deadline: %+v", again)
	}
	waitFor(t, r.e, inv.ID, "w", "go")
	signal(t, r.e, inv.ID, "go", `"done"`)
	done := waitDone(t, r.e, inv.ID)
	wantStatus(t, done, StatusSucceeded)
	if string(done.Output) != `"done"` {
		t.Fatalf("output %s", done.Output)
	}
}
