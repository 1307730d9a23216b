package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/logctx"
)

// Limits of the child workflows under one invocation (its root), at any
// depth: what stops a workflow whose foreach runs itself from growing
// without bound (depth alone is capped at maxDepth: 10 items a level
// make 10^16 invocations).
const (
	// maxChildWorkflows bounds the child workflows one invocation starts
	// in all, counting theirs and every retry's. Beyond ten thousand the
	// history of one invocation is more than anyone reads.
	maxChildWorkflows = 10000
	// maxRunningChildWorkflows bounds those running at once: each holds
	// its state in memory. A foreach starting a child per item stays
	// under it with parallel: (at most this many items at once).
	maxRunningChildWorkflows = 1000
	// maxPasses bounds the passes of one reconcile: a pass that writes
	// something (a noop ends at once) may let another task start.
	maxPasses = 10000
	// maxPrefetch bounds the foreach iterations whose inputs are
	// evaluated ahead of the one being scheduled.
	maxPrefetch = 16
)

// reconcile drives an invocation this node owns. It runs, with e.mu held,
// after anything changed the invocation, decides from the state alone
// what comes next and writes it; running it again when nothing changed
// decides nothing. This is what makes resuming after a crash the same
// code path as running.
//
// Reconciling one invocation may make another's turn come (a child ends:
// its parent goes on; a parent ends: its children are canceled). Those are
// queued and reconciled after it, in the same call, never inside it: a
// tree of child workflows is walked by a loop, not by recursion, however
// wide it is.
func (e *Engine) reconcile(inv *invState) {
	if inv == nil {
		return
	}
	if !e.queued[inv.id] {
		e.queued[inv.id] = true
		e.queue = append(e.queue, inv.id)
	}
	if e.draining {
		return
	}
	e.draining = true
	defer func() { e.draining = false }()
	for len(e.queue) > 0 {
		id := e.queue[0]
		e.queue[0] = ""
		e.queue = e.queue[1:]
		delete(e.queued, id)
		if inv := e.st.invs[id]; inv != nil {
			e.reconcileSafe(inv)
		}
	}
}

// reconcileSafe reconciles one invocation; a panic (a bug, a state no
// event should make) stops that invocation, not the engine.
func (e *Engine) reconcileSafe(inv *invState) {
	defer func() {
		if r := recover(); r != nil {
			e.quarantine(inv, r)
		}
	}()
	e.reconcileOne(inv)
}

