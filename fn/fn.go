// Package fn is the one shape in which sluice runs something by name: a
// Target (a function or a workflow), a Call (input bytes and metadata)
// and a Result. Triggers, the workflow engine and the API ask an Invoker
// to run a Target; the daemon is the Invoker, and sends a function to the
// host and a workflow to the engine. A workflow is a kind of target, not a
// name with a prefix.
//
// It is a leaf: it imports nothing of sluice.
package fn

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
)

// Kind is what a Target runs.
type Kind uint8

// Kinds of target.
const (
	// KindFunction runs a deployed function: one call of its module.
	KindFunction Kind = iota + 1
	// KindWorkflow starts an invocation of a workflow and waits for its
	// end; the Result's Output is the invocation's output, JSON.
	KindWorkflow
)

// String returns "function" or "workflow".
func (k Kind) String() string {
	switch k {
	case KindFunction:
		return "function"
	case KindWorkflow:
		return "workflow"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Target names what to run.
type Target struct {
	Kind Kind
	Name string
	// Version is the version of a function to run, as the catalog
	// numbers them (from 1); 0 runs the current one. A workflow task
	// calls the version its invocation pinned when it started, whatever
	// was deployed since.
	Version int
}

// Function is the target of a function.
func Function(name string) Target { return Target{Kind: KindFunction, Name: name} }

// Workflow is the target of a workflow.
func Workflow(name string) Target { return Target{Kind: KindWorkflow, Name: name} }

// String says what the target is, as messages name it: `function "price"`,
// or `function "price" version 3` for a given version.
func (t Target) String() string {
	if t.Version != 0 {
		return fmt.Sprintf("%s %q version %d", t.Kind, t.Name, t.Version)
	}
	return fmt.Sprintf("%s %q", t.Kind, t.Name)
}

// IsZero tells whether the target names nothing.
func (t Target) IsZero() bool { return t.Name == "" }

// Call is one call's input and metadata.
type Call struct {
	// ID identifies the call in logs and metadata; one is made up if
	// empty (see NewID).
	ID string
	// Input is the call's input bytes.
	Input []byte
	// Meta is call metadata from the trigger (see abi/README.md): a WASI
	// guest sees it as SLUICE_* environment variables, a reactor through
	// sluice.meta_get.
	Meta map[string]string
	// Origin names what made the call, e.g. request_id=ID for an HTTP
	// request: every log record of the call carries it, so that its lines
	// can be told from other calls'.
	Origin []slog.Attr
}

// Result is the outcome of a successful call.
type Result struct {
	// Output is the output bytes. It belongs to the caller.
	Output []byte
	// Cold tells whether a function's call had to create an instance
	// first.
	Cold bool
	// Duration is the time the call took where it ran (for a function,
	// in the guest, instantiation included).
	Duration time.Duration
	// Status is the HTTP status the function answered with (a reactor
	// through sluice.http_status, a CGI command with its Status field),
	// 0 if it set none: an HTTP trigger then answers 200.
	Status int
	// Header holds the HTTP response headers the function set, by
	// canonical name (Content-Type), several values per name in the
	// order set; nil if it set none. The host has checked them (see
	// abi.CheckHeader) and left out those a function may not set.
	Header map[string][]string
}

// Invoker runs a target.
type Invoker interface {
	Invoke(ctx context.Context, t Target, c Call) (Result, error)
}

// InvokerFunc adapts a function to Invoker.
type InvokerFunc func(ctx context.Context, t Target, c Call) (Result, error)

// Invoke implements Invoker.
func (f InvokerFunc) Invoke(ctx context.Context, t Target, c Call) (Result, error) {
	return f(ctx, t, c)
}

var (
	idCounter atomic.Uint64
	idPrefix  = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return fmt.Sprintf("%x", b)
	}()
)

// NewID makes a call id unique within this process and very likely across
// processes: a random per-process prefix and a counter.
func NewID() string {
	// in one allocation (FormatUint and the concatenation made two): a
	// call that logs makes one to stamp its first line
	var b [32]byte
	id := append(b[:0], idPrefix...)
	id = append(id, '-')
	id = strconv.AppendUint(id, idCounter.Add(1), 36)
	return string(id)
}

// NameRule is what a function's or a workflow's name must be: it is in
// the messages that refuse one.
const NameRule = "1 to 63 lowercase letters, digits and '-', starting with a letter or digit"

// ValidName tells whether name follows NameRule: it is a URL path
// segment, a NATS subject token and a file name as it is.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return false
		}
	}
	return true
}
