package engine

import (
	"bytes"
	"context"
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
	// Input and Output are the values as JSON. A value that came from
	// outside as bytes that are not one JSON document says so in its
	// form: InputForm (OutputForm) is FormText for UTF-8 text, whose JSON
	// is the string of it, or FormBase64 for other bytes, whose JSON is
	// their base64; none for JSON. GET /v1/invocations/{id}/output (and
	// /input) answer the exact bytes.
	Input      json.RawMessage `json:"input"`
	InputForm  string          `json:"input_form,omitempty"`
	Output     json.RawMessage `json:"output"`
	OutputForm string          `json:"output_form,omitempty"`
	Error      string          `json:"error,omitempty"`
	// ErrorCode is the code of its failure (timeout, deadline, trap, a
	// guest's own, ...).
	ErrorCode string `json:"error_code,omitempty"`
	// FailedTask names the task whose failure failed the invocation.
	FailedTask string `json:"failed_task,omitempty"`
	// Compensation is Compensating while the undo tasks of a failing
	// invocation run, Compensated once they have.
	Compensation string `json:"compensation,omitempty"`
	// Parent is "INVOCATION/TASK" for a child workflow.
	Parent string `json:"parent,omitempty"`
	// Traceparent is the invocation's W3C trace context: its span, of
	// which each task call is a child. Absent on invocations created
	// before sluice recorded it.
	Traceparent string     `json:"traceparent,omitempty"`
	Owner       string     `json:"owner,omitempty"`
	Created     time.Time  `json:"created"`
	Finished    *time.Time `json:"finished,omitempty"`
	// Redrives counts the times the invocation was redriven.
	Redrives int `json:"redrives,omitempty"`
	// PendingSignals are the names of the signals delivered and not yet
	// taken by a wait, oldest first.
	PendingSignals []string `json:"pending_signals,omitempty"`
	// Tasks are the tasks that were scheduled, by id; dynamic tasks (a
	// branch, a loop iteration) have ids under their parent's, like
	// "route/then" or "each/3".
	Tasks map[string]*Task `json:"tasks,omitempty"`
	// Versions are the versions of the functions the invocation calls,
	// pinned when it started (README "Function versions"); none on
	// invocations created before sluice pinned them.
	Versions map[string]int `json:"versions,omitempty"`

	// in and out are the values as stored (not in the JSON: an Invocation
	// decoded from the API has none), load fetches those stored apart.
	in, out datum
	load    func(context.Context, datum) (datum, error)
}

// InputBytes and OutputBytes are the bytes a function given the input
// (output) receives: a value that came from outside as bytes (an
// invocation's input, a function's output), exactly; a value an
// expression made, a string's bytes, anything else as JSON; none for
// null. A value over MaxData is read from the broker's blob store (the
// error says why it could not be). An Invocation decoded from JSON has
// none: the API answers them at GET /v1/invocations/{id}/input and
// /output.
func (inv *Invocation) InputBytes(ctx context.Context) ([]byte, error) { return inv.bytes(ctx, inv.in) }

// OutputBytes: see InputBytes.
func (inv *Invocation) OutputBytes(ctx context.Context) ([]byte, error) {
	return inv.bytes(ctx, inv.out)
}

func (inv *Invocation) bytes(ctx context.Context, d datum) ([]byte, error) {
	if d.ref != nil {
		if inv.load == nil {
			return nil, fmt.Errorf("invocation %s: the value is stored apart and this snapshot cannot read it", inv.ID)
		}
		var err error
		if d, err = inv.load(ctx, d); err != nil {
			return nil, err
		}
	}
	return d.input(), nil
}

// OutputSize is the size of the output's bytes, without reading them.
func (inv *Invocation) OutputSize() int {
	if inv.out.ref != nil {
		return inv.out.ref.size
	}
	return len(inv.out.input())
}

// Done tells whether the invocation has finished.
func (inv *Invocation) Done() bool { return inv.Status != StatusRunning }

