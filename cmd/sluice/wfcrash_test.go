package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/testutil"
)

const crashWorkflow = `apiVersion: sluice/v1
kind: Workflow
name: crash
output: '${ {"first": tasks.first.output.n, "each": tasks.each.output, "slow": tasks.slow.output.slept} }'
tasks:
  first: { run: work, inputs: { op: double, n: "${ input }" } }
  slow:  { run: work, requires: [first], inputs: { op: sleep, ms: 300 } }
  nap:   { run: sleep, requires: [first], inputs: 2500ms }
  each:
    run: foreach
    requires: [first]
    inputs:
      foreach: ${ [1, 2, 3, 4] }
      parallel: 2
      do: { run: work, inputs: { op: sleep, ms: 2000 } }
  last: { run: work, requires: [slow, nap, each], inputs: { op: add, n: "${ tasks.first.output.n }" } }
`

// TestKill9DuringWorkflows kills the daemon while invocations run tasks
// and sleep, restarts it on the same data dir, and checks that every
// invocation completes and that no task whose success was recorded ran
// again.
func TestKill9DuringWorkflows(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startDaemon(t, data)
	p.mustSluice(t, "", "fn", "deploy", "work", testutil.WasmPath(t, "wfguest"))
	def := filepath.Join(t.TempDir(), "crash.yaml")
	if err := os.WriteFile(def, []byte(crashWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	p.mustSluice(t, "", "wf", "create", "crash", "-f", def)
	const n = 12
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "crash", "--data", fmt.Sprint(i))))
	}
	// Kill once every invocation is past its first task and one at least
	// is in the middle of its foreach's items (two at a time, of 2 s
	// each: for 4 s an invocation has one running). (Waiting for all of
	// them to be running at once can wait for ever on a loaded machine,
	// where the first to start a two-second task finishes it before the
	// last starts.) The kill comes right after the status that shows an
	// item running, not after reading every invocation's.
	running := func(st invocation) bool {
		for k := range 4 {
			if st.Tasks[fmt.Sprintf("each/%d", k)].Status == "running" {
				return true
			}
		}
		return false
	}
	testutil.Eventually(t, 30*time.Second, "every invocation past its first task", func() bool {
		for _, id := range ids {
			if p.status(t, id).Tasks["first"].Status != "succeeded" {
				return false
			}
		}
		return true
	})
	testutil.Eventually(t, 30*time.Second, "a foreach item to be running", func() bool {
		for _, id := range ids {
			if running(p.status(t, id)) {
				return true
			}
		}
		return false
	})
	q := restartAfterKill9(t, p, data)
	reruns := 0
	for _, id := range ids {
		testutil.Eventually(t, 60*time.Second, "invocation "+id+" to finish", func() bool {
			return q.status(t, id).Status != "running"
		})
		st := q.status(t, id)
		if st.Status != "succeeded" {
			t.Fatalf("invocation %s: %s: %s", id, st.Status, st.Error)
		}
		_, succeeded := eventsOnce(t, q, id)
		for _, task := range []string{"first", "slow", "nap", "each", "last", "each/0", "each/3"} {
			if !succeeded[task] {
				t.Fatalf("invocation %s: no TaskSucceeded for %s", id, task)
			}
		}
		if st.Tasks["first"].Attempts != 1 {
			t.Fatalf("invocation %s: first ran %d times", id, st.Tasks["first"].Attempts)
		}
		for k := range 4 {
			if st.Tasks[fmt.Sprintf("each/%d", k)].Attempts > 1 {
				reruns++
				break
			}
		}
	}
	// A foreach item was running in one invocation at least when the
	// daemon died: it ran again after the restart, unless it had just
	// finished.
	if reruns == 0 {
		t.Fatal("no task was interrupted by the kill: the test did not test a crash")
	}
	t.Logf("%d of %d invocations re-ran an interrupted task", reruns, n)
}

// eventsOnce reads an invocation's events after a crash and fails the
// test if a task succeeded twice, or was scheduled or started again after
// its success; it returns the events and the tasks that succeeded.
func eventsOnce(t *testing.T, p *daemonProc, id string) ([]engine.Event, map[string]bool) {
	t.Helper()
	var events []engine.Event
	if err := json.Unmarshal([]byte(p.mustSluice(t, "", "wf", "events", id, "-o", "json")), &events); err != nil {
		t.Fatal(err)
	}
	succeeded := map[string]bool{}
	for _, ev := range events {
		switch ev.Type {
		case engine.EventTaskSucceeded:
			if succeeded[ev.Task] {
				t.Fatalf("invocation %s: task %s succeeded twice", id, ev.Task)
			}
			succeeded[ev.Task] = true
		case engine.EventTaskStarted, engine.EventTaskScheduled:
			if succeeded[ev.Task] {
				t.Fatalf("invocation %s: task %s: %s after its TaskSucceeded", id, ev.Task, ev.Type)
			}
		}
	}
	return events, succeeded
}
