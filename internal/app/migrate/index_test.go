package migrate

import (
	"testing"

	"github.com/sluicehq/sluice/engine"
)

func TestIndexSelection(t *testing.T) {
	ev := func(typ, inv string, f func(*engine.Event)) *engine.Event {
		e := &engine.Event{Type: typ, Invocation: inv}
		if f != nil {
			f(e)
		}
		return e
	}
	node := func(n string) func(*engine.Event) { return func(e *engine.Event) { e.Node = n } }
	tests := []struct {
		name     string
		events   []*engine.Event
		copied   []string
		finished int
	}{
		{"running and finished", []*engine.Event{
			ev(engine.EventInvocationCreated, "a", nil), ev(engine.EventInvocationCreated, "b", nil),
			ev(engine.EventInvocationSucceeded, "b", nil),
		}, []string{"a"}, 1},
		{"a finished child of a running parent goes with it", []*engine.Event{
			ev(engine.EventInvocationCreated, "p", nil),
			ev(engine.EventInvocationCreated, "c", func(e *engine.Event) { e.Parent = "p/t" }),
			ev(engine.EventInvocationFailed, "c", nil),
		}, []string{"p", "c"}, 0},
		{"an end from a replaced owner changes nothing", []*engine.Event{
			ev(engine.EventInvocationCreated, "a", func(e *engine.Event) { e.Owner = "n1" }),
			ev(eventOwnerChanged, "a", func(e *engine.Event) { e.From, e.Owner, e.Node = "n1", "n2", "n2" }),
			ev(engine.EventInvocationSucceeded, "a", node("n1")),
		}, []string{"a"}, 0},
		{"an end from the new owner ends it", []*engine.Event{
			ev(engine.EventInvocationCreated, "a", func(e *engine.Event) { e.Owner = "n1" }),
			ev(eventOwnerChanged, "a", func(e *engine.Event) { e.From, e.Owner, e.Node = "n1", "n2", "n2" }),
			ev(engine.EventInvocationCanceled, "a", node("n2")),
		}, nil, 1},
		{"an OwnerChanged from a non-owner changes nothing", []*engine.Event{
			ev(engine.EventInvocationCreated, "a", func(e *engine.Event) { e.Owner = "n1" }),
			ev(eventOwnerChanged, "a", func(e *engine.Event) { e.From, e.Owner = "n9", "n2" }),
			ev(engine.EventInvocationSucceeded, "a", node("n1")),
		}, nil, 1},
		{"events of an invocation never created are left", []*engine.Event{
			ev(engine.EventTaskStarted, "ghost", nil),
		}, nil, 0},
		{"parents in a loop end", []*engine.Event{
			ev(engine.EventInvocationCreated, "x", func(e *engine.Event) { e.Parent = "y/t" }),
			ev(engine.EventInvocationCreated, "y", func(e *engine.Event) { e.Parent = "x/t" }),
		}, []string{"x", "y"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newIndex()
			for _, e := range tc.events {
				x.apply(e)
			}
			sel, finished := x.selection(false)
			if len(sel) != len(tc.copied) || finished != tc.finished {
				t.Fatalf("selected %v, %d finished; want %v, %d", sel, finished, tc.copied, tc.finished)
			}
			for _, id := range tc.copied {
				if !sel[id] {
					t.Fatalf("%s not selected: %v", id, sel)
				}
			}
			if all, _ := x.selection(true); len(all) != len(x.invs) {
				t.Fatalf("with history %d of %d selected", len(all), len(x.invs))
			}
		})
	}
}
