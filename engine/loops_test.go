package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// TestForeachOrderAndParallel runs a foreach whose later items end first:
// the output keeps the items' order, items are scheduled in order, and
// never more than parallel of them run at once.
func TestForeachOrderAndParallel(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: order
tasks:
  each:
    run: foreach
    inputs:
      foreach: ${ input }
      parallel: 3
      do: { run: wfguest, inputs: { op: sleep, ms: "${ item }" } }
`)
	done := r.run("order", `[80, 60, 40, 20, 5, 30, 10, 1]`)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[{"slept":80},{"slept":60},{"slept":40},{"slept":20},{"slept":5},{"slept":30},{"slept":10},{"slept":1}]`)
	running, most, next := 0, 0, 0
	for _, ev := range r.events(done.ID) {
		switch {
		case ev.Type == EventTaskScheduled && ev.Task != "each":
			if want := fmt.Sprintf("each/%d", next); ev.Task != want {
				t.Fatalf("scheduled %s, want %s first", ev.Task, want)
			}
			next++
		case ev.Type == EventTaskStarted && ev.Task != "each":
			running++
			most = max(most, running)
		case ev.Type == EventTaskSucceeded && ev.Task != "each":
			running--
		}
	}
	if most != 3 || next != 8 {
		t.Fatalf("%d items ran at most at once (want 3), %d scheduled (want 8)", most, next)
	}
}

// TestForeachKeepsOnlyActiveKids holds the last item of a foreach of 300
// running: the foreach keeps the one kid still running (not the 299 that
// succeeded), and the expressions of an item see the workflow's two
// tasks, not the 300 items. Each was a copy of every task per item: a
// foreach of n items cost O(n²).
func TestForeachKeepsOnlyActiveKids(t *testing.T) {
	const n, parallel = 300, 4
	r := newRig(t, false)
	r.defs.put(t, fmt.Sprintf(`
apiVersion: sluice/v1
kind: Workflow
name: wide
tasks:
  first: { run: noop, inputs: 2 }
  each:
    run: foreach
    requires: [first]
    inputs: { foreach: "${ 0..%d }", parallel: %d, do: { run: wfguest, inputs: { op: add, n: "${ item * tasks.first.output }" } } }
`, n-1, parallel))
	release := r.fns.gate(fmt.Sprintf("each/%d", n-1))
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "wide", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kids := func() (done, running, held int, view []taskView) {
		r.e.mu.Lock()
		defer r.e.mu.Unlock()
		st := r.e.st.invs[inv.ID]
		each := st.tasks["each"]
		if each == nil || each.loop == nil {
			return 0, 0, 0, nil
		}
		return each.kidsDone, each.loop.running(), len(each.loop.active), r.e.viewOf(st, fmt.Sprintf("each/%d", n-1), nil).tasks
	}
	testutil.Eventually(t, 30*time.Second, "all items but the last to succeed", func() bool {
		done, _, _, _ := kids()
		return done == n-1
	})
	done, running, held, view := kids()
	if running != 1 || held > 2*parallel {
		t.Errorf("the foreach holds %d kids, %d of them running, with %d done: want 1 running, at most %d held", held, running, done, 2*parallel)
	}
	var ids []string
	for _, tv := range view {
		ids = append(ids, tv.id)
	}
	if strings.Join(ids, ",") != "first,each" {
		t.Errorf("an item's expressions see tasks %v, want first, each", ids)
	}
	release()
	got, err := r.e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, StatusSucceeded)
	var want []string
	for i := 0; i < n; i++ {
		want = append(want, fmt.Sprintf(`{"n":%d}`, 2*i+1))
	}
	wantJSON(t, got.Tasks["each"].Output, "["+strings.Join(want, ",")+"]")
}

