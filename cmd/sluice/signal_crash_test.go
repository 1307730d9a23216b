package main

import (
	"bytes"
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

const signalCrashWorkflow = `apiVersion: sluice/v1
kind: Workflow
name: approval
output: '${ [tasks.last.output.n, tasks.early.output, tasks.late.output] }'
tasks:
  first: { run: work, inputs: { op: double, n: "${ input }" } }
  early: { run: wait, requires: [first], inputs: { signal: early } }
  late:  { run: wait, requires: [first], inputs: { signal: late } }
  last:  { run: work, requires: [early, late], inputs: { op: add, n: "${ tasks.first.output.n }" } }
`

// TestKill9WhileWaitingForSignals kills the daemon while invocations wait
// for signals, one of them sent just before the kill, restarts it on the
// same data dir, sends the other, and checks that every invocation
// completes with both signals' data and that no task whose success was
// recorded ran again.
func TestKill9WhileWaitingForSignals(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startDaemon(t, data)
	p.mustSluice(t, "", "fn", "deploy", "work", testutil.WasmPath(t, "wfguest"))
	def := filepath.Join(t.TempDir(), "approval.yaml")
	if err := os.WriteFile(def, []byte(signalCrashWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	p.mustSluice(t, "", "wf", "create", "approval", "-f", def)
	status := func(p *daemonProc, id string) engine.Invocation {
		var inv engine.Invocation
		if err := json.Unmarshal([]byte(p.mustSluice(t, "", "wf", "status", id, "-o", "json")), &inv); err != nil {
			t.Fatal(err)
		}
		return inv
	}
	const n = 4
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "approval", "--data", fmt.Sprint(i))))
	}
	testutil.Eventually(t, 30*time.Second, "every invocation to wait", func() bool {
		for _, id := range ids {
			st := status(p, id)
			if st.Tasks["late"] == nil || st.Tasks["late"].Waiting != "late" {
				return false
			}
		}
		return true
	})
	if out := p.mustSluice(t, "", "wf", "status", ids[0]); !strings.Contains(out, "waiting for signal late") {
		t.Fatalf("wf status does not show the wait:\n%s", out)
	}
	for i, id := range ids {
		p.mustSluice(t, "", "wf", "signal", id, "early", "--data", fmt.Sprintf(`{"before": %d}`, i))
	}
	q := restartAfterKill9(t, p, data)
	for i, id := range ids {
		q.mustSluice(t, "", "wf", "signal", id, "late", "--raw", "--data", fmt.Sprintf("after %d", i))
	}
	for i, id := range ids {
		testutil.Eventually(t, 60*time.Second, "invocation "+id+" to finish", func() bool {
			return status(q, id).Status != engine.StatusRunning
		})
		st := status(q, id)
		want := fmt.Sprintf(`[%d,{"before":%d},"after %d"]`, 2*i+1, i, i)
		var out bytes.Buffer
		_ = json.Compact(&out, st.Output)
		if st.Status != engine.StatusSucceeded || out.String() != want {
			t.Fatalf("invocation %s: %s, output %s (want %s): %s", id, st.Status, out.String(), want, st.Error)
		}
		events, _ := eventsOnce(t, q, id)
		signals := 0
		for _, ev := range events {
			if ev.Type == engine.EventSignalSent {
				signals++
			}
		}
		if signals != 2 || st.Tasks["first"].Attempts != 1 || st.Tasks["last"].Attempts != 1 {
			t.Fatalf("invocation %s: %d signals, first ran %d times, last %d", id, signals, st.Tasks["first"].Attempts, st.Tasks["last"].Attempts)
		}
	}
}
