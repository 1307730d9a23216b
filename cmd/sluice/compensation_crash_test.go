package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/testutil"
)

// sagaWorkflow succeeds a, b and c, then fails d: its compensation runs
// c's undo (quick), b's (3 s: in flight when the daemon is killed), then
// a's.
const sagaWorkflow = `apiVersion: sluice/v1
kind: Workflow
name: saga
tasks:
  a: { run: noop, inputs: 1, undo: { run: work, inputs: { op: add, n: 1 } } }
  b: { run: noop, requires: [a], inputs: 2, undo: { run: work, inputs: { op: sleep, ms: 3000 } } }
  c: { run: noop, requires: [b], inputs: 3, undo: { run: work, inputs: { op: add, n: 3 } } }
  d: { run: fail, requires: [c], inputs: { message: "no truck", code: no_truck } }
`

// TestKill9DuringCompensation kills the daemon while a compensation runs
// an undo task, restarts it on the same data dir, and checks that the
// compensation completes: the undo that had succeeded is not run again,
// the one in flight runs again, and the invocation fails with its cause.
func TestKill9DuringCompensation(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startDaemon(t, data)
	p.mustSluice(t, "", "fn", "deploy", "work", testutil.WasmPath(t, "wfguest"))
	def := filepath.Join(t.TempDir(), "saga.yaml")
	if err := os.WriteFile(def, []byte(sagaWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	p.mustSluice(t, "", "wf", "create", "saga", "-f", def)
	id := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "saga"))
	status := func(p *daemonProc) engine.Invocation {
		var inv engine.Invocation
		out := p.mustSluice(t, "", "wf", "status", id, "-o", "json")
		if err := json.Unmarshal([]byte(out), &inv); err != nil {
			t.Fatalf("wf status -o json: %v\n%s", err, out)
		}
		return inv
	}
	testutil.Eventually(t, 30*time.Second, "b's undo to run", func() bool {
		st := status(p)
		u := st.Tasks["b/undo"]
		return st.Compensation == engine.Compensating && u != nil && u.Status == engine.TaskRunning
	})
	if st := status(p); st.Tasks["c/undo"].Status != engine.TaskSucceeded {
		t.Fatalf("c/undo is %s when b/undo runs, want succeeded", st.Tasks["c/undo"].Status)
	}
	q := restartAfterKill9(t, p, data)
	testutil.Eventually(t, 60*time.Second, "the invocation to finish", func() bool {
		return status(q).Status != engine.StatusRunning
	})
	st := status(q)
	if st.Status != engine.StatusFailed || st.ErrorCode != "no_truck" || st.FailedTask != "d" || st.Compensation != engine.Compensated {
		t.Fatalf("status %s, code %q, failed task %q, compensation %q: %s", st.Status, st.ErrorCode, st.FailedTask, st.Compensation, st.Error)
	}
	var events []engine.Event
	if err := json.Unmarshal([]byte(q.mustSluice(t, "", "wf", "events", id, "-o", "json")), &events); err != nil {
		t.Fatal(err)
	}
	starts := map[string]int{}
	var order []string
	for _, ev := range events {
		switch ev.Type {
		case engine.EventTaskStarted:
			starts[ev.Task]++
		case engine.EventTaskScheduled:
			if strings.HasSuffix(ev.Task, "/undo") {
				order = append(order, ev.Task)
			}
		}
	}
	if starts["c/undo"] != 1 || starts["b/undo"] != 2 || starts["a/undo"] != 1 {
		t.Fatalf("TaskStarted per undo: %v; want c/undo once (it had succeeded), b/undo twice (in flight at the kill), a/undo once", starts)
	}
	if strings.Join(order, " ") != "c/undo b/undo a/undo" {
		t.Fatalf("undo order: %v", order)
	}
	out := q.mustSluice(t, "", "wf", "status", id)
	for _, want := range []string{"compensated", "no_truck", "b/undo"} {
		if !strings.Contains(out, want) {
			t.Fatalf("wf status does not show %q:\n%s", want, out)
		}
	}
}