// TestLoopsResumeAfterCrash kills the engine (kill -9) while a foreach
// and a while are under way: after the restart both finish where they
// were, and no item or iteration that succeeded runs again.
func TestLoopsResumeAfterCrash(t *testing.T) {
	r := newRig(t, true)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: both
output: ${ [tasks.each.output, tasks.loop.output] }
tasks:
  each: { run: foreach, inputs: { foreach: "${ 1..6 }", parallel: 2, do: { run: wfguest, inputs: { op: double, n: "${ item }" } } } }
  loop: { run: while, inputs: { while: "${ index < 5 }", limit: 10, do: { run: wfguest, inputs: { op: add, n: "${ prev?.n ?? 0 }" } } } }
`)
	releases := []func(){r.fns.gate("each/2"), r.fns.gate("each/3"), r.fns.gate("loop/3")}
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "both", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the held items and iteration to start", func() bool {
		got := strings.Join(types(r.events(inv.ID)), ",")
		return contains(got, "TaskStarted each/2") && contains(got, "TaskStarted each/3") && contains(got, "TaskStarted loop/3")
	})
	r.crash()
	for _, release := range releases {
		release()
	}
	r.open()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	done, err := r.e.Wait(wctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[[{"n":2},{"n":4},{"n":6},{"n":8},{"n":10},{"n":12}], {"n":5}]`)
	starts := map[string]int{}
	for _, ev := range r.events(inv.ID) {
		if ev.Type == EventTaskStarted {
			starts[ev.Task]++
		}
	}
	for task, want := range map[string]int{"each/0": 1, "each/1": 1, "each/2": 2, "each/3": 2, "each/4": 1, "loop/0": 1, "loop/2": 1, "loop/3": 2, "loop/4": 1} {
		if starts[task] != want {
			t.Errorf("%s started %d times, want %d (all: %v)", task, starts[task], want, starts)
		}
	}
}

// TestKidChanged folds a foreach's kids and runs some again, as a redrive
// does: the counts and the active kids follow each change of status, and
// a kid run again takes its place among the active in the items' order.
func TestKidChanged(t *testing.T) {
	s := newState(0, 0)
	apply := func(evs ...*Event) {
		t.Helper()
		for _, ev := range evs {
			ev.Invocation = "i"
			if err := s.apply(ev); err != nil {
				t.Fatalf("%s %s: %v", ev.Type, ev.Task, err)
			}
		}
	}
	apply(&Event{Type: EventInvocationCreated}, &Event{Type: EventTaskScheduled, Task: "each", Run: builtinForeach},
		&Event{Type: EventTaskStarted, Task: "each", Attempt: 1})
	for i := 0; i < 6; i++ {
		id := kidID("each", i)
		apply(&Event{Type: EventTaskScheduled, Task: id, Run: builtinNoop}, &Event{Type: EventTaskStarted, Task: id, Attempt: 1})
	}
	for _, i := range []int{0, 2, 3, 5} {
		apply(&Event{Type: EventTaskSucceeded, Task: kidID("each", i), Attempt: 1})
	}
	apply(&Event{Type: EventTaskFailed, Task: "each/4", Attempt: 1, Error: "boom"})
	inv := s.invs["i"]
	each := inv.tasks["each"]
	check := func(what string, kids, done int, active, failed string) {
		t.Helper()
		if got := fmt.Sprintf("kids=%d/%d%s", each.kidsDone, each.kids, each.loop.describe()); got != fmt.Sprintf("kids=%d/%d active=[%s] failed=[%s]", done, kids, active, failed) {
			t.Fatalf("%s: %s", what, got)
		}
	}
	check("folded", 6, 4, "each/1", "each/4")
	if c := each.loop.firstFailed(); c == nil || c.id != "each/4" {
		t.Fatalf("first failed: %v", c)
	}
	if n := each.loop.running(); n != 1 {
		t.Fatalf("%d running, want 1", n)
	}
	again := func(id string) {
		c := inv.tasks[id]
		from := c.status
		c.status = TaskScheduled
		inv.kidChanged(c, from)
	}
	again("each/4")
	check("each/4 again", 6, 4, "each/1 each/4", "")
	again("each/2")
	again("each/0")
	check("each/2 and each/0 again", 6, 2, "each/0 each/1 each/2 each/4", "")
	if n := each.loop.running(); n != 4 {
		t.Fatalf("%d running, want 4", n)
	}
	apply(&Event{Type: EventInvocationCanceled})
	check("canceled", 6, 2, "", "")
}
