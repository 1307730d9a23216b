package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// The tests of this file give the engine what a careless or hostile user
// gives it: they check that it refuses it or fails the invocation visibly,
// and that what it writes stays readable by itself.

// deepJSON is a JSON list nested depth levels.
func deepJSON(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// replayed opens a second engine on the rig's log and returns its view of
// an invocation: what a restart would find.
func (r *rig) replayed(id string) *Invocation {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: "replayer"})
	if err != nil {
		r.t.Fatal(err)
	}
	defer other.Close(ctx)
	inv, err := other.Get(id)
	if err != nil {
		r.t.Fatalf("replayed: %v", err)
	}
	return inv
}

// TestDeepJSON: JSON input nested deeper than MaxDepth is refused; bytes
// from outside nested deeper (an input read as InputAuto, a function's
// output) are data, which expressions read as a string and which is
// stored as one; an expression value nested deeper fails its task. Values
// nested 10,000 levels were accepted, then their events could not be read
// back (Go's decoder stops at 10,000): the invocation was lost.
func TestDeepJSON(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: same\ntasks:\n  a: { run: noop, inputs: \"${ input }\" }\n")
	ctx := context.Background()
	for _, depth := range []int{MaxDepth + 1, 9999, 10000} {
		_, err := r.e.Invoke(ctx, "same", []byte(deepJSON(depth)), InvokeOptions{Input: InputJSON})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "deeper than 1000 levels") {
			t.Fatalf("input nested %d levels: %v", depth, err)
		}
	}
	wantJSON(t, r.run("same", deepJSON(MaxDepth)).Output, deepJSON(MaxDepth))

	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: deep\noutput: ${ [type(input), tasks.a.output] }\ntasks:\n  a: { run: wfguest, inputs: \"${ input }\" }\n")
	deep := r.run("deep", deepJSON(10000))
	wantStatus(t, deep, StatusSucceeded)
	wantJSON(t, deep.Output, `["string", "`+deepJSON(10000)+`"]`)
	if again := r.replayed(deep.ID); string(again.Output) != string(deep.Output) {
		t.Fatalf("replayed output differs")
	}

	t.Run("expression-value", func(t *testing.T) {
		r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: expression-value\ntasks:\n  a: { run: noop, inputs: \"${ reduce(1..10000, [#acc], 0) }\" }\n")
		inv, err := r.e.Invoke(ctx, "expression-value", nil, InvokeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		done, err := r.e.Wait(ctx, inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, done, StatusFailed)
		if done.FailedTask != "a" || !strings.Contains(done.Error, "nests deeper than 1000") {
			t.Fatalf("failed task %q: %q", done.FailedTask, done.Error)
		}
		// What was written reads back: a restart sees the same end.
		again := r.replayed(inv.ID)
		if again.Status != StatusFailed || again.Error != done.Error {
			t.Fatalf("replayed: %s %q, live: %s %q", again.Status, again.Error, done.Status, done.Error)
		}
	})
}

