package cli

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
)

const goodSpec = `# the hello example
apiVersion: sluice/v1
kind: Function
name: echo
path: ../../build/wasm/echo-wat.wasm
memory: 2MiB
timeout: 5s
concurrency: 4
max_input: 1MiB
env:
  GREETING: Hi
  N: 3
---
apiVersion: sluice/v1
kind: Function
name: abs
path: /opt/wasm/abs.wasm
abi: reactor
---
# a comment-only document is skipped
---

apiVersion: sluice/v1
kind: Workflow
name: hello
output: ${ tasks.a.output }
tasks:
  a: {run: echo, inputs: "${ input }"}   # kept as written

---
apiVersion: sluice/v1
kind: Trigger
name: hello-http
workflow: hello
http_path: /hello
method: post
--- # content may follow a marker's comment
apiVersion: sluice/v1
kind: Trigger
name: q
fn: echo
topic: in
resp_topic: out
max_retries: 0
...
`

func TestApplyParseSpec(t *testing.T) {
	dir := filepath.Join("examples", "hello")
	s, err := parseSpec("spec.yaml", dir, []byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range s.docs {
		got = append(got, d.label())
	}
	want := `document 1 (Function "echo"),document 2 (Function "abs"),document 3 (Workflow "hello"),document 4 (Trigger "hello-http"),document 5 (Trigger "q")`
	if strings.Join(got, ",") != want {
		t.Fatalf("documents:\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	echo, abs, wf, http, q := s.docs[0], s.docs[1], s.docs[2], s.docs[3], s.docs[4]

	t.Run("paths", func(t *testing.T) {
		if want := filepath.Join("build", "wasm", "echo-wat.wasm"); echo.path != want {
			t.Errorf("relative path: got %q, want %q (relative to the spec's directory)", echo.path, want)
		}
		if abs.path != "/opt/wasm/abs.wasm" {
			t.Errorf("absolute path: got %q", abs.path)
		}
	})
	t.Run("function config", func(t *testing.T) {
		c := echo.cfg
		if c.Memory != 2<<20 || time.Duration(c.Timeout) != 5*time.Second || c.Concurrency != 4 || c.MaxInput != 1<<20 ||
			c.Env["GREETING"] != "Hi" || c.Env["N"] != "3" || c.ABI != "auto" {
			t.Errorf("config: %+v", c)
		}
		if got := echo.query.Encode(); got != "abi=auto&concurrency=4&env=GREETING%3DHi&env=N%3D3&max-input=1MiB&memory=2MiB&timeout=5s" {
			t.Errorf("deploy query: %s", got)
		}
		if abs.cfg.ABI != "reactor" {
			t.Errorf("abi: %q", abs.cfg.ABI)
		}
	})
	t.Run("workflow source is the document as written", func(t *testing.T) {
		want := "apiVersion: sluice/v1\nkind: Workflow\nname: hello\noutput: ${ tasks.a.output }\ntasks:\n" +
			"  a: {run: echo, inputs: \"${ input }\"}   # kept as written\n"
		if wf.source != want {
			t.Errorf("source:\n%q\nwant\n%q", wf.source, want)
		}
		if wf.line != 23 || !strings.HasPrefix(wf.padded, strings.Repeat("\n", 22)+"apiVersion") {
			t.Errorf("the workflow starts on line %d (want 23)", wf.line)
		}
	})
	t.Run("triggers", func(t *testing.T) {
		if http.req.Workflow != "hello" || http.req.Function != "" || http.trigger.HTTP == nil || http.trigger.HTTP.Method != "POST" {
			t.Errorf("http trigger: %+v", http.req)
		}
		qs := q.trigger.Queue
		if q.req.Function != "echo" || qs == nil || qs.Topic != "in" || qs.RespTopic != "out" || qs.MaxRetries != 0 ||
			qs.MaxInflight != catalog.DefaultMaxInflight || qs.AckWait != catalog.DefaultAckWait {
			t.Errorf("queue trigger: %+v %+v", q.req, qs)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		s, err := parseSpec("stdin", ".", []byte(goodSpec))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join("..", "..", "build", "wasm", "echo-wat.wasm"); s.docs[0].path != want {
			t.Errorf("path from stdin: %q, want %q (relative to the working directory)", s.docs[0].path, want)
		}
	})
}

func TestApplyParseSpecErrors(t *testing.T) {
	const fn = "apiVersion: sluice/v1\nkind: Function\nname: echo\npath: echo.wasm\n"
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"no documents", "# nothing\n---\n", `spec.yaml: no documents: want Function, Workflow and Trigger documents with apiVersion: sluice/v1`},
		{"missing apiVersion", fn + "---\nkind: Trigger\nname: t\nfn: echo\ntopic: x\n",
			`spec.yaml: document 2 (Trigger "t"): apiVersion is missing: add apiVersion: sluice/v1`},
		{"other apiVersion", "apiVersion: sluice/v2\nkind: Function\nname: echo\npath: x.wasm\n",
			`spec.yaml: document 1 (Function "echo"): apiVersion "sluice/v2" is not supported: use sluice/v1`},
		{"missing kind", "apiVersion: sluice/v1\nname: echo\n",
			`spec.yaml: document 1: kind is missing: use Function, Workflow or Trigger`},
		{"bad kind", fn + "---\napiVersion: sluice/v1\nkind: Job\nname: j\n",
			`spec.yaml: document 2: kind "Job" is unknown: use Function, Workflow or Trigger`},
		{"missing name", "apiVersion: sluice/v1\nkind: Workflow\ntasks: {}\n",
			`spec.yaml: document 1 (Workflow): name is missing`},
		{"bad name", "apiVersion: sluice/v1\nkind: Function\nname: Echo\npath: x.wasm\n",
			`spec.yaml: document 1 (Function "Echo"): function name "Echo": use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit`},
		{"not a mapping", "- a\n- b\n", `spec.yaml: document 1: line 1: want a mapping with apiVersion, kind and name`},
		{"yaml syntax, with the file's line", fn + "---\napiVersion: sluice/v1\nkind: Trigger\n  name: [t\n",
			`spec.yaml: document 2: line 8: mapping values are not allowed in this context`},
		{"unknown field", fn + "memroy: 2MiB\n",
			`spec.yaml: document 1 (Function "echo"): line 5: unknown field "memroy": a Function has name, path, abi, memory, timeout, concurrency, env, max_input, max_output, cgi`},
		{"missing path", "apiVersion: sluice/v1\nkind: Function\nname: echo\n",
			`spec.yaml: document 1 (Function "echo"): path is missing: give the .wasm module, relative to the spec's directory`},
		{"bad memory", fn + "memory: lots\n", `spec.yaml: document 1 (Function "echo"): memory: size "lots": want a number with an optional unit, like 64MiB`},
		{"bad max_input", fn + "max_input: 0\n", `spec.yaml: document 1 (Function "echo"): max_input: want a size between 1 B and 1 GiB, got "0"`},
		{"bad env", fn + "env: [A=1]\n", `spec.yaml: document 1 (Function "echo"): line 5: cannot unmarshal !!seq into map[string]string`},
		{"bad timeout", fn + "timeout: 5\n", `spec.yaml: document 1 (Function "echo"): timeout "5": want a positive duration like 5s`},
		{"bad abi", fn + "abi: wasm\n", `spec.yaml: document 1 (Function "echo"): abi: unknown ABI "wasm": use auto, wasi, reactor or extism`},
		{"wrong type", fn + "concurrency: many\n", `spec.yaml: document 1 (Function "echo"): line 5: cannot unmarshal !!str ` + "`many`" + ` into int`},
		{"trigger without target", "apiVersion: sluice/v1\nkind: Trigger\nname: t\ntopic: x\n",
			`spec.yaml: document 1 (Trigger "t"): give the function (fn) or the workflow (workflow) it runs`},
		{"trigger with two targets", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\nworkflow: b\ntopic: x\n",
			`spec.yaml: document 1 (Trigger "t"): give fn or workflow, not both`},
		{"trigger without kind", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\n",
			`spec.yaml: document 1 (Trigger "t"): give the trigger's kind: http_path, topic or cron`},
		{"trigger of two kinds", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\ntopic: x\ncron: '@every 1s'\n",
			`spec.yaml: document 1 (Trigger "t"): give one of http_path, topic and cron`},
		{"bad http path", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\nhttp_path: hello\n",
			`spec.yaml: document 1 (Trigger "t"): http_path "hello": want an absolute path`},
		{"whole request of a function", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\nhttp_path: /a\nhttp_request: true\n",
			`spec.yaml: document 1 (Trigger "t"): trigger "t": http_request gives a workflow the whole request as its input; a function (fn) reads the request as call metadata: drop http_request, or give workflow`},
		{"whole request of a queue", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nworkflow: a\ntopic: x\nhttp_request: true\n",
			`spec.yaml: document 1 (Trigger "t"): http_request is an HTTP trigger's: give http_path`},
		{"bad topic", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\ntopic: sluice.catalog\n",
			`spec.yaml: document 1 (Trigger "t"): topic "sluice.catalog": channels under sluice. are sluice's own`},
		{"bad cron", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\ncron: sometimes\n",
			`spec.yaml: document 1 (Trigger "t"): cron: schedule "sometimes": want 5 fields`},
		{"bad ack_wait", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\ntopic: x\nack_wait: 1ms\n",
			`spec.yaml: document 1 (Trigger "t"): ack_wait 1ms: NATS Streaming needs at least 1s`},
		{"bad target name", "apiVersion: sluice/v1\nkind: Trigger\nname: t\nworkflow: My_Flow\ncron: '@every 1s'\n",
			`spec.yaml: document 1 (Trigger "t"): workflow: workflow name "My_Flow"`},
		{"duplicate", fn + "---\n" + fn,
			`spec.yaml: document 2 (Function "echo"): Function "echo" is also document 1 (Function "echo") (line 1): give each function a different name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSpec("spec.yaml", ".", []byte(tc.spec))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error:\n got %q\nwant %q...", err, tc.want)
			}
		})
	}
}

func TestApplySplitDocuments(t *testing.T) {
	got := splitDocuments("a: 1\n---\nb: 2\n--- {c: 3}\n...\n---x: 4\n")
	want := []chunk{{"a: 1\n", 1}, {"b: 2\n", 3}, {"{c: 3}\n", 4}, {"---x: 4\n", 6}}
	if len(got) != len(want) {
		t.Fatalf("chunks: %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("chunk %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestApplySameTrigger checks that a trigger from a spec compares equal to the
// one the catalog stored for it, whatever defaults and case it was given.
func TestApplySameTrigger(t *testing.T) {
	s, err := parseSpec("spec.yaml", ".", []byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	q := s.docs[4].trigger
	stored := q
	stored.Queue = &catalog.QueueSpec{Topic: "in", RespTopic: "out", MaxRetries: 0, MaxInflight: 16, AckWait: catalog.Duration(30 * time.Second)}
	stored.Created, stored.Group = time.Now(), "sluice-q-12"
	if !sameTrigger(stored, q) {
		t.Fatalf("the stored trigger differs from the spec's:\n%+v\n%+v", stored, q)
	}
	stored.Queue = &catalog.QueueSpec{Topic: "in", RespTopic: "out", MaxRetries: 3, MaxInflight: 16, AckWait: catalog.Duration(30 * time.Second)}
	if sameTrigger(stored, q) {
		t.Fatal("max_retries 0 and 3 compare the same")
	}
	h := s.docs[3].trigger
	storedH := catalog.Trigger{Name: "hello-http", Workflow: "hello", HTTP: &catalog.HTTPSpec{Path: "/hello", Method: "POST"}, Created: time.Now()}
	if !sameTrigger(storedH, h) {
		t.Fatalf("http trigger differs:\n%+v\n%+v", storedH, h)
	}
	storedH.Workflow, storedH.Function = "", "hello"
	if sameTrigger(storedH, h) {
		t.Fatal("a trigger of a function compares the same as one of a workflow")
	}
}

func TestApplySameFunction(t *testing.T) {
	s, err := parseSpec("spec.yaml", ".", []byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.docs[0].cfg
	deployed := catalog.Config{ABI: "reactor", Memory: 2 << 20, Timeout: catalog.Duration(5 * time.Second), Concurrency: 4, MaxInput: 1 << 20,
		Env: map[string]string{"GREETING": "Hi", "N": "3"}}
	view := api.FunctionView{Module: "abc", ABI: "reactor", Limits: api.EffectiveLimits(deployed), Env: deployed.Env}
	if !sameFunction(view, "abc", cfg) {
		t.Fatal("the same module and config differ")
	}
	if sameFunction(view, "abd", cfg) {
		t.Fatal("another module compares the same")
	}
	view.Limits.Timeout = "6s"
	if sameFunction(view, "abc", cfg) {
		t.Fatal("another timeout compares the same")
	}
	view.Limits = api.EffectiveLimits(deployed)
	view.Env = map[string]string{"GREETING": "Hi"}
	if sameFunction(view, "abc", cfg) {
		t.Fatal("other env compares the same")
	}
	// explicit defaults are the defaults
	view = api.FunctionView{Module: "abc", ABI: "wasi", Limits: api.EffectiveLimits(catalog.Config{})}
	if !sameFunction(view, "abc", catalog.Config{ABI: "auto", Memory: 64 << 20}) {
		t.Fatal("an explicit default compares different")
	}
	if sameFunction(view, "abc", catalog.Config{ABI: "reactor"}) {
		t.Fatal("another ABI compares the same")
	}
	// a command deployed before meta_env existed has the metadata in its
	// environment: a spec without meta_env: true turns it off
	on := true
	view.MetaEnv = true
	if sameFunction(view, "abc", catalog.Config{ABI: "wasi"}) || !sameFunction(view, "abc", catalog.Config{ABI: "wasi", MetaEnv: &on}) {
		t.Fatal("meta_env compares wrong")
	}
	if got := strings.Join(functionDiff(view, "abc", catalog.Config{ABI: "wasi"}), ", "); got != "meta_env on → off" {
		t.Fatalf("diff of meta_env: %s", got)
	}
}

// The diff apply --dry-run shows: which fields change, never an
// environment value.
func TestApplyDiffs(t *testing.T) {
	t.Run("function", func(t *testing.T) {
		deployed := catalog.Config{ABI: "reactor", Timeout: catalog.Duration(5 * time.Second), Env: map[string]string{"KEEP": "1", "SECRET": "old", "GONE": "x"}}
		cur := api.FunctionView{Module: strings.Repeat("a", 64), ABI: "reactor", Limits: api.EffectiveLimits(deployed), Env: deployed.Env}
		want := catalog.Config{ABI: "wasi", CGI: true, Memory: 16 << 20, Timeout: catalog.Duration(6 * time.Second), Env: map[string]string{"KEEP": "1", "SECRET": "new", "NEW": "y"}}
		got := strings.Join(functionDiff(cur, strings.Repeat("b", 64), want), ", ")
		if got != "module aaaaaaaaaaaa → bbbbbbbbbbbb, abi reactor → wasi, cgi off → on, memory 64 MiB → 16 MiB, timeout 5s → 6s, env NEW added, env SECRET changed, env GONE removed" {
			t.Fatalf("function diff: %s", got)
		}
		if strings.Contains(got, "old") || strings.Contains(got, "new") {
			t.Fatalf("the diff shows an environment value: %s", got)
		}
	})
	t.Run("workflow", func(t *testing.T) {
		was := "apiVersion: sluice/v1\nkind: Workflow\nname: w\noutput: ${ tasks.a.output }\ntasks:\n  a: {run: f}\n  b: {run: g, requires: [a]}\n  c: {run: h}\n"
		now := "apiVersion: sluice/v1\nkind: Workflow\nname: w\ntasks:\n  a: {run: f}   # same\n  b: {run: g2, requires: [a]}\n  d: {run: h}\n"
		if got := strings.Join(workflowDiff(was, now), ", "); got != "output removed, tasks.b, tasks.d added, tasks.c removed" {
			t.Fatalf("workflow diff: %s", got)
		}
		if got := workflowDiff(was, "# a comment\n"+was); len(got) != 1 || got[0] != "source (layout or comments)" {
			t.Fatalf("a comment: %v", got)
		}
		if got := workflowDiff(was, "a: [b"); len(got) != 1 || got[0] != "source" {
			t.Fatalf("a source that does not parse: %v", got)
		}
	})
	t.Run("trigger", func(t *testing.T) {
		cur := catalog.Trigger{Name: "t", Function: "f", HTTP: &catalog.HTTPSpec{Path: "/a", Method: "POST"}, Created: time.Now()}
		want := catalog.Trigger{Name: "t", Workflow: "w", HTTP: &catalog.HTTPSpec{Path: "/a", Method: "PUT"}}
		if got := strings.Join(triggerDiff(cur, want), ", "); got != "fn f → -, workflow - → w, method POST → PUT" {
			t.Fatalf("trigger diff: %s", got)
		}
		q := catalog.Trigger{Name: "t", Function: "f", Queue: &catalog.QueueSpec{Topic: "in", MaxRetries: 3, MaxInflight: 16, AckWait: catalog.DefaultAckWait}}
		if got := strings.Join(triggerDiff(cur, q), ", "); got != "topic - → in, max_retries - → 3, max_inflight - → 16, ack_wait - → 30s, http_path /a → -, method POST → -" {
			t.Fatalf("http to queue: %s", got)
		}
		whole := catalog.Trigger{Name: "t", Workflow: "w", HTTP: &catalog.HTTPSpec{Path: "/a", Method: "PUT", Request: true}}
		if got := strings.Join(triggerDiff(want, whole), ", "); got != "http_request - → true" {
			t.Fatalf("the whole request asked for: %s", got)
		}
		if got := describeTrigger(whole); got != "PUT /fn/a (the whole request as input, the output may set the response)" {
			t.Fatalf("described as %q", got)
		}
	})
}

// FuzzParseSpec: no spec makes the parser panic; every error names the
// file; what it accepts is documents of a known kind with valid names,
// each trigger of exactly one kind.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(goodSpec))
	const fn = "apiVersion: sluice/v1\nkind: Function\nname: echo\npath: echo.wasm\n"
	for _, s := range []string{
		fn, fn + "---\n" + fn, "# nothing\n---\n", "- a\n- b\n", fn + "env: [A=1]\n", fn + "memory: lots\n",
		"apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: a\ntopic: x\ncron: '@every 1s'\n",
		"apiVersion: sluice/v1\nkind: Trigger\nname: t\nworkflow: w\nhttp_path: /x\nmethod: get\n",
		"apiVersion: sluice/v1\nkind: Function\nname: &a echo\npath: *a\n",
		"a: &a [*a]\n", "--- {c: 3}\n...\n---x: 4\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseSpec("spec.yaml", "dir", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "spec.yaml: ") {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		if len(s.docs) == 0 {
			t.Fatal("a spec without documents was accepted")
		}
		for _, d := range s.docs {
			if !slices.Contains(kindOrder, d.kind) || catalog.ValidateName(strings.ToLower(d.kind), d.name) != nil {
				t.Fatalf("accepted %s", d.label())
			}
			switch d.kind {
			case kindTrigger:
				kinds := 0
				for _, set := range []bool{d.trigger.HTTP != nil, d.trigger.Queue != nil, d.trigger.Cron != nil} {
					if set {
						kinds++
					}
				}
				if kinds != 1 || (d.trigger.Function == "") == (d.trigger.Workflow == "") {
					t.Fatalf("accepted trigger %+v", d.trigger)
				}
			case kindFunction:
				if d.path == "" || d.query.Get("abi") == "" {
					t.Fatalf("accepted function %s without its path or abi", d.name)
				}
			}
		}
	})
}
