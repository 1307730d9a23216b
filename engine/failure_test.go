package engine

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// eventsOf lists an invocation's events of some types as "Type task
// code" lines, in order.
func eventsOf(r *rig, id string, typs ...string) []string {
	var out []string
	for _, ev := range r.events(id) {
		for _, t := range typs {
			if ev.Type == t {
				s := ev.Type
				if ev.Task != "" {
					s += " " + ev.Task
				}
				if ev.Code != "" {
					s += " " + ev.Code
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// A failure has a code: a function's kind (function_error), the guest's
// own (sluice.Fail, through error_code), a fail task's; in the events, the
// task, the invocation.
func TestErrorCodes(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: codes
tasks:
  plain: { run: wfguest, inputs: { op: fail, msg: "card declined" } }
`)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: own
tasks:
  pay: { run: wfguest, inputs: { op: code, code: card_declined, msg: "the card was declined" } }
`)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: failtask
tasks:
  stop: { run: fail, inputs: { message: "out of stock", code: out_of_stock } }
`)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: parent
tasks:
  child: { run: workflow, inputs: { workflow: own } }
`)
	for _, c := range []struct{ wf, task, code, msg string }{
		{"codes", "plain", "function_error", "card declined"},
		{"own", "pay", "card_declined", "the card was declined"},
		{"failtask", "stop", "out_of_stock", "out of stock"},
		{"parent", "child", "workflow_failed", "the card was declined"},
	} {
		inv := r.run(c.wf, "")
		wantStatus(t, inv, StatusFailed)
		task := inv.Tasks[c.task]
		if inv.ErrorCode != c.code || task.ErrorCode != c.code || !contains(inv.Error, c.msg) {
			t.Fatalf("%s: invocation code %q, task code %q, error %q; want %q, %q", c.wf, inv.ErrorCode, task.ErrorCode, inv.Error, c.code, c.msg)
		}
		wantLines(t, eventsOf(r, inv.ID, EventTaskFailed, EventInvocationFailed),
			EventTaskFailed+" "+c.task+" "+c.code, EventInvocationFailed+" "+c.task+" "+c.code)
	}
	// a code that is not one is dropped, and the message says so
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: badcode
tasks:
  pay: { run: wfguest, inputs: { op: code, code: "Card Declined", msg: declined } }
`)
	inv := r.run("badcode", "")
	if inv.ErrorCode != "function_error" || !contains(inv.Error, `its error code "Card Declined" was dropped`) {
		t.Fatalf("code %q, error %q", inv.ErrorCode, inv.Error)
	}
}

// retry: on retries only the codes it lists: another fails at once.
func TestRetryOn(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: retryon
tasks:
  flaky: { run: wfguest, inputs: { op: flaky, fails: 2 }, retry: { max: 3, backoff: 1ms, on: [timeout, function_error] } }
  declined:
    run: wfguest
    requires: [flaky]
    inputs: { op: code, code: card_declined, msg: declined }
    retry: { max: 3, backoff: 1ms, max_backoff: 2ms, jitter: 0.5, on: [timeout, busy] }
`)
	inv := r.run("retryon", "")
	wantStatus(t, inv, StatusFailed)
	if f := inv.Tasks["flaky"]; f.Status != TaskSucceeded || f.Attempts != 3 {
		t.Fatalf("flaky: %s after %d attempts, want succeeded after 3", f.Status, f.Attempts)
	}
	d := inv.Tasks["declined"]
	if d.Attempts != 1 || d.ErrorCode != "card_declined" || !contains(d.Error, "code card_declined, not retried: retry.on lists timeout, busy") {
		t.Fatalf("declined: %d attempts, code %q, error %q", d.Attempts, d.ErrorCode, d.Error)
	}
	wantLines(t, eventsOf(r, inv.ID, EventTaskRetrying),
		EventTaskRetrying+" flaky function_error", EventTaskRetrying+" flaky function_error")
}

// max_backoff caps the doubling; jitter cuts each delay by up to its
// fraction, never more, never adds.
func TestRetryBackoff(t *testing.T) {
	r := retryPolicy{max: 10, backoff: 100 * time.Millisecond, maxBackoff: time.Second, jitter: 0.25}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if d := r.delay(i + 1); d != w*time.Millisecond {
			t.Fatalf("delay(%d) = %s, want %s", i+1, d, w*time.Millisecond)
		}
	}
	lowest := time.Second
	for i := 0; i < 1000; i++ {
		d := r.wait(5)
		if d > time.Second || d < 750*time.Millisecond {
			t.Fatalf("wait(5) = %s, want 750ms to 1s", d)
		}
		lowest = min(lowest, d)
	}
	if lowest > 900*time.Millisecond {
		t.Fatalf("the lowest of 1,000 waits is %s: jitter does not spread them", lowest)
	}
	if d := (retryPolicy{backoff: time.Minute}).delay(20); d != maxBackoff {
		t.Fatalf("without max_backoff, delay(20) = %s, want the hard cap %s", d, maxBackoff)
	}
}

// catch runs when a task fails for good, with the error in scope: its
// output replaces the task's and the invocation goes on. A catch that
// fails fails the task with both errors.
func TestCatch(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: catcher
output: ${ [tasks.pay.output, tasks.after.output, tasks.each.output, tasks.nap.output] }
tasks:
  pay:
    run: wfguest
    inputs: { op: code, code: card_declined, msg: declined }
    retry: { max: 1, backoff: 1ms }
    catch: { run: noop, inputs: "${ error }" }
  after: { run: noop, requires: [pay], inputs: "${ tasks.pay.output.code + ' handled' }" }
  each:
    run: foreach
    inputs: { foreach: "${ [1, 2] }", parallel: 1, do: { run: wfguest, inputs: { op: code, code: "${ 'item_' + string(item) }", msg: no } } }
    catch: { run: wfguest, inputs: { op: text, s: "${ error.code }" } }
  nap:
    run: sleep
    inputs: 1h
    timeout: 50ms
    catch: { run: noop }
`)
	inv := r.run("catcher", "")
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, `[{"message": "function \"wfguest\" failed: wrapped: declined (after 2 attempts)", "code": "card_declined", "task": "pay", "attempts": 2},
		"card_declined handled", "item_1", {"message": "sleep timed out after 50ms (the task's timeout)", "code": "timeout", "task": "nap", "attempts": 1}]`)
	pay := inv.Tasks["pay"]
	if pay.Status != TaskSucceeded || !pay.Caught || pay.ErrorCode != "card_declined" || pay.Error == "" {
		t.Fatalf("pay: %+v", pay)
	}
	if inv.Tasks["pay/catch"] == nil || inv.Tasks["each/catch"] == nil {
		t.Fatalf("the catch tasks are not shown: %v", inv.Tasks)
	}
	caught := eventsOf(r, inv.ID, EventTaskCaught, EventTaskFailed)
	sort.Strings(caught)
	wantLines(t, caught, EventTaskCaught+" each item_1", EventTaskCaught+" nap timeout", EventTaskCaught+" pay card_declined", EventTaskFailed+" each/0 item_1")

	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: twice
tasks:
  pay:
    run: wfguest
    inputs: { op: code, code: card_declined, msg: declined }
    catch: { run: fail, inputs: { message: "no fallback either", code: no_fallback } }
`)
	inv = r.run("twice", "")
	wantStatus(t, inv, StatusFailed)
	if !contains(inv.Error, "declined; its catch failed too: no fallback either") || inv.ErrorCode != "card_declined" {
		t.Fatalf("error %q, code %q", inv.Error, inv.ErrorCode)
	}
}

