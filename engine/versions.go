package engine

import (
	"sort"
	"strings"
)

// Function versions pinned per invocation (README "Function versions"):
// InvocationCreated records, in versions, the version of every function
// the definition names, current when the invocation starts (a child
// workflow's: its parent's, for the names both use); each attempt calls
// its invocation's version of the function and records it in
// TaskStarted's version. A name not pinned (known only when the task
// runs, or an invocation created before versions were pinned) calls the
// version current when the attempt starts.

// pin is the version of a function an invocation calls.
type pin struct {
	name    string
	version int
}

// pins returns the versions an invocation of def pins: for each function
// def names, the version inherited holds (a child workflow's parent's
// pins), else the one current now. A function not deployed now is not
// pinned: its tasks call whatever is current when they run, and fail as
// before if nothing is. A redrive re-pins with pins(def, nil), the
// versions current at the redrive, so that redriving after fixing a
// function runs the fix. Called with mu held.
func (e *Engine) pins(def *Definition, inherited []pin) map[string]int {
	fns, _ := def.Uses()
	var out map[string]int
	for _, name := range fns {
		v, ok := lookupPin(inherited, name)
		if !ok {
			v, ok = e.o.Functions.Version(name)
		}
		if !ok || v <= 0 {
			continue
		}
		if out == nil {
			out = make(map[string]int, len(fns))
		}
		out[name] = v
	}
	return out
}

// createPins returns the versions an invocation created now on rev pins,
// a child of parent ("INVOCATION/TASK") inheriting its parent's. Called
// with mu held, the revision parsed.
func (e *Engine) createPins(rev Revision, parent string) map[string]int {
	def, err := e.definition(rev.Revision)
	if rev.inline != nil {
		// a dynamic task's inline workflow: parsed when its task started it
		def, err = e.inlineDefs().defs[rev.Revision], nil
	}
	if err != nil || def == nil {
		return nil
	}
	var inherited []pin
	if pid, _, ok := strings.Cut(parent, "/"); ok {
		if p := e.st.invs[pid]; p != nil {
			inherited = p.pins
		}
	}
	return e.pins(def, inherited)
}

// version returns the version of a function an attempt of inv calls: its
// pin, or the version current now (0 if none is deployed: the call then
// fails as it always did). Called with mu held.
func (e *Engine) version(inv *invState, function string) int {
	if v, ok := lookupPin(inv.pins, function); ok {
		return v
	}
	v, _ := e.o.Functions.Version(function)
	return v
}

// pinsOf turns an event's versions into an invocation's pins, sorted by
// name: a few dozen bytes each, where a map costs a few hundred. A
// version that is not one (forged: versions count from 1) pins nothing.
func pinsOf(versions map[string]int) []pin {
	out := make([]pin, 0, len(versions))
	for name, v := range versions {
		if v > 0 {
			out = append(out, pin{name: name, version: v})
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// versionsOf is the inverse of pinsOf: what an Invocation shows.
func versionsOf(pins []pin) map[string]int {
	if len(pins) == 0 {
		return nil
	}
	out := make(map[string]int, len(pins))
	for _, p := range pins {
		out[p.name] = p.version
	}
	return out
}

// lookupPin finds a function's version among sorted pins.
func lookupPin(pins []pin, name string) (int, bool) {
	i := sort.Search(len(pins), func(i int) bool { return pins[i].name >= name })
	if i < len(pins) && pins[i].name == name {
		return pins[i].version, true
	}
	return 0, false
}

// repin sets an invocation's pins from an event that records them
// (InvocationCreated; a redrive's event, which pins the versions current
// at the redrive). An event without versions leaves them as they are.
func (inv *invState) repin(ev *Event) {
	if ev.Versions != nil {
		inv.pins = pinsOf(ev.Versions)
	}
}

// pinsHeld is what an invocation's pins hold in memory (footprint): a
// slice entry and a string each.
func pinsHeld(pins []pin) int {
	n := 0
	for _, p := range pins {
		n += 40 + len(p.name)
	}
	return n
}
