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

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/engine"
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
// it started instead of starting another.
func (d *Daemon) invokeWorkflow(ctx context.Context, name string, c fn.Call) (fn.Result, error) {
	// a body or message sluice did not write: JSON if it parses, else a
	// string
	opts := engine.InvokeOptions{Input: engine.InputAuto}
	if seq := c.Meta[abi.MetaSequence]; seq != "" {
		if t, ok := d.cat.Trigger(c.Meta[abi.MetaTrigger]); ok && t.Group != "" {
			opts.ID = t.Group + "-" + seq
		}
	}
	inv, err := d.engine.Invoke(ctx, name, c.Input, opts)
	if err != nil {
		return fn.Result{}, err
	}
	inv, err = d.engine.Wait(ctx, inv.ID)
	if err != nil {
		return fn.Result{}, err
	}
	switch inv.Status {
	case engine.StatusSucceeded:
		return fn.Result{Output: inv.OutputBytes()}, nil
	case engine.StatusFailed:
		if inv.FailedTask != "" {
			return fn.Result{}, fmt.Errorf("workflow %s invocation %s failed: task %s: %s", name, inv.ID, inv.FailedTask, inv.Error)
		}
		return fn.Result{}, fmt.Errorf("workflow %s invocation %s failed: %s", name, inv.ID, inv.Error)
	default:
		return fn.Result{}, fmt.Errorf("workflow %s invocation %s was %s: %s", name, inv.ID, inv.Status, inv.Error)
	}
}
