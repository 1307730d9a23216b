package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Loops: foreach, while and repeat run their do: once per item or
// iteration as dynamic tasks (kids) named <task>/<i>. What they cost per
// change of the invocation does not grow with the items or iterations
// done, nor with those running: the fold keeps, for each task with kids,
// their counts and the kids not yet finished (kidSet), and the kids a
// change concerned (loops_dirty.go), so a foreach drives only those and
// never scans the others; a while or repeat looks at its last kid only; expressions see the workflow's own tasks, not the kids
// (eval.go); a foreach's list of outputs is assembled once, at its end.

// kidSet is what the fold keeps of a task's kids.
type kidSet struct {
	// active lists the kids not finished, in the order they were
	// scheduled (a foreach's: in the items' order). A kid that finishes
	// stays in the list until more than half of it has finished (dead
	// counts them), then the list is copied without them: each kid costs
	// O(1) amortised, and a drive iterating the list while kids finish
	// keeps iterating the copy it started with.
	active []*taskState
	dead   int
	// failed are the kids that failed (and were not run again since).
	failed []*taskState
	// dirty are the kids a change concerned since the foreach last drove
	// them (each once: taskState.dirty); epoch is the invocation's
	// driveAll when the foreach last drove all its active kids: while it
	// is behind, the next drive drives them all (loops_dirty.go).
	dirty []*taskState
	epoch int
}

// finished tells whether a task's status is final: succeeded, failed,
// or canceled with its invocation.
func finished(status string) bool {
	return status == TaskSucceeded || status == TaskFailed || status == TaskCanceled
}

// kidChanged keeps the counts and the set of the kids of c's parent task
// (if c is a kid) as c's status changes from from ("" when c is just
// scheduled) to c.status. The fold calls it on every change of a kid's
// status; anything else that changes one (running a finished kid again)
// must call it too.
func (inv *invState) kidChanged(c *taskState, from string) {
	p := inv.tasks[parentID(c.id)]
	if p == nil || p == c || from == c.status {
		return
	}
	if p.loop == nil {
		p.loop = &kidSet{epoch: inv.driveAll - 1} // a new set drives all its kids first
	}
	ks := p.loop
	if from == "" {
		p.kids++
	}
	if from == TaskSucceeded {
		p.kidsDone--
	}
	if c.status == TaskSucceeded {
		p.kidsDone++
	}
	if from == TaskFailed {
		ks.failed = slices.DeleteFunc(slices.Clone(ks.failed), func(k *taskState) bool { return k == c })
	}
	if c.status == TaskFailed {
		ks.failed = append(ks.failed, c)
	}
	switch {
	case from == "" && !finished(c.status):
		ks.active = append(ks.active, c)
	case (from == "" || !finished(from)) && finished(c.status):
		if from != "" {
			ks.dead++
		}
		if ks.dead > len(ks.active)/2 {
			ks.active = slices.DeleteFunc(slices.Clone(ks.active), func(k *taskState) bool { return finished(k.status) })
			ks.dead = 0
		}
	case finished(from) && !finished(c.status):
		// run again: back among the active, in its place, and driven
		inv.markKid(p, c)
		if slices.Contains(ks.active, c) {
			ks.dead--
			return
		}
		i, _ := slices.BinarySearchFunc(ks.active, kidIndex(c.id), func(k *taskState, n int) int { return kidIndex(k.id) - n })
		ks.active = slices.Insert(slices.Clone(ks.active), i, c)
	}
}

// firstFailed is the kid that failed first in the items' order, if any.
func (ks *kidSet) firstFailed() *taskState {
	if ks == nil || len(ks.failed) == 0 {
		return nil
	}
	first := ks.failed[0]
	for _, k := range ks.failed[1:] {
		if kidIndex(k.id) < kidIndex(first.id) {
			first = k
		}
	}
	return first
}

// running counts the kids not finished.
func (ks *kidSet) running() int {
	if ks == nil {
		return 0
	}
	return len(ks.active) - ks.dead
}

// kidIndex is the number a loop's kid ends with (-1 for another kid: a
// branch's).
func kidIndex(id string) int {
	n, err := strconv.Atoi(id[strings.LastIndexByte(id, '/')+1:])
	if err != nil {
		return -1
	}
	return n
}

// foreachInput is a foreach's recorded input, read once.
type foreachInput struct {
	Foreach  []json.RawMessage `json:"foreach"`
	Parallel int               `json:"parallel"`
}

