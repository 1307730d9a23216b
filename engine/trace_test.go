package engine

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/logctx"
	"github.com/sluicehq/sluice/testutil"
)

// callMeta is what wfguest's meta op answers.
type callMeta struct {
	Task        string `json:"task"`
	Traceparent string `json:"traceparent"`
	Tracestate  string `json:"tracestate"`
}

func traceOf(t *testing.T, what, traceparent string) logctx.Trace {
	t.Helper()
	tc, ok := logctx.ParseTraceparent(traceparent)
	if !ok {
		t.Fatalf("%s: traceparent %q does not parse", what, traceparent)
	}
	return tc
}

// An invocation started with a trace context records it in its creation
// and keeps it across a restart: each task call, before and after the
// restart, and a child workflow's, is a new span of the same trace whose
// guest reads it, with the caller's tracestate.
func TestTraceSurvivesRestart(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: tracedchild
output: ${ tasks.c.output }
tasks:
  c: { run: wfguest, inputs: { op: meta } }
`)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: traced
output: ${ [tasks.before.output, tasks.after.output, tasks.sub.output] }
tasks:
  before: { run: wfguest, inputs: { op: meta } }
  nap:    { run: sleep, requires: [before], inputs: 1s }
  after:  { run: wfguest, requires: [nap], inputs: { op: meta } }
  sub:    { run: workflow, requires: [nap], inputs: { workflow: tracedchild } }
`)
	caller := logctx.Continue("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7")
	ctx := logctx.WithTrace(context.Background(), caller)
	inv, err := r.e.Invoke(ctx, "traced", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Traceparent != caller.Traceparent() {
		t.Fatalf("invocation traceparent %q, want the caller's span %q", inv.Traceparent, caller.Traceparent())
	}
	testutil.Eventually(t, 20*time.Second, "before to succeed and nap to sleep", func() bool {
		got, _ := r.e.Get(inv.ID)
		return got.Tasks["nap"] != nil && got.Tasks["nap"].Status == TaskRunning
	})
	r.restart()
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, err := r.e.Wait(wctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	if done.Traceparent != caller.Traceparent() {
		t.Fatalf("after the restart the invocation's traceparent is %q, want %q", done.Traceparent, caller.Traceparent())
	}
	var calls []callMeta
	if err := json.Unmarshal(done.Output, &calls); err != nil || len(calls) != 3 {
		t.Fatalf("output %s: %v", done.Output, err)
	}
	spans := map[[8]byte]string{caller.SpanID: "the invocation"}
	for _, c := range calls {
		tc := traceOf(t, "task "+c.Task, c.Traceparent)
		if tc.TraceID != caller.TraceID {
			t.Fatalf("task %s: trace %x, want the invocation's %x", c.Task, tc.TraceID, caller.TraceID)
		}
		if other, dup := spans[tc.SpanID]; dup {
			t.Fatalf("task %s has the span of %s: %x", c.Task, other, tc.SpanID)
		}
		spans[tc.SpanID] = "task " + c.Task
		if c.Tracestate != caller.State {
			t.Fatalf("task %s: tracestate %q, want the caller's %q", c.Task, c.Tracestate, caller.State)
		}
	}
	kids := r.e.List("tracedchild")
	if len(kids) != 1 || kids[0].Traceparent == "" {
		t.Fatalf("child invocations %+v: want one, with a trace", kids)
	}
	if tc := traceOf(t, "the child workflow", kids[0].Traceparent); tc.TraceID != caller.TraceID || spans[tc.SpanID] != "" {
		t.Fatalf("the child workflow's span %s: want a new span of trace %x", kids[0].Traceparent, caller.TraceID)
	}
}

// An InvocationCreated written before sluice recorded trace context
// replays as before: the invocation runs, and each task call starts a
// trace of its own.
func TestInvocationWithoutTraceReplays(t *testing.T) {
	r := newRig(t, false)
	rev := r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: old
output: ${ [tasks.a.output, tasks.b.output] }
tasks:
  a: { run: wfguest, inputs: { op: meta } }
  b: { run: wfguest, inputs: { op: meta } }
`)
	r.e.Close(context.Background())
	// as an older sluice wrote it: no traceparent
	old := `{"type":"InvocationCreated","inv":"from-before","time":"2026-01-02T03:04:05Z","node":"node-a","workflow":"old","revision":"` + rev.Revision + `","owner":"node-a","input":null}`
	if _, err := r.conn.Publish(context.Background(), EventStream(r.conn.Features(), "from-before"), eventlog.Message{Data: []byte(old)}); err != nil {
		t.Fatal(err)
	}
	r.open()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, err := r.e.Wait(ctx, "from-before")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	if done.Traceparent != "" {
		t.Fatalf("traceparent %q on an invocation that recorded none", done.Traceparent)
	}
	var calls []callMeta
	if err := json.Unmarshal(done.Output, &calls); err != nil || len(calls) != 2 {
		t.Fatalf("output %s: %v", done.Output, err)
	}
	a, b := traceOf(t, "task a", calls[0].Traceparent), traceOf(t, "task b", calls[1].Traceparent)
	if a.TraceID == b.TraceID {
		t.Fatalf("two tasks of an invocation without a trace share trace %s", hex.EncodeToString(a.TraceID[:]))
	}
}

// An invocation started without a trace context starts a trace: its task
// calls are spans of it.
func TestInvocationStartsATrace(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: fresh
output: ${ tasks.a.output }
tasks:
  a: { run: wfguest, inputs: { op: meta } }
`)
	done := r.run("fresh", "null")
	wantStatus(t, done, StatusSucceeded)
	inv := traceOf(t, "the invocation", done.Traceparent)
	var call callMeta
	if err := json.Unmarshal(done.Output, &call); err != nil {
		t.Fatal(err)
	}
	if tc := traceOf(t, "task a", call.Traceparent); tc.TraceID != inv.TraceID || tc.SpanID == inv.SpanID {
		t.Fatalf("task a's span %s: want a child of the invocation's %s", call.Traceparent, done.Traceparent)
	}
	evs := r.events(done.ID)
	if evs[0].Type != EventInvocationCreated || evs[0].Traceparent != done.Traceparent {
		t.Fatalf("first event %s: want InvocationCreated with traceparent %s", evs[0], done.Traceparent)
	}
}
