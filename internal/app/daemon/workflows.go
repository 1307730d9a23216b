package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/logctx"
)

// nodeIDFile holds the daemon's stable node id in its data dir: the
// workflow invocations a node starts are resumed by the same node after a
// restart.
const nodeIDFile = "node-id"

// nodeID reads the node id from the data dir, or makes and stores one.
func nodeID(dir, hostname string) (string, error) {
	path := filepath.Join(dir, nodeIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node id: %w", err)
	}
	var rnd [5]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	id := sanitize(hostname) + "-" + hex.EncodeToString(rnd[:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return id, nil
}

// wfFunctions lets the engine call functions through the registry.
type wfFunctions struct{ d *Daemon }

// Invoke calls a function for a workflow task. The call's log lines and
// records name the workflow invocation and the task.
func (f wfFunctions) Invoke(ctx context.Context, t fn.Target, c fn.Call) (fn.Result, error) {
	ctx = logctx.With(ctx, slog.String(logctx.Invocation, c.Meta[abi.MetaWorkflowInvocation]), slog.String(logctx.Task, c.Meta[abi.MetaWorkflowTask]))
	return f.d.Invoke(ctx, t, c)
}

func (f wfFunctions) Exists(name string) bool {
	_, ok := f.d.cat.Function(name)
	return ok
}

// Version is the current version of a function: what an invocation
// starting now pins.
func (f wfFunctions) Version(name string) (int, bool) {
	fn, ok := f.d.cat.Function(name)
	if !ok {
		return 0, false
	}
	return fn.Version, true
}

// wfDefinitions lets the engine read workflow definitions from the catalog.
type wfDefinitions struct{ cat *catalog.Catalog }

func (w wfDefinitions) Current(name string) (engine.Revision, bool) {
	wf, ok := w.cat.Workflow(name)
	if !ok {
		return engine.Revision{}, false
	}
	return engine.Revision{Name: wf.Name, Revision: wf.Revision, Source: wf.Source}, true
}

func (w wfDefinitions) Revision(rev string) (engine.Revision, bool) {
	wf, ok := w.cat.Revision(rev)
	if !ok {
		return engine.Revision{}, false
	}
	return engine.Revision{Name: wf.Name, Revision: wf.Revision, Source: wf.Source}, true
}

// invokeWorkflow runs a workflow for a trigger and waits for its end. A
// message-queue delivery names its invocation after the trigger and the
// message's sequence, so that a redelivered message finds the invocation
// it started instead of starting another; any other call that has an id
// (an HTTP request's, which its answer names in X-Sluice-Invocation)
// names its invocation with it, so that `wf status` finds what the answer
// names. An invocation that fails or is canceled is a *WorkflowError.
func (d *Daemon) invokeWorkflow(ctx context.Context, name string, c fn.Call) (fn.Result, error) {
	// a body or message sluice did not write: JSON if it parses, else a
	// string
	opts := engine.InvokeOptions{Input: engine.InputAuto, ID: c.ID}
	if seq := c.Meta[abi.MetaSequence]; seq != "" {
		if t, ok := d.cat.Trigger(c.Meta[abi.MetaTrigger]); ok && t.Group != "" {
			opts.ID = t.Group + "-" + seq
		}
	}
	start := time.Now()
	inv, err := d.engine.Invoke(ctx, name, c.Input, opts)
	if err != nil {
		return fn.Result{}, engineError(err)
	}
	inv, err = d.engine.Wait(ctx, inv.ID)
	if err != nil {
		return fn.Result{}, engineError(err)
	}
	if inv.Status != engine.StatusSucceeded {
		return fn.Result{}, &WorkflowError{Workflow: name, Invocation: inv.ID, Status: inv.Status, Task: inv.FailedTask, Err: inv.Error}
	}
	// a value over engine.MaxData is read from the broker's blob store
	out, err := inv.OutputBytes(ctx)
	if err != nil {
		return fn.Result{}, fmt.Errorf("workflow %s (invocation %s) succeeded, but reading its output failed: %w", name, inv.ID, err)
	}
	return fn.Result{Output: out, Duration: time.Since(start)}, nil
}

// WorkflowError: a workflow run for a trigger ended without succeeding.
// Its code is workflow_failed, or workflow_canceled: the request's
// upstream failed (502), not sluice.
type WorkflowError struct {
	Workflow, Invocation string
	// Status is the invocation's (failed, canceled); Task the task whose
	// failure failed it, if one did; Err the invocation's error.
	Status, Task, Err string
}

func (e *WorkflowError) Error() string {
	what := e.Status
	if e.Status == engine.StatusFailed && e.Task != "" {
		what += ": task " + e.Task
	}
	if e.Err != "" {
		what += ": " + e.Err
	}
	return fmt.Sprintf("workflow %q invocation %s %s (sluice wf status %s shows its tasks)", e.Workflow, e.Invocation, what, e.Invocation)
}

// ErrorCode implements errcode.Coder.
func (e *WorkflowError) ErrorCode() errcode.Code {
	if e.Status == engine.StatusCanceled {
		return errcode.WorkflowCanceled
	}
	return errcode.WorkflowFailed
}

// engineError gives the engine's errors the codes a trigger answers them
// with (the engine's sentinels do not carry them): a workflow that is not
// there is not_found, as a function that is not.
func engineError(err error) error {
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return errcode.New(errcode.NotFound, err.Error())
	case errors.Is(err, engine.ErrInvalid):
		return errcode.New(errcode.InvalidArgument, err.Error())
	case errors.Is(err, engine.ErrConflict):
		return errcode.New(errcode.Conflict, err.Error())
	case errors.Is(err, engine.ErrTooLarge):
		return errcode.New(errcode.InputTooLarge, err.Error())
	}
	return err
}