// quarantine stops driving an invocation after a panic, and fails it
// visibly if this node owns it: its end is in the log, so a restart does
// not meet the same panic again. The engine and the other invocations
// carry on.
func (e *Engine) quarantine(inv *invState, r any) {
	e.log.Error("an invocation is stopped after an internal error; the engine carries on",
		"invocation", inv.id, "workflow", inv.workflow, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	e.quarantined[inv.id] = true
	func() {
		defer func() {
			if r2 := recover(); r2 != nil {
				e.log.Error("failing a stopped invocation failed", "invocation", inv.id, "panic", fmt.Sprint(r2))
			}
		}()
		e.stopLocal(inv.id)
		if inv.owner == e.o.Node && inv.status == StatusRunning && !e.isStale(inv.id) && !e.closed {
			e.emit(inv, nil, &Event{Type: EventInvocationFailed,
				Error: fmt.Sprintf("the workflow engine stopped this invocation after an internal error (%v); the daemon and other invocations carry on", r)})
		}
	}()
	if p := e.st.parentOf(inv); p != nil && p.status == StatusRunning {
		e.reconcile(p)
	}
}

// guard recovers a panic of code working on an invocation outside
// reconcile (a call's or a timer's end), quarantining it.
func (e *Engine) guard(id string) {
	if r := recover(); r != nil {
		if inv := e.st.invs[id]; inv != nil {
			e.quarantine(inv, r)
			return
		}
		e.log.Error("internal error in the workflow engine; it carries on", "invocation", id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// reconcileOne is one invocation's turn.
func (e *Engine) reconcileOne(inv *invState) {
	if e.closed || e.replaying || inv.owner != e.o.Node || e.isStale(inv.id) || e.quarantined[inv.id] {
		return
	}
	if obs := e.o.Observer; obs != nil {
		start := time.Now()
		defer func() { obs.Step(time.Since(start)) }()
	}
	for pass := 0; inv.status == StatusRunning && pass < maxPasses; pass++ {
		n := e.emitted
		e.step(inv)
		if e.emitted == n {
			break
		}
	}
	if inv.status == StatusRunning {
		return
	}
	e.endLocal(inv.id)
	for _, id := range inv.order {
		t := inv.tasks[id]
		if !startsChild(t.run) || t.status == TaskSucceeded {
			continue
		}
		if c := e.st.invs[childID(inv.id, id, t.attempts)]; c != nil && c.status == StatusRunning {
			e.emit(c, nil, &Event{Type: EventInvocationCanceled, Error: fmt.Sprintf("its parent %s %s", inv.id, inv.status)})
			e.reconcile(c)
		}
	}
	if p := e.st.parentOf(inv); p != nil && p.status == StatusRunning {
		e.reconcile(p)
	}
}

// step is one pass over an invocation's static tasks.
func (e *Engine) step(inv *invState) {
	if inv.cancel != "" {
		e.emit(inv, nil, &Event{Type: EventInvocationCanceled, Error: inv.cancel})
		return
	}
	def, err := e.definitionOf(inv)
	if err != nil {
		e.emit(inv, nil, &Event{Type: EventInvocationFailed, Error: err.Error()})
		return
	}
	if e.stepFailure(inv, def) {
		return
	}
	done := true
	for _, id := range def.order {
		spec := def.tasks[id]
		t := inv.tasks[id]
		if t == nil {
			done = false
			if requiresMet(inv, spec) {
				e.schedule(inv, spec, id, nil)
			}
			continue
		}
		switch t.status {
		case TaskSucceeded:
		case TaskFailed:
			e.failInvocation(inv, def, id, t.err, t.code)
			return
		default:
			done = false
			e.drive(inv, spec, t)
		}
	}
	if !done || inv.status != StatusRunning {
		return
	}
	out, err, ready := e.output(inv, def)
	switch {
	case !ready:
	case err != nil:
		e.failInvocation(inv, def, "", "output: "+err.Error(), codeTaskError)
	default:
		ev := &Event{Type: EventInvocationSucceeded}
		out.put(ev, true)
		e.emit(inv, nil, ev)
	}
}

func requiresMet(inv *invState, spec *taskSpec) bool {
	for _, r := range spec.requires {
		if t := inv.tasks[r]; t == nil || t.status != TaskSucceeded {
			return false
		}
	}
	return true
}

// output is the workflow's output: output:, or the output of its only
// last task, or a map of its last tasks' outputs. ready is false while
// output: is being evaluated.
func (e *Engine) output(inv *invState, def *Definition) (out datum, err error, ready bool) {
	if def.output != nil {
		if d, ok := def.output.passed(inv); ok {
			return d, nil, true
		}
		res := def.fixedOutput
		if res == nil {
			res = e.evaluate(inv, "output", func() *view { return e.viewOf(inv, "", nil) }, valueOf(def.output))
		}
		if res == nil {
			return datum{}, nil, false
		}
		return res.val, res.err, true
	}
	if len(def.sinks) == 1 {
		return inv.tasks[def.sinks[0]].output, nil, true
	}
	m := map[string]json.RawMessage{}
	for _, s := range def.sinks {
		out := inv.tasks[s].output
		if out.ref != nil {
			return datum{}, fmt.Errorf("the output is the map of the last tasks' outputs, and tasks.%s.output is %d bytes (stored apart), over the %d KiB such a map holds: write output: ${ tasks.%s.output }",
				s, out.ref.size, MaxData>>10, s), true
		}
		m[s], _ = out.jsonView()
	}
	raw, err := json.Marshal(m)
	return jsonValue(raw), err, true
}

// schedule writes TaskScheduled with the task's evaluated input, then
// starts the task; add holds the loop variables a dynamic task adds (JSON
// values: what a replay decodes from the event). It returns false while
// the input is being evaluated.
func (e *Engine) schedule(inv *invState, spec *taskSpec, id string, add map[string]any) bool {
	res := e.inputOf(inv, spec, id, add)
	if res == nil {
		return false
	}
	ev := &Event{Type: EventTaskScheduled, Task: id, Run: spec.run}
	ev.Scope, ev.ScopeData = scopeOf(add)
	res.val.put(ev, false)
	switch {
	case res.child.ref != nil:
		ev.InputData = res.child.refData()
	case res.child.data:
		ev.InputData = &Data{Bytes: res.child.b, form: res.child.form, formKnown: true}
	}
	err := res.err
	if err == nil {
		err = e.resolveRun(inv, spec, ev)
	}
	if err != nil {
		e.emit(inv, nil, ev, e.failure(inv, spec, id, 0, err.Error(), codeTaskError))
		return true
	}
	e.emit(inv, nil, ev)
	if t := inv.tasks[id]; t != nil {
		e.drive(inv, spec, t)
	}
	return true
}

// inputOf returns a task's evaluated input, or nil while it is being
// evaluated (started now if it is not yet).
func (e *Engine) inputOf(inv *invState, spec *taskSpec, id string, add map[string]any) *evaluation {
	if spec.fixed != nil {
		return spec.fixed
	}
	if spec.passes() {
		if d, ok := spec.inputs.passed(inv); ok {
			return &evaluation{done: true, val: d}
		}
	}
	return e.evaluate(inv, "schedule "+id, func() *view { return e.viewOf(inv, id, add) }, inputOf(spec))
}

// evalInput evaluates what a task's TaskScheduled records: a function's
// input, or the parts of a built-in's inputs that decide what it does.
//
// A workflow task's child input that is data (passed on as it is, or
// bytes an expression made) is returned as child too: the child gets it
// exactly.
func evalInput(spec *taskSpec, v *view, b *budget) (d, child datum, err error) {
	if spec.run == builtinHTTP {
		return httpInput(spec, v, b)
	}
	en, err := v.env(b, append([]*value{spec.inputs, spec.cond, spec.parallel}, spec.cases...)...)
	if err != nil {
		return datum{}, datum{}, spec.inputs.failed(err)
	}
	x, err := evalInputValue(spec, en, b)
	if err != nil {
		return datum{}, datum{}, err
	}
	if spec.run == builtinWorkflow {
		m := x.(map[string]any)
		if p, ok := v.passed(spec.inputs); ok && p.data {
			child = p
		} else if bs, ok := m["input"].([]byte); ok {
			child = dataValue(bs)
		}
		if child.data {
			if child.ref == nil && len(child.b) > v.limit() {
				return datum{}, datum{}, spec.inputs.failed(tooLarge("the child workflow's input", len(child.b), v.limit()))
			}
			if child, err = v.store(child, "child workflow's input"); err != nil {
				return datum{}, datum{}, spec.inputs.failed(err)
			}
			// the JSON keeps the workflow's name; the bytes go beside it
			x = map[string]any{"workflow": m["workflow"]}
		}
	}
	// A function's input may be as large as any value (stored apart over
	// MaxData); a built-in's is read under the engine's lock, from its
	// event: at most MaxData.
	limit := MaxData
	if spec.isFunction() {
		limit = v.limit()
	}
	d, err = storable(x, limit)
	if err == nil && spec.isFunction() {
		d, err = v.store(d, "input")
	}
	if err != nil {
		main := spec.inputs
		if spec.run == builtinForeach {
			main = spec.cond
		}
		return datum{}, datum{}, main.failed(err)
	}
	return d, child, nil
}

func evalInputValue(spec *taskSpec, en env, b *budget) (any, error) {
	var x any
	var err error
	switch spec.run {
	case builtinIf:
		c, err := spec.cond.eval(en, b)
		if err != nil {
			return nil, err
		}
		v, ok := c.(bool)
		if !ok {
			return nil, fmt.Errorf("if: the condition is %s, not true or false", brief(c))
		}
		x = map[string]any{"if": v}
	case builtinSwitch:
		subject, err := spec.cond.eval(en, b)
		if err != nil {
			return nil, err
		}
		chosen := -1
		for i, c := range spec.cases {
			cv, err := c.eval(en, b)
			if err != nil {
				return nil, err
			}
			same, err := jsonEqual(subject, cv, b)
			if err != nil {
				return nil, fmt.Errorf("switch: %w", err)
			}
			if same {
				chosen = i
				break
			}
		}
		x = map[string]any{"switch": subject, "case": chosen}
	case builtinForeach:
		items, err := spec.cond.eval(en, b)
		if err != nil {
			return nil, err
		}
		list, ok := asList(items)
		if !ok {
			return nil, fmt.Errorf("foreach: want a list, got %s", brief(items))
		}
		par := len(list)
		if spec.parallel != nil {
			p, err := spec.parallel.eval(en, b)
			if err != nil {
				return nil, err
			}
			n, ok := asInt(p)
			if !ok || n < 1 {
				return nil, fmt.Errorf("foreach: parallel is %s, want 1 or more", brief(p))
			}
			par = n
		}
		x = map[string]any{"foreach": list, "parallel": par}
	case builtinRepeat:
		c, err := spec.cond.eval(en, b)
		if err != nil {
			return nil, err
		}
		n, ok := asInt(c)
		if !ok || n < 0 || n > maxWhileLimit {
			return nil, fmt.Errorf("repeat: times is %s, want 0 to %d", brief(c), maxWhileLimit)
		}
		x = map[string]any{"times": n}
	case builtinWhile:
		x = map[string]any{"limit": spec.limit}
	case builtinWorkflow:
		in, err := spec.inputs.eval(en, b)
		if err != nil {
			return nil, err
		}
		name, err := workflowName(spec, en, b)
		if err != nil {
			return nil, err
		}
		x = map[string]any{"workflow": name, "input": in}
	default:
		x, err = spec.inputs.eval(en, b)
		if err != nil {
			return nil, err
		}
		if spec.run == builtinSleep {
			if _, err := sleepDuration(x); err != nil {
				return nil, err
			}
		}
		if spec.run == builtinWait {
			if _, _, err := waitInput(x); err != nil {
				return nil, err
			}
		}
	}
	return x, nil
}

// drive moves a task that is not finished one step on.
func (e *Engine) drive(inv *invState, spec *taskSpec, t *taskState) {
	if inv.status != StatusRunning || e.driveFailure(inv, spec, t) {
		return
	}
	switch {
	case spec.isFunction() && t.run != builtinWorkflow:
		e.driveFunction(inv, spec, t)
	case spec.run == builtinHTTP:
		e.driveHTTP(inv, spec, t)
	case t.input.ref != nil && spec.run != builtinNoop && t.status == TaskScheduled:
		// passed on as it is (inputs: ${ tasks.ID.output }): a built-in
		// reads its input under the engine's lock, from its event
		e.fail(inv, t, fmt.Sprintf("%s: its input is %d bytes (stored apart), over the %d KiB a built-in reads: give it to a function, or pass a part of it",
			spec.run, t.input.ref.size, MaxData>>10))
	case spec.run == builtinSleep:
		switch t.status {
		case TaskScheduled:
			d, _ := sleepDuration(t.input.view())
			wake := e.now().Add(d)
			e.emit(inv, nil, &Event{Type: EventTaskStarted, Task: t.id, Attempt: t.attempts + 1, Wake: &wake})
			e.timer(inv, t.id, wake)
		case TaskRunning:
			if !e.now().Before(t.wake) {
				e.succeed(inv, t, jsonNull)
				return
			}
			e.timer(inv, t.id, t.wake)
		}
	case startsChild(t.run):
		e.driveChild(inv, spec, t)
	case spec.run == builtinWait:
		e.driveWait(inv, spec, t)
	default:
		if t.status == TaskScheduled {
			e.emit(inv, nil, &Event{Type: EventTaskStarted, Task: t.id, Attempt: t.attempts + 1})
		}
		if t.status != TaskRunning {
			return
		}
		switch spec.run {
		case builtinNoop:
			e.succeed(inv, t, t.input)
		case builtinCompose:
			e.succeed(inv, t, compose(t.input))
		case builtinFail:
			e.fail(inv, t, failMessage(t.input))
		case builtinIf, builtinSwitch:
			e.driveBranch(inv, spec, t)
		case builtinForeach:
			e.driveForeach(inv, spec, t)
		case builtinWhile, builtinRepeat:
			e.driveLoop(inv, spec, t)
		}
	}
}

func (e *Engine) succeed(inv *invState, t *taskState, out datum) {
	if out.none() {
		out = jsonNull
	}
	ev := &Event{Type: EventTaskSucceeded, Task: t.id, Attempt: t.attempts}
	out.put(ev, true)
	e.emit(inv, nil, ev)
}

func (e *Engine) fail(inv *invState, t *taskState, msg string) {
	e.emit(inv, nil, e.failure(inv, e.specOf(inv, t.id), t.id, t.attempts, msg, failCode(inv, t, msg)))
}

// driveFunction runs a function task: first attempt, retry after its
// backoff, or again after a restart found it started and not finished.
func (e *Engine) driveFunction(inv *invState, spec *taskSpec, t *taskState) {
	e.driveAttempts(inv, spec, t, (*Engine).call)
}

// runsAttempts tells whether a task's attempts run on a goroutine of
// their own (driveAttempts, runAttempt): a function's calls, an http
// task's requests, each bounded by the task's timeout itself.
func (t *taskSpec) runsAttempts() bool { return t.isFunction() || t.run == builtinHTTP }

// driveAttempts drives a task whose attempts run on a goroutine of their
// own (a function call, an http request), started by start: the first
// attempt, one an earlier life of this node started and did not see end,
// or a retry once its backoff has passed.
func (e *Engine) driveAttempts(inv *invState, spec *taskSpec, t *taskState, start func(*Engine, *invState, *taskSpec, *taskState)) {
	l := e.localOf(inv.id)
	switch t.status {
	case TaskScheduled:
		start(e, inv, spec, t)
	case TaskRunning:
		if r := l.runs[t.id]; r == nil || r.attempt != t.attempts {
			start(e, inv, spec, t) // started by an earlier life of this node
		}
	case TaskRetrying:
		if !e.now().Before(t.wake) {
			start(e, inv, spec, t)
		} else if l.timers[t.id] == nil {
			e.timer(inv, t.id, t.wake)
		}
	}
}

// call writes TaskStarted and calls the function on its own goroutine.
func (e *Engine) call(inv *invState, spec *taskSpec, t *taskState) {
	attempt := t.attempts + 1
	version := e.version(inv, spec.run)
	e.emit(inv, nil, &Event{Type: EventTaskStarted, Task: t.id, Attempt: attempt, Version: version})
	fn, input := spec.run, t.input
	meta := map[string]string{
		abi.MetaWorkflow: inv.workflow, abi.MetaWorkflowInvocation: inv.id,
		abi.MetaWorkflowTask: t.id, abi.MetaWorkflowAttempt: strconv.Itoa(attempt),
	}
	e.runAttempt(inv, spec, t, attempt, context.Background(), func(ctx context.Context) (datum, error) {
		// A value stored apart is fetched here, outside the lock, and
		// held only for the call.
		in, err := e.load(ctx, input)
		if err != nil {
			return datum{}, err
		}
		b, err := e.invokeFunction(ctx, fn, version, in.input(), meta)
		if err != nil {
			return datum{}, err
		}
		return dataValue(b), nil // the output is data: recorded as it is, whatever it holds
	})
}

// runAttempt runs the work of an attempt whose TaskStarted is written (a
// function call, an http request) on a goroutine of its own: canceled
// with the invocation (run.cancel), bounded by the task's timeout, its
// output stored apart if large before the event that records it, its
// outcome recorded under the lock by called.
func (e *Engine) runAttempt(inv *invState, spec *taskSpec, t *taskState, attempt int, base context.Context, work func(context.Context) (datum, error)) {
	ctx, cancel := context.WithCancel(logctx.WithTrace(base, inv.span()))
	if spec.timeout > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, spec.timeout)
		c1 := cancel
		cancel = func() { c2(); c1() }
	}
	rn := &run{attempt: attempt, spec: spec, cancel: cancel}
	e.localOf(inv.id).runs[t.id] = rn
	invID, taskID, root := inv.id, t.id, inv.root
	e.calls.Add(1)
	go func() {
		defer e.calls.Done()
		out, err := work(ctx)
		if err == nil {
			out, err = e.spill(context.WithoutCancel(ctx), root, out, "output")
		}
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		e.mu.Lock()
		defer e.mu.Unlock()
		defer e.guard(invID)
		e.called(invID, taskID, rn, out, err, timedOut)
	}()
}

// invokeFunction calls a function; a panic in the call (the registry's
// bug, not the guest's: guests trap) fails the attempt.
func (e *Engine) invokeFunction(ctx context.Context, function string, version int, input []byte, meta map[string]string) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("calling a function for a workflow task panicked; the attempt fails", "function", function,
				"invocation", meta[abi.MetaWorkflowInvocation], "task", meta[abi.MetaWorkflowTask], "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			out, err = nil, fmt.Errorf("calling %s failed with an internal error: %v", function, r)
		}
	}()
	res, err := e.o.Functions.Invoke(ctx, fn.Target{Kind: fn.KindFunction, Name: function, Version: version}, fn.Call{Input: input, Meta: meta})
	return res.Output, err
}

