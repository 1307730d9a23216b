package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/logctx"
	"github.com/sluicehq/sluice/triggers"
)

// Limits of the workflow routes' bodies.
const (
	// MaxWorkflowSource bounds a definition: the engine's own bound (it is
	// stored in one catalog event, and NATS's default max_payload is 1 MiB).
	MaxWorkflowSource = engine.MaxDefinition
)

// IdempotencyKeyHeader names the header of POST
// /v1/workflows/{name}/invoke that makes an invocation idempotent: it is
// the invocation's id, and invoking again with it returns that invocation.
const IdempotencyKeyHeader = "Idempotency-Key"

// WorkflowView is a workflow as the API shows it. Source is left out of
// listings.
type WorkflowView struct {
	Name     string    `json:"name"`
	Version  int       `json:"version"`
	Revision string    `json:"revision"`
	Source   string    `json:"source,omitempty"`
	Created  time.Time `json:"created"`
	Triggers []string  `json:"triggers,omitempty"`
	// Functions and Workflows are what its definition names (the
	// console's function page lists the workflows that use it).
	Functions []string `json:"functions,omitempty"`
	Workflows []string `json:"workflows,omitempty"`
}

func (b *Backend) workflowView(w *catalog.Workflow, source bool) WorkflowView {
	v := WorkflowView{Name: w.Name, Version: w.Version, Revision: w.Revision, Created: w.Created, Functions: w.Functions, Workflows: w.Workflows}
	if source {
		v.Source = w.Source
	}
	for _, t := range b.Catalog.Triggers() {
		if t.Workflow == w.Name {
			v.Triggers = append(v.Triggers, t.Name)
		}
	}
	return v
}

// inputFormat reads an invocation's input by its Content-Type: text
// (text/*) and bytes (application/octet-stream) are a string; anything
// else, or none, must be JSON.
func inputFormat(r *http.Request) engine.InputFormat {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	if strings.HasPrefix(ct, "text/") || ct == "application/octet-stream" {
		return engine.InputString
	}
	return engine.InputJSON
}

// engineError gives the engine's errors their codes (the engine's
// sentinels do not carry them yet).
func engineError(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return errcode.New(errcode.NotFound, msg)
	case errors.Is(err, engine.ErrInvalid):
		return errcode.New(errcode.InvalidArgument, msg)
	case errors.Is(err, engine.ErrConflict):
		return errcode.New(errcode.Conflict, msg)
	case errors.Is(err, engine.ErrTooLarge):
		return errcode.New(errcode.InputTooLarge, msg)
	}
	return err
}

// engineOf returns the backend's engine, or writes why there is none.
func engineOf(w http.ResponseWriter, b *Backend) *engine.Engine {
	if b.Engine == nil {
		errcode.Write(w, errcode.New(errcode.Unavailable, "the workflow engine is not running on this daemon"))
	}
	return b.Engine
}

func (s *Server) createWorkflow(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	if err := catalog.ValidateName("workflow", name); err != nil {
		errcode.Write(w, err)
		return
	}
	src, err := readBody(r, MaxWorkflowSource, "definition", errcode.PayloadTooLarge,
		fmt.Sprintf("workflow definition is over the limit of %d KiB", MaxWorkflowSource>>10))
	if err != nil {
		errcode.Write(w, err)
		return
	}
	known := engine.Known{
		Function: func(fn string) bool { _, ok := b.Catalog.Function(fn); return ok },
		Workflow: func(wf string) bool { _, ok := b.Catalog.Workflow(wf); return ok },
	}
	def, err := engine.ParseDefinition(name, src, known)
	if err != nil {
		// the engine's message names the workflow and every problem's line
		errcode.Write(w, errcode.New(errcode.InvalidWorkflow, strings.TrimPrefix(err.Error(), "invalid: ")))
		return
	}
	prev, had := b.Catalog.Workflow(def.Name)
	fns, wfs := def.Uses()
	wf, err := b.Catalog.CreateWorkflow(r.Context(), def.Name, string(src), fns, wfs)
	if err != nil {
		errcode.Write(w, fmt.Errorf("create workflow %q: %w", def.Name, err))
		return
	}
	status := http.StatusCreated
	if had && prev.Version == wf.Version {
		status = http.StatusOK // the same definition again: nothing changed
	} else {
		s.log.InfoContext(r.Context(), "workflow created", "workflow", wf.Name, "version", wf.Version, "revision", wf.Revision[:12])
	}
	errcode.WriteJSON(w, status, b.workflowView(wf, false))
}

