package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// TestHostileWorkflows gives the real daemon what ended it before: a
// definition with a self-referencing YAML alias (a stack overflow), an
// alias bomb, input nested deeper than the engine reads back, an
// expression doubling a string (out of memory, at every restart: the
// invocation is durable), a CPU-heavy expression (it held the engine's
// lock: every workflow stopped), a workflow whose foreach runs itself
// (10^16 invocations). Each is refused or fails visibly; the daemon keeps
// serving, and a restart on its data dir is ready.
func TestHostileWorkflows(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startDaemon(t, data)
	put := func(name, src string) (int, string) {
		return apiCall(t, http.MethodPut, p.server+"/v1/workflows/"+name, src)
	}
	serving := func() {
		t.Helper()
		if code, _ := apiCall(t, http.MethodGet, p.server+"/v1/workflows", ""); code != http.StatusOK {
			t.Fatalf("the daemon does not serve: %d", code)
		}
	}

	// A 91-byte definition whose alias contains itself; an alias bomb.
	alias := "apiVersion: sluice/v1\nkind: Workflow\nname: alias\ntasks:\n  a: {run: noop, inputs: &a [*a]}\n"
	if code, errCode := put("alias", alias); code != http.StatusBadRequest || errCode != "invalid_workflow" {
		t.Fatalf("alias definition: %d %s", code, errCode)
	}
	bomb := "apiVersion: sluice/v1\nkind: Workflow\nname: lol\ntasks:\n  a:\n    run: noop\n    inputs:\n      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i := 1; i < 9; i++ {
		bomb += fmt.Sprintf("      l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	if code, errCode := put("lol", bomb); code != http.StatusBadRequest || errCode != "invalid_workflow" {
		t.Fatalf("alias bomb: %d %s", code, errCode)
	}
	serving()

	// Input nested 10,000 levels: accepted, then unreadable in the log.
	if code, _ := put("same", "apiVersion: sluice/v1\nkind: Workflow\nname: same\ntasks:\n  a: {run: noop, inputs: '${ input }'}\n"); code != http.StatusCreated {
		t.Fatalf("create same: %d", code)
	}
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	if code, errCode := apiCall(t, http.MethodPost, p.server+"/v1/workflows/same/invoke", deep); code != http.StatusBadRequest || errCode != "invalid_argument" {
		t.Fatalf("deep input: %d %s", code, errCode)
	}
	serving()

	// A string doubled forever fails its invocation, naming the expression.
	p.mustSluice(t, "apiVersion: sluice/v1\nkind: Workflow\nname: doubling\ntasks:\n  grow: {run: noop, inputs: '${ reduce(1..64, #acc + #acc, \"sluice\") }'}\n",
		"wf", "create", "doubling", "-f", "-")
	r := p.sluice(t, "", "wf", "invoke", "doubling", "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, "task grow") || !strings.Contains(r.stderr, "reduce(1..64, #acc + #acc") || !strings.Contains(r.stderr, "32 MiB") {
		t.Fatalf("doubling: %+v", r)
	}
	doubled := strings.Fields(strings.TrimPrefix(r.stderr, "sluice: invocation "))[0]

	// A CPU-heavy expression (a regular expression over 200 KB, a hundred
	// thousand times) runs to its time limit while another workflow
	// completes.
	p.mustSluice(t, "apiVersion: sluice/v1\nkind: Workflow\nname: heavy\ntasks:\n  spin: {run: noop, inputs: '${ reduce(1..100000, #acc + (input.s matches \"^(a|b)*c$\" ? 1 : 0), 0) }'}\n",
		"wf", "create", "heavy", "-f", "-")
	p.mustSluice(t, "apiVersion: sluice/v1\nkind: Workflow\nname: light\ntasks:\n  a: {run: noop, inputs: '${ input.n + 1 }'}\n", "wf", "create", "light", "-f", "-")
	heavy := strings.TrimSpace(p.mustSluice(t, fmt.Sprintf(`{"s": %q}`, strings.Repeat("ab", 100000)), "wf", "invoke", "heavy"))
	if r := p.sluice(t, "", "wf", "invoke", "light", "--data", `{"n": 41}`, "--wait"); r.code != 0 || r.stdout != "42" {
		t.Fatalf("light while heavy runs: %+v", r)
	}
	light := p.status(t, strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "light", "--data", `{"n": 1}`)))
	spun := p.waitStatus(t, heavy, "failed")
	if !strings.Contains(spun.Error, "ran for more than") || !strings.Contains(spun.Error, "matches") {
		t.Fatalf("heavy: %q", spun.Error)
	}
	if light.Finished == nil || !light.Finished.Before(*spun.Finished) {
		t.Fatalf("the light workflow finished at %v, after the heavy one's end at %v", light.Finished, spun.Finished)
	}

	// A foreach that runs its own workflow stops at the limit of child
	// workflows running at once.
	p.mustSluice(t, "apiVersion: sluice/v1\nkind: Workflow\nname: fanout\ntasks:\n  each: {run: foreach, inputs: {foreach: '${ 1..10 }', do: {run: workflow, inputs: {workflow: fanout}}}}\n",
		"wf", "create", "fanout", "-f", "-")
	r = p.sluice(t, "", "wf", "invoke", "fanout", "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, "runs 1000 child workflows at once") {
		t.Fatalf("fan-out: %+v", r)
	}
	serving()

	// A restart on the same data dir is ready, and what failed stays failed.
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p = startDaemon(t, data)
	if st := p.status(t, doubled); st.Status != "failed" || !strings.Contains(st.Error, "32 MiB") {
		t.Fatalf("after a restart, the doubling invocation: %+v", st)
	}
	testutil.Eventually(t, 30*time.Second, "the fan-out's invocations to end", func() bool {
		return !strings.Contains(p.mustSluice(t, "", "wf", "invocations", "fanout"), "running")
	})
	if r := p.sluice(t, "", "wf", "invoke", "light", "--data", `{"n": 1}`, "--wait"); r.code != 0 || r.stdout != "2" {
		t.Fatalf("light after a restart: %+v", r)
	}
}