// called records the outcome of a function call, rn.
func (e *Engine) called(invID, taskID string, rn *run, out datum, err error, timedOut bool) {
	if e.closed {
		return // not recorded: the task runs again after a restart
	}
	if l := e.local[invID]; l == nil || l.runs[taskID] != rn {
		return // canceled (and maybe replaced by another attempt): not this call's to record
	}
	attempt, spec := rn.attempt, rn.spec
	// Kept until the event recording the outcome is read back: if that
	// event is lost, or the invocation is stale now, the rebuild from the
	// log records it again (resync).
	rn.ended, rn.out, rn.err, rn.timedOut = true, out, err, timedOut
	if e.isStale(invID) {
		return
	}
	inv := e.st.invs[invID]
	if inv == nil {
		return
	}
	t := inv.tasks[taskID]
	if t == nil || t.status != TaskRunning || t.attempts != attempt {
		return
	}
	if err == nil {
		ev := &Event{Type: EventTaskSucceeded, Task: taskID, Attempt: attempt}
		out.put(ev, true)
		e.emit(inv, nil, ev)
	}
	if err != nil {
		msg, code := err.Error(), callCode(err)
		if timedOut {
			msg, code = fmt.Sprintf("timed out after %s (the task's timeout)", spec.timeout), codeTimeout
		}
		e.failedAfter(inv, spec, t, msg, code, serverWait(err, spec.retry, e.now()))
	}
	e.reconcile(inv)
}

