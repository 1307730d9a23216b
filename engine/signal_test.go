package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// invokeOn starts an invocation and returns its id.
func invokeOn(t *testing.T, e *Engine, workflow, input string) string {
	t.Helper()
	inv, err := e.Invoke(context.Background(), workflow, []byte(input), InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return inv.ID
}

// waitFor waits until an invocation's task waits for a signal.
func waitFor(t *testing.T, e *Engine, id, task, signal string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "task "+task+" to wait for signal "+signal, func() bool {
		inv, err := e.Get(id)
		return err == nil && inv.Tasks[task] != nil && inv.Tasks[task].Waiting == signal
	})
}

func signal(t *testing.T, e *Engine, id, name, data string) {
	t.Helper()
	if err := e.Signal(context.Background(), id, name, []byte(data), InputJSON); err != nil {
		t.Fatalf("signal %s to %s: %v", name, id, err)
	}
}

func waitDone(t *testing.T, e *Engine, id string) *Invocation {
	t.Helper()
	// minutes: a wait across an outage, on a loaded machine, waits for
	// the client's reconnection and its consumers' resets
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	inv, err := e.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestWaitForSignal: a wait suspends its invocation until its signal
// comes; its output is the signal's data, byte for byte, and the tasks
// after it read it. wf status shows what it waits for, wf events the
// signal and which one the wait took.
func TestWaitForSignal(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: approve
output: ${ [tasks.after.output.n, tasks.nothing.output] }
tasks:
  ok: { run: wait, inputs: { signal: approve } }
  after: { run: wfguest, requires: [ok], inputs: { op: add, n: "${ tasks.ok.output.n }" } }
  nothing: { run: wait, inputs: { signal: "${ 'poke-' + string(input.id) }" } }
`)
	id := invokeOn(t, r.e, "approve", `{"id": 7}`)
	waitFor(t, r.e, id, "ok", "approve")
	waitFor(t, r.e, id, "nothing", "poke-7")
	signal(t, r.e, id, "approve", ` {"n": 41,  "by": "Ada"} `)
	signal(t, r.e, id, "poke-7", "")
	done := waitDone(t, r.e, id)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[42, null]`)
	if got := string(done.Tasks["ok"].Output); got != `{"n": 41,  "by": "Ada"}` && got != ` {"n": 41,  "by": "Ada"} ` {
		t.Fatalf("the wait's output is %s, not the bytes sent", got)
	}
	var lines []string
	for _, ev := range r.events(id) {
		if ev.Type == EventSignalSent || ev.Signal != "" {
			lines = append(lines, ev.String())
		}
	}
	all := strings.Join(lines, "\n")
	if len(lines) != 4 || !strings.Contains(all, "SignalSent           signal=approve") ||
		!strings.Contains(all, "TaskSucceeded        ok  signal=approve  consumed=") {
		t.Fatalf("signal events:\n%s", all)
	}
}

// TestSignalBeforeWait: a signal sent before its wait starts is kept
// (wf status lists it) and taken when the wait starts.
func TestSignalBeforeWait(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: early
output: ${ tasks.ok.output }
tasks:
  first: { run: wfguest, inputs: { op: add, n: 1 } }
  ok: { run: wait, requires: [first], inputs: { signal: go } }
`)
	release := r.fns.gate("first")
	id := invokeOn(t, r.e, "early", "")
	signal(t, r.e, id, "go", `"early bird"`)
	testutil.Eventually(t, 10*time.Second, "the signal to be pending", func() bool {
		inv, _ := r.e.Get(id)
		return len(inv.PendingSignals) == 1 && inv.PendingSignals[0] == "go" && inv.Tasks["ok"] == nil
	})
	release()
	done := waitDone(t, r.e, id)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `"early bird"`)
	if len(done.PendingSignals) != 0 {
		t.Fatalf("pending after the end: %v", done.PendingSignals)
	}
}

// TestWaitsOfOneName: several waits of one name take one signal each,
// the oldest first: two static waits, and a foreach of three.
func TestWaitsOfOneName(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: many
output: ${ tasks.each.output }
tasks:
  each: { run: foreach, inputs: { foreach: "${ [1, 2, 3] }", do: { run: wait, inputs: { signal: item } } } }
`)
	id := invokeOn(t, r.e, "many", "")
	for i := 0; i < 3; i++ {
		waitFor(t, r.e, id, fmt.Sprintf("each/%d", i), "item")
	}
	for _, d := range []string{`"a"`, `"b"`, `"c"`} {
		signal(t, r.e, id, "item", d)
	}
	done := waitDone(t, r.e, id)
	wantJSON(t, done.Output, `["a", "b", "c"]`)

	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: two