// A built-in's timeout stops its work: a foreach's calls, a child
// workflow (canceled); a workflow task's timeout is retried.
func TestBuiltinTimeout(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: slowchild
tasks:
  s: { run: wfguest, inputs: { op: sleep, ms: 60000 } }
`)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: timeouts
tasks:
  each:
    run: foreach
    inputs: { foreach: "${ [1, 2] }", do: { run: wfguest, inputs: { op: sleep, ms: 60000 } } }
    timeout: 100ms
  child:
    run: workflow
    inputs: { workflow: slowchild }
    timeout: 100ms
    retry: { max: 1, backoff: 1ms, on: [timeout] }
`)
	start := time.Now()
	inv := r.run("timeouts", "")
	wantStatus(t, inv, StatusFailed)
	if time.Since(start) > 30*time.Second {
		t.Fatalf("the timeouts did not stop the calls: %s", time.Since(start))
	}
	ctx := context.Background()
	testutil.Eventually(t, 10*time.Second, "the tasks to end", func() bool {
		got, _ := r.e.Get(inv.ID)
		return got.Tasks["each"].Status == TaskFailed && got.Tasks["child"].Status != TaskRunning
	})
	got, _ := r.e.Get(inv.ID)
	for _, id := range []string{"each/0", "each/1"} {
		if got.Tasks[id].Status != TaskCanceled {
			t.Fatalf("%s is %s, want canceled", id, got.Tasks[id].Status)
		}
	}
	if got.Tasks["each"].ErrorCode != "timeout" {
		t.Fatalf("each: code %q", got.Tasks["each"].ErrorCode)
	}
	// the child workflows were canceled, not left running
	for _, c := range r.e.List("slowchild") {
		c, err := r.e.Wait(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != StatusCanceled {
			t.Fatalf("child %s is %s, want canceled", c.ID, c.Status)
		}
	}
}