// failed records a failed attempt: a retry after the backoff, or the
// task's failure when retries are spent (or the invocation is ending).
func (e *Engine) failed(inv *invState, spec *taskSpec, t *taskState, msg, code string) {
	e.failedAfter(inv, spec, t, msg, code, -1)
}

// failedAfter is failed with the wait a server asked for (an http
// task's Retry-After), used instead of the backoff unless negative.
func (e *Engine) failedAfter(inv *invState, spec *taskSpec, t *taskState, msg, code string, after time.Duration) {
	retried := spec.retry.retries(code)
	if inv.status == StatusRunning && inv.cancel == "" && t.failures < spec.retry.max && retried {
		wait := after
		if wait < 0 {
			wait = spec.retry.wait(t.failures + 1)
		}
		wake := e.now().Add(wait)
		e.log.Info("task attempt failed; it will be retried", "invocation", inv.id, "workflow", inv.workflow, "task", t.id,
			"attempt", t.attempts, "retry_at", wake, "err", msg, "code", code)
		e.emit(inv, nil, &Event{Type: EventTaskRetrying, Task: t.id, Attempt: t.attempts, Error: msg, Code: code, Wake: &wake})
		e.timer(inv, t.id, wake)
		return
	}
	switch {
	case !retried && spec.retry.max > 0 && len(spec.retry.on) == 0:
		msg = fmt.Sprintf("%s (code %s, not retried: the request is refused for what it is, and would be again; retry.on: [%s] retries it)", msg, code, code)
	case !retried && spec.retry.max > 0:
		msg = fmt.Sprintf("%s (code %s, not retried: retry.on lists %s)", msg, code, strings.Join(spec.retry.on, ", "))
	case spec.retry.max > 0:
		msg = fmt.Sprintf("%s (after %d attempts)", msg, t.attempts)
	}
	e.log.Warn("task failed", "invocation", inv.id, "workflow", inv.workflow, "task", t.id, "err", msg, "code", code)
	e.emit(inv, nil, e.failure(inv, spec, t.id, t.attempts, msg, code))
}

