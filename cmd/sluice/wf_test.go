package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// The workflow commands and apply, run as a user runs them: the real
// binary against a real daemon.

const pipeWorkflow = `apiVersion: sluice/v1
kind: Workflow
name: pipe
output: ${ tasks.b.output }
tasks:
  a: {run: echo, inputs: "${ input }"}
  b:
    run: echo
    inputs: { got: "${ tasks.a.output.n * 2 }" }
    requires: [a]
`

// writeFile writes a file in a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// invocation is what the tests read of `wf status -o json`.
type invocation struct {
	ID         string          `json:"id"`
	Workflow   string          `json:"workflow"`
	Revision   string          `json:"revision"`
	Status     string          `json:"status"`
	Owner      string          `json:"owner"`
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output"`
	Error      string          `json:"error"`
	FailedTask string          `json:"failed_task"`
	Created    time.Time       `json:"created"`
	Finished   *time.Time      `json:"finished"`
	Tasks      map[string]struct {
		Status   string          `json:"status"`
		Run      string          `json:"run"`
		Attempts int             `json:"attempts"`
		Output   json.RawMessage `json:"output"`
		Error    string          `json:"error"`
	} `json:"tasks"`
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func (p *daemonProc) status(t *testing.T, id string) invocation {
	t.Helper()
	var inv invocation
	out := p.mustSluice(t, "", "wf", "status", id, "-o", "json")
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("wf status -o json: %v\n%s", err, out)
	}
	return inv
}

// waitStatus polls `wf status` until the invocation has the status.
func (p *daemonProc) waitStatus(t *testing.T, id, status string) invocation {
	t.Helper()
	var inv invocation
	testutil.Eventually(t, 20*time.Second, "invocation "+id+" to be "+status, func() bool {
		inv = p.status(t, id)
		return inv.Status == status
	})
	return inv
}

// apiCall makes a raw API request and returns the status and the error
// code of the body.
func apiCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Code string `json:"code"`
	}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Code
}

