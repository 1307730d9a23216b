package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
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
	other, err := Open(ctx, Options{Conn: r.conn, Functions: r.fns, Definitions: r.defs, Node: "replayer"})
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

// TestDeepJSON: input nested deeper than MaxDepth is refused; a function
// output or an expression value nested deeper fails its task. Values
// nested 10,000 levels were accepted, then their events could not be read
// back (Go's decoder stops at 10,000): the invocation was lost.
func TestDeepJSON(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: same\ntasks:\n  a: { run: noop, inputs: \"${ input }\" }\n")
	ctx := context.Background()
	for _, f := range []InputFormat{InputJSON, InputAuto} {
		for _, depth := range []int{MaxDepth + 1, 9999, 10000} {
			_, err := r.e.Invoke(ctx, "same", []byte(deepJSON(depth)), InvokeOptions{Input: f})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "deeper than 1000 levels") {
				t.Fatalf("input nested %d levels (format %d): %v", depth, f, err)
			}
		}
	}
	wantJSON(t, r.run("same", deepJSON(MaxDepth)).Output, deepJSON(MaxDepth))

	cases := []struct{ name, task, says string }{
		{"function-output", "a: { run: wfguest, inputs: { op: text, s: \"${ input }\" } }", "the output nests deeper than 1000"},
		{"expression-value", "a: { run: noop, inputs: \"${ reduce(1..10000, [#acc], 0) }\" }", "nests deeper than 1000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: "+c.name+"\ntasks:\n  "+c.task+"\n")
			inv, err := r.e.Invoke(ctx, c.name, []byte(deepJSON(10000)), InvokeOptions{Input: InputString})
			if err != nil {
				t.Fatal(err)
			}
			done, err := r.e.Wait(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, done, StatusFailed)
			if done.FailedTask != "a" || !strings.Contains(done.Error, c.says) {
				t.Fatalf("failed task %q: %q; want a saying %q", done.FailedTask, done.Error, c.says)
			}
			// What was written reads back: a restart sees the same end.
			again := r.replayed(inv.ID)
			if again.Status != StatusFailed || again.Error != done.Error {
				t.Fatalf("replayed: %s %q, live: %s %q", again.Status, again.Error, done.Status, done.Error)
			}
		})
	}
}