// timer wakes an invocation at a time: a sleep's end, a retry's backoff.
// A runtime timer, not a goroutine, waits.
func (e *Engine) timer(inv *invState, taskID string, at time.Time) {
	l := e.localOf(inv.id)
	if old := l.timers[taskID]; old != nil {
		old.Stop()
	}
	invID := inv.id
	var tm *time.Timer
	tm = time.AfterFunc(at.Sub(e.now()), func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		defer e.guard(invID)
		if e.closed {
			return
		}
		if l := e.local[invID]; l != nil && l.timers[taskID] == tm {
			delete(l.timers, taskID)
		}
		if inv := e.st.invs[invID]; inv != nil {
			inv.touch(timerTask(taskID))
			e.reconcile(inv)
		}
	})
	l.timers[taskID] = tm
}

// driveChild runs a workflow task: a child invocation of another workflow.
func (e *Engine) driveChild(inv *invState, spec *taskSpec, t *taskState) {
	var in struct {
		Workflow string          `json:"workflow"`
		Input    json.RawMessage `json:"input"`
	}
	_ = json.Unmarshal(t.input.b, &in)
	input := t.child
	if !input.data && input.ref == nil {
		input = jsonValue(in.Input)
	}
	if t.run == builtinDynamic {
		in.Workflow = inlineName(inv, t.id) // its input is the spec: read when its child starts
	}
	switch t.status {
	case TaskScheduled:
		e.startChild(inv, t, in.Workflow, input)
	case TaskRetrying:
		if !e.now().Before(t.wake) {
			e.startChild(inv, t, in.Workflow, input)
		} else if e.localOf(inv.id).timers[t.id] == nil {
			e.timer(inv, t.id, t.wake)
		}
	case TaskRunning:
		cid := childID(inv.id, t.id, t.attempts)
		c := e.st.invs[cid]
		if c == nil {
			e.createChild(inv, t, cid, in.Workflow, input)
			return
		}
		switch c.status {
		case StatusSucceeded:
			e.succeed(inv, t, c.output)
		case StatusFailed:
			msg := fmt.Sprintf("workflow %s (invocation %s) failed", in.Workflow, cid)
			if c.failedTask != "" {
				msg += ": task " + c.failedTask
			}
			e.failed(inv, spec, t, msg+": "+c.err, codeWorkflowFailed)
		case StatusCanceled:
			e.failed(inv, spec, t, fmt.Sprintf("workflow %s (invocation %s) was canceled: %s", in.Workflow, cid, c.err), codeWorkflowCanceled)
		}
	}
}