// TestOpenEvictsWhileResuming: invocations that finish while Open resumes
// them push retained ones out of memory; Open walked the ids it had listed
// and met one it had just forgotten (a nil pointer, a panic at every
// start of that data dir).
func TestOpenEvictsWhileResuming(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: nap\ntasks:\n  z: { run: sleep, inputs: 2s }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: quick\ntasks:\n  a: { run: noop, inputs: 1 }\n")
	ctx := context.Background()
	const retain = 3
	open := func() *Engine {
		e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: "resumer", Retain: retain})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open()
	// Sleepers first, so that their ids sort before the retained ones.
	var sleepers []string
	for i := 0; i < 2; i++ {
		inv, err := e.Invoke(ctx, "nap", nil, InvokeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sleepers = append(sleepers, inv.ID)
	}
	var wake time.Time
	testutil.Eventually(t, 10*time.Second, "the sleeps to start", func() bool {
		for _, id := range sleepers {
			evs, err := e.Events(ctx, id)
			if err != nil || len(evs) < 3 || evs[2].Wake == nil {
				return false
			}
			wake = *evs[2].Wake
		}
		return true
	})
	for i := 0; i < retain; i++ {
		inv, err := e.Invoke(ctx, "quick", nil, InvokeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Wait(ctx, inv.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.crash()
	for _, id := range sleepers {
		if inv, _ := e.Get(id); inv.Status != StatusRunning {
			t.Fatalf("sleeper %s is %s before the crash: the machine is too slow for this test", id, inv.Status)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the sleeps to be due", func() bool { return time.Now().After(wake) })
	e = open()
	defer e.Close(ctx)
	for _, id := range sleepers {
		done, err := e.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, done, StatusSucceeded)
	}
}

// TestSelfForeachFanOut: a workflow whose foreach runs the same workflow
// grew without bound (depth is capped, breadth was not: 10^16
// invocations). It fails at the limit of child workflows running at once
// under one invocation, and the engine goes on.
func TestSelfForeachFanOut(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: bomb\ntasks:\n  each:\n    run: foreach\n    inputs: { foreach: '${ 1..10 }', do: { run: workflow, inputs: { workflow: bomb } } }\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inv, err := r.e.Invoke(ctx, "bomb", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done, err := r.e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusFailed)
	t.Logf("%d invocations; the root failed with: %s", len(r.e.List("bomb")), done.Error)
	if !strings.Contains(done.Error, fmt.Sprintf("runs %d child workflows at once", maxRunningChildWorkflows)) || !strings.Contains(done.Error, "parallel:") {
		t.Fatalf("error %q", done.Error)
	}
	// Every invocation under it ended, and the engine runs the next one.
	testutil.Eventually(t, 30*time.Second, "every child to end", func() bool { return r.e.Running()["bomb"] == 0 })
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: after\ntasks:\n  a: { run: noop, inputs: 1 }\n")
	wantStatus(t, r.run("after", ""), StatusSucceeded)
}

// TestPanicsAreQuarantined: a panic while driving an invocation (a bug in
// the catalog, here) or in a function call (a bug in the registry) fails
// that invocation visibly; the engine and the others carry on, and a
// restart does not meet the panic again.
func TestPanicsAreQuarantined(t *testing.T) {
	r := newRig(t, true)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: boom\ntasks:\n  a: { run: noop }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: parent\ntasks:\n  sub: { run: workflow, inputs: { workflow: boom } }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: call\ntasks:\n  broken: { run: wfguest, inputs: { op: add, n: 1 } }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: fine\ntasks:\n  a: { run: wfguest, inputs: { op: add, n: 1 } }\n")
	r.defs.mu.Lock()
	r.defs.panics["boom"] = true
	r.defs.mu.Unlock()
	r.fns.mu.Lock()
	r.fns.panics["broken"] = true
	r.fns.mu.Unlock()

	parent := r.run("parent", "")
	wantStatus(t, parent, StatusFailed)
	if !strings.Contains(parent.Error, "internal error (the catalog broke)") {
		t.Fatalf("parent: %q", parent.Error)
	}
	call := r.run("call", "")
	wantStatus(t, call, StatusFailed)
	if call.FailedTask != "broken" || !strings.Contains(call.Error, "internal error: the registry broke") {
		t.Fatalf("call: %s %q", call.FailedTask, call.Error)
	}
	wantStatus(t, r.run("fine", ""), StatusSucceeded)
	r.restart()
	again, err := r.e.Get(parent.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, again, StatusFailed)
	wantStatus(t, r.run("fine", ""), StatusSucceeded)
}

// TestForgedEvents: what the log holds that is not an event the engine
// wrote (garbage, missing fields, values of the wrong type, nesting no
// decoder reads) is skipped with a warning naming its sequence; the engine
// goes on.
func TestForgedEvents(t *testing.T) {
	r := newRig(t, false)
	var logs syncBuffer
	r.e.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: r.node,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: fine\ntasks:\n  a: { run: noop, inputs: '${ input }' }\n")
	live := r.run("fine", "1")
	forged := []string{
		"not json",
		`{"type": ""}`,
		`{"type": "TaskScheduled"}`,
		`{"type": "TaskScheduled", "inv": "` + live.ID + `", "task": "x", "scope": "not a map"}`,
		`{"type": "TaskStarted", "inv": "` + live.ID + `", "task": "a", "attempt": -5, "wake": "yesterday"}`,
		`{"type": "InvocationCreated", "inv": "x", "input": ` + deepJSON(20000) + `}`,
		`{"type": "InvocationSucceeded", "inv": "nobody"}`,
		`{"type": "OwnerChanged", "inv": "` + live.ID + `", "from": "someone", "owner": "me"}`,
	}
	for _, f := range forged {
		if _, err := r.conn.Publish(ctx, EventsChannel, eventlog.Message{Data: []byte(f)}); err != nil {
			t.Fatal(err)
		}
	}
	after := r.run("fine", "2")
	wantStatus(t, after, StatusSucceeded)
	// The forged events are before its first one in the log: once it is
	// read back, they have been.
	testutil.Eventually(t, 10*time.Second, "the engine to read its events back", func() bool {
		r.e.mu.Lock()
		defer r.e.mu.Unlock()
		inv := r.e.st.invs[after.ID]
		return inv != nil && inv.firstSeq != 0
	})
	got, err := r.e.Get(live.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusSucceeded || len(got.Tasks) != 1 {
		t.Fatalf("forged events changed an invocation: %+v", got)
	}
	for _, want := range []string{"skipping a workflow event that is not JSON", "skipping a workflow event without a type or an invocation"} {
		testutil.Eventually(t, 10*time.Second, "the warning "+want, func() bool {
			return regexp.MustCompile(want + `.* seq=\d+`).MatchString(logs.String())
		})
	}
}

// syncBuffer is a buffer the engine's goroutines may log to.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHistoryRetainedByBytes: finished invocations are forgotten beyond
// RetainBytes of them, whatever their count, and a replay keeps the same
// ones.
func TestHistoryRetainedByBytes(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: carry\ntasks:\n  a: { run: noop, inputs: '${ input }' }\n  b: { run: noop, requires: [a], inputs: '${ tasks.a.output }' }\n")
	ctx := context.Background()
	const limit = 200 << 10
	open := func(node string) *Engine {
		e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: node, RetainBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close(ctx) })
		return e
	}
	e := open("keeper")
	payload := fmt.Sprintf("%q", strings.Repeat("x", 10<<10))
	for i := 0; i < 30; i++ {
		inv, err := e.Invoke(ctx, "carry", []byte(payload), InvokeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Wait(ctx, inv.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	kept, bytes := len(e.st.finished), e.st.finishedBytes
	live := e.st.describe()
	e.mu.Unlock()
	// Each holds its input, twice a task's input and output: ~40 KB.
	if kept >= 30 || kept < 3 || bytes > limit {
		t.Fatalf("%d invocations kept, %d bytes of them, with a limit of %d", kept, bytes, limit)
	}
	if n := len(e.List("carry")); n != kept {
		t.Fatalf("List shows %d, %d kept", n, kept)
	}
	other := open("replayer")
	testutil.Eventually(t, 10*time.Second, "the live engine to see its events stored", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		other.mu.Lock()
		defer other.mu.Unlock()
		return e.st.seq >= other.st.seq-1
	})
	e.mu.Lock()
	live = e.st.describe()
	e.mu.Unlock()
	other.mu.Lock()
	replayed := other.st.describe()
	other.mu.Unlock()
	if dropFirstLine(live) != dropFirstLine(replayed) {
		t.Fatalf("replayed state differs:\n%s", diff(dropFirstLine(live), dropFirstLine(replayed)))
	}
}

// TestPoisonDefinition: a definition that reached the catalog without
// being checked (a forged event, one stored before a fix) is parsed when
// an invocation needs it: Invoke refuses it, and an invocation already
// running on it fails visibly at the next start; nothing panics.
func TestPoisonDefinition(t *testing.T) {
	r := newRig(t, true)
	poison := "apiVersion: sluice/v1\nkind: Workflow\nname: poison\ntasks:\n  a: {run: noop, inputs: &a [*a]}\n"
	rev := r.defs.putRaw("poison", poison)
	ctx := context.Background()
	if _, err := r.e.Invoke(ctx, "poison", nil, InvokeOptions{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "inside the value it names") {
		t.Fatalf("invoke: %v", err)
	}
	// An invocation of it this node created in an earlier life.
	created, _ := encodeEvent(&Event{Type: EventInvocationCreated, Invocation: "before-the-fix", Node: r.node, Owner: r.node,
		Workflow: "poison", Revision: rev.Revision, Input: json.RawMessage("null"), Time: time.Now()})
	if _, err := r.conn.Publish(ctx, EventsChannel, eventlog.Message{Data: created}); err != nil {
		t.Fatal(err)
	}
	r.restart()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	inv, err := r.e.Wait(wctx, "before-the-fix")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, inv, StatusFailed)
	if !strings.Contains(inv.Error, "line 5: YAML: the alias *a is inside the value it names") {
		t.Fatalf("error %q", inv.Error)
	}
}
