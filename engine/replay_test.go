package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// resumeAcross runs the workflow "resume" (first, then slow running for
// slowMs and nap sleeping 400ms) until slow and nap are under way, ends
// the engine with stop (a restart, a crash, and opening it again), waits
// for the invocation's end, and returns it with the TaskStarted events
// per task and nap's wake times.
func resumeAcross(t *testing.T, r *rig, slowMs int, stop func()) (done *Invocation, starts map[string]int, napWakes map[string]bool) {
	t.Helper()
	r.defs.put(t, fmt.Sprintf(`
apiVersion: sluice/v1
kind: Workflow
name: resume
output: ${ [tasks.first.output.n, tasks.slow.output.slept, tasks.nap.status] }
tasks:
  first: { run: wfguest, inputs: { op: double, n: 21 } }
  slow: { run: wfguest, requires: [first], inputs: { op: sleep, ms: %d } }
  nap: { run: sleep, requires: [first], inputs: 400ms }
`, slowMs))
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "resume", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "slow and nap to start", func() bool {
		got, _ := r.e.Get(inv.ID)
		return got.Tasks["slow"] != nil && got.Tasks["slow"].Status == TaskRunning && got.Tasks["nap"] != nil && got.Tasks["nap"].Status == TaskRunning
	})
	stop()
	if done, err = r.e.Wait(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	starts, napWakes = map[string]int{}, map[string]bool{}
	for _, ev := range r.events(inv.ID) {
		if ev.Type == EventTaskStarted {
			starts[ev.Task]++
			if ev.Task == "nap" {
				napWakes[ev.Wake.String()] = true
			}
		}
	}
	return done, starts, napWakes
}