func (e *Engine) startChild(inv *invState, t *taskState, workflow string, input datum) {
	e.emit(inv, nil, &Event{Type: EventTaskStarted, Task: t.id, Attempt: t.attempts + 1})
	e.createChild(inv, t, childID(inv.id, t.id, t.attempts), workflow, input)
}

// createChild starts a child invocation, within the limits of its depth
// and of the child workflows under its root.
func (e *Engine) createChild(inv *invState, t *taskState, cid, workflow string, input datum) {
	depth := 1
	for p := e.st.parentOf(inv); p != nil && depth <= maxDepth; p = e.st.parentOf(p) {
		depth++
	}
	if depth > maxDepth {
		e.fail(inv, t, fmt.Sprintf("workflow %s: child workflows nest deeper than %d (does a workflow call itself?)", workflow, maxDepth))
		return
	}
	if r := e.st.invs[inv.root]; r != nil {
		switch {
		case r.spawned >= maxChildWorkflows:
			e.fail(inv, t, fmt.Sprintf("workflow %s: invocation %s has started %d child workflows in all (theirs included), the limit of one invocation (does a workflow run itself in a loop?)",
				workflow, r.id, r.spawned))
			return
		case e.st.live[r.id] >= maxRunningChildWorkflows:
			e.fail(inv, t, fmt.Sprintf("workflow %s: invocation %s runs %d child workflows at once (theirs included), the limit of one invocation: bound the foreach that starts them with parallel:",
				workflow, r.id, e.st.live[r.id]))
			return
		}
	}
	rev, input, err := e.childRevision(inv, t, workflow, input)
	if err != nil {
		e.fail(inv, t, err.Error())
		return
	}
	if input.none() {
		input = jsonNull
	}
	e.create(cid, rev, input, inv.id+"/"+t.id, inv.span(), nil)
}

