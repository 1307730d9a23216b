package migrate

import (
	"strings"

	"github.com/sluicehq/sluice/engine"
)

// The engine's events that the index reads beyond those engine exports:
// they are part of the event log's contract (engine/README.md, Events).
const (
	eventOwnerChanged    = "OwnerChanged"
	eventCancelRequested = "CancelRequested"
)

// invInfo is what the index knows of one invocation.
type invInfo struct {
	parent string // the parent invocation's id, "" for a root
	owner  string
	done   bool
	events int
}

// index decides which invocations a migration copies: a pure fold over
// the source's workflow events (no clock, no I/O), following the engine's
// rules where they decide whether an invocation has ended: an
// InvocationCreated creates it once, an OwnerChanged applies only from
// the current owner, and an end counts only from the owner (a cut-off
// former owner's late events change nothing in the engine's fold, so
// they change nothing here).
type index struct {
	invs map[string]*invInfo
}

func newIndex() *index { return &index{invs: map[string]*invInfo{}} }

// apply folds one event.
func (x *index) apply(ev *engine.Event) {
	inv := x.invs[ev.Invocation]
	if ev.Type == engine.EventInvocationCreated {
		if inv == nil && ev.Invocation != "" {
			parent, _, _ := strings.Cut(ev.Parent, "/")
			x.invs[ev.Invocation] = &invInfo{parent: parent, owner: ev.Owner, events: 1}
		}
		return
	}
	if inv == nil {
		return
	}
	inv.events++
	switch {
	case ev.Type == eventOwnerChanged:
		if !inv.done && ev.From == inv.owner && ev.Owner != "" {
			inv.owner = ev.Owner
		}
	case ev.Node != "" && ev.Node != inv.owner && ev.Type != eventCancelRequested:
	case isEnd(ev.Type):
		inv.done = true
	}
}

func isEnd(t string) bool {
	return t == engine.EventInvocationSucceeded || t == engine.EventInvocationFailed || t == engine.EventInvocationCanceled
}

// root returns the root of an invocation's tree (itself, or its parent's
// root), as far as the index knows the parents.
func (x *index) root(id string) string {
	for range 64 { // child workflows nest at most 16 deep; a loop in forged parents ends here
		inv := x.invs[id]
		if inv == nil || inv.parent == "" || x.invs[inv.parent] == nil {
			return id
		}
		id = inv.parent
	}
	return id
}

// selection returns the invocations to copy: with history every one,
// else every invocation of a tree in which one has not finished (a
// running parent may still read a finished child's end, and a running
// child needs its parent to report to). finished counts those left
// behind.
func (x *index) selection(history bool) (copy map[string]bool, finished int) {
	unfinished := map[string]bool{}
	for id, inv := range x.invs {
		if !inv.done {
			unfinished[x.root(id)] = true
		}
	}
	copy = map[string]bool{}
	for id := range x.invs {
		if history || unfinished[x.root(id)] {
			copy[id] = true
		} else {
			finished++
		}
	}
	return copy, finished
}
