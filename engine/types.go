package engine

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Invocation statuses.
const (
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCanceled  = "canceled"
)

// Task statuses, in the order a task goes through them.
const (
	TaskScheduled = "scheduled"
	TaskRunning   = "running"
	TaskRetrying  = "retrying"
	TaskSucceeded = "succeeded"
	TaskFailed    = "failed"
	// TaskCanceled: the invocation ended (canceled, or failed elsewhere)
	// before the task did.
	TaskCanceled = "canceled"
)

// Invocation is what `wf status` shows: a snapshot of one run of a
// workflow, rebuilt from its events.
type Invocation struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	// Revision is the definition's content hash the invocation runs on.
	Revision string `json:"revision"`
	Status   string `json:"status"`
	// Input and Output are JSON values.
	Input  json.RawMessage `json:"input"`
	Output json.RawMessage `json:"output"`
	Error  string          `json:"error,omitempty"`
	// FailedTask names the task whose failure failed the invocation.
	FailedTask string `json:"failed_task,omitempty"`
	// Parent is "INVOCATION/TASK" for a child workflow.
	Parent string `json:"parent,omitempty"`
	// Traceparent is the invocation's W3C trace context: its span, of
	// which each task call is a child. Absent on invocations created
	// before sluice recorded it.
	Traceparent string     `json:"traceparent,omitempty"`
	Owner       string     `json:"owner,omitempty"`
	Created     time.Time  `json:"created"`
	Finished    *time.Time `json:"finished,omitempty"`
	// Tasks are the tasks that were scheduled, by id; dynamic tasks (a
	// branch, a loop iteration) have ids under their parent's, like
	// "route/then" or "each/3".
	Tasks map[string]*Task `json:"tasks,omitempty"`
}

// Done tells whether the invocation has finished.
func (inv *Invocation) Done() bool { return inv.Status != StatusRunning }

// Task is one task of an invocation.
type Task struct {
	Status   string          `json:"status"`
	Run      string          `json:"run"`
	Attempts int             `json:"attempts,omitempty"`
	Input    json.RawMessage `json:"input,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Wake is when a sleeping or retrying task continues.
	Wake     *time.Time `json:"wake,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
}

// Event types: the contract listed in engine/README.md, shown by `wf events`.
const (
	EventInvocationCreated   = "InvocationCreated"
	EventTaskScheduled       = "TaskScheduled"
	EventTaskStarted         = "TaskStarted"
	EventTaskSucceeded       = "TaskSucceeded"
	EventTaskFailed          = "TaskFailed"
	EventTaskRetrying        = "TaskRetrying"
	EventInvocationSucceeded = "InvocationSucceeded"
	EventInvocationFailed    = "InvocationFailed"
	EventInvocationCanceled  = "InvocationCanceled"
)

// Event is one entry of the workflow event log (channel EventsChannel).
// Only the fields an event type needs are set.
type Event struct {
	Type       string    `json:"type"`
	Invocation string    `json:"inv"`
	Task       string    `json:"task,omitempty"`
	Time       time.Time `json:"time"`
	// Seq is the event's sequence in the channel (not stored: the
	// channel assigns it).
	Seq uint64 `json:"seq,omitempty"`
	// Node is the daemon that wrote the event.
	Node string `json:"node,omitempty"`
	// Marker identifies a Sync marker.
	Marker string `json:"marker,omitempty"`
	// From is the owner an OwnerChanged takes the invocation from (Owner
	// is the new one).
	From string `json:"from,omitempty"`

	// InvocationCreated.
	Workflow string          `json:"workflow,omitempty"`
	Revision string          `json:"revision,omitempty"`
	Owner    string          `json:"owner,omitempty"`
	Parent   string          `json:"parent,omitempty"`
	Input    json.RawMessage `json:"input,omitempty"`
	// Traceparent and Tracestate are the invocation's trace context (the
	// span of the call that started it), if it had one; events written
	// before sluice recorded it have none.
	Traceparent string `json:"traceparent,omitempty"`
	Tracestate  string `json:"tracestate,omitempty"`

	// TaskScheduled: the task's kind (a function or a built-in), its
	// evaluated input (Input), and for a dynamic task the scope it adds.
	Run   string         `json:"run,omitempty"`
	Scope map[string]any `json:"scope,omitempty"`

	// TaskStarted, TaskRetrying and TaskFailed: the attempt, from 1.
	Attempt int `json:"attempt,omitempty"`
	// TaskStarted of a sleep, TaskRetrying: when the task goes on.
	Wake *time.Time `json:"wake,omitempty"`

	// TaskSucceeded, InvocationSucceeded.
	Output json.RawMessage `json:"output,omitempty"`
	// TaskFailed, TaskRetrying, InvocationFailed, InvocationCanceled.
	Error string `json:"error,omitempty"`
}

// String renders an event on one line, as `wf events` prints it.
func (e *Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-19s", e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Type)
	if e.Task != "" {
		fmt.Fprintf(&b, "  %s", e.Task)
	}
	add := func(k, v string) { fmt.Fprintf(&b, "  %s=%s", k, v) }
	if e.Workflow != "" {
		add("workflow", e.Workflow)
	}
	if e.Revision != "" {
		add("revision", short(e.Revision))
	}
	if e.Parent != "" {
		add("parent", e.Parent)
	}
	if e.Traceparent != "" {
		add("traceparent", e.Traceparent)
	}
	if e.From != "" {
		add("from", e.From)
		add("to", e.Owner)
	}
	if e.Run != "" {
		add("run", e.Run)
	}
	if e.Attempt != 0 {
		add("attempt", fmt.Sprint(e.Attempt))
	}
	if e.Wake != nil {
		add("until", e.Wake.UTC().Format(time.RFC3339Nano))
	}
	if len(e.Scope) > 0 {
		s, _ := json.Marshal(e.Scope)
		add("scope", string(s))
	}
	if len(e.Input) > 0 {
		add("input", clip(string(e.Input)))
	}
	if len(e.Output) > 0 {
		add("output", clip(string(e.Output)))
	}
	if e.Error != "" {
		add("error", clip(fmt.Sprintf("%q", e.Error)))
	}
	return b.String()
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// clip keeps an event line readable: long values are cut (wf events -o
// json shows them whole).
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
