package engine

import "strings"

// Which items a foreach drives. A foreach without parallel: runs all its
// items at once; driving every one of them on each change of the
// invocation (a call's end, a timer) cost O(n × running) for n items. So
// the fold marks the kids a change concerns (dirty), and a foreach drives
// only those, then starts its next items:
//
//   - an event applied to a task marks it, and each of its ancestors, in
//     the foreach it is an item of (touch): an item's own events, those
//     of its catch, of its branch's task, of a nested loop's iterations;
//   - a child workflow's end marks the workflow task that started it;
//   - a timer firing marks its task (a sleep's end, a retry's backoff, a
//     task's timeout), an evaluation delivered the task it decides for
//     (or the nearest that exists: an item not yet scheduled marks its
//     foreach), outside the fold (Engine.timer, Engine.deliver);
//   - a task run again by a redrive is marked (kidChanged);
//   - every active kid of every foreach of an invocation is driven after
//     a takeover and a signal (the first wait of its name, in the items'
//     order, takes it): they move the invocation's driveAll on, and a
//     foreach whose epoch is behind drives all its active kids once. A
//     kidSet is made behind, so a state rebuilt from the log (a restart,
//     a resync) or folded by a node that did not drive it drives them all
//     first.
//
// Marking is O(depth) per event; a kid is in dirty once (its flag). A
// kid that finishes is not marked: a finished kid needs no drive.

// testKidDriven, if set (tests), is called under the engine's lock for
// each item a foreach drives, with its invocation's id.
var testKidDriven func(inv string)

// touched marks what an event just folded into inv concerns.
func (s *state) touched(inv *invState, ev *Event) {
	switch {
	case ev.Type == EventSignalSent:
		inv.driveAll++
	case isInvocationEnd(ev.Type):
		if p := s.parentOf(inv); p != nil {
			_, task, _ := strings.Cut(inv.parent, "/") // "<parent>/<task>"
			p.touch(task)
		}
	case ev.Task != "" && inv.status == StatusRunning:
		inv.touch(ev.Task)
	}
}

// touch marks task id and its ancestors dirty in the foreach each is an
// item of.
func (inv *invState) touch(id string) {
	for id != "" {
		p := parentID(id)
		if p == "" {
			return
		}
		if pt := inv.tasks[p]; pt != nil {
			if k := inv.tasks[id]; k != nil {
				inv.markKid(pt, k)
			}
		}
		id = p
	}
}

// touchKey marks the task an evaluation's key ("schedule each/3", "while
// loop/4", "branch sw") decides for, or the nearest of its ancestors that
// exists.
func (inv *invState) touchKey(key string) {
	_, id, ok := strings.Cut(key, " ")
	for ok && id != "" {
		if inv.tasks[id] != nil {
			inv.touch(id)
			return
		}
		id = parentID(id)
	}
}

// timerTask is the task a timer's key names: a task's own key, or its
// timeout's ("each/3#timeout"); "" for the invocation's deadline.
func timerTask(key string) string {
	id, _, _ := strings.Cut(key, "#")
	return id
}

// markKid adds k to the dirty kids of p if p is a foreach whose next
// drive does not drive all its kids anyway.
func (inv *invState) markKid(p, k *taskState) {
	ks := p.loop
	if p.run != builtinForeach || ks == nil || k.dirty || ks.epoch != inv.driveAll || finished(k.status) {
		return
	}
	k.dirty = true
	ks.dirty = append(ks.dirty, k)
	if len(ks.dirty) > 2*ks.running()+16 {
		// kids that finished since they were marked, on a node that
		// does not drive the invocation (or not yet): let them go
		kept := ks.dirty[:0]
		for _, c := range ks.dirty {
			if finished(c.status) {
				c.dirty = false
				continue
			}
			kept = append(kept, c)
		}
		clear(ks.dirty[len(kept):])
		ks.dirty = kept
	}
}

// driveKids drives the kids of foreach t that a change concerned: the
// dirty ones, in the order they were marked, or all the active ones, in
// the items' order, when its epoch is behind. It returns false once t or
// the invocation stopped running; the kids not driven then stay dirty.
func (e *Engine) driveKids(inv *invState, do *taskSpec, t *taskState) bool {
	ks := t.loop
	if ks == nil {
		return true
	}
	going := func() bool { return inv.status == StatusRunning && t.status == TaskRunning }
	if ks.epoch != inv.driveAll {
		ks.epoch = inv.driveAll
		for _, c := range ks.dirty {
			c.dirty = false
		}
		clear(ks.dirty)
		ks.dirty = ks.dirty[:0]
		for _, c := range ks.active {
			if finished(c.status) {
				continue
			}
			e.driveItem(inv, do, c)
			if !going() {
				ks.epoch = inv.driveAll - 1
				return false
			}
		}
		return true
	}
	// Driving a kid marks it again if it changed (its events): it is
	// driven once more at the next pass, as every kid was before.
	batch := ks.dirty
	ks.dirty = nil
	for i, c := range batch {
		c.dirty = false
		if finished(c.status) {
			continue
		}
		e.driveItem(inv, do, c)
		if !going() {
			ks.dirty = append(batch[i+1:], ks.dirty...)
			return false
		}
	}
	return true
}

func (e *Engine) driveItem(inv *invState, do *taskSpec, c *taskState) {
	if testKidDriven != nil {
		testKidDriven(inv.id)
	}
	e.drive(inv, do, c)
}
