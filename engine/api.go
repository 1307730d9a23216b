package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/fn"
)

// Functions is how the engine calls functions: an fn.Invoker, asked
// only for function targets, with the call's metadata (workflow,
// invocation, task, attempt). It is the daemon.
type Functions interface {
	fn.Invoker
	// Exists tells whether a function is deployed now.
	Exists(function string) bool
	// Version returns the current version of a deployed function: what
	// an invocation starting now pins and calls (fn.Target.Version),
	// whatever is deployed meanwhile.
	Version(function string) (int, bool)
}

// Revision is one version of a workflow definition.
type Revision struct {
	Name     string
	Revision string
	Source   string
	// inline is the definition of an inline workflow (a dynamic task's
	// child), which its InvocationCreated carries.
	inline json.RawMessage
}

// Definitions is where the engine finds workflow definitions: the catalog.
type Definitions interface {
	// Current returns the version of a workflow that new invocations run.
	Current(name string) (Revision, bool)
	// Revision returns a version by its content hash, even a deleted one.
	Revision(rev string) (Revision, bool)
}

// HTTP is how the engine sends the request of an http task: the daemon's
// outbound client, which decides where requests may go and bounds them.
// Do returns any status as a response; its errors say what went wrong
// (an errcode.Coder tells a host refused from a server unavailable).
type HTTP interface {
	Do(ctx context.Context, r HTTPRequest) (HTTPResponse, error)
}

// HTTPRequest is an http task's request.
type HTTPRequest struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// Secrets names, for a header, the daemon-side secret whose value
	// it takes ({secret: NAME} in the workflow): the client resolves it
	// when it sends the request; the events record only the name.
	Secrets map[string]string
}

// HTTPResponse is a response, read whole.
type HTTPResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// Options configure an Engine.
type Options struct {
	// Log is where the engine keeps its events (a stream per invocation
	// under InvocationStreams where the log has families and Delete, else
	// EventsChannel with checkpoints in CheckpointChannel) and its
	// heartbeats (NodesChannel).
	Log         eventlog.Log
	Functions   Functions
	Definitions Definitions
	// Node is this daemon's stable id: it owns (runs) the invocations it
	// creates, and resumes them after a restart.
	Node string
	// Retain is how many finished invocations are kept for wf status and
	// replayed at start (0: DefaultRetain).
	Retain int
	// RetainBytes bounds the memory those hold, whatever their count (0:
	// DefaultRetainBytes).
	RetainBytes int64
	// MaxValue is the largest value a workflow carries: an invocation's
	// input, a task's input or output, an expression's result (0:
	// DefaultMaxValue). Values over MaxData are stored apart, in the
	// log's blob store.
	MaxValue int
	// NodeTimeout is how long a node may stay silent before another takes
	// over its invocations (0: DefaultNodeTimeout).
	NodeTimeout time.Duration
	// HTTP sends the requests of http tasks (the daemon's outbound
	// client, with its allow-list); nil fails every http task, saying
	// how to turn it on.
	HTTP HTTP
	// Observer, if set, is told what the engine does (metrics).
	Observer Observer
	Logger   *slog.Logger
}

// InvokeOptions are the options of one invocation.
type InvokeOptions struct {
	// ID makes the invocation idempotent: invoking again with an ID that
	// exists and the same workflow and input (the same bytes, or for an
	// input stored apart the same sha256) returns that invocation; with
	// another workflow or input it is ErrConflict. "" generates one.
	ID string
	// Input says how the input bytes are read (InputJSON by default).
	Input InputFormat
}

// InputFormat says how an invocation's input bytes become its input value.
type InputFormat int

const (
	// InputJSON reads the bytes as one JSON value (none at all is null)
	// and refuses bytes that are not JSON: a typo in a JSON document must
	// not quietly become a string.
	InputJSON InputFormat = iota
	// InputString takes the bytes as a string, whatever they hold.
	InputString
	// InputAuto takes JSON if the bytes parse, else a string: what a
	// trigger does with a body or a message it did not write.
	InputAuto
)

// Observer is told what an engine does, for metrics. Its methods are called
// with the engine's lock held: they must be quick and must not call back.
type Observer interface {
	// InvocationEnded: an invocation this node drives ended with status.
	InvocationEnded(workflow, status string)
	// TaskEnded: a task ended an attempt with status succeeded, failed or
	// retrying.
	TaskEnded(workflow, status string)
	// Step: one reconcile of an invocation took d.
	Step(d time.Duration)
	// Appended: an event was stored d after it was written.
	Appended(d time.Duration, err error)
}
