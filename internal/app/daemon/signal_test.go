package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/testutil"
)

// TestSignalsThroughTheAPI: an invocation run by daemon a waits for a
// signal that daemon b's API accepts; the signal's data reaches the tasks
// after the wait. A signal sent before its wait starts is kept for it.
// The API's refusals: an unknown invocation (404), one that has ended
// (409, saying its status), a bad name (400), data too large (413), and
// an Idempotency-Key used for another input (409).
func TestSignalsThroughTheAPI(t *testing.T) {
	t.Parallel()
	a, ca := start(t, testOptions(t))
	ob := testOptions(t)
	ob.NATSURL = a.NATSURL()
	_, cb := start(t, ob)
	deploy(t, ca, "work", "wfguest", nil)
	if _, _, err := ca.CreateWorkflow(ctx, "approval", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: approval
output: ${ [tasks.after.output.n, tasks.note.output] }
tasks:
  ok: { run: wait, inputs: { signal: approve } }
  note: { run: wait, inputs: { signal: note } }
  after: { run: work, requires: [ok], inputs: { op: add, n: "${ tasks.ok.output.n }" } }
`)); err != nil {
		t.Fatal(err)
	}
	inv, err := ca.InvokeWorkflow(ctx, "approval", []byte(`{"order": 7}`), client.InvokeOptions{IdempotencyKey: "order-7"})
	if err != nil {
		t.Fatal(err)
	}
	// before the wait for note starts? it starts at once: send it early
	// anyway; either way the wait takes it
	if _, err := ca.SignalInvocation(ctx, inv.ID, "note", []byte("looks good"), client.SignalOptions{Raw: true}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "daemon b to see the wait", func() bool {
		got, err := cb.Invocation(ctx, inv.ID)
		return err == nil && got.Tasks["ok"] != nil && got.Tasks["ok"].Waiting == "approve"
	})
	v, err := cb.SignalInvocation(ctx, inv.ID, "approve", []byte(`{"n": 41}`), client.SignalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Invocation != inv.ID || v.Signal != "approve" || v.Bytes != 9 {
		t.Fatalf("signal view: %+v", v)
	}
	var done *engine.Invocation
	testutil.Eventually(t, 20*time.Second, "the invocation to end", func() bool {
		done, err = ca.Invocation(ctx, inv.ID)
		return err == nil && done.Status != engine.StatusRunning
	})
	if done.Status != engine.StatusSucceeded || string(done.Output) != `[42,"looks good"]` {
		t.Fatalf("status %s, output %s, error %s", done.Status, done.Output, done.Error)
	}
	events, err := cb.Events(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, ev := range events {
		if ev.Type == engine.EventSignalSent {
			lines = append(lines, ev.String())
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "signal=note") || !strings.Contains(lines[1], "signal=approve") {
		t.Fatalf("signal events: %q", lines)
	}

	_, err = cb.SignalInvocation(ctx, inv.ID, "approve", nil, client.SignalOptions{})
	apiError(t, err, 409, "conflict", "has ended (succeeded)")
	_, err = cb.SignalInvocation(ctx, "nope", "approve", nil, client.SignalOptions{})
	apiError(t, err, 404, "not_found", `no invocation "nope"`)
	_, err = cb.SignalInvocation(ctx, inv.ID, "no!", nil, client.SignalOptions{})
	apiError(t, err, 400, "invalid_argument", `signal name "no!"`)
	_, err = cb.SignalInvocation(ctx, inv.ID, "approve", []byte(strings.Repeat("x", engine.MaxData+1)), client.SignalOptions{Raw: true})
	apiError(t, err, 413, "input_too_large", "signal data")
	_, err = cb.InvokeWorkflow(ctx, "approval", []byte(`{"order": 8}`), client.InvokeOptions{IdempotencyKey: "order-7"})
	apiError(t, err, 409, "conflict", "invocation order-7 exists (created ", "with another input")
	again, err := cb.InvokeWorkflow(ctx, "approval", []byte(`{"order": 7}`), client.InvokeOptions{IdempotencyKey: "order-7"})
	if err != nil || again.ID != "order-7" {
		t.Fatalf("the same key and input: %v %+v", err, again)
	}
}

// TestRedriveThroughTheAPI: a function task fails; once the function is
// fixed (deployed again) the invocation is redriven through another
// daemon's API, which runs only what failed and what came after. A
// canceled invocation is redriven too; a running or succeeded one, or an
// unknown one, is refused.
func TestRedriveThroughTheAPI(t *testing.T) {
	t.Parallel()
	a, ca := start(t, testOptions(t))
	ob := testOptions(t)
	ob.NATSURL = a.NATSURL()
	b, cb := start(t, ob)
	deploy(t, ca, "work", "wfguest", nil)
	deploy(t, ca, "step", "trap", nil)
	if _, _, err := ca.CreateWorkflow(ctx, "chain", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: chain
output: ${ tasks.c.output.n }
tasks:
  a: { run: work, inputs: { op: add, n: 1 } }
  b: { run: step, requires: [a], inputs: "${ tasks.a.output }" }
  c: { run: work, requires: [b], inputs: { op: add, n: "${ tasks.b.output.n }" } }
`)); err != nil {
		t.Fatal(err)
	}
	failed, err := ca.InvokeWorkflow(ctx, "chain", nil, client.InvokeOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	if failed.Status != engine.StatusFailed || failed.FailedTask != "b" {
		t.Fatalf("status %s, failed task %q: %s", failed.Status, failed.FailedTask, failed.Error)
	}
	_, err = cb.RedriveInvocation(ctx, "nope")
	apiError(t, err, 404, "not_found", `no invocation "nope"`)

	deploy(t, ca, "step", "echo-wat", nil) // the fix
	testutil.Eventually(t, 20*time.Second, "daemon b to know the fix", func() bool {
		f, err := cb.Function(ctx, "step")
		return err == nil && f.Version == 2
	})
	testutil.Eventually(t, 20*time.Second, "daemon b to see the failure", func() bool {
		got, err := cb.Invocation(ctx, failed.ID)
		return err == nil && got.Status == engine.StatusFailed
	})
	inv, err := cb.RedriveInvocation(ctx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Owner != b.Node() || inv.Redrives != 1 {
		t.Fatalf("redriven: owner %s (b is %s), redrives %d", inv.Owner, b.Node(), inv.Redrives)
	}
	var done *engine.Invocation
	// read from daemon a, which may not have read the redrive yet: its
	// status is then still the first failure's
	testutil.Eventually(t, 20*time.Second, "the invocation to end again", func() bool {
		done, err = ca.Invocation(ctx, failed.ID)
		return err == nil && done.Redrives == 1 && done.Status != engine.StatusRunning
	})
	if done.Status != engine.StatusSucceeded || string(done.Output) != "3" {
		t.Fatalf("status %s, output %s, error %s", done.Status, done.Output, done.Error)
	}
	events, err := ca.Events(ctx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]int{}
	redriven := ""
	for _, ev := range events {
		if ev.Type == engine.EventTaskStarted {
			starts[ev.Task]++
		}
		if ev.Type == engine.EventInvocationRedriven {
			redriven = ev.String()
		}
	}
	if starts["a"] != 1 || starts["b"] != 2 || starts["c"] != 1 || !strings.Contains(redriven, "by="+b.Node()) {
		t.Fatalf("TaskStarted per task %v; redrive %q", starts, redriven)
	}
	_, err = ca.RedriveInvocation(ctx, failed.ID)
	apiError(t, err, 409, "conflict", "has succeeded")

	if _, _, err := ca.CreateWorkflow(ctx, "held", []byte("apiVersion: sluice/v1\nkind: Workflow\nname: held\ntasks:\n  ok: { run: wait, inputs: { signal: go } }\n")); err != nil {
		t.Fatal(err)
	}
	held, err := ca.InvokeWorkflow(ctx, "held", nil, client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ca.RedriveInvocation(ctx, held.ID)
	apiError(t, err, 409, "conflict", "is running")
	if _, err := ca.CancelInvocation(ctx, held.ID); err != nil {
		t.Fatal(err)
	}
	if inv, err = ca.RedriveInvocation(ctx, held.ID); err != nil || inv.Status != engine.StatusRunning {
		t.Fatalf("redrive a canceled invocation: %v %+v", err, inv)
	}
	testutil.Eventually(t, 20*time.Second, "the wait to wait again", func() bool {
		got, err := ca.Invocation(ctx, held.ID)
		return err == nil && got.Tasks["ok"].Waiting == "go"
	})
	if _, err := ca.SignalInvocation(ctx, held.ID, "go", []byte(`"done"`), client.SignalOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the redriven invocation to succeed", func() bool {
		got, err := ca.Invocation(ctx, held.ID)
		return err == nil && got.Status == engine.StatusSucceeded && string(got.Output) == `"done"`
	})
}