func TestWfCLI(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	p.mustSluice(t, "", "fn", "deploy", "go", testutil.WasmPath(t, "goguest"))

	// create: a version, then the same definition again changes nothing
	file := writeFile(t, "pipe.yaml", pipeWorkflow)
	if out := p.mustSluice(t, "", "wf", "create", "pipe", "-f", file); !strings.HasPrefix(out, "created workflow pipe version 1 (revision ") {
		t.Fatalf("wf create: %q", out)
	}
	if out := p.mustSluice(t, "", "wf", "create", "pipe", "-f", file); out != "workflow pipe unchanged (version 1)\n" {
		t.Fatalf("wf create again: %q", out)
	}
	if out := p.mustSluice(t, pipeWorkflow, "wf", "create", "pipe", "-f", "-"); out != "workflow pipe unchanged (version 1)\n" {
		t.Fatalf("wf create from stdin: %q", out)
	}
	r := p.sluice(t, "", "wf", "create", "other", "-f", file)
	if r.code != 1 || !strings.Contains(r.stderr, `names workflow "pipe", not "other"`) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("wf create under another name: %+v", r)
	}
	bad := writeFile(t, "bad.yaml", strings.Replace(pipeWorkflow, "requires: [a]", "requires: [nope]", 1))
	r = p.sluice(t, "", "wf", "create", "pipe", "-f", bad)
	if r.code != 1 || !strings.Contains(r.stderr, `workflow "pipe"`) || !strings.Contains(r.stderr, `line `) || !strings.Contains(r.stderr, `"nope"`) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("wf create of an invalid definition: %+v", r)
	}
	if code, ecode := apiCall(t, http.MethodPut, p.server+"/v1/workflows/pipe", "apiVersion: sluice/v1\nkind: Workflow\nname: pipe\ntasks: {a: {run: missing}}\n"); code != 400 || ecode != "invalid_workflow" {
		t.Fatalf("PUT of a workflow running a function that is not deployed: %d %s", code, ecode)
	}
	for _, args := range [][]string{{"wf", "create", "pipe"}, {"wf", "invocations", "a", "b"}, {"wf", "status"}, {"wf", "frob"}} {
		if r := p.sluice(t, "", args...); r.code != 2 || !strings.HasPrefix(r.stderr, "sluice: ") {
			t.Fatalf("sluice %v: %+v", args, r)
		}
	}

	// list and get
	if out := p.mustSluice(t, "", "wf", "list"); !regexp.MustCompile(`(?m)^pipe\s+1\s+[0-9a-f]{12}\s+-\s`).MatchString(out) {
		t.Fatalf("wf list:\n%s", out)
	}
	if out := p.mustSluice(t, "", "wf", "get", "pipe"); out != pipeWorkflow {
		t.Fatalf("wf get prints the source:\n%s", out)
	}
	var view struct {
		Name, Revision, Source string
		Version                int
	}
	if err := json.Unmarshal([]byte(p.mustSluice(t, "", "wf", "get", "pipe", "-o", "json")), &view); err != nil ||
		view.Name != "pipe" || view.Version != 1 || len(view.Revision) != 64 || view.Source != pipeWorkflow {
		t.Fatalf("wf get -o json: %+v %v", view, err)
	}

	// invoke --wait: the output's bytes, and only them, on stdout
	if r := p.sluice(t, "", "wf", "invoke", "pipe", "--data", `{"n": 3}`, "--wait"); r.code != 0 || r.stdout != `{"got":6}` || r.stderr != "" {
		t.Fatalf("wf invoke --wait: %+v", r)
	}
	if r := p.sluice(t, `{"n": 4}`, "wf", "invoke", "pipe", "--wait"); r.stdout != `{"got":8}` {
		t.Fatalf("wf invoke --wait from stdin: %+v", r)
	}

	// invoke: the id alone; status, events
	id := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "pipe", "--data", `{"n": 5}`))
	if !regexp.MustCompile(`^[A-Za-z0-9]+$`).MatchString(id) {
		t.Fatalf("wf invoke printed %q, want the invocation id alone", id)
	}
	inv := p.waitStatus(t, id, "succeeded")
	if inv.ID != id || inv.Workflow != "pipe" || inv.Revision != view.Revision || compact(inv.Output) != `{"got":10}` ||
		compact(inv.Input) != `{"n":5}` || inv.Created.IsZero() || inv.Finished == nil || inv.Finished.Before(inv.Created) {
		t.Fatalf("wf status -o json: %+v (input %s, output %s)", inv, inv.Input, inv.Output)
	}
	if a, b := inv.Tasks["a"], inv.Tasks["b"]; a.Status != "succeeded" || a.Run != "echo" || a.Attempts != 1 ||
		b.Status != "succeeded" || compact(b.Output) != `{"got":10}` || len(inv.Tasks) != 2 {
		t.Fatalf("wf status -o json tasks: %+v", inv.Tasks)
	}
	out := p.mustSluice(t, "", "wf", "status", id)
	for _, want := range []string{`id:\s+` + id, `workflow:\s+pipe \(revision ` + view.Revision[:12] + `\)`, `status:\s+succeeded`, `output:\s+\{"got":10\}`,
		`TASK\s+STATUS\s+RUN\s+VERSION\s+ATTEMPTS\s+ERROR\na\s+succeeded\s+echo\s+1\s+1\s+-\nb\s+succeeded\s+echo\s+1\s+1\s+-`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Fatalf("wf status has no line %s:\n%s", want, out)
		}
	}
	out = p.mustSluice(t, "", "wf", "events", id)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.Contains(lines[0], "InvocationCreated") || !strings.Contains(lines[len(lines)-1], "InvocationSucceeded") {
		t.Fatalf("wf events: first and last:\n%s", out)
	}
	for _, want := range []string{"TaskScheduled  a", "TaskStarted  a", "TaskSucceeded  a", "TaskSucceeded  b", "workflow=pipe"} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Fatalf("wf events has no %q:\n%s", want, out)
		}
	}
	var evs []struct {
		Type, Inv, Task string
	}
	if err := json.Unmarshal([]byte(p.mustSluice(t, "", "wf", "events", id, "-o", "json")), &evs); err != nil || len(evs) != len(lines) {
		t.Fatalf("wf events -o json: %d events, %d lines, %v", len(evs), len(lines), err)
	}
	for _, ev := range evs {
		if ev.Inv != id || ev.Type == "" {
			t.Fatalf("wf events -o json: %+v", ev)
		}
	}

	// a failure: exit 1, nothing on stdout, the task and its error on stderr
	fails := writeFile(t, "fails.yaml", `apiVersion: sluice/v1
kind: Workflow
name: fails
tasks:
  ok: {run: echo, inputs: fine}
  boom: {run: go, inputs: error, requires: [ok]}
`)
	p.mustSluice(t, "", "wf", "create", "fails", "-f", fails)
	r = p.sluice(t, "", "wf", "invoke", "fails", "--wait")
	m := regexp.MustCompile(`^sluice: invocation (\S+) failed: task boom: .*the order has no items.*\n$`).FindStringSubmatch(r.stderr)
	if r.code != 1 || r.stdout != "" || m == nil {
		t.Fatalf("wf invoke --wait of a failing workflow: %+v", r)
	}
	failed := p.status(t, m[1])
	if failed.Status != "failed" || failed.FailedTask != "boom" || !strings.Contains(failed.Error, "the order has no items") ||
		failed.Tasks["boom"].Status != "failed" || failed.Tasks["ok"].Status != "succeeded" {
		t.Fatalf("status of the failed invocation: %+v", failed)
	}
	if out := p.mustSluice(t, "", "wf", "events", m[1]); !strings.Contains(out, "TaskFailed") || !strings.Contains(out, "InvocationFailed") {
		t.Fatalf("events of the failed invocation:\n%s", out)
	}
	if out := p.mustSluice(t, "", "wf", "status", m[1]); !regexp.MustCompile(`(?m)^failed task:\s+boom$`).MatchString(out) || !regexp.MustCompile(`(?m)^boom\s+failed\s+go\s+1\s+.*the order has no items`).MatchString(out) {
		t.Fatalf("wf status of the failed invocation:\n%s", out)
	}

	// idempotent invocations
	for range 2 {
		if out := p.mustSluice(t, "", "wf", "invoke", "pipe", "--id", "order-42", "--data", `{"n": 1}`); out != "order-42\n" {
			t.Fatalf("wf invoke --id: %q", out)
		}
	}

	// cancel a sleeping workflow
	nap := writeFile(t, "nap.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: nap\ntasks:\n  zz: {run: sleep, inputs: 10m}\n")
	p.mustSluice(t, "", "wf", "create", "nap", "-f", nap)
	napID := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "nap"))
	testutil.Eventually(t, 10*time.Second, "the sleep to start", func() bool {
		return p.status(t, napID).Tasks["zz"].Status == "running"
	})
	if out := p.mustSluice(t, "", "wf", "cancel", napID); out != "invocation "+napID+": canceled\n" {
		t.Fatalf("wf cancel: %q", out)
	}
	if st := p.waitStatus(t, napID, "canceled"); st.Finished == nil {
		t.Fatalf("canceled invocation: %+v", st)
	}
	if out := p.mustSluice(t, "", "wf", "events", napID); !strings.Contains(out, "InvocationCanceled") {
		t.Fatalf("events of the canceled invocation:\n%s", out)
	}
	r = p.sluice(t, "", "wf", "cancel", napID)
	if r.code != 1 || !strings.Contains(r.stderr, "has finished") {
		t.Fatalf("wf cancel of a finished invocation: %+v", r)
	}
	if code, ecode := apiCall(t, http.MethodPost, p.server+"/v1/invocations/"+napID+"/cancel", ""); code != 409 || ecode != "conflict" {
		t.Fatalf("cancel of a finished invocation: %d %s", code, ecode)
	}
	r = p.sluice(t, "", "wf", "status", "nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, `no invocation "nosuch"`) {
		t.Fatalf("wf status of an unknown id: %+v", r)
	}
	if code, ecode := apiCall(t, http.MethodGet, p.server+"/v1/invocations/nosuch", ""); code != 404 || ecode != "not_found" {
		t.Fatalf("GET of an unknown invocation: %d %s", code, ecode)
	}
	r = p.sluice(t, "", "wf", "invoke", "nosuch", "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, `no workflow "nosuch"`) {
		t.Fatalf("wf invoke of an unknown workflow: %+v", r)
	}

	// invocations, newest first
	out = p.mustSluice(t, "", "wf", "invocations")
	if !regexp.MustCompile(`^ID\s+WORKFLOW\s+STATUS\s+PARENT\s+CREATED\s+FINISHED\n`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^`+id+`\s+pipe\s+succeeded\s+-\s+\d+s ago\s+\d+s ago$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^`+m[1]+`\s+fails\s+failed\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^`+napID+`\s+nap\s+canceled\s`).MatchString(out) ||
		strings.Count(out, "order-42") != 1 {
		t.Fatalf("wf invocations:\n%s", out)
	}
	out = p.mustSluice(t, "", "wf", "invocations", "pipe")
	if !strings.Contains(out, id) || strings.Contains(out, "fails") || strings.Contains(out, "nap") {
		t.Fatalf("wf invocations pipe:\n%s", out)
	}
	var list []invocation
	if err := json.Unmarshal([]byte(p.mustSluice(t, "", "wf", "invocations", "fails", "-o", "json")), &list); err != nil ||
		len(list) != 1 || list[0].ID != m[1] || list[0].Status != "failed" {
		t.Fatalf("wf invocations fails -o json: %+v %v", list, err)
	}

	// a trigger that runs a workflow
	out = p.mustSluice(t, "", "trigger", "create", "pipe-http", "--workflow", "pipe", "--http-path", "/pipe", "--method", "post")
	if out != "created trigger pipe-http: POST /fn/pipe -> workflow pipe\n" {
		t.Fatalf("trigger create --workflow: %q", out)
	}
	if out := p.mustSluice(t, "", "trigger", "list"); !regexp.MustCompile(`(?m)^pipe-http\s+http\s+workflow pipe\s+POST /fn/pipe`).MatchString(out) {
		t.Fatalf("trigger list:\n%s", out)
	}
	if out := p.mustSluice(t, "", "trigger", "get", "pipe-http"); !strings.Contains(out, "workflow:  pipe\n") {
		t.Fatalf("trigger get:\n%s", out)
	}
	if out := p.mustSluice(t, "", "wf", "list"); !regexp.MustCompile(`(?m)^pipe\s+1\s+\S+\s+pipe-http\s`).MatchString(out) {
		t.Fatalf("wf list shows no trigger:\n%s", out)
	}
	resp, err := http.Post(p.server+"/fn/pipe", "application/json", strings.NewReader(`{"n": 21}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"got":42}` {
		t.Fatalf("HTTP trigger of a workflow: %d %q", resp.StatusCode, body)
	}
	for _, args := range [][]string{
		{"trigger", "create", "both", "--fn", "echo", "--workflow", "pipe", "--http-path", "/both"},
		{"trigger", "create", "none", "--http-path", "/none"},
	} {
		if r := p.sluice(t, "", args...); r.code != 2 || !strings.Contains(r.stderr, "--workflow") {
			t.Fatalf("sluice %v: %+v", args, r)
		}
	}

	// delete: not while a trigger uses it
	r = p.sluice(t, "", "wf", "delete", "pipe")
	if r.code != 1 || !strings.Contains(r.stderr, "pipe-http") {
		t.Fatalf("wf delete of a workflow a trigger uses: %+v", r)
	}
	p.mustSluice(t, "", "trigger", "delete", "pipe-http")
	if out := p.mustSluice(t, "", "wf", "delete", "pipe"); out != "deleted workflow pipe\n" {
		t.Fatalf("wf delete: %q", out)
	}
	if r := p.sluice(t, "", "wf", "get", "pipe"); r.code != 1 || !strings.Contains(r.stderr, `no workflow "pipe"`) {
		t.Fatalf("wf get after delete: %+v", r)
	}
	// the invocations of a deleted workflow are still there
	if st := p.status(t, id); st.Status != "succeeded" {
		t.Fatalf("invocation of a deleted workflow: %+v", st)
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	testutil.WasmPath(t, "echo-wat")
	testutil.WasmPath(t, "upper-go")
	p := startDaemon(t, t.TempDir())
	spec := filepath.Join(testutil.Root(t), "examples", "hello-workflow", "spec.yaml")

	const created = "function echo: deployed version 1\nfunction upper: deployed version 1\nworkflow hello: created version 1\ntrigger hello-http: created\n"
	if out := p.mustSluice(t, "", "apply", "-f", spec); out != created {
		t.Fatalf("apply:\n%s", out)
	}
	const unchanged = "function echo: unchanged\nfunction upper: unchanged\nworkflow hello: unchanged\ntrigger hello-http: unchanged\n"
	if out := p.mustSluice(t, "", "apply", "-f", spec); out != unchanged {
		t.Fatalf("apply again:\n%s", out)
	}
	if out := p.mustSluice(t, "", "fn", "list"); strings.Count(out, "\n") != 3 || !regexp.MustCompile(`(?m)^upper\s+1\s+reactor\s+\S+ \S+\s+64 MiB\s+5s\s`).MatchString(out) {
		t.Fatalf("fn list after apply:\n%s", out)
	}
	if out := p.mustSluice(t, "", "wf", "invoke", "hello", "--data", `{"name": "Ada"}`, "--wait"); out != "HELLO, ADA!" {
		t.Fatalf("the applied workflow: %q", out)
	}
	resp, err := http.Post(p.server+"/fn/hello", "application/json", strings.NewReader(`{"name": "Grace"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HELLO, GRACE!" {
		t.Fatalf("the applied trigger: %d %q", resp.StatusCode, body)
	}

	// from stdin, paths relative to the working directory: a changed
	// function, workflow and trigger, the rest left alone
	src, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	wasmDir := filepath.Join(testutil.Root(t), "build", "wasm") + string(filepath.Separator)
	changed := strings.NewReplacer("../../build/wasm/", wasmDir, "timeout: 5s", "timeout: 6s",
		`"Hello, ${ input.name }!"`, `"Bonjour, ${ input.name }!"`, "method: POST", "method: PUT").Replace(string(src))
	want := "function echo: unchanged\nfunction upper: deployed version 2 (timeout 5s → 6s)\nworkflow hello: created version 2 (tasks.greet)\ntrigger hello-http: replaced (method POST → PUT)\n"
	if out := p.mustSluice(t, changed, "apply", "-f", "-"); out != want {
		t.Fatalf("apply of a changed spec:\n%s", out)
	}
	if out := p.mustSluice(t, changed, "apply", "-f", "-"); out != unchanged {
		t.Fatalf("apply of the changed spec again:\n%s", out)
	}
	if out := p.mustSluice(t, "", "trigger", "list"); !strings.Contains(out, "PUT /fn/hello") {
		t.Fatalf("the replaced trigger:\n%s", out)
	}
	if out := p.mustSluice(t, "", "wf", "invoke", "hello", "--data", `{"name": "Ada"}`, "--wait"); out != "BONJOUR, ADA!" {
		t.Fatalf("the changed workflow: %q", out)
	}

	// a mistake anywhere changes nothing: the error names the document
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"bad kind", "apiVersion: sluice/v1\nkind: Function\nname: more\npath: " + wasmDir + "echo-wat.wasm\n---\napiVersion: sluice/v1\nkind: Job\nname: j\n",
			`sluice: stdin: document 2: kind "Job" is unknown: use Function, Workflow or Trigger` + "\n"},
		{"invalid workflow", "apiVersion: sluice/v1\nkind: Function\nname: more\npath: " + wasmDir + "echo-wat.wasm\n---\napiVersion: sluice/v1\nkind: Workflow\nname: w\ntasks:\n  a: {run: nosuchfn}\n",
			`sluice: stdin: document 2 (Workflow "w"): workflow "w": line 10: `},
		{"missing module", "apiVersion: sluice/v1\nkind: Function\nname: more\npath: " + wasmDir + "nosuch.wasm\n",
			`sluice: stdin: document 1 (Function "more"): read module: `},
		{"unknown target", "apiVersion: sluice/v1\nkind: Function\nname: more\npath: " + wasmDir + "echo-wat.wasm\n---\napiVersion: sluice/v1\nkind: Trigger\nname: t\nworkflow: nosuch\ncron: '@every 1h'\n",
			`sluice: stdin: document 2 (Trigger "t"): no workflow "nosuch": create it or add a Workflow document` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := p.sluice(t, tc.spec, "apply", "-f", "-")
			if r.code == 0 || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("apply: %+v\nwant stderr %q", r, tc.want)
			}
			if r := p.sluice(t, "", "fn", "get", "more"); r.code != 1 {
				t.Fatalf("function of a spec with a mistake was deployed: %+v", r)
			}
		})
	}
	// a mistake the daemon finds stops there, naming the document
	taken := "apiVersion: sluice/v1\nkind: Trigger\nname: other\nfn: echo\nhttp_path: /hello\nmethod: PUT\n"
	r := p.sluice(t, taken, "apply", "-f", "-")
	if r.code != 1 || !strings.HasPrefix(r.stderr, `sluice: stdin: document 1 (Trigger "other"): `) || !strings.Contains(r.stderr, "taken by trigger \"hello-http\"") {
		t.Fatalf("apply of a trigger whose route is taken: %+v", r)
	}
	if r := p.sluice(t, "", "apply"); r.code != 2 {
		t.Fatalf("apply without -f: %+v", r)
	}

	// --dry-run says what would change, field by field, and changes nothing
	want = "function echo: unchanged\nfunction upper: would change: timeout 6s → 5s\nworkflow hello: would change: tasks.greet\n" +
		"trigger hello-http: would be replaced: method PUT → POST\ndry run: 0 to create, 3 to change, 0 to delete, 1 unchanged; nothing was changed\n"
	if out := p.mustSluice(t, "", "apply", "-f", spec, "--dry-run"); out != want {
		t.Fatalf("apply --dry-run:\n%s", out)
	}
	if out := p.mustSluice(t, changed, "apply", "-f", "-"); out != unchanged {
		t.Fatalf("the dry run changed something:\n%s", out)
	}

	// --prune deletes what the spec does not list, of the kinds it lists
	p.mustSluice(t, "", "fn", "deploy", "extra", wasmDir+"echo-wat.wasm")
	p.mustSluice(t, "", "trigger", "create", "extra-http", "--fn", "extra", "--http-path", "/extra")
	p.mustSluice(t, "", "wf", "create", "other", "-f", writeFile(t, "other.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: other\ntasks: {a: {run: extra}}\n"))
	// a spec of functions alone keeps every trigger and workflow, so
	// "extra", which they use, cannot go: refused, nothing changed
	functionsOnly := strings.SplitN(changed, "\n---\n", 3)
	fnSpec := functionsOnly[0] + "\n---\n" + functionsOnly[1] + "\n"
	for _, dry := range []bool{true, false} {
		args := []string{"apply", "-f", "-", "--prune"}
		if dry {
			args = append(args, "--dry-run")
		}
		r := p.sluice(t, fnSpec, args...)
		if r.code != 1 || !strings.Contains(r.stderr, `--prune would delete what stays in use: function "extra" is used by trigger extra-http, workflow other;`) {
			t.Fatalf("apply %v of a function the spec drops but a trigger uses: %+v", args[3:], r)
		}
		if dry && !strings.Contains(r.stdout, "function extra: would be deleted\n") || !dry && r.stdout != "" {
			t.Fatalf("apply %v printed:\n%s", args[3:], r.stdout)
		}
	}
	p.mustSluice(t, "", "fn", "get", "extra")
	// the whole spec: the trigger, the workflow, then the function go
	want = "function echo: unchanged\nfunction upper: unchanged\nworkflow hello: unchanged\ntrigger hello-http: unchanged\n" +
		"trigger extra-http: would be deleted\nworkflow other: would be deleted\nfunction extra: would be deleted\n" +
		"dry run: 0 to create, 0 to change, 3 to delete, 4 unchanged; nothing was changed\n"
	if out := p.mustSluice(t, changed, "apply", "-f", "-", "--prune", "--dry-run"); out != want {
		t.Fatalf("apply --prune --dry-run:\n%s", out)
	}
	var report struct {
		DryRun  bool `json:"dry_run"`
		Changes []struct {
			Kind, Name, Action string
			Fields             []string
		} `json:"changes"`
	}
	if err := json.Unmarshal([]byte(p.mustSluice(t, changed, "apply", "-f", "-", "--prune", "--dry-run", "-o", "json")), &report); err != nil ||
		!report.DryRun || len(report.Changes) != 7 || report.Changes[4].Kind != "trigger" || report.Changes[4].Action != "delete" {
		t.Fatalf("apply --prune --dry-run -o json: %+v %v", report, err)
	}
	want = unchanged + "trigger extra-http: deleted\nworkflow other: deleted\nfunction extra: deleted\n"
	if out := p.mustSluice(t, changed, "apply", "-f", "-", "--prune"); out != want {
		t.Fatalf("apply --prune:\n%s", out)
	}
	for _, args := range [][]string{{"fn", "get", "extra"}, {"wf", "get", "other"}, {"trigger", "get", "extra-http"}} {
		if r := p.sluice(t, "", args...); r.code != 1 {
			t.Fatalf("sluice %v after the prune: %+v", args, r)
		}
	}
	if out := p.mustSluice(t, changed, "apply", "-f", "-", "--prune"); out != unchanged {
		t.Fatalf("apply --prune again:\n%s", out)
	}
}

