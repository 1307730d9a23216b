package engine

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// eventCancelRequested asks an invocation's owner to cancel it: any
// daemon may write it, only the owner writes InvocationCanceled, so that
// every event that changes an invocation comes from one writer, in order.
const eventCancelRequested = "CancelRequested"

// eventOwnerChanged moves an invocation to another owner: written by the
// daemon taking over the invocations of a daemon that stopped answering.
// It applies only if From is still the owner, so of two daemons racing to
// take over, the first in the log wins.
const eventOwnerChanged = "OwnerChanged"

// errIgnored: an event that does not fit the state (a duplicate, a
// transition already made) and changes nothing.
var errIgnored = errors.New("event does not apply")

// state is the fold of the event log. apply is a pure function of the
// state and the event: no clock, no randomness, no I/O. Replaying the same
// events gives the same state, which is what resuming after a crash rests
// on.
type state struct {
	// seq is the sequence of the last event applied.
	seq  uint64
	invs map[string]*invState
	// finished lists finished invocations in the order they finished:
	// beyond retain, the oldest are forgotten.
	finished []string
	retain   int
}

// invState is one invocation.
type invState struct {
	id, workflow, revision, owner, parent string
	input                                 json.RawMessage
	status                                string
	output                                json.RawMessage
	err, failedTask                       string
	created                               time.Time
	finishedAt                            time.Time
	firstSeq, lastSeq                     uint64
	// cancel is the reason given by a CancelRequested not yet acted on.
	cancel string
	tasks  map[string]*taskState
	// order lists task ids in the order they were scheduled.
	order []string
	// Caches for expressions, rebuilt after a change.
	inputVal     any
	inputDecoded bool
	envTasks     map[string]any
}

func (inv *invState) inputValue() any {
	if !inv.inputDecoded {
		inv.inputVal, inv.inputDecoded = fromJSON(inv.input), true
	}
	return inv.inputVal
}

// tasksEnv is the tasks map of expressions: tasks.ID.output|status|error.
func (inv *invState) tasksEnv() map[string]any {
	if inv.envTasks == nil {
		inv.envTasks = make(map[string]any, len(inv.tasks))
		for id, t := range inv.tasks {
			inv.envTasks[id] = t.view()
		}
	}
	return inv.envTasks
}

// taskState is one task of an invocation.
type taskState struct {
	id, run  string
	status   string
	attempts int
	// failures counts the attempts that failed and were retried.
	failures int
	input    json.RawMessage
	output   json.RawMessage
	err      string
	wake     time.Time
	started  time.Time
	finished time.Time
	// scope holds the loop variables this task adds (item, index, prev).
	scope map[string]any
	// kids counts the dynamic tasks scheduled under this one, kidsDone
	// those that succeeded.
	kids, kidsDone int
	// out caches output decoded for expressions.
	out     any
	decoded bool
}

func newState(retain int) *state {
	return &state{invs: map[string]*invState{}, retain: retain}
}

// parentID is the id of the task a dynamic task belongs to ("" for a
// static task): "each/3" -> "each", "sw/case/1" -> "sw".
func parentID(id string) string {
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return ""
	}
	p := id[:i]
	if strings.HasSuffix(p, "/case") {
		p = strings.TrimSuffix(p, "/case")
	}
	return p
}

// apply folds one event into the state.
func (s *state) apply(ev *Event) error {
	if ev.Seq != 0 {
		if ev.Seq <= s.seq {
			return errIgnored
		}
		s.seq = ev.Seq
	}
	inv := s.invs[ev.Invocation]
	if ev.Type == EventInvocationCreated {
		if inv != nil {
			return errIgnored
		}
		inv = &invState{
			id: ev.Invocation, workflow: ev.Workflow, revision: ev.Revision, owner: ev.Owner,
			parent: ev.Parent, input: ev.Input, status: StatusRunning, created: ev.Time,
			firstSeq: ev.Seq, lastSeq: ev.Seq, tasks: map[string]*taskState{},
		}
		s.invs[inv.id] = inv
		return nil
	}
	if inv == nil {
		return errIgnored
	}
	if ev.Type == eventOwnerChanged {
		if inv.status != StatusRunning || ev.From != inv.owner || ev.Owner == "" {
			return errIgnored
		}
		inv.owner = ev.Owner
		inv.lastSeq = max(inv.lastSeq, ev.Seq)
		return nil
	}
	// Only the owner changes an invocation; anyone may ask to cancel it.
	// Events written by a former owner that had not yet heard it was
	// replaced change nothing.
	if ev.Node != "" && ev.Node != inv.owner && ev.Type != eventCancelRequested {
		return errIgnored
	}
	if err := inv.apply(ev); err != nil {
		return err
	}
	inv.lastSeq = max(inv.lastSeq, ev.Seq)
	if inv.status != StatusRunning && ev.Type != eventCancelRequested && isInvocationEnd(ev.Type) {
		s.finished = append(s.finished, inv.id)
		for s.retain > 0 && len(s.finished) > s.retain {
			delete(s.invs, s.finished[0])
			s.finished = s.finished[1:]
		}
	}
	return nil
}

