package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/errcode"
)

// Failure handling: error codes, retry filters, catch and compensation
// (deadlines are in deadline.go). See "Failures: retry, catch,
// compensation, deadlines" in README.md.

// Events of failure handling.
const (
	// EventTaskCaught: a task failed for good and has a catch: it waits
	// for its catch task (ID/catch), its error kept.
	EventTaskCaught = "TaskCaught"
	// EventCompensationStarted: the invocation fails (the task, error and
	// code of the cause) and first runs the undo tasks of its succeeded
	// tasks, newest first.
	EventCompensationStarted = "CompensationStarted"
)

// TaskCatching: the task failed for good and its catch task runs; it
// ends succeeded with the catch's output, or failed with both errors.
const TaskCatching = "catching"

// Compensation states of an invocation (Invocation.Compensation).
const (
	Compensating = "compensating"
	Compensated  = "compensated"
)

// The codes the engine gives failures of its own. A function call's code
// is errcode.Of of its error (timeout, trap, exit, memory_limit, ...) or
// the guest's own; a fail task's is its input's code.
const (
	// codeTimeout: the task's timeout: passed (a function call's is the
	// host's timeout code).
	codeTimeout = string(errcode.Timeout)
	// codeDeadline: the invocation's timeout: passed.
	codeDeadline = "deadline"
	// codeWorkflowFailed and codeWorkflowCanceled: a child workflow
	// failed or was canceled.
	codeWorkflowFailed   = string(errcode.WorkflowFailed)
	codeWorkflowCanceled = string(errcode.WorkflowCanceled)
	// codeFailed: a fail task without a code.
	codeFailed = "failed"
	// codeTaskError: the engine failed the task itself: an expression's
	// error, a value over a limit, a child workflow it could not start.
	codeTaskError = "task_error"
)

// ValidCode tells whether s may be an error code (abi.ValidErrorCode:
// what a guest may give too).
func ValidCode(s string) bool { return abi.ValidErrorCode(s) }

const codeRule = "a lowercase letter then up to 63 of a-z, 0-9, _ . -, like timeout or card_declined"

// callCode is the code of a failed function call: the guest's own if it
// gave one, else its kind's.
func callCode(err error) string {
	var own interface{ GuestCode() string }
	if errors.As(err, &own) && own.GuestCode() != "" {
		return own.GuestCode()
	}
	return string(errcode.Of(err))
}

// compensation is an invocation's failure handling as its events made it.
type compensation struct {
	// state is "", Compensating or Compensated; task, err and code are
	// the cause CompensationStarted recorded.
	state           string
	task, err, code string
	// done lists the tasks in the order they succeeded: undone the other
	// way round.
	done []string
}

// --- Definitions ---

// deadline parses the workflow's timeout:.
func (p *parser) deadline(v *yaml.Node) time.Duration {
	d, err := time.ParseDuration(v.Value)
	if err != nil || d <= 0 {
		p.errorf(v.Line, "timeout %q: want a duration like 30s or 1h (the invocation's deadline, from its start)", v.Value)
		return 0
	}
	return d
}

// retryMore parses retry's fields beyond max and backoff.
func (p *parser) retryMore(t *taskSpec, key string, k, v *yaml.Node, what string) {
	switch key {
	case "max_backoff":
		d, err := time.ParseDuration(v.Value)
		if err != nil || d <= 0 || d > maxBackoff {
			p.errorf(v.Line, "%s: retry: max_backoff %q: want a duration up to %s, like 30s (the doubling of backoff stops there)", what, v.Value, maxBackoff)
			return
		}
		t.retry.maxBackoff = d
	case "jitter":
		j, err := strconv.ParseFloat(v.Value, 64)
		if err != nil || !(j >= 0 && j <= 1) {
			p.errorf(v.Line, "%s: retry: jitter %q: want a fraction from 0 to 1, like 0.2 (each delay is cut by up to that much, at random)", what, v.Value)
			return
		}
		t.retry.jitter = j
	case "on":
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			p.errorf(v.Line, "%s: retry: on: want a list of error codes, like [timeout, trap]", what)
			return
		}
		for _, c := range v.Content {
			if c.Kind != yaml.ScalarNode || !ValidCode(c.Value) {
				p.errorf(c.Line, "%s: retry: on: %q is not an error code: a code is %s", what, c.Value, codeRule)
				continue
			}
			t.retry.on = append(t.retry.on, c.Value)
		}
	default:
		p.errorf(k.Line, "%s: retry: unknown field %q (fields: max, backoff, max_backoff, jitter, on)", what, key)
	}
}