output: ${ [tasks.a.output, tasks.b.output] }
tasks:
  a: { run: wait, inputs: { signal: go } }
  b: { run: wait, inputs: { signal: go } }
`)
	id = invokeOn(t, r.e, "two", "")
	waitFor(t, r.e, id, "a", "go")
	waitFor(t, r.e, id, "b", "go")
	signal(t, r.e, id, "go", "1")
	testutil.Eventually(t, 10*time.Second, "one wait to take the signal", func() bool {
		inv, _ := r.e.Get(id)
		return inv.Tasks["a"].Status == TaskSucceeded || inv.Tasks["b"].Status == TaskSucceeded
	})
	inv, _ := r.e.Get(id)
	if inv.Tasks["a"].Status == TaskSucceeded && inv.Tasks["b"].Status == TaskSucceeded || len(inv.PendingSignals) != 0 {
		t.Fatalf("one signal, two waits: a %s, b %s, pending %v", inv.Tasks["a"].Status, inv.Tasks["b"].Status, inv.PendingSignals)
	}
	signal(t, r.e, id, "go", "2")
	done = waitDone(t, r.e, id)
	if o := string(done.Output); o != "[1,2]" && o != "[2,1]" {
		t.Fatalf("output %s, want each wait to have one signal", o)
	}
}

// TestSignalRefused: what Signal refuses, and why.
func TestSignalRefused(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: w\ntasks:\n  ok: { run: wait, inputs: { signal: go } }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: quick\ntasks:\n  x: { run: noop }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: late\ntasks:\n  x: { run: wait, inputs: { signal: \"${ input }\" } }\n")
	ctx := context.Background()
	id := invokeOn(t, r.e, "w", "")
	ended := r.run("quick", "").ID
	for _, c := range []struct {
		name, id, signal string
		data             []byte
		want             error
		says             string
	}{
		{"unknown invocation", "nope", "go", nil, ErrNotFound, `no invocation "nope"`},
		{"ended", ended, "go", nil, ErrConflict, "has ended (succeeded): a signal is for a running invocation"},
		{"bad name", id, "go!", nil, ErrInvalid, `signal name "go!": use 1 to 63`},
		{"long name", id, strings.Repeat("x", 64), nil, ErrInvalid, "use 1 to 63"},
		{"not JSON", id, "go", []byte("{"), ErrInvalid, "not JSON"},
		{"too large", id, "go", []byte(`"` + strings.Repeat("x", MaxData) + `"`), ErrTooLarge, "over the 512 KiB a workflow event holds: a signal carries at most that"},
	} {
		err := r.e.Signal(ctx, c.id, c.signal, c.data, InputJSON)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %v saying %q", c.name, err, c.want, c.says)
		}
	}
	// A wait whose name an expression gives is checked when it runs.
	bad := r.run("late", `"no spaces allowed"`)
	wantStatus(t, bad, StatusFailed)
	if !strings.Contains(bad.Error, `signal name "no spaces allowed": use 1 to 63`) {
		t.Fatalf("error %q", bad.Error)
	}
	// At most maxPendingSignals no wait has taken.
	for i := 0; i < maxPendingSignals; i++ {
		signal(t, r.e, id, "other", fmt.Sprint(i))
	}
	testutil.Eventually(t, 20*time.Second, "the signals to be pending", func() bool {
		inv, _ := r.e.Get(id)
		return len(inv.PendingSignals) == maxPendingSignals
	})
	err := r.e.Signal(ctx, id, "go", nil, InputJSON)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "holds 1000 signals no wait has taken, the most it keeps") {
		t.Fatalf("signal over the limit: %v", err)
	}
}

// TestSignalDurable: signals are events in the log, wherever they are
// written: one written by another node while the owner runs, one written
// while the owner is down (crashed), one in the log before a restart.
// The owner takes each, and runs no task it finished again.
func TestSignalDurable(t *testing.T) {
	for _, backend := range []string{natsStreaming, jetStream} {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, true)
			r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: steps
output: ${ [tasks.one.output, tasks.two.output, tasks.three.output, tasks.n.output.n] }
tasks:
  n: { run: wfguest, inputs: { op: add, n: 1 } }
  one: { run: wait, requires: [n], inputs: { signal: one } }
  two: { run: wait, requires: [one], inputs: { signal: two } }
  three: { run: wait, requires: [two], inputs: { signal: three } }
`)
			ctx := context.Background()
			id := invokeOn(t, r.e, "steps", "")
			waitFor(t, r.e, id, "one", "one")
			other, err := Open(ctx, Options{Log: r.connect(), Functions: r.fns, Definitions: r.defs, Node: "node-b"})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close(ctx)
			testutil.Eventually(t, 10*time.Second, "node-b to know the invocation", func() bool {
				_, err := other.Get(id)
				return err == nil
			})
			signal(t, other, id, "one", `"from b"`)
			waitFor(t, r.e, id, "two", "two")
			r.crash()
			signal(t, other, id, "two", `"while down"`)
			r.open()
			signal(t, r.e, id, "three", `"after"`)
			done := waitDone(t, r.e, id)
			wantStatus(t, done, StatusSucceeded)
			wantJSON(t, done.Output, `["from b", "while down", "after", 2]`)
			starts := map[string]int{}
			for _, ev := range r.events(id) {
				if ev.Type == EventTaskStarted {
					starts[ev.Task]++
				}
			}
			if starts["n"] != 1 || starts["one"] != 1 || starts["three"] != 1 {
				t.Fatalf("TaskStarted per task: %v", starts)
			}
			// The other node's fold agrees.
			testutil.Eventually(t, 10*time.Second, "node-b to see the end", func() bool {
				inv, err := other.Get(id)
				return err == nil && inv.Status == StatusSucceeded && bytes.Equal(inv.Output, done.Output)
			})
		})
	}
}