func TestResumeAfterRestart(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	done, starts, _ := resumeAcross(t, r, 3000, r.restart)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[42, 3000, "succeeded"]`)
	// first succeeded before the restart: not run again. slow was
	// running: run again (attempt 2). nap keeps its wake time.
	if starts["first"] != 1 || starts["slow"] != 2 || starts["nap"] != 1 {
		t.Fatalf("TaskStarted per task: %v", starts)
	}
	if done.Tasks["slow"].Attempts != 2 {
		t.Fatalf("slow attempts = %d", done.Tasks["slow"].Attempts)
	}
}

// TestReplayRebuildsLiveState runs random workflows, then replays the log
// from the start in a second engine and compares its state with the live
// one, field by field.
func TestReplayRebuildsLiveState(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: leaf\ntasks:\n  x: { run: wfguest, inputs: { op: add, n: \"${ input }\" } }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: echoer\ntasks:\n  x: { run: echo-wat, inputs: \"${ input }\" }\n")
	// data values a replay must read back exactly: JSON with numbers
	// beyond float64 (and loop variables holding them), bytes
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: bignums
tasks:
  j: { run: wfguest, inputs: { op: text, s: ' [12345678901234567890, 1.50, 0.10000000000000000000001, "x"] ' } }
  each: { run: foreach, requires: [j], inputs: { foreach: "${ tasks.j.output }", do: { run: echo-wat, inputs: "${ item }" } } }
  odd: { run: foreach, inputs: { foreach: "${ [1, 2] }", do: { run: wfguest, inputs: { op: text, s: ' {"a":  1} ' } } } }
`)
	const workflows, runs = 12, 40
	for i := 0; i < workflows; i++ {
		putKnown(t, r.defs, randomWorkflow(rng, fmt.Sprintf("random-%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids []string
	for i := 0; i < runs; i++ {
		inv, err := r.e.Invoke(ctx, fmt.Sprintf("random-%d", rng.Intn(workflows)), []byte(fmt.Sprint(rng.Intn(10))), InvokeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, inv.ID)
	}
	// Cancel a few while they run.
	for i := 0; i < runs; i += 7 {
		r.e.Cancel(ctx, ids[i])
	}
	// As many signals as a workflow may wait for (some before their wait,
	// some after; those left are dropped when the invocation ends).
	signalAll := func(ids []string) {
		for _, id := range ids {
			for i := 0; i < maxRandomWaits; i++ {
				if err := r.e.Signal(ctx, id, "go", []byte(fmt.Sprint(i)), InputJSON); errors.Is(err, ErrConflict) {
					break // ended
				} else if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	signalAll(ids)
	// Messages for the waits on a topic (those that start later time out
	// into their catch).
	for n := range 10 {
		r.publish("replay", fmt.Sprintf(`{"n": %d}`, n))
	}
	r.publish("replay", `{"n": 99}`)
	waitAll := func(ids []string) (failed []string) {
		statuses := map[string]int{}
		for _, id := range ids {
			inv, err := r.e.Wait(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			statuses[inv.Status]++
			// a compensated invocation is not redriven: its undo tasks
			// put back what it did
			if (inv.Status == StatusFailed || inv.Status == StatusCanceled) && inv.Compensation == "" {
				failed = append(failed, id)
			}
		}
		t.Logf("statuses: %v", statuses)
		return failed
	}
	// Redrive those that failed or were canceled (and were not
	// compensated), once.
	again := waitAll(ids)
	for _, id := range again {
		if _, err := r.e.Redrive(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	signalAll(again)
	waitAll(again)

	// A second engine, another node, replays everything.
	other, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: "node-b"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	// The live engine has seen its own events come back (their sequences).
	testutil.Eventually(t, 10*time.Second, "the live engine to see its events stored", func() bool {
		r.e.mu.Lock()
		defer r.e.mu.Unlock()
		other.mu.Lock()
		defer other.mu.Unlock()
		return r.e.st.seq >= other.st.seq-1
	})
	r.e.mu.Lock()
	live := r.e.st.describe()
	r.e.mu.Unlock()
	other.mu.Lock()
	replayed := other.st.describe()
	other.mu.Unlock()
	// seq differs by the markers each engine wrote; compare the rest.
	live, replayed = dropFirstLine(live), dropFirstLine(replayed)
	if live != replayed {
		t.Fatalf("replayed state differs from the live one:\n%s", diff(live, replayed))
	}
}

func dropFirstLine(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}

func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, "live:     "+x, "replayed: "+y)
			if len(out) > 20 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// maxRandomWaits is the most signals a random workflow waits for: a wait
// or a foreach of two per task.
const maxRandomWaits = 2 * 7

// randomWorkflow makes a DAG of random tasks: functions that may fail or
// retry, built-ins, loops (whose items may fail, nested in one another,
// of branches, sleeps and child workflows), branches, child workflows (by
// name, by an expression, run: NAME) and dynamic tasks.
func randomWorkflow(rng *rand.Rand, name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: sluice/v1\nkind: Workflow\nname: %s\n", name)
	late := rng.Intn(4) == 0 // a deadline, and a task that meets it
	if late {
		b.WriteString("timeout: 300ms\n")
	}
	b.WriteString("tasks:\n")
	if late {
		b.WriteString("  late: { run: sleep, inputs: 1h }\n")
	}
	n := 2 + rng.Intn(6)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  t%d:\n", i)
		if i > 0 {
			var reqs []string
			for j := 0; j < i; j++ {
				if rng.Intn(3) == 0 {
					reqs = append(reqs, fmt.Sprintf("t%d", j))
				}
			}
			if len(reqs) > 0 {
				fmt.Fprintf(&b, "    requires: [%s]\n", strings.Join(reqs, ", "))
			}
		}
		switch rng.Intn(29) {
		case 28:
			b.WriteString("    run: wait\n    inputs: { topic: replay, match: \"${ message.n == input || message.n == 99 }\" }\n    timeout: 2s\n    catch: { run: noop, inputs: none }\n")
		case 14:
			b.WriteString("    run: wfguest\n    inputs: { op: code, code: card_declined, msg: declined }\n    retry: { max: 2, backoff: 1ms, on: [timeout] }\n    catch: { run: noop, inputs: \"${ error.code }\" }\n")
		case 15:
			b.WriteString("    run: wfguest\n    inputs: { op: add, n: 1 }\n    undo: { run: wfguest, inputs: { op: double, n: \"${ task.output.n }\" } }\n")
		case 16:
			b.WriteString("    run: sleep\n    inputs: 1h\n    timeout: 20ms\n    catch: { run: foreach, inputs: { foreach: \"${ [error.code] }\", do: { run: noop } } }\n")
		case 17:
			b.WriteString("    run: workflow\n    inputs: { workflow: leaf, input: \"${ input }\" }\n    timeout: 5ms\n    retry: { max: 1, backoff: 1ms, jitter: 0.5, max_backoff: 1s, on: [timeout] }\n    undo: { run: workflow, inputs: { workflow: leaf, input: 1 } }\n")
		case 18:
			b.WriteString("    run: leaf\n    inputs: \"${ input }\"\n")
		case 19:
			b.WriteString("    run: workflow\n    inputs: { workflow: \"${ input % 2 == 0 ? 'leaf' : 'echoer' }\", input: \"${ input }\" }\n")
		case 20:
			b.WriteString("    run: dynamic\n    inputs: { spec: { tasks: { a: { run: wfguest, inputs: { op: add, n: \"${ input }\" } }, " +
				"b: { run: wfguest, requires: [a], inputs: { op: double, n: \"${ tasks.a.output.n }\" } } }, output: \"${ tasks.b.output.n }\" }, input: \"${ input }\" }\n")
		case 21:
			b.WriteString("    run: dynamic\n    inputs: \"${ input % 4 == 0 ? {'run': 'nope'} : {'run': 'wfguest', 'inputs': {'op': 'flaky', 'fails': 1}, 'retry': {'max': 1, 'backoff': '5ms'}} }\"\n")
		case 22:
			b.WriteString("    run: wait\n    inputs: { signal: go }\n")
		case 23:
			b.WriteString("    run: foreach\n    inputs: { foreach: \"${ [1, 2] }\", do: { run: wait, inputs: { signal: go } } }\n")
		case 24:
			b.WriteString("    run: foreach\n    inputs: { foreach: \"${ 0..(input + 2) }\", do: { run: if, inputs: { if: \"${ item % 2 == 0 }\", then: { run: echo-wat, inputs: \"${ item }\" }, else: { run: sleep, inputs: 5ms } } } }\n")
		case 25:
			b.WriteString("    run: foreach\n    inputs: { foreach: \"${ 1..6 }\", parallel: 3, do: { run: wfguest, inputs: { op: \"${ item == input ? 'fail' : 'add' }\", n: \"${ item }\", msg: no } } }\n")
		case 26:
			b.WriteString("    run: while\n    inputs: { while: \"${ index < input }\", limit: 20, do: { run: foreach, inputs: { foreach: \"${ [index, prev] }\", parallel: 1, do: { run: noop, inputs: \"${ item }\" } } } }\n")
		case 27:
			b.WriteString("    run: foreach\n    inputs: { foreach: \"${ 1..3 }\", parallel: 2, do: { run: workflow, inputs: { workflow: leaf, input: \"${ item }\" } } }\n")
		case 12:
			b.WriteString("    run: workflow\n    inputs: { workflow: echoer, input: \"${ fromBase64('AP+AgQ==') }\" }\n")
		case 9:
			b.WriteString("    run: wfguest\n    inputs: { op: bytes, b64: AP+AgQ== }\n")
		case 10:
			b.WriteString("    run: repeat\n    inputs: { times: 2, do: { run: echo-wat, inputs: \"${ prev ?? fromBase64('AP+AgQ==') }\" } }\n")
		case 11:
			b.WriteString("    run: workflow\n    inputs: { workflow: bignums }\n")
		case 0:
			b.WriteString("    run: wfguest\n    inputs: { op: flaky, fails: 1 }\n    retry: { max: 2, backoff: 5ms }\n")
		case 1:
			b.WriteString("    run: wfguest\n    inputs: { op: flaky, fails: 3 }\n    retry: { max: 1, backoff: 5ms }\n")
		case 2:
			b.WriteString("    run: foreach\n    inputs: { foreach: \"${ [1, 2, 3] }\", parallel: 2, do: { run: wfguest, inputs: { op: double, n: \"${ item + input }\" } } }\n")
		case 3:
			b.WriteString("    run: if\n    inputs: { if: \"${ input % 2 == 0 }\", then: { run: wfguest, inputs: { op: add, n: 1 } }, else: odd }\n")
		case 4:
			b.WriteString("    run: repeat\n    inputs: { times: 3, do: { run: wfguest, inputs: { op: add, n: \"${ prev?.n ?? 0 }\" } } }\n")
		case 5:
			b.WriteString("    run: sleep\n    inputs: 20ms\n")
		case 6:
			b.WriteString("    run: workflow\n    inputs: { workflow: leaf, input: \"${ input }\" }\n")
		case 7:
			b.WriteString("    run: wfguest\n    inputs: { op: sleep, ms: 30 }\n")
		case 8:
			b.WriteString("    run: switch\n    inputs: { switch: \"${ input % 3 }\", cases: [ { case: 0, do: zero }, { case: 1, do: { run: noop, inputs: one } } ], default: { run: fail, inputs: two } }\n")
		default:
			b.WriteString("    run: wfguest\n    inputs: { op: double, n: \"${ input }\" }\n")
		}
	}
	return b.String()
}

// TestServerOutage stops NATS Streaming while an invocation sleeps: the
// event that ends the sleep cannot be stored, so the engine stops driving
// the invocation, and once the server is back it rebuilds it from the log
// and finishes it.
func TestServerOutage(t *testing.T) {
	r := newRig(t, true)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: outage
output: ${ tasks.after.output.n }
tasks:
  nap: { run: sleep, inputs: 300ms }
  after: { run: wfguest, requires: [nap], inputs: { op: add, n: 41 } }
`)
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "outage", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	restart := r.stopServer()
	testutil.Eventually(t, 20*time.Second, "the connection to notice", func() bool { return !r.conn.Connected() })
	testutil.Eventually(t, 10*time.Second, "the invocation to go stale", func() bool { return r.e.isStale(inv.ID) })
	restart()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	done, err := r.e.Wait(wctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `42`)
	got := strings.Join(types(r.events(inv.ID)), ",")
	if got != "InvocationCreated,TaskScheduled nap,TaskStarted nap,TaskSucceeded nap,TaskScheduled after,TaskStarted after,TaskSucceeded after,InvocationSucceeded" {
		t.Fatalf("events after the outage: %s", got)
	}
}

// TestServerOutageKeepsCalls stops NATS Streaming while two function calls
// run and a sleep ends (its end cannot be stored: the invocation goes
// stale). One call ends during the outage, the other after the server is
// back. The log holds both calls' starts, so neither runs again: each is
// recorded once, as attempt 1.
func TestServerOutageKeepsCalls(t *testing.T) {
	r := newRig(t, true)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: calls
output: ${ [tasks.short.output.n, tasks.long.output.n] }
tasks:
  short: { run: wfguest, inputs: { op: double, n: 1 } }
  long:  { run: wfguest, inputs: { op: double, n: 2 } }
  nap:   { run: sleep, inputs: 1s }
`)
	releaseShort, releaseLong := r.fns.gate("short"), r.fns.gate("long")
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "calls", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "both calls' starts to be stored", func() bool {
		got := strings.Join(types(r.events(inv.ID)), ",")
		return contains(got, "TaskStarted short") && contains(got, "TaskStarted long")
	})
	restart := r.stopServer()
	testutil.Eventually(t, 20*time.Second, "the invocation to go stale", func() bool { return r.e.isStale(inv.ID) })
	releaseShort()
	testutil.Eventually(t, 10*time.Second, "the short call to end", func() bool {
		r.e.mu.Lock()
		defer r.e.mu.Unlock()
		l := r.e.local[inv.ID]
		return l != nil && l.runs["short"] != nil && l.runs["short"].ended
	})
	restart()
	testutil.Eventually(t, 30*time.Second, "the invocation to be rebuilt", func() bool { return !r.e.isStale(inv.ID) })
	releaseLong()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	done, err := r.e.Wait(wctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[2, 4]`)
	for _, task := range []string{"short", "long"} {
		if a := done.Tasks[task].Attempts; a != 1 {
			t.Errorf("task %s: %d attempts, want 1", task, a)
		}
	}
	r.fns.mu.Lock()
	calls := r.fns.calls["wfguest"]
	r.fns.mu.Unlock()
	if calls != 2 {
		t.Errorf("%d calls of wfguest, want 2: %s", calls, strings.Join(types(r.events(inv.ID)), ","))
	}
}