// checkRetry checks retry's fields together.
func (p *parser) checkRetry(t *taskSpec, n *yaml.Node, what string) {
	if r := t.retry; r.maxBackoff > 0 && r.maxBackoff < r.backoff {
		p.errorf(n.Line, "%s: retry: max_backoff %s is shorter than backoff %s: the first delay would already be over it", what, r.maxBackoff, r.backoff)
	}
}

// handlers parses a task's catch: and undo:, each a task run as a dynamic
// task (ID/catch, ID/undo): a catch's expressions see error, an undo's
// task. Without inputs:, a function (or noop, compose, fail) is given
// that value.
func (p *parser) handlers(t *taskSpec, catch, undo *yaml.Node, what string) {
	for _, h := range []struct {
		key string
		n   *yaml.Node
	}{{"catch", catch}, {"undo", undo}} {
		if h.n == nil {
			continue
		}
		if p.handling > 0 {
			p.errorf(h.n.Line, "%s: %s: a task run by a catch: or an undo: takes no catch: or undo: of its own", what, h.key)
			continue
		}
		if h.n.Kind != yaml.MappingNode || !hasKey(h.n, "run") {
			p.errorf(h.n.Line, "%s: %s: want a task {run: ..., inputs: ...}", what, h.key)
			continue
		}
		sc, name := t.scope, "error"
		if h.key == "catch" {
			sc.error = true
		} else {
			sc.task, name = true, "task"
		}
		p.handling++
		spec := p.task(t.id+"/"+h.key, h.n, sc, true)
		p.handling--
		if spec == nil {
			continue
		}
		if spec.inputs == nil && (!spec.builtin || spec.run == builtinNoop || spec.run == builtinCompose || spec.run == builtinFail) {
			spec.inputs = p.value(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "${ " + name + " }", Line: h.n.Line}, sc)
		}
		if t.branches == nil {
			t.branches = map[string]*branch{}
		}
		t.branches[h.key] = &branch{spec: spec}
	}
}

// handler returns a task's catch or undo task ("catch", "undo"), or nil.
func (t *taskSpec) handler(key string) *taskSpec {
	if t == nil {
		return nil
	}
	if b := t.branches[key]; b != nil {
		return b.spec
	}
	return nil
}

// hasUndo tells whether any task of the definition has an undo:.
func (d *Definition) hasUndo() bool {
	var walk func(t *taskSpec) bool
	walk = func(t *taskSpec) bool {
		for key, b := range t.branches {
			if key == "undo" || b != nil && b.spec != nil && walk(b.spec) {
				return true
			}
		}
		return false
	}
	for _, t := range d.tasks {
		if walk(t) {
			return true
		}
	}
	return false
}

// retries tells whether a failure of code is retried: a code on: lists;
// without on:, any code but invalid_argument, a request refused for what
// it is (an http task's host not in the allow-list, a bad URL), which a
// retry would meet again.
func (r retryPolicy) retries(code string) bool {
	if len(r.on) == 0 {
		return code != string(errcode.InvalidArgument)
	}
	for _, c := range r.on {
		if c == code {
			return true
		}
	}
	return false
}

// wait is the wait before the attempt after the n-th failure: delay,
// cut by up to jitter of it at random. The owner draws it when it
// decides; TaskRetrying records the wake time, so the fold stays pure.
func (r retryPolicy) wait(n int) time.Duration {
	d := r.delay(n)
	if r.jitter > 0 {
		d -= time.Duration(float64(d) * r.jitter * rand.Float64())
	}
	return d
}

// --- Fold ---

// caught applies TaskCaught: the task waits for its catch.
func (inv *invState) caught(t *taskState, ev *Event) error {
	if inv.status != StatusRunning || t == nil || (t.status != TaskScheduled && t.status != TaskRunning && t.status != TaskRetrying) {
		return errIgnored
	}
	t.status, t.err, t.code, t.caught, t.wake = TaskCatching, ev.Error, ev.Code, true, time.Time{}
	inv.cancelKids(t, ev.Time)
	return nil
}