// TestSignalFold: the fold keeps signals in order, a wait's success
// removes exactly the one it names (not merely the oldest of its name),
// a success naming a signal not pending does not apply, and a failure
// keeps what is left, for a redrive (a success drops it: gaps_test.go).
func TestSignalFold(t *testing.T) {
	s := newState(10, 0)
	seq := uint64(0)
	apply := func(ev *Event) error {
		seq++
		ev.Seq, ev.Invocation, ev.Node = seq, "i", "n1"
		return s.apply(ev)
	}
	must := func(ev *Event) {
		t.Helper()
		if err := apply(ev); err != nil {
			t.Fatalf("%s: %v", ev.Type, err)
		}
	}
	must(&Event{Type: EventInvocationCreated, Owner: "n1", Workflow: "w", Revision: "r"})
	must(&Event{Type: EventSignalSent, Signal: "go", Input: []byte(`1`)}) // seq 2
	must(&Event{Type: EventSignalSent, Signal: "stop", Node: "n2"})       // seq 3
	must(&Event{Type: EventSignalSent, Signal: "go", Input: []byte(`2`)}) // seq 4
	must(&Event{Type: EventTaskScheduled, Task: "w", Run: builtinWait, Input: []byte(`{"signal":"go"}`)})
	must(&Event{Type: EventTaskStarted, Task: "w", Attempt: 1})
	if err := apply(&Event{Type: EventTaskSucceeded, Task: "w", Attempt: 1, Signal: "go", Consumed: 3}); err == nil {
		t.Fatal("a wait took a signal of another name")
	}
	must(&Event{Type: EventTaskSucceeded, Task: "w", Attempt: 1, Signal: "go", Consumed: 4, Output: []byte(`2`)})
	inv := s.invs["i"]
	var got []string
	for _, sg := range inv.signals {
		got = append(got, fmt.Sprintf("%d:%s", sg.seq, sg.name))
	}
	if strings.Join(got, ",") != "2:go,3:stop" {
		t.Fatalf("pending: %v", got)
	}
	must(&Event{Type: EventInvocationFailed, Error: "x"})
	if len(inv.signals) != 2 {
		t.Fatalf("pending after the failure: %v", inv.signals)
	}
	if err := apply(&Event{Type: EventSignalSent, Signal: "go"}); err == nil {
		t.Fatal("a signal applied to an ended invocation")
	}
}
