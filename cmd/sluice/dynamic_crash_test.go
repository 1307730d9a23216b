package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// dynCrashWorkflow runs, as a dynamic task, the spec its function (work
// echoes what has no op) returns: an inline workflow whose slow task
// sleeps.
const dynCrashWorkflow = `apiVersion: sluice/v1
kind: Workflow
name: dyncrash
output: ${ tasks.go.output }
tasks:
  plan: { run: work, inputs: "${ input }" }
  go: { run: dynamic, requires: [plan], inputs: "${ tasks.plan.output }" }
`

const dynCrashSpec = `{"spec": {"tasks": {
  "first": {"run": "work", "inputs": {"op": "double", "n": "${ input }"}},
  "slow": {"run": "work", "requires": ["first"], "inputs": {"op": "sleep", "ms": 1500}},
  "last": {"run": "work", "requires": ["slow"], "inputs": {"op": "add", "n": "${ tasks.first.output.n }"}}},
 "output": "${ tasks.last.output.n }"}, "input": %d}`

// dynChildID is the id of a task's child invocation (engine's childID:
// <parent>.<fnv32 of the task>.<attempt>).
func dynChildID(parent, task string, attempt int) string {
	h := fnv.New64a()
	h.Write([]byte(task))
	return fmt.Sprintf("%s.%x.%d", parent, h.Sum64()&0xffffffff, attempt)
}

// TestKill9DuringDynamicChild kills the daemon while the inline workflows
// of dynamic tasks run (their slow task sleeping), restarts it on the
// same data dir, and checks that every invocation completes, its child
// resumed from the definition its creation carried, and that no task
// whose success was recorded ran again.
func TestKill9DuringDynamicChild(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startDaemon(t, data)
	p.mustSluice(t, "", "fn", "deploy", "work", testutil.WasmPath(t, "wfguest"))
	def := filepath.Join(t.TempDir(), "dyncrash.yaml")
	if err := os.WriteFile(def, []byte(dynCrashWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	p.mustSluice(t, "", "wf", "create", "dyncrash", "-f", def)
	const n = 6
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "dyncrash", "--data", fmt.Sprintf(dynCrashSpec, i))))
	}
	testutil.Eventually(t, 30*time.Second, "the dynamic children's slow tasks to run", func() bool {
		for _, id := range ids {
			r := p.sluice(t, "", "wf", "status", dynChildID(id, "go", 1), "-o", "json")
			var c invocation
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &c) != nil || c.Tasks["slow"].Status != "running" {
				return false
			}
		}
		return true
	})
	q := restartAfterKill9(t, p, data)
	reruns := 0
	for i, id := range ids {
		testutil.Eventually(t, 60*time.Second, "invocation "+id+" to finish", func() bool {
			return q.status(t, id).Status != "running"
		})
		st := q.status(t, id)
		if st.Status != "succeeded" || string(st.Output) != fmt.Sprint(2*i+1) {
			t.Fatalf("invocation %s: %s, output %s: %s", id, st.Status, st.Output, st.Error)
		}
		cid := dynChildID(id, "go", 1)
		child := q.status(t, cid)
		if child.Workflow != "dyncrash/go" || child.Status != "succeeded" {
			t.Fatalf("child %s: workflow %s, %s", cid, child.Workflow, child.Status)
		}
		for _, inv := range []string{id, cid} {
			eventsOnce(t, q, inv)
		}
		if st.Tasks["plan"].Attempts != 1 || st.Tasks["go"].Attempts != 1 || child.Tasks["first"].Attempts != 1 {
			t.Fatalf("invocation %s: plan ran %d times, go %d, the child's first %d", id,
				st.Tasks["plan"].Attempts, st.Tasks["go"].Attempts, child.Tasks["first"].Attempts)
		}
		if child.Tasks["slow"].Attempts > 1 {
			reruns++
		}
	}
	if reruns == 0 {
		t.Fatal("no task was interrupted by the kill: the test did not test a crash")
	}
	t.Logf("%d of %d dynamic children re-ran their interrupted task", reruns, n)
}
