package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// putKnown stores a definition checked as the API checks one: its
// functions deployed, its workflows (run: NAME, workflow: NAME) created.
func putKnown(t testing.TB, d *defs, src string) Revision {
	t.Helper()
	def, err := ParseDefinition("", []byte(src), Known{
		Function: func(fn string) bool { return testFns[fn] != nil },
		Workflow: func(wf string) bool { _, ok := d.Current(wf); return ok },
	})
	if err != nil {
		t.Fatalf("definition: %v", err)
	}
	return d.putRaw(def.Name, src)
}

// dynamicRig deploys "plan", a workflow whose function (echo-wat) returns
// its input, the spec, which a dynamic task runs.
func dynamicRig(t *testing.T) *rig {
	r := newRig(t, false)
	putKnown(t, r.defs, `
apiVersion: sluice/v1
kind: Workflow
name: plan
output: ${ tasks.go.output }
tasks:
  plan: { run: echo-wat, inputs: "${ input }" }
  go: { run: dynamic, requires: [plan], inputs: "${ tasks.plan.output }" }
`)
	return r
}

// child returns the one child invocation of a task and its
// InvocationCreated.
func (r *rig) child(parent *Invocation, task string) (*Invocation, *Event) {
	r.t.Helper()
	cid := childID(parent.ID, task, parent.Tasks[task].Attempts)
	c, err := r.e.Get(cid)
	if err != nil {
		r.t.Fatalf("child of %s: %v", task, err)
	}
	evs := r.events(cid)
	if evs[0].Type != EventInvocationCreated {
		r.t.Fatalf("first event of %s: %s", cid, evs[0].Type)
	}
	return c, evs[0]
}

func TestDynamicTaskSpec(t *testing.T) {
	r := dynamicRig(t)
	inv := r.run("plan", `{"run": "wfguest", "inputs": {"op": "double", "n": 21}}`)
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, `{"n": 42}`)
	if got := inv.Tasks["go"].Run; got != "dynamic" {
		t.Fatalf("go ran as %q", got)
	}
	c, created := r.child(inv, "go")
	wantStatus(t, c, StatusSucceeded)
	if c.Workflow != "plan/go" || c.Parent != inv.ID+"/go" {
		t.Fatalf("child: workflow %q, parent %q", c.Workflow, c.Parent)
	}
	// The definition is in the event, its revision its sha256.
	sum := sha256.Sum256(created.Source)
	if created.Revision != hex.EncodeToString(sum[:]) || c.Revision != created.Revision {
		t.Fatalf("revision %s of source %s", created.Revision, created.Source)
	}
	wantJSON(t, created.Source, `{"apiVersion": "sluice/v1", "kind": "Workflow", "tasks": {"spec": {"run": "wfguest", "inputs": {"op": "double", "n": 21}}}}`)
	if c.Tasks["spec"] == nil || c.Tasks["spec"].Status != TaskSucceeded {
		t.Fatalf("the child's task: %+v", c.Tasks)
	}
	// Nothing runs an output that merely looks like a spec.
	putKnown(t, r.defs, `
apiVersion: sluice/v1
kind: Workflow
name: data
tasks:
  plan: { run: echo-wat, inputs: "${ input }" }
`)
	inv = r.run("data", `{"run": "wfguest", "inputs": {"op": "double", "n": 21}}`)
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, `{"run": "wfguest", "inputs": {"op": "double", "n": 21}}`)
}

func TestDynamicWorkflowSpec(t *testing.T) {
	r := dynamicRig(t)
	spec := `{"spec": {
	  "tasks": {
	    "a": {"run": "wfguest", "inputs": {"op": "double", "n": "${ input.n }"}},
	    "b": {"run": "wfguest", "requires": ["a"], "inputs": {"op": "add", "n": "${ tasks.a.output.n }"}},
	    "c": {"run": "wfguest", "requires": ["a"], "inputs": {"op": "double", "n": "${ tasks.a.output.n }"}}
	  },
	  "output": "${ [tasks.b.output.n, tasks.c.output.n, invocation.workflow] }"},
	 "input": {"n": 5}}`
	inv := r.run("plan", spec)
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, `[11, 20, "plan/go"]`)
	c, _ := r.child(inv, "go")
	wantJSON(t, c.Input, `{"n": 5}`)
	if len(c.Tasks) != 3 {
		t.Fatalf("child tasks: %v", c.Tasks)
	}
	// The same spec again is the same revision (parsed once).
	inv2 := r.run("plan", spec)
	c2, _ := r.child(inv2, "go")
	if c2.Revision != c.Revision {
		t.Fatalf("revisions %s, %s", c.Revision, c2.Revision)
	}
}