// compensate applies CompensationStarted: the tasks not finished stop,
// the undo tasks run next.
func (inv *invState) compensate(ev *Event) error {
	if inv.status != StatusRunning || inv.comp.state != "" {
		return errIgnored
	}
	inv.comp.state, inv.comp.task, inv.comp.err, inv.comp.code = Compensating, ev.Task, ev.Error, ev.Code
	for _, t := range inv.tasks {
		if unfinished(t) {
			from := t.status
			t.status, t.finished, t.wake = TaskCanceled, ev.Time, time.Time{}
			inv.kidChanged(t, from)
		}
	}
	return nil
}

func unfinished(t *taskState) bool {
	return t.status != TaskSucceeded && t.status != TaskFailed && t.status != TaskCanceled
}

// cancelKids ends the unfinished dynamic tasks under a task that failed,
// retries or is caught: their work is stopped (Engine.stopTasks).
func (inv *invState) cancelKids(t *taskState, at time.Time) {
	if t.kids == 0 {
		return
	}
	prefix := t.id + "/"
	for id, k := range inv.tasks {
		if strings.HasPrefix(id, prefix) && unfinished(k) {
			from := k.status
			k.status, k.finished, k.wake = TaskCanceled, at, time.Time{}
			inv.kidChanged(k, from)
		}
	}
}

// failureBytes is what failure handling adds to an invocation's
// footprint: its code and its list of successes (a string header each;
// the ids are the tasks').
func (inv *invState) failureBytes() int {
	return len(inv.code) + 16*len(inv.comp.done) + len(inv.comp.err)
}

// keptErr is the error a task keeps once it succeeds: a caught task's.
func (t *taskState) keptErr() string {
	if t.caught {
		return t.err
	}
	return ""
}

// --- Engine ---

// failure returns the event of a task's failure for good: TaskCaught if
// it has a catch (and the invocation is not ending), else TaskFailed.
func (e *Engine) failure(inv *invState, spec *taskSpec, id string, attempt int, msg, code string) *Event {
	typ := EventTaskFailed
	if spec.handler("catch") != nil && inv.cancel == "" && inv.comp.state == "" {
		typ = EventTaskCaught
	}
	return &Event{Type: typ, Task: id, Attempt: attempt, Error: msg, Code: code}
}

// specOf is a task's spec in the invocation's definition (nil if it has
// none).
func (e *Engine) specOf(inv *invState, id string) *taskSpec {
	def, err := e.definitionOf(inv)
	if err != nil {
		return nil
	}
	return def.spec(id)
}

// failCode is the code of a built-in's failure: a fail task's code, else
// the engine's own (a built-in failed by one of its tasks: failKid).
func failCode(inv *invState, t *taskState, msg string) string {
	if t.run == builtinFail {
		if m, ok := t.input.view().(map[string]any); ok {
			if c, ok := m["code"].(string); ok && ValidCode(c) {
				return c
			}
		}
		return codeFailed
	}
	return codeTaskError
}

// failKid fails a built-in because one of its own tasks, kid, failed for
// good (a foreach's item, a loop's iteration, a branch): with the kid's
// error, named, and its code.
func (e *Engine) failKid(inv *invState, t, kid *taskState) {
	code := kid.code
	if code == "" {
		code = codeTaskError
	}
	e.emit(inv, nil, e.failure(inv, e.specOf(inv, t.id), t.id, t.attempts, fmt.Sprintf("%s: %s", kid.id, kid.err), code))
}

// driveFailure drives what failure handling adds to any task: a caught
// task's catch, a built-in's timeout. It returns true if it took the
// task's turn.
func (e *Engine) driveFailure(inv *invState, spec *taskSpec, t *taskState) bool {
	if t.reschedule {
		e.reschedule(inv, spec, t) // redriven after it failed before it started
		return true
	}
	switch t.status {
	case TaskCanceled:
		return true
	case TaskCatching:
		e.driveCatch(inv, spec, t)
		return true
	}
	return e.taskDeadline(inv, spec, t)
}