func (s *Server) listWorkflows(w http.ResponseWriter, r *http.Request, b *Backend) {
	wfs := b.Catalog.Workflows()
	out := make([]WorkflowView, 0, len(wfs))
	for _, wf := range wfs {
		out = append(out, b.workflowView(wf, false))
	}
	errcode.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) getWorkflow(w http.ResponseWriter, r *http.Request, b *Backend) {
	wf, ok := b.Catalog.Workflow(r.PathValue("name"))
	if !ok {
		errcode.Write(w, fmt.Errorf("%w: no workflow %q", catalog.ErrNotFound, r.PathValue("name")))
		return
	}
	errcode.WriteJSON(w, http.StatusOK, b.workflowView(wf, true))
}

func (s *Server) deleteWorkflow(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	force, err := boolParam(r, "force")
	if err != nil {
		errcode.Write(w, err)
		return
	}
	if err := b.Catalog.DeleteWorkflow(r.Context(), name, force); err != nil {
		errcode.Write(w, deleteError(fmt.Sprintf("delete workflow %q", name), err))
		return
	}
	s.log.InfoContext(r.Context(), "workflow deleted", "workflow", name, "force", force)
	w.WriteHeader(http.StatusNoContent)
}

// invokeWorkflow starts an invocation and answers 202 with it, or with
// wait=true waits until it has finished and answers 200 with it, whatever
// its status: the caller reads the status.
func (s *Server) invokeWorkflow(w http.ResponseWriter, r *http.Request, b *Backend) {
	e := engineOf(w, b)
	if e == nil {
		return
	}
	name := r.PathValue("name")
	wait := false
	if v := r.URL.Query().Get("wait"); v != "" {
		var err error
		if wait, err = strconv.ParseBool(v); err != nil {
			errcode.Write(w, fmt.Errorf("%w: wait=%q: want true or false", catalog.ErrInvalid, v))
			return
		}
	}
	// the engine's --max-value bounds an invocation's input
	in, err := readBody(r, e.MaxValue(), "input", errcode.InputTooLarge,
		fmt.Sprintf("workflow input is over the limit of %s (sluice daemon --max-value)", host.FormatBytes(uint64(e.MaxValue()))))
	if err != nil {
		errcode.Write(w, err)
		return
	}
	// the invocation's span: its task calls are children of it
	ctx := logctx.WithTrace(r.Context(), triggers.TraceOf(r.Header))
	inv, err := e.Invoke(ctx, name, in, engine.InvokeOptions{ID: r.Header.Get(IdempotencyKeyHeader), Input: inputFormat(r)})
	if err != nil {
		errcode.Write(w, engineError(err))
		return
	}
	w.Header().Set("X-Sluice-Invocation", inv.ID)
	if inv.Traceparent != "" {
		// the invocation's own (an idempotent invoke finds one that
		// was started before, in its trace)
		w.Header().Set(logctx.TraceparentHeader, inv.Traceparent)
	}
	if !wait {
		errcode.WriteJSON(w, http.StatusAccepted, inv)
		return
	}
	done, err := e.Wait(r.Context(), inv.ID)
	if err != nil {
		errcode.Write(w, engineError(err))
		return
	}
	errcode.WriteJSON(w, http.StatusOK, done)
}

func (s *Server) getInvocation(w http.ResponseWriter, r *http.Request, b *Backend) {
	if inv := invocationOf(w, r, b); inv != nil {
		errcode.WriteJSON(w, http.StatusOK, inv)
	}
}

// invocationOf returns the invocation the request's path names, or
// answers why there is none and returns nil.
func invocationOf(w http.ResponseWriter, r *http.Request, b *Backend) *engine.Invocation {
	e := engineOf(w, b)
	if e == nil {
		return nil
	}
	inv, err := e.Get(r.PathValue("id"))
	if err != nil {
		errcode.Write(w, engineError(err))
		return nil
	}
	return inv
}