// driveBranch runs if and switch: the branch chosen at scheduling is a
// value (the output) or a dynamic task (whose output is the output).
func (e *Engine) driveBranch(inv *invState, spec *taskSpec, t *taskState) {
	var in struct {
		If   bool `json:"if"`
		Case *int `json:"case"`
	}
	_ = json.Unmarshal(t.input.b, &in)
	key := "else"
	switch {
	case spec.run == builtinIf && in.If:
		key = "then"
	case spec.run == builtinSwitch && in.Case != nil && *in.Case >= 0:
		key = fmt.Sprintf("case/%d", *in.Case)
	case spec.run == builtinSwitch:
		key = "default"
	}
	b := spec.branches[key]
	switch {
	case b == nil:
		e.succeed(inv, t, datum{})
	case b.val != nil:
		res := b.fixed
		if d, ok := b.val.passed(inv); ok {
			res = &evaluation{done: true, val: d}
		}
		if res == nil {
			res = e.evaluate(inv, "branch "+t.id, func() *view { return e.viewOf(inv, t.id, nil) }, valueOf(b.val))
		}
		switch {
		case res == nil:
		case res.err != nil:
			e.fail(inv, t, res.err.Error())
		default:
			e.succeed(inv, t, res.val)
		}
	default:
		e.driveKid(inv, t, b.spec, t.id+"/"+key, nil, func(c *taskState) { e.succeed(inv, t, c.output) })
	}
}