// driveCatch runs a caught task's catch with the error in scope: its
// output is the task's, its failure the task's with both errors.
func (e *Engine) driveCatch(inv *invState, spec *taskSpec, t *taskState) {
	cs := spec.handler("catch")
	id := t.id + "/catch"
	c := inv.tasks[id]
	switch {
	case cs == nil:
		e.emit(inv, nil, &Event{Type: EventTaskFailed, Task: t.id, Attempt: t.attempts, Error: t.err, Code: t.code})
	case c == nil:
		e.schedule(inv, cs, id, map[string]any{"error": map[string]any{
			"message": t.err, "code": t.code, "task": t.id, "attempts": t.attempts,
		}})
	case c.status == TaskSucceeded:
		e.succeed(inv, t, c.output)
	case c.status == TaskFailed:
		e.emit(inv, nil, &Event{Type: EventTaskFailed, Task: t.id, Attempt: t.attempts, Code: t.code,
			Error: fmt.Sprintf("%s; its catch failed too: %s", t.err, c.err)})
	default:
		e.drive(inv, cs, c)
	}
}

// stopped stops the work of the tasks an event just ended: the dynamic
// tasks under a task that failed, retries or is caught, every task when
// a compensation starts.
func (e *Engine) stopped(inv *invState, ev *Event) {
	switch ev.Type {
	case EventTaskFailed, EventTaskRetrying, EventTaskCaught:
		if t := inv.tasks[ev.Task]; t != nil && t.kids > 0 {
			e.stopTasks(inv, t.id+"/")
		}
	case EventCompensationStarted:
		e.stopTasks(inv, "")
	}
}

// stopTasks cancels the calls, timers and child workflows of the
// canceled tasks whose ids start with prefix.
func (e *Engine) stopTasks(inv *invState, prefix string) {
	l := e.local[inv.id]
	for _, id := range inv.order {
		t := inv.tasks[id]
		if t.status != TaskCanceled || !strings.HasPrefix(id, prefix) {
			continue
		}
		if l != nil {
			if r := l.runs[id]; r != nil {
				r.cancel()
				delete(l.runs, id)
			}
			for _, key := range []string{id, id + timeoutKey} {
				if tm := l.timers[key]; tm != nil {
					tm.Stop()
					delete(l.timers, key)
				}
			}
		}
		if startsChild(t.run) {
			e.cancelChild(inv, t, "its task "+id+" was stopped")
		}
	}
}

// cancelChild cancels the running child workflow of a workflow task.
func (e *Engine) cancelChild(inv *invState, t *taskState, why string) {
	if c := e.st.invs[childID(inv.id, t.id, t.attempts)]; c != nil && c.status == StatusRunning && c.owner == e.o.Node {
		e.emit(c, nil, &Event{Type: EventInvocationCanceled, Error: why})
		e.reconcile(c)
	}
}

// failInvocation fails an invocation: first its compensation, if a task
// that succeeded has an undo.
func (e *Engine) failInvocation(inv *invState, def *Definition, task, msg, code string) {
	typ := EventInvocationFailed
	if inv.comp.state == "" && def.hasUndo() && e.undoNext(inv, def) != "" {
		typ = EventCompensationStarted
	}
	e.emit(inv, nil, &Event{Type: typ, Task: task, Error: msg, Code: code})
}

// undoNext returns the newest succeeded task whose undo has not ended,
// or "".
func (e *Engine) undoNext(inv *invState, def *Definition) string {
	for i := len(inv.comp.done) - 1; i >= 0; i-- {
		id := inv.comp.done[i]
		if def.spec(id).handler("undo") == nil {
			continue
		}
		if u := inv.tasks[id+"/undo"]; u == nil || unfinished(u) {
			return id
		}
	}
	return ""
}

// compensate runs the undo tasks one at a time, newest success first,
// then fails the invocation with the cause. A failed undo is recorded and
// the others still run.
func (e *Engine) compensate(inv *invState, def *Definition) {
	if id := e.undoNext(inv, def); id != "" {
		spec := def.spec(id).handler("undo")
		if u := inv.tasks[id+"/undo"]; u != nil {
			e.drive(inv, spec, u)
		} else {
			e.schedule(inv, spec, id+"/undo", nil)
		}
		return
	}
	msg := inv.comp.err
	var failed []string
	for _, id := range inv.comp.done {
		if u := inv.tasks[id+"/undo"]; u != nil && u.status == TaskFailed {
			failed = append(failed, u.id)
		}
	}
	if len(failed) > 0 {
		msg += fmt.Sprintf(" (compensation: %d undo tasks failed: %s)", len(failed), strings.Join(failed, ", "))
	}
	e.emit(inv, nil, &Event{Type: EventInvocationFailed, Task: inv.comp.task, Error: msg, Code: inv.comp.code})
}

