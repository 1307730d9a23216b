package engine

import "fmt"

// Deadlines: a task's timeout: (any kind) and the invocation's (the
// workflow's timeout:). Both are read from the fold (a task's started
// time, the invocation's created time) and waited for with runtime timers
// (Engine.timer), armed again from the state after a restart: no
// goroutine per deadline, and a replay decides nothing.

// Timer keys beside a task's own (a sleep's end, a retry's backoff): task
// ids hold no '#'.
const (
	timeoutKey  = "#timeout"
	deadlineKey = "#deadline"
)

// taskDeadline stops a built-in's attempt once its timeout has passed
// since its TaskStarted, and fails it with code timeout (its retry and
// catch apply); else it arms a timer for it. A function's timeout is its
// call's (Engine.call), an http task's its request's (httpcall.go). It
// returns true if it failed the attempt.
func (e *Engine) taskDeadline(inv *invState, spec *taskSpec, t *taskState) bool {
	if spec.timeout <= 0 || spec.runsAttempts() || t.status != TaskRunning || t.started.IsZero() {
		return false
	}
	at := t.started.Add(spec.timeout)
	if e.now().Before(at) {
		if key := t.id + timeoutKey; e.localOf(inv.id).timers[key] == nil {
			e.timer(inv, key, at)
		}
		return false
	}
	if startsChild(t.run) {
		e.cancelChild(inv, t, fmt.Sprintf("its task %s timed out after %s", t.id, spec.timeout))
	}
	e.failed(inv, spec, t, fmt.Sprintf("%s timed out after %s (the task's timeout)", spec.run, spec.timeout), codeTimeout)
	return true
}

// stepFailure takes an invocation's turn when failure handling owns it:
// a compensation running, or the invocation's deadline passed (then it
// fails, with code deadline). Else it arms the deadline's timer. A
// compensation runs past the deadline: the undo tasks are what a failure
// owes.
func (e *Engine) stepFailure(inv *invState, def *Definition) bool {
	if inv.comp.state == Compensating {
		e.compensate(inv, def)
		return true
	}
	if def.timeout <= 0 {
		return false
	}
	// from the start, or from the last redrive: a redriven invocation has
	// its whole timeout again
	from := inv.created
	if inv.redriven.After(from) {
		from = inv.redriven
	}
	at := from.Add(def.timeout)
	if e.now().Before(at) {
		if e.localOf(inv.id).timers[deadlineKey] == nil {
			e.timer(inv, deadlineKey, at)
		}
		return false
	}
	e.failInvocation(inv, def, "", fmt.Sprintf("deadline: the invocation ran past its timeout of %s (timeout: in workflow %s)", def.timeout, inv.workflow), codeDeadline)
	return true
}