// driveKid schedules, drives or concludes one dynamic task.
func (e *Engine) driveKid(inv *invState, t *taskState, spec *taskSpec, id string, add map[string]any, done func(*taskState)) {
	c := inv.tasks[id]
	switch {
	case c == nil:
		e.schedule(inv, spec, id, add)
	case c.status == TaskSucceeded:
		done(c)
	case c.status == TaskFailed:
		e.failKid(inv, t, c)
	default:
		e.drive(inv, spec, c)
	}
}

// compose merges its inputs: a list of maps into one map (later keys
// win), anything else as it is.
func compose(in datum) datum {
	raw, _ := in.jsonView()
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return in
	}
	merged := map[string]json.RawMessage{}
	for _, el := range list {
		var m map[string]json.RawMessage
		if json.Unmarshal(el, &m) != nil {
			return in
		}
		for k, v := range m {
			merged[k] = v
		}
	}
	out, _ := json.Marshal(merged)
	return jsonValue(out)
}

// scopeOf splits the loop variables a dynamic task adds into those an
// event stores as JSON and the bytes values it stores exactly.
func scopeOf(add map[string]any) (map[string]any, map[string]*Data) {
	var bytesVars map[string]*Data
	for k, x := range add {
		if bs, ok := x.([]byte); ok {
			if bytesVars == nil {
				bytesVars = map[string]*Data{}
			}
			bytesVars[k] = &Data{Bytes: bs}
		}
	}
	if bytesVars == nil {
		return add, nil
	}
	rest := make(map[string]any, len(add))
	for k, x := range add {
		if bytesVars[k] == nil {
			rest[k] = x
		}
	}
	return rest, bytesVars
}

func failMessage(in datum) string {
	x := in.view()
	if m, ok := x.(map[string]any); ok && m["message"] != nil {
		x = m["message"]
	}
	if x == nil {
		return "failed by a fail task"
	}
	return stringify(x)
}

func asList(x any) ([]any, bool) {
	if x == nil {
		return nil, false
	}
	if _, ok := x.([]byte); ok {
		return nil, false // bytes, not a list of numbers
	}
	if l, ok := x.([]any); ok {
		return l, true
	}
	v := reflect.ValueOf(x)
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, v.Len())
	for i := range out {
		out[i] = v.Index(i).Interface()
	}
	return out, true
}

func asInt(x any) (int, bool) {
	switch n := x.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1e15 {
			return int(n), true
		}
	}
	return 0, false
}

// jsonEqual compares two values as JSON values (1 == 1.0), within a
// budget.
func jsonEqual(a, b any, bud *budget) (bool, error) {
	ja, err1 := bud.encode(a, false)
	jb, err2 := bud.encode(b, false)
	if errors.Is(err1, ErrLimit) || errors.Is(err2, ErrLimit) {
		return false, errors.Join(err1, err2)
	}
	if err1 != nil || err2 != nil {
		return reflect.DeepEqual(a, b), nil
	}
	return reflect.DeepEqual(fromJSON(ja), fromJSON(jb)), nil
}

// span returns a new span for a call an invocation makes (a task's call,
// a child workflow): a child of the invocation's span, or the first span
// of a new trace for an invocation whose creation recorded none.
func (inv *invState) span() logctx.Trace {
	if inv.trace.IsZero() {
		return logctx.NewTrace()
	}
	return inv.trace.Child()
}