// driveForeach runs a foreach: do once per item, up to parallel at once;
// the output is the list of outputs, in the items' order. It drives the
// items a change concerned (driveKids), then starts the next ones up to
// parallel. Iterations are
// scheduled in order (their ids count them); while one's input is being
// evaluated, the next ones' are evaluated too, and wait.
func (e *Engine) driveForeach(inv *invState, spec *taskSpec, t *taskState) {
	if t.items == nil {
		t.items = &foreachInput{}
		_ = json.Unmarshal(t.input.b, t.items)
	}
	in := t.items
	do := spec.branches["do"].spec
	n := len(in.Foreach)
	if c := t.loop.firstFailed(); c != nil {
		e.failKid(inv, t, c)
		return
	}
	if !e.driveKids(inv, do, t) {
		return
	}
	if t.kidsDone == n {
		e.foreachDone(inv, t, n)
		return
	}
	active := t.loop.running()
	vars := func(i int) map[string]any { return map[string]any{"item": fromJSON(in.Foreach[i]), "index": i} }
	for i := t.kids; i < n && active < in.Parallel && inv.status == StatusRunning && t.status == TaskRunning; i++ {
		active++
		// an item's variables are decoded only for an evaluation to
		// start or a result to record, not on each drive while one runs
		if id := kidID(t.id, i); !e.evaluating(inv, "schedule "+id, false) && e.schedule(inv, do, id, vars(i)) {
			continue
		}
		for j := i + 1; j < n && j <= i+maxPrefetch && active < in.Parallel && do.fixed == nil; j++ {
			active++
			id := kidID(t.id, j)
			if e.evaluating(inv, "schedule "+id, true) {
				continue // prepared already
			}
			add := vars(j)
			e.prepare(inv, "schedule "+id, func() *view { return e.viewOf(inv, id, add) }, inputOf(do))
		}
		return
	}
}

// evaluating tells whether the evaluation of an invocation's decision key
// is started and not done (or done too, if orDone).
func (e *Engine) evaluating(inv *invState, key string, orDone bool) bool {
	res := e.localOf(inv.id).evals[key]
	return res != nil && (orDone || !res.done)
}

// foreachDone ends a foreach whose n kids succeeded with the list of
// their outputs.
func (e *Engine) foreachDone(inv *invState, t *taskState, n int) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		// compact, as an event stores it: what a replay reads
		kid := inv.tasks[kidID(t.id, i)].output
		if kid.ref != nil {
			e.fail(inv, t, fmt.Sprintf("foreach: the output of item %d is %d bytes (stored apart), over the %d KiB the list of outputs holds", i, kid.ref.size, MaxData>>10))
			return
		}
		out, _ := kid.jsonView()
		if json.Compact(&b, out) != nil {
			b.Write(out)
		}
	}
	b.WriteByte(']')
	if b.Len() > MaxData {
		e.fail(inv, t, fmt.Sprintf("foreach: the list of outputs is %d bytes, over the %d KiB a workflow event holds", b.Len(), MaxData>>10))
		return
	}
	e.succeed(inv, t, jsonValue(b.Bytes()))
}

func kidID(task string, i int) string { return task + "/" + strconv.Itoa(i) }

// driveLoop runs while and repeat: do again and again, one at a time,
// with the previous output as prev; the output is the last one.
func (e *Engine) driveLoop(inv *invState, spec *taskSpec, t *taskState) {
	do := spec.branches["do"].spec
	k := t.kids
	var prev any
	prevRaw := jsonNull
	if k > 0 {
		last := inv.tasks[kidID(t.id, k-1)]
		switch {
		case last == nil:
			return
		case last.status == TaskFailed:
			e.failKid(inv, t, last)
			return
		case last.status != TaskSucceeded:
			e.drive(inv, do, last)
			return
		}
		if last.output.ref != nil {
			e.fail(inv, t, fmt.Sprintf("%s: the output of %s is %d bytes (stored apart), over the %d KiB prev holds", spec.run, last.id, last.output.ref.size, MaxData>>10))
			return
		}
		prev, prevRaw = last.value(), last.output
	}
	add := map[string]any{"prev": prev, "index": k}
	if spec.run == builtinRepeat {
		var in struct {
			Times int `json:"times"`
		}
		_ = json.Unmarshal(t.input.b, &in)
		if k >= in.Times {
			e.succeed(inv, t, prevRaw)
			return
		}
	} else {
		res := spec.fixedCond
		if res == nil {
			res = e.evaluate(inv, fmt.Sprintf("while %s/%d", t.id, k), func() *view { return e.viewOf(inv, t.id, add) }, conditionOf(spec.cond))
		}
		switch {
		case res == nil:
			return
		case res.err != nil:
			e.fail(inv, t, res.err.Error())
			return
		case !res.cond:
			e.succeed(inv, t, prevRaw)
			return
		case k >= spec.limit:
			e.fail(inv, t, fmt.Sprintf("while: the condition is still true after limit %d iterations", spec.limit))
			return
		}
	}
	e.schedule(inv, do, kidID(t.id, k), add)
}