// The invocation's deadline stops every running task and fails it with
// code deadline; it is armed again after a restart.
func TestInvocationDeadline(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: late
timeout: 1500ms
tasks:
  slow: { run: wfguest, inputs: { op: sleep, ms: 60000 } }
  nap: { run: sleep, inputs: 1h }
`)
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "late", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "slow and nap to start", func() bool {
		got, _ := r.e.Get(inv.ID)
		return got.Tasks["slow"] != nil && got.Tasks["slow"].Status == TaskRunning && got.Tasks["nap"] != nil
	})
	r.restart()
	done, err := r.e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusFailed)
	if done.ErrorCode != "deadline" || !contains(done.Error, "ran past its timeout of 1.5s") {
		t.Fatalf("code %q, error %q", done.ErrorCode, done.Error)
	}
	for _, id := range []string{"slow", "nap"} {
		if done.Tasks[id].Status != TaskCanceled {
			t.Fatalf("%s is %s, want canceled", id, done.Tasks[id].Status)
		}
	}
}

// When an invocation fails, the undo tasks of its succeeded tasks run,
// newest success first, each once; a failed undo does not stop the
// others; then the invocation fails with the cause.
func TestCompensation(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: saga
tasks:
  reserve:
    run: wfguest
    inputs: { op: add, n: 1 }
    undo: { run: wfguest, inputs: { op: text, s: "${ 'release ' + string(task.output.n) }" } }
  charge:
    run: wfguest
    requires: [reserve]
    inputs: { op: double, n: 21 }
    undo: { run: wfguest, inputs: { op: fail, msg: "refund refused" } }
  items:
    run: foreach
    requires: [charge]
    inputs: { foreach: "${ [1, 2] }", parallel: 1, do: { run: wfguest, inputs: { op: add, n: "${ item }" }, undo: { run: noop } } }
  ship:
    run: wfguest
    requires: [items]
    inputs: { op: code, code: no_truck, msg: "no truck" }
  never: { run: noop, inputs: 1, undo: { run: noop } }
`)
	inv := r.run("saga", "")
	wantStatus(t, inv, StatusFailed)
	if inv.ErrorCode != "no_truck" || inv.FailedTask != "ship" || inv.Compensation != Compensated ||
		!contains(inv.Error, "no truck") || !contains(inv.Error, "compensation: 1 undo tasks failed: charge/undo") {
		t.Fatalf("code %q, task %q, compensation %q, error %q", inv.ErrorCode, inv.FailedTask, inv.Compensation, inv.Error)
	}
	// never ran first (it requires nothing) and is undone last
	var undos []string
	for _, ev := range r.events(inv.ID) {
		if ev.Type == EventTaskScheduled && strings.HasSuffix(ev.Task, "/undo") {
			undos = append(undos, ev.Task)
		}
	}
	wantLines(t, undos, "items/1/undo", "items/0/undo", "charge/undo", "reserve/undo", "never/undo")
	wantLines(t, eventsOf(r, inv.ID, EventCompensationStarted, EventInvocationFailed),
		EventCompensationStarted+" ship no_truck", EventInvocationFailed+" ship no_truck")
	if u := inv.Tasks["reserve/undo"]; u.Status != TaskSucceeded || string(u.Output) != `"release 2"` {
		t.Fatalf("reserve/undo: %s %s", u.Status, u.Output)
	}
	if u := inv.Tasks["never/undo"]; u.Status != TaskSucceeded || !contains(string(u.Output), `"id":"never"`) {
		t.Fatalf("never/undo: %s %s (its default input is the task's id, input and output)", u.Status, u.Output)
	}
}

// A compensation survives a crash: the undo that succeeded is not run
// again, the one in flight runs again.
func TestCompensationAfterCrash(t *testing.T) {
	r := newRig(t, true)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: saga
tasks:
  a: { run: noop, inputs: 1, undo: { run: wfguest, inputs: { op: add, n: 1 } } }
  b: { run: noop, requires: [a], inputs: 2, undo: { run: wfguest, inputs: { op: add, n: 2 } } }
  c: { run: fail, requires: [b], inputs: { message: boom, code: boom } }
`)
	release := r.fns.gate("a/undo")
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "saga", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "a/undo to run", func() bool {
		got, _ := r.e.Get(inv.ID)
		u := got.Tasks["a/undo"]
		return u != nil && u.Status == TaskRunning && got.Compensation == Compensating
	})
	r.crash()
	release()
	r.open()
	done, err := r.e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusFailed)
	starts := map[string]int{}
	for _, ev := range r.events(inv.ID) {
		if ev.Type == EventTaskStarted {
			starts[ev.Task]++
		}
	}
	if starts["b/undo"] != 1 || starts["a/undo"] != 2 || done.Compensation != Compensated || done.ErrorCode != "boom" {
		t.Fatalf("starts %v, compensation %q, code %q", starts, done.Compensation, done.ErrorCode)
	}
}
