package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// Redrive continues a failed or canceled root invocation on its own
// revision: succeeded tasks keep their outputs, failed and canceled ones
// run again. It is an event any node may write (InvocationRedriven), as
// the owner that ended the invocation may be gone: the writer becomes the
// owner, and of two nodes redriving at once the first in the log wins
// (the second finds the invocation running and changes nothing).

// EventInvocationRedriven continues a failed or canceled root invocation:
// Owner is the node that redrives it, which drives it from then on.
const EventInvocationRedriven = "InvocationRedriven"

// redriveWait bounds how long Redrive waits to read its event back, and
// redrivePoll is how often it looks.
const (
	redriveWait = cancelWait
	redrivePoll = 5 * time.Millisecond
)

// redrive folds an InvocationRedriven: it applies to a root invocation
// that ended failed or canceled. The invocation runs again: out of the
// finished (and their bytes), its error and output cleared, what an end
// drops rebuilt lazily, its failed and canceled tasks put back to run
// (rerun).
func (s *state) redrive(inv *invState, ev *Event) error {
	if inv.parent != "" || ev.Owner == "" || inv.status != StatusFailed && inv.status != StatusCanceled || inv.comp.state != "" {
		return errIgnored
	}
	if i := slices.Index(s.finished, inv); i >= 0 {
		s.finished = slices.Delete(s.finished, i, i+1)
		s.finishedBytes -= inv.bytes
	}
	inv.bytes, inv.endSeq = 0, 0
	inv.status, inv.err, inv.failedTask, inv.cancel, inv.code = StatusRunning, "", "", "", ""
	inv.redriven = ev.Time
	inv.output, inv.finishedAt = datum{}, time.Time{}
	inv.owner = ev.Owner
	inv.redrives++
	inv.repin(ev)
	inv.in, inv.view = newLazy(inv.input), nil
	for _, id := range inv.order {
		t := inv.tasks[id]
		switch t.status {
		case TaskSucceeded:
			t.out = newLazy(t.output)
		case TaskFailed, TaskCanceled:
			inv.rerun(t)
		}
	}
	s.running(inv, 1)
	inv.lastSeq = max(inv.lastSeq, ev.Seq)
	return nil
}

// rerun puts a failed or canceled task of a redriven invocation back to
// run, keeping its recorded input and its attempts (the next attempt
// continues their count; retries are counted afresh). A built-in that
// runs tasks of its own (a loop, a branch) and had started goes on
// running: its succeeded tasks are kept, its failed and canceled ones run
// again (they are rerun too). A task that failed before it started (its
// input's expression, a run: naming nothing deployed, a dynamic spec that
// did not check) is scheduled again: its input is made again, by what is
// deployed now, and a new TaskScheduled records it (scheduledAgain).
//
// Every change of a task's status a redrive makes goes through here.
func (inv *invState) rerun(t *taskState) {
	from := t.status
	t.err, t.code, t.finished, t.wake, t.failures = "", "", time.Time{}, time.Time{}, 0
	t.status = TaskScheduled
	t.reschedule = from == TaskFailed && t.attempts == 0
	if t.attempts > 0 && runsKids(t.run) {
		t.status = TaskRunning
	}
	inv.kidChanged(t, from) // back among its parent's unfinished kids
}

// scheduledAgain folds the TaskScheduled of a task a redrive put back to
// be scheduled (rerun): its run, input and loop variables are the new
// event's (t), its attempts and place (order, its parent's kids) its own.
func (old *taskState) scheduledAgain(t *taskState) {
	old.run, old.input, old.child, old.scope = t.run, t.input, t.child, t.scope
	old.reschedule, old.items = false, nil
}

// reschedule schedules again a task a redrive put back to be scheduled
// (rerun), with the loop variables it had: its input's evaluation, then
// its TaskScheduled, or its failure again.
func (e *Engine) reschedule(inv *invState, spec *taskSpec, t *taskState) {
	e.schedule(inv, spec, t.id, t.scope)
}

// runsKids tells whether a built-in runs dynamic tasks of its own.
func runsKids(run string) bool {
	switch run {
	case builtinForeach, builtinWhile, builtinRepeat, builtinIf, builtinSwitch:
		return true
	}
	return false
}

// Redrive continues a failed or canceled root invocation on the revision
// it started on: its succeeded tasks keep their outputs, its failed and
// canceled tasks run again (a function task with its next attempt, a
// workflow task with a new child, a foreach only its items that did not
// succeed). This node becomes its owner. It returns the invocation once
// the redrive is read back from the log (running, or ended again).
// ErrNotFound for an unknown or forgotten invocation; ErrConflict for a
// child invocation (redrive its root), or one running or succeeded.
func (e *Engine) Redrive(ctx context.Context, id string) (*Invocation, error) {
	e.mu.Lock()
	inv := e.st.invs[id]
	var refuse error
	switch {
	case inv == nil:
		refuse = fmt.Errorf("%w: no invocation %q (the last %d finished invocations are kept, up to %d MiB of them)",
			ErrNotFound, id, e.st.retain, e.st.retainBytes>>20)
	case inv.parent != "":
		refuse = fmt.Errorf("%w: invocation %s is a child workflow of %s: redrive its root, %s", ErrConflict, id, inv.parent, inv.root)
	case inv.status == StatusRunning:
		refuse = fmt.Errorf("%w: invocation %s is running: only a failed or canceled invocation is redriven", ErrConflict, id)
	case inv.status == StatusSucceeded:
		refuse = fmt.Errorf("%w: invocation %s has succeeded: only a failed or canceled invocation is redriven (invoke the workflow again)", ErrConflict, id)
	case inv.comp.state != "":
		refuse = fmt.Errorf("%w: invocation %s was compensated: its undo tasks have put back what its tasks did, so continuing it would build on undone work (invoke the workflow again)", ErrConflict, id)
	}
	var before int
	var versions map[string]int
	if inv != nil && refuse == nil {
		before = inv.redrives
		// the functions are pinned again, to the versions current now:
		// redriving after fixing a function runs the fix
		if def, err := e.definitionOf(inv); err == nil {
			versions = e.pins(def, nil)
		}
	}
	e.mu.Unlock()
	if refuse != nil {
		return nil, refuse
	}
	ev := &Event{Type: EventInvocationRedriven, Invocation: id, Node: e.o.Node, Owner: e.o.Node, Time: e.now(), Versions: versions}
	msg, err := encodeEvent(ev)
	if err != nil {
		return nil, err
	}
	if _, err := e.o.Log.Publish(ctx, e.stream(id), eventlog.Message{Data: msg}); err != nil {
		return nil, fmt.Errorf("storing the redrive: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, redriveWait)
	defer cancel()
	tick := time.NewTicker(redrivePoll)
	defer tick.Stop()
	for {
		e.mu.Lock()
		inv := e.st.invs[id]
		if inv == nil || inv.redrives > before {
			e.mu.Unlock()
			return e.Get(id)
		}
		e.mu.Unlock()
		select {
		case <-tick.C:
		case <-wctx.Done():
			return e.Get(id)
		}
	}
}