func isInvocationEnd(t string) bool {
	return t == EventInvocationSucceeded || t == EventInvocationFailed || t == EventInvocationCanceled
}

func (inv *invState) apply(ev *Event) error {
	running := inv.status == StatusRunning
	switch ev.Type {
	case eventCancelRequested:
		if !running || inv.cancel != "" {
			return errIgnored
		}
		inv.cancel = ev.Error
		if inv.cancel == "" {
			inv.cancel = "canceled"
		}
		return nil
	case EventInvocationSucceeded, EventInvocationFailed, EventInvocationCanceled:
		if !running {
			return errIgnored
		}
		inv.finishedAt = ev.Time
		// Tasks left unfinished end with the invocation: their late
		// results, if any, are not recorded.
		for _, t := range inv.tasks {
			if t.status != TaskSucceeded && t.status != TaskFailed {
				t.status, t.finished, t.wake = TaskCanceled, ev.Time, time.Time{}
			}
		}
		inv.envTasks = nil
		switch ev.Type {
		case EventInvocationSucceeded:
			inv.status, inv.output = StatusSucceeded, ev.Output
		case EventInvocationFailed:
			inv.status, inv.err, inv.failedTask = StatusFailed, ev.Error, ev.Task
		default:
			inv.status, inv.err = StatusCanceled, ev.Error
		}
		return nil
	}
	t := inv.tasks[ev.Task]
	inv.envTasks = nil
	switch ev.Type {
	case EventTaskScheduled:
		if !running || t != nil || ev.Task == "" {
			return errIgnored
		}
		t = &taskState{id: ev.Task, run: ev.Run, status: TaskScheduled, input: ev.Input, scope: ev.Scope}
		inv.tasks[ev.Task] = t
		inv.order = append(inv.order, ev.Task)
		if p := inv.tasks[parentID(ev.Task)]; p != nil {
			p.kids++
		}
		return nil
	case EventTaskStarted:
		if !running || t == nil || ev.Attempt <= t.attempts ||
			(t.status != TaskScheduled && t.status != TaskRetrying && t.status != TaskRunning) {
			return errIgnored
		}
		t.status, t.attempts, t.started = TaskRunning, ev.Attempt, ev.Time
		t.wake = time.Time{}
		if ev.Wake != nil {
			t.wake = *ev.Wake
		}
		return nil
	case EventTaskRetrying:
		if t == nil || t.status != TaskRunning || ev.Attempt != t.attempts {
			return errIgnored
		}
		t.status, t.err = TaskRetrying, ev.Error
		t.failures++
		t.wake = time.Time{}
		if ev.Wake != nil {
			t.wake = *ev.Wake
		}
		return nil
	case EventTaskSucceeded:
		if t == nil || t.status != TaskRunning || (ev.Attempt != 0 && ev.Attempt != t.attempts) {
			return errIgnored
		}
		t.status, t.output, t.err, t.finished = TaskSucceeded, ev.Output, "", ev.Time
		t.wake, t.out, t.decoded = time.Time{}, nil, false
		if p := inv.tasks[parentID(ev.Task)]; p != nil {
			p.kidsDone++
		}
		return nil
	case EventTaskFailed:
		if t == nil || (t.status != TaskScheduled && t.status != TaskRunning && t.status != TaskRetrying) {
			return errIgnored
		}
		t.status, t.err, t.finished, t.wake = TaskFailed, ev.Error, ev.Time, time.Time{}
		return nil
	}
	// Unknown types come from newer daemons: skipped.
	return errIgnored
}

// output decodes a task's output for expressions, once.
func (t *taskState) value() any {
	if !t.decoded {
		t.out, t.decoded = fromJSON(t.output), true
	}
	return t.out
}

// view is a task as expressions see it: tasks.ID.output|status|error.
func (t *taskState) view() map[string]any {
	return map[string]any{"output": t.value(), "status": t.status, "error": t.err}
}

// snapshot copies an invocation for readers outside the engine's lock.
func (inv *invState) snapshot(withTasks bool) *Invocation {
	out := &Invocation{
		ID: inv.id, Workflow: inv.workflow, Revision: inv.revision, Status: inv.status,
		Input: inv.input, Output: inv.output, Error: inv.err, FailedTask: inv.failedTask,
		Parent: inv.parent, Owner: inv.owner, Created: inv.created,
	}
	if !inv.finishedAt.IsZero() {
		f := inv.finishedAt
		out.Finished = &f
	}
	if out.Input == nil {
		out.Input = json.RawMessage("null")
	}
	if out.Output == nil {
		out.Output = json.RawMessage("null")
	}
	if !withTasks {
		return out
	}
	out.Tasks = make(map[string]*Task, len(inv.tasks))
	for id, t := range inv.tasks {
		v := &Task{Status: t.status, Run: t.run, Attempts: t.attempts, Input: t.input, Output: t.output, Error: t.err}
		if !t.wake.IsZero() {
			w := t.wake
			v.Wake = &w
		}
		if !t.started.IsZero() {
			st := t.started
			v.Started = &st
		}
		if !t.finished.IsZero() {
			f := t.finished
			v.Finished = &f
		}
		out.Tasks[id] = v
	}
	return out
}