// invocationValue answers an invocation's input (or output) as its exact
// bytes: what a function given it receives (a value from outside as it
// came; a value an expression made, a string's bytes, anything else as
// JSON). Their Content-Type says what they are: application/json if they
// are JSON, text/plain if they are UTF-8 text, else
// application/octet-stream.
func (s *Server) invocationValue(output bool) func(http.ResponseWriter, *http.Request, *Backend) {
	return func(w http.ResponseWriter, r *http.Request, b *Backend) {
		inv := invocationOf(w, r, b)
		if inv == nil {
			return
		}
		read := inv.InputBytes
		if output {
			if inv.Status != engine.StatusSucceeded {
				errcode.Write(w, errcode.New(errcode.Conflict, fmt.Sprintf(
					"invocation %s is %s: only a succeeded invocation has an output (wf status %s shows why)", inv.ID, inv.Status, inv.ID)))
				return
			}
			read = inv.OutputBytes
		}
		// a value over engine.MaxData is read from the broker's blob store
		body, err := read(r.Context())
		if err != nil {
			errcode.Write(w, engineError(err))
			return
		}
		w.Header().Set("Content-Type", ValueContentType(body))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
}

// ValueContentType says what a value's bytes are: JSON, UTF-8 text, or
// other bytes.
func ValueContentType(b []byte) string {
	switch {
	case !utf8.Valid(b):
		return "application/octet-stream"
	case json.Valid(b):
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

func (s *Server) invocationEvents(w http.ResponseWriter, r *http.Request, b *Backend) {
	e := engineOf(w, b)
	if e == nil {
		return
	}
	evs, err := e.Events(r.Context(), r.PathValue("id"))
	if err != nil {
		errcode.Write(w, engineError(err))
		return
	}
	if evs == nil {
		evs = []*engine.Event{}
	}
	errcode.WriteJSON(w, http.StatusOK, evs)
}

func (s *Server) cancelInvocation(w http.ResponseWriter, r *http.Request, b *Backend) {
	e := engineOf(w, b)
	if e == nil {
		return
	}
	id := r.PathValue("id")
	inv, err := e.Cancel(r.Context(), id)
	if err != nil {
		errcode.Write(w, engineError(err))
		return
	}
	s.log.InfoContext(r.Context(), "invocation canceled", "invocation", id, "workflow", inv.Workflow)
	errcode.WriteJSON(w, http.StatusOK, inv)
}

// SignalView is what POST /v1/invocations/{id}/signals/{name} answers:
// the signal recorded in the invocation's log.
type SignalView struct {
	Invocation string `json:"invocation"`
	Signal     string `json:"signal"`
	// Bytes is the size of its data.
	Bytes int `json:"bytes"`
}

// signalInvocation delivers a signal to a running invocation: the body is
// its data, read as an invocation's input is (by its Content-Type). 202
// once it is stored: a wait of that name takes it, now or when it starts.
func (s *Server) signalInvocation(w http.ResponseWriter, r *http.Request, b *Backend) {
	e := engineOf(w, b)
	if e == nil {
		return
	}
	id, name := r.PathValue("id"), r.PathValue("name")
	data, err := readBody(r, engine.MaxData, "signal data", errcode.InputTooLarge,
		fmt.Sprintf("signal data is over the limit of %d KiB a signal carries", engine.MaxData>>10))
	if err != nil {
		errcode.Write(w, err)
		return
	}
	if err := e.Signal(r.Context(), id, name, data, inputFormat(r)); err != nil {
		errcode.Write(w, engineError(err))
		return
	}
	s.log.InfoContext(r.Context(), "signal sent", "invocation", id, "signal", name, "bytes", len(data))
	errcode.WriteJSON(w, http.StatusAccepted, SignalView{Invocation: id, Signal: name, Bytes: len(data)})
}

// redriveInvocation continues a failed or canceled root invocation and
// answers 200 with it, running again (or already ended again).
func (s *Server) redriveInvocation(w http.ResponseWriter, r *http.Request, b *Backend) {
	e := engineOf(w, b)
	if e == nil {
		return
	}
	id := r.PathValue("id")
	inv, err := e.Redrive(r.Context(), id)
	if err != nil {
		errcode.Write(w, engineError(err))
		return
	}
	s.log.InfoContext(r.Context(), "invocation redriven", "invocation", id, "workflow", inv.Workflow)
	errcode.WriteJSON(w, http.StatusOK, inv)
}