// A spec written in the definition is a literal: its expressions are the
// child's; {spec, input}'s input is the task's.
func TestDynamicLiteralSpec(t *testing.T) {
	r := newRig(t, false)
	putKnown(t, r.defs, `
apiVersion: sluice/v1
kind: Workflow
name: lit
output: ${ tasks.go.output }
tasks:
  go:
    run: dynamic
    inputs:
      spec:
        tasks:
          a: { run: wfguest, inputs: { op: double, n: "${ input }" } }
        output: ${ tasks.a.output.n + 1 }
      input: ${ input * 10 }
`)
	inv := r.run("lit", `2`)
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, `41`)
}

func TestDynamicSpecFailures(t *testing.T) {
	r := dynamicRig(t)
	for _, c := range []struct{ name, spec, want string }{
		{"undeployed function", `{"run": "nope", "inputs": 1}`,
			`in the dynamic spec (a task): run: "nope" is neither a built-in (if, switch, foreach, while, repeat, sleep, fail, noop, compose, workflow, dynamic, wait, http), a deployed function nor a workflow: deploy or create it first`},
		{"not a spec", `{"op": "double", "n": 1}`,
			`dynamic: the value to run is {"n":1,"op":"double"}, not a spec: give it a task {"run": NAME, "inputs": VALUE}, a workflow {"tasks": {...}, "output": VALUE}, or {"spec": one of those, "input": VALUE}`},
		{"text", `hello`, `dynamic: the value to run is hello, not a spec`},
		{"unknown requires", `{"tasks": {"a": {"run": "wfguest", "requires": ["zz"]}}}`,
			`in the dynamic spec (a workflow): task a requires "zz", which is not a task (tasks: a)`},
		{"bad expression", `{"tasks": {"a": {"run": "wfguest", "inputs": "${ input. }"}}}`, `in the dynamic spec (a workflow): `},
		{"both", `{"run": "wfguest", "tasks": {}}`, `dynamic: the spec has both run (a task) and tasks (a workflow): give one`},
		{"name", `{"name": "x", "tasks": {"a": {"run": "wfguest"}}}`, `dynamic: a workflow spec takes no name`},
		{"extra field", `{"spec": {"run": "wfguest"}, "inptu": 1}`, `dynamic: unknown field "inptu" beside spec (fields: spec, input)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			inv := r.run("plan", c.spec)
			wantStatus(t, inv, StatusFailed)
			if inv.FailedTask != "go" || !strings.Contains(inv.Error, c.want) {
				t.Fatalf("failed task %q: %q\nwant it to contain %q", inv.FailedTask, inv.Error, c.want)
			}
		})
	}
	// A spec whose child fails: the task fails with the child's error.
	inv := r.run("plan", `{"run": "wfguest", "inputs": {"op": "fail", "msg": "boom"}}`)
	wantStatus(t, inv, StatusFailed)
	if !strings.Contains(inv.Error, "workflow plan/go (invocation ") || !strings.Contains(inv.Error, `failed: task spec: function "wfguest" failed: boom`) {
		t.Fatalf("error: %s", inv.Error)
	}
}

// A spec that runs itself stops at the nesting limit of child workflows.
func TestDynamicNestingLimit(t *testing.T) {
	r := dynamicRig(t)
	self := `{"tasks": {"again": {"run": "dynamic", "inputs": {"spec": "${ input }", "input": "${ input }"}}}}`
	inv := r.run("plan", `{"spec": `+self+`, "input": `+self+`}`)
	wantStatus(t, inv, StatusFailed)
	if !strings.Contains(inv.Error, "child workflows nest deeper than 16") {
		t.Fatalf("error: %s", inv.Error)
	}
	if n := strings.Count(inv.Error, "task again:"); n != maxDepth {
		t.Fatalf("%d levels in %s", n, inv.Error)
	}
}

func TestRunWorkflowByName(t *testing.T) {
	r := newRig(t, false)
	putKnown(t, r.defs, "apiVersion: sluice/v1\nkind: Workflow\nname: leaf\ntasks:\n  x: { run: wfguest, inputs: { op: add, n: \"${ input }\" } }\n")
	putKnown(t, r.defs, `
apiVersion: sluice/v1
kind: Workflow
name: caller
output: ${ [tasks.kid.output.n, tasks.fn.output.n] }
tasks:
  kid: { run: leaf, inputs: "${ input }", retry: { max: 1 } }
  fn: { run: wfguest, inputs: { op: double, n: "${ input }" } }
`)
	inv := r.run("caller", `4`)
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, `[5, 8]`)
	if inv.Tasks["kid"].Run != "workflow" || inv.Tasks["fn"].Run != "wfguest" {
		t.Fatalf("runs: kid %s, fn %s", inv.Tasks["kid"].Run, inv.Tasks["fn"].Run)
	}
	// the input passed on as it is (data) goes beside {"workflow"}
	wantJSON(t, inv.Tasks["kid"].Input, `{"workflow": "leaf"}`)
	if c, _ := r.child(inv, "kid"); c.Workflow != "leaf" || string(c.Input) != "4" {
		t.Fatalf("child runs %s on %s", c.Workflow, c.Input)
	}

	// Gone since: the task fails when it is scheduled, saying so.
	r.defs.mu.Lock()
	delete(r.defs.current, "leaf")
	r.defs.mu.Unlock()
	inv = r.run("caller", `4`)
	wantStatus(t, inv, StatusFailed)
	if want := `run: "leaf" is neither a deployed function nor a workflow`; inv.FailedTask != "kid" || !strings.Contains(inv.Error, want) {
		t.Fatalf("failed %s: %s", inv.FailedTask, inv.Error)
	}

	// Create checks the name is a function or a workflow, and Uses says
	// which.
	def, err := ParseDefinition("", []byte("apiVersion: sluice/v1\nkind: Workflow\nname: u\ntasks:\n  a: { run: leaf }\n  b: { run: wfguest }\n"),
		Known{Function: func(f string) bool { return f == "wfguest" }, Workflow: func(w string) bool { return w == "leaf" }})
	if err != nil {
		t.Fatal(err)
	}
	if fns, wfs := def.Uses(); strings.Join(fns, ",") != "wfguest" || strings.Join(wfs, ",") != "leaf" {
		t.Fatalf("uses %v %v", fns, wfs)
	}
	// Parsed again without being told (a stored definition), a name may
	// be either.
	def, _ = ParseDefinition("", []byte("apiVersion: sluice/v1\nkind: Workflow\nname: u\ntasks:\n  a: { run: leaf }\n"), Known{})
	if fns, wfs := def.Uses(); strings.Join(fns, ",") != "leaf" || strings.Join(wfs, ",") != "leaf" {
		t.Fatalf("uses %v %v", fns, wfs)
	}
}

func TestWorkflowNameFromInput(t *testing.T) {
	r := newRig(t, false)
	putKnown(t, r.defs, "apiVersion: sluice/v1\nkind: Workflow\nname: leaf\ntasks:\n  x: { run: wfguest, inputs: { op: add, n: \"${ input }\" } }\n")
	putKnown(t, r.defs, "apiVersion: sluice/v1\nkind: Workflow\nname: twice\ntasks:\n  x: { run: wfguest, inputs: { op: double, n: \"${ input }\" } }\n")
	putKnown(t, r.defs, `
apiVersion: sluice/v1
kind: Workflow
name: pick
output: ${ tasks.call.output.n }
tasks:
  call: { run: workflow, inputs: { workflow: "${ input.wf }", input: "${ input.n }" } }
`)
	for wf, want := range map[string]string{"leaf": "8", "twice": "14"} {
		inv := r.run("pick", `{"wf": "`+wf+`", "n": 7}`)
		wantStatus(t, inv, StatusSucceeded)
		wantJSON(t, inv.Output, want)
		wantJSON(t, inv.Tasks["call"].Input, `{"workflow": "`+wf+`", "input": 7}`)
	}
	for in, want := range map[string]string{
		`{"wf": "nosuch", "n": 1}`:   `no workflow "nosuch": create it first (sluice wf create nosuch -f FILE)`,
		`{"wf": "Bad Name", "n": 1}`: `${ input.wf }: workflow: the name is "Bad Name": want the name of a workflow (1 to 63 lowercase letters`,
		`{"wf": 3, "n": 1}`:          `workflow: the name is 3: want the name of a workflow`,
	} {
		inv := r.run("pick", in)
		wantStatus(t, inv, StatusFailed)
		if inv.FailedTask != "call" || !strings.Contains(inv.Error, want) {
			t.Fatalf("input %s: failed %s: %s\nwant %s", in, inv.FailedTask, inv.Error, want)
		}
	}
}

// A dynamic child's definition comes from its InvocationCreated: a
// restart (no cache) or another daemon taking over resumes it from the
// log alone.
func TestDynamicChildResumes(t *testing.T) {
	r := dynamicRig(t)
	release := r.fns.gate("b")
	spec := `{"tasks": {"a": {"run": "wfguest", "inputs": {"op": "double", "n": 3}},
	  "b": {"run": "wfguest", "requires": ["a"], "inputs": {"op": "add", "n": "${ tasks.a.output.n }"}}},
	 "output": "${ tasks.b.output.n }"}`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inv, err := r.e.Invoke(ctx, "plan", []byte(spec), InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cid string
	testutil.Eventually(t, 20*time.Second, "the child's task b to run", func() bool {
		got, _ := r.e.Get(inv.ID)
		if got.Tasks["go"] == nil || got.Tasks["go"].Attempts == 0 {
			return false
		}
		cid = childID(inv.ID, "go", 1)
		c, err := r.e.Get(cid)
		return err == nil && c.Tasks["b"] != nil && c.Tasks["b"].Status == TaskRunning
	})
	r.crash()
	release()
	r.open()
	done, err := r.e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `7`)
	starts := map[string]int{}
	for _, ev := range r.events(cid) {
		if ev.Type == EventTaskStarted {
			starts[ev.Task]++
		}
	}
	if starts["a"] != 1 || starts["b"] != 2 {
		t.Fatalf("starts in the child: %v", starts)
	}
}

func TestReadSpec(t *testing.T) {
	for _, c := range []struct{ in, source, input, err string }{
		{`{"run": "f", "inputs": "<&>"}`, `{"apiVersion":"sluice/v1","kind":"Workflow","tasks":{"spec":{"inputs":"<&>","run":"f"}}}`, `null`, ""},
		{`{"spec": {"tasks": {"a": {"run": "f"}}, "output": 1}, "input": [1, 2]}`,
			`{"apiVersion":"sluice/v1","kind":"Workflow","output":1,"tasks":{"a":{"run":"f"}}}`, `[1, 2]`, ""},
		{` {"tasks": {"a": {"run": "f", "inputs": 12345678901234567890}}} `,
			`{"apiVersion":"sluice/v1","kind":"Workflow","tasks":{"a":{"run":"f","inputs":12345678901234567890}}}`, `null`, ""},
		{`[1]`, "", "", "dynamic: the value to run is [1], not a spec"},
		{`{"spec": 3}`, "", "", "dynamic: spec is 3: want a task"},
	} {
		sp, err := readSpec([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(sp.source) != c.source || string(sp.input) != c.input {
			t.Errorf("%s: source %s input %s", c.in, sp.source, sp.input)
		}
	}
}

// BenchmarkDynamicTask compares function tasks run statically with the
// same tasks run through run: dynamic (each a child invocation of an
// inline workflow of that one task), in a chain of 10 per invocation
// (the invocation's own fsyncs spread over them), invoked and waited for
// one at a time on NATS Streaming's file store; task/op is the time per
// task:
//
//	go test ./engine -run '^$' -bench DynamicTask -count 5
func BenchmarkDynamicTask(b *testing.B) {
	const n = 10
	for _, c := range []struct{ name, task string }{
		{"static", `{ run: echo-wat, inputs: "${ input }"%s }`},
		{"dynamic", `{ run: dynamic, inputs: { spec: { run: echo-wat, inputs: "${ input }" }, input: "${ input }" }%s }`},
		{"dynamic-expression", `{ run: dynamic, inputs: "${ {'spec': {'run': 'echo-wat', 'inputs': input}, 'input': input} }"%s }`},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := newRig(b, true)
			src := "apiVersion: sluice/v1\nkind: Workflow\nname: bench\ntasks:\n"
			for i := 0; i < n; i++ {
				req := ""
				if i > 0 {
					req = fmt.Sprintf(", requires: [t%d]", i-1)
				}
				src += fmt.Sprintf("  t%d: "+c.task+"\n", i, req)
			}
			putKnown(b, r.defs, src)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				inv, err := r.e.Invoke(ctx, "bench", []byte(`"tea"`), InvokeOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if inv, err = r.e.Wait(ctx, inv.ID); err != nil || inv.Status != StatusSucceeded {
					b.Fatalf("%v %+v", err, inv)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/task")
		})
	}
}

// TestDynamicTaskRetries: retry: on a dynamic task runs the spec again in
// a new child invocation per attempt, as a workflow task does.
func TestDynamicTaskRetries(t *testing.T) {
	r := newRig(t, false)
	putKnown(t, r.defs, `
apiVersion: sluice/v1
kind: Workflow
name: again
tasks:
  go:
    run: dynamic
    inputs: { run: fail, inputs: { message: "no luck", code: unlucky } }
    retry: { max: 1, backoff: 10ms, on: [workflow_failed] }
`)
	inv := r.run("again", "")
	wantStatus(t, inv, StatusFailed)
	if got := inv.Tasks["go"]; got.Attempts != 2 || got.ErrorCode != codeWorkflowFailed || !strings.Contains(got.Error, "no luck") {
		t.Fatalf("the dynamic task: %d attempts, code %q: %s", got.Attempts, got.ErrorCode, got.Error)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		c, err := r.e.Get(childID(inv.ID, "go", attempt))
		if err != nil || c.Status != StatusFailed {
			t.Fatalf("child of attempt %d: %+v %v", attempt, c, err)
		}
	}
}