// undoTask is what an undo's expressions see as task: the id, input and
// output of the task it undoes. Its values are read when an expression
// reads task, like input and tasks.ID: outside the lock, a value stored
// apart fetched within the evaluation's budget (view.env).
type undoTask struct {
	id            string
	input, output datum
	// out is the task's output decoded for expressions (shared, decoded
	// once), nil once its invocation ended.
	out *lazyView
}

// undoScope is the task an undo undoes, if the task chain (its id and its
// parents') is an undo's: taken under the lock, read in the evaluation.
func undoScope(inv *invState, chain []string) *undoTask {
	for _, id := range chain {
		if !strings.HasSuffix(id, "/undo") {
			continue
		}
		t := inv.tasks[parentID(id)]
		if t == nil {
			return nil
		}
		return &undoTask{id: t.id, input: t.input, output: t.output, out: t.out}
	}
	return nil
}

// value is task as expressions see it: {id, input, output}. A value
// stored apart is fetched if the expressions read task (reads), else it
// is null, as input and tasks.ID are.
func (u *undoTask) value(v *view, b *budget, reads func() bool) (any, error) {
	get := func(d datum, l *lazyView, what string) (any, error) {
		switch {
		case d.ref == nil && l != nil:
			return l.value(), nil
		case d.ref == nil:
			return d.view(), nil
		case !reads():
			return nil, nil
		case d.ref.size > b.left() && what == "task.output" && parentID(u.id) == "":
			return nil, fmt.Errorf("%w: %s is %d bytes (stored apart), more than the %d MiB one evaluation may make: "+
				"pass it on as it is (${ tasks.%s.output }) or read it in a function", ErrLimit, what, d.ref.size, evalMaxBytes>>20, u.id)
		}
		return v.fetch(d, what, b)
	}
	in, err := get(u.input, nil, "task.input")
	if err != nil {
		return nil, err
	}
	out, err := get(u.output, u.out, "task.output")
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": u.id, "input": in, "output": out}, nil
}

// FailureObserver is what an Observer may also be told of failure
// handling, for metrics: an Observer that implements it is. Its methods
// are called as Observer's are, with the engine's lock held.
type FailureObserver interface {
	// TaskCaught: a task this node drives failed for good and its catch
	// runs (TaskCaught).
	TaskCaught(workflow string)
	// CompensationEnded: a compensation this node drove ended, with
	// outcome CompensationSucceeded, CompensationUndoFailed or
	// CompensationCanceled.
	CompensationEnded(workflow, outcome string)
}

// The outcomes of a compensation (FailureObserver.CompensationEnded).
const (
	// CompensationSucceeded: every undo task succeeded.
	CompensationSucceeded = "succeeded"
	// CompensationUndoFailed: at least one undo task failed (the others
	// still ran).
	CompensationUndoFailed = "undo_failed"
	// CompensationCanceled: the invocation was canceled during its
	// compensation, which stopped.
	CompensationCanceled = "canceled"
)

// observeFailure tells obs, if it is a FailureObserver, of an event this
// node just wrote and applied: a task caught, a compensation's end.
func observeFailure(obs Observer, inv *invState, ev *Event) {
	fo, ok := obs.(FailureObserver)
	if !ok {
		return
	}
	switch {
	case ev.Type == EventTaskCaught:
		fo.TaskCaught(inv.workflow)
	case ev.Type == EventInvocationFailed && inv.comp.state == Compensated:
		outcome := CompensationSucceeded
		for _, id := range inv.comp.done {
			if u := inv.tasks[id+"/undo"]; u != nil && u.status == TaskFailed {
				outcome = CompensationUndoFailed
				break
			}
		}
		fo.CompensationEnded(inv.workflow, outcome)
	case ev.Type == EventInvocationCanceled && inv.comp.state == Compensating:
		fo.CompensationEnded(inv.workflow, CompensationCanceled)
	}
}