// TestWfValuesKeepTheirBytes: a workflow whose function outputs all 256
// byte values, or JSON with numbers beyond float64 and odd spacing:
// wf invoke --wait prints the exact bytes, wf status describes a binary
// value rather than printing it, -o json gives its form, and the API
// answers the exact input and output with their Content-Type.
func TestWfValuesKeepTheirBytes(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	p.mustSluice(t, "apiVersion: sluice/v1\nkind: Workflow\nname: chain\ntasks:\n  a: {run: echo, inputs: '${ input }'}\n"+
		"  b: {run: echo, requires: [a], inputs: '${ tasks.a.output }'}\n", "wf", "create", "chain", "-f", "-")
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	r := p.sluice(t, string(all), "wf", "invoke", "chain", "--raw", "--wait")
	if r.code != 0 || r.stdout != string(all) || r.stderr != "" {
		t.Fatalf("wf invoke --wait of 256 byte values: exit %d, %d bytes out %q, stderr %q", r.code, len(r.stdout), r.stdout, r.stderr)
	}
	const odd = ` {"n": 12345678901234567890,  "f": 1.50, "e": 1e3, "z": null} `
	if r := p.sluice(t, odd, "wf", "invoke", "chain", "--wait"); r.code != 0 || r.stdout != odd {
		t.Fatalf("wf invoke --wait of JSON: %+v", r)
	}

	id := strings.TrimSpace(p.mustSluice(t, string(all), "wf", "invoke", "chain", "--raw"))
	inv := p.waitStatus(t, id, "succeeded")
	var form struct {
		Output     []byte `json:"output"` // base64
		OutputForm string `json:"output_form"`
		InputForm  string `json:"input_form"`
	}
	if err := json.Unmarshal([]byte(p.mustSluice(t, "", "wf", "status", id, "-o", "json")), &form); err != nil ||
		form.OutputForm != "base64" || form.InputForm != "base64" || string(form.Output) != string(all) {
		t.Fatalf("wf status -o json: %+v %v (%+v)", form, err, inv)
	}
	out := p.mustSluice(t, "", "wf", "status", id)
	if !regexp.MustCompile(`(?m)^output:\s+256 bytes, not text: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f …$`).MatchString(out) {
		t.Fatalf("wf status of a binary output:\n%s", out)
	}
	for _, which := range []string{"input", "output"} {
		resp, err := http.Get(p.server + "/v1/invocations/" + id + "/" + which)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != string(all) || resp.Header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("GET %s: %d %q %q", which, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}

	text := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "chain", "--raw", "--data", "line one\nline two"))
	p.waitStatus(t, text, "succeeded")
	if out := p.mustSluice(t, "", "wf", "status", text); !regexp.MustCompile(`(?m)^output:\s+line one\\nline two$`).MatchString(out) {
		t.Fatalf("wf status of a text output:\n%s", out)
	}
	resp, err := http.Get(p.server + "/v1/invocations/" + text + "/output")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type of a text output: %q", ct)
	}

	// a failed invocation has no output: 409, saying why
	p.mustSluice(t, "apiVersion: sluice/v1\nkind: Workflow\nname: nope\ntasks:\n  a: {run: fail, inputs: no}\n", "wf", "create", "nope", "-f", "-")
	failed := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "nope"))
	p.waitStatus(t, failed, "failed")
	if code, ecode := apiCall(t, http.MethodGet, p.server+"/v1/invocations/"+failed+"/output", ""); code != http.StatusConflict || ecode != "conflict" {
		t.Fatalf("GET output of a failed invocation: %d %s", code, ecode)
	}
}