// Task is one task of an invocation.
type Task struct {
	Status   string `json:"status"`
	Run      string `json:"run"`
	Attempts int    `json:"attempts,omitempty"`
	// Version is the version of the function the last attempt called
	// (0 for a built-in, or an attempt started before sluice recorded it).
	Version int `json:"version,omitempty"`
	// Input and Output are as an Invocation's, with their forms.
	Input      json.RawMessage `json:"input,omitempty"`
	InputForm  string          `json:"input_form,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	OutputForm string          `json:"output_form,omitempty"`
	Error      string          `json:"error,omitempty"`
	// ErrorCode is the code of its last failure; Caught tells that it
	// failed and its catch ran (its error is kept).
	ErrorCode string `json:"error_code,omitempty"`
	Caught    bool   `json:"caught,omitempty"`
	// Wake is when a sleeping or retrying task continues.
	Wake     *time.Time `json:"wake,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Waiting is the signal a running wait task waits for;
	// WaitingTopic the topic a running wait on a topic watches.
	Waiting      string `json:"waiting,omitempty"`
	WaitingTopic string `json:"waiting_topic,omitempty"`
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
	Workflow string `json:"workflow,omitempty"`
	Revision string `json:"revision,omitempty"`
	Owner    string `json:"owner,omitempty"`
	Parent   string `json:"parent,omitempty"`
	// Input is a value made by the engine (an expression, a built-in) as
	// JSON; InputData, a value from outside (this event's input, and a
	// TaskScheduled's input that passes one on), as its exact bytes.
	// Events written before data values existed have Input only.
	Input     json.RawMessage `json:"input,omitempty"`
	InputData *Data           `json:"input_data,omitempty"`
	// Traceparent and Tracestate are the invocation's trace context (the
	// span of the call that started it), if it had one; events written
	// before sluice recorded it have none.
	Traceparent string `json:"traceparent,omitempty"`
	Tracestate  string `json:"tracestate,omitempty"`
	// Source is the definition (JSON) of an inline workflow, a dynamic
	// task's child, whose revision is its sha256: none in the catalog.
	Source json.RawMessage `json:"source,omitempty"`
	// Versions pins the version of each function the definition names
	// (README "Function versions").
	Versions map[string]int `json:"versions,omitempty"`

	// TaskScheduled: the task's kind (a function or a built-in), its
	// evaluated input (Input), and for a dynamic task the scope it adds.
	Run   string `json:"run,omitempty"`
	Scope Vars   `json:"scope,omitempty"`
	// ScopeData holds the loop variables that are bytes values (a while's
	// prev after a binary output), exactly.
	ScopeData map[string]*Data `json:"scope_data,omitempty"`

	// TaskStarted, TaskRetrying and TaskFailed: the attempt, from 1.
	Attempt int `json:"attempt,omitempty"`
	// TaskStarted of a function: the version the attempt calls.
	Version int `json:"version,omitempty"`
	// TaskStarted of a sleep, TaskRetrying: when the task goes on.
	Wake *time.Time `json:"wake,omitempty"`
	// TaskStarted of a wait on a topic: the topic's last sequence when the
	// attempt started; the messages stored after it are those it examines.
	After *uint64 `json:"after,omitempty"`

	// SignalSent: the signal's name (its data in Input or InputData).
	// TaskSucceeded of a wait: the signal it took, and Consumed, the
	// sequence of that signal's SignalSent (of a wait on a topic, the
	// sequence of the message that matched, in its topic).
	Signal   string `json:"signal,omitempty"`
	Consumed uint64 `json:"consumed,omitempty"`

	// TaskSucceeded, InvocationSucceeded: as Input and InputData (a
	// function's output is data).
	Output     json.RawMessage `json:"output,omitempty"`
	OutputData *Data           `json:"output_data,omitempty"`
	// TaskFailed, TaskRetrying, InvocationFailed, InvocationCanceled.
	Error string `json:"error,omitempty"`
	// Code is the error's code: TaskRetrying, TaskFailed, TaskCaught,
	// CompensationStarted, InvocationFailed (none in events written
	// before codes existed).
	Code string `json:"code,omitempty"`
}

// Vars are loop variables as an event stores them. Their numbers are
// decoded as JSON numbers (json.Number), so that a replay reads them as
// the live engine saw them: 12345678901234567890 stays itself.
type Vars map[string]any

// UnmarshalJSON decodes the variables with their numbers exact.
func (v *Vars) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return err
	}
	*v = m
	return nil
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
	if len(e.Source) > 0 {
		add("source", clip(string(e.Source)))
	}
	if e.From != "" {
		add("from", e.From)
		add("to", e.Owner)
	}
	if e.Run != "" {
		add("run", e.Run)
	}
	if e.Type == EventInvocationRedriven {
		add("by", e.Owner)
	}
	if e.Signal != "" {
		add("signal", e.Signal)
	}
	if e.Consumed != 0 {
		add("consumed", fmt.Sprint(e.Consumed))
	}
	if e.After != nil {
		add("after", fmt.Sprint(*e.After))
	}
	if e.Attempt != 0 {
		add("attempt", fmt.Sprint(e.Attempt))
	}
	if e.Version != 0 {
		add("version", fmt.Sprint(e.Version))
	}
	if len(e.Versions) > 0 {
		s, _ := json.Marshal(e.Versions)
		add("versions", clip(string(s)))
	}
	if e.Wake != nil {
		add("until", e.Wake.UTC().Format(time.RFC3339Nano))
	}
	if len(e.Scope) > 0 {
		s, _ := json.Marshal(e.Scope)
		add("scope", string(s))
	}
	if len(e.ScopeData) > 0 {
		s, _ := json.Marshal(e.ScopeData)
		add("scope_data", clip(string(s)))
	}
	if len(e.Input) > 0 {
		add("input", clip(string(e.Input)))
	}
	if e.InputData != nil {
		add("input_data", clipData(e.InputData))
	}
	if len(e.Output) > 0 {
		add("output", clip(string(e.Output)))
	}
	if e.OutputData != nil {
		add("output_data", clipData(e.OutputData))
	}
	if e.Error != "" {
		add("error", clip(fmt.Sprintf("%q", e.Error)))
	}
	if e.Code != "" {
		add("code", e.Code)
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

// clipData renders a data value for an event's line: as it is stored, cut
// short.
func clipData(d *Data) string {
	b, err := d.MarshalJSON()
	if err != nil {
		return fmt.Sprintf("(%d bytes)", len(d.Bytes))
	}
	return clip(string(b))
}
