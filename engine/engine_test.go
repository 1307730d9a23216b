package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

func TestDAGWithParallelBranches(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: dag
output: '${ {"left": tasks.left.output.n, "right": tasks.right.output.n, "sum": tasks.join.output} }' 
tasks:
  start:
    run: wfguest
    inputs: { op: double, n: "${ input.n }" }
  left:
    run: wfguest
    requires: [start]
    inputs: { op: add, n: "${ tasks.start.output.n }" }
  right:
    run: wfguest
    requires: [start]
    inputs: { op: double, n: "${ tasks.start.output.n }" }
  join:
    run: noop
    requires: [left, right]
    inputs: "${ tasks.left.output.n + tasks.right.output.n }"
`)
	inv := r.run("dag", `{"n": 5}`)
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, `{"left": 11, "right": 20, "sum": 31}`)
	evs := r.events(inv.ID)
	t.Logf("%d events", len(evs))
	for _, e := range evs {
		t.Log(e.String())
	}
}

func TestBuiltins(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: child
output: ${ tasks.d.output.n }
tasks:
  d: { run: wfguest, inputs: { op: double, n: "${ input }" } }
`)
	cases := []struct {
		name, src, input, want string
	}{
		{"if-value", `
tasks:
  route:
    run: if
    inputs: { if: "${ input > 10 }", then: big, else: "${ 'small ' + string(input) }" }`, `3`, `"small 3"`},
		{"if-task", `
tasks:
  route:
    run: if
    inputs:
      if: ${ input > 10 }
      then: { run: wfguest, inputs: { op: double, n: "${ input }" } }
      else: { run: wfguest, inputs: { op: add, n: "${ input }" } }`, `30`, `{"n": 60}`},
		{"if-no-else", `
tasks:
  route: { run: if, inputs: { if: "${ false }", then: 1 } }`, `null`, `null`},
		{"switch", `
tasks:
  pick:
    run: switch
    inputs:
      switch: ${ input.kind }
      cases:
        - { case: a, do: first }
        - { case: b, do: { run: wfguest, inputs: { op: text, s: "${ 'chose ' + input.kind }" } } }
      default: other`, `{"kind": "b"}`, `"chose b"`},
		{"switch-default", `
tasks:
  pick:
    run: switch
    inputs: { switch: "${ input }", cases: [ { case: 1, do: one } ], default: other }`, `2`, `"other"`},
		{"foreach", `
tasks:
  each:
    run: foreach
    inputs:
      foreach: ${ input }
      parallel: 2
      do: { run: wfguest, inputs: { op: double, n: "${ item * 10 + index }" } }`, `[1, 2, 3, 4, 5]`, `[{"n":20},{"n":42},{"n":64},{"n":86},{"n":108}]`},
		{"foreach-empty", `
tasks:
  each: { run: foreach, inputs: { foreach: "${ input }", do: { run: noop } } }`, `[]`, `[]`},
		{"foreach-nested-if", `
tasks:
  each:
    run: foreach
    inputs:
      foreach: ${ input }
      do:
        run: if
        inputs: { if: "${ item % 2 == 0 }", then: "${ 'even ' + string(item) }", else: { run: noop, inputs: "${ index }" } }`, `[1, 2, 3]`, `[0, "even 2", 2]`},
		{"while", `
tasks:
  loop:
    run: while
    inputs:
      while: ${ prev == nil || prev.n < 100 }
      limit: 20
      do: { run: wfguest, inputs: { op: double, n: "${ prev == nil ? 3 : prev.n }" } }`, `null`, `{"n": 192}`},
		{"repeat", `
tasks:
  again:
    run: repeat
    inputs:
      times: ${ input }
      do: { run: wfguest, inputs: { op: add, n: "${ prev?.n ?? 0 }" } }`, `4`, `{"n": 4}`},
		{"repeat-zero", `
tasks:
  again: { run: repeat, inputs: { times: 0, do: { run: noop } } }`, `null`, `null`},
		{"compose", `
tasks:
  a: { run: noop, inputs: { x: 1 } }
  b: { run: noop, inputs: { y: 2 } }
  c:
    run: compose
    requires: [a, b]
    inputs: [ "${ tasks.a.output }", "${ tasks.b.output }", { z: "${ input }" } ]`, `3`, `{"x":1,"y":2,"z":3}`},
		{"sleep", `
tasks:
  nap: { run: sleep, inputs: 50ms }
  after: { run: noop, requires: [nap], inputs: "${ tasks.nap.status }" }`, `null`, `"succeeded"`},
		{"workflow", `
tasks:
  sub: { run: workflow, inputs: { workflow: child, input: "${ input + 1 }" } }`, `20`, `42`},
		{"interpolation-and-strings", `
tasks:
  hello: { run: wfguest, inputs: "Hello ${ input.name }, you are ${ input.age }" }`, `{"name": "Ada", "age": 36}`, `"Hello Ada, you are 36"`},
		{"text-output-is-a-string", `
tasks:
  t: { run: wfguest, inputs: { op: text, s: "not json" } }
  u: { run: noop, requires: [t], inputs: "${ tasks.t.output + '!' }" }`, `null`, `"not json!"`},
		{"invocation-and-uid", `
tasks:
  m: { run: wfguest, inputs: { op: meta } }
  u: { run: noop, requires: [m], inputs: "${ tasks.m.output.invocation == invocation.id && tasks.m.output.task == 'm' && len(uid()) > 10 }" }`, `null`, `true`},
		{"default-output-several-sinks", `
tasks:
  a: { run: noop, inputs: 1 }
  b: { run: noop, inputs: 2 }`, `null`, `{"a":1,"b":2}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: "+c.name+"\n"+c.src)
			inv := r.run(c.name, c.input)
			wantStatus(t, inv, StatusSucceeded)
			wantJSON(t, inv.Output, c.want)
		})
	}
}

func TestFailures(t *testing.T) {
	r := newRig(t, false)
	cases := []struct {
		name, src, input string
		task, says       string
	}{
		{"fail-task", `
tasks:
  stop: { run: fail, inputs: { message: "${ 'no stock for ' + input }" } }`, `"socks"`, "stop", "no stock for socks"},
		{"function-error", `
tasks:
  a: { run: wfguest, inputs: { op: fail, msg: the order has no items } }
  b: { run: noop, requires: [a] }`, `null`, "a", "the order has no items"},
		{"retries-exhausted", `
tasks:
  a:
    run: wfguest
    inputs: { op: flaky, fails: 5 }
    retry: { max: 2, backoff: 10ms }`, `null`, "a", "flaky: attempt 3 fails (after 3 attempts)"},
		{"timeout", `
tasks:
  slow: { run: wfguest, inputs: { op: sleep, ms: 5000 }, timeout: 100ms }`, `null`, "slow", "timed out after 100ms"},
		{"bad-expression-at-run-time", `
tasks:
  a: { run: noop, inputs: "${ input.items[0].price * 2 }" }`, `{"items": "none"}`, "a", "input.items[0].price * 2"},
		{"foreach-item-fails", `
tasks:
  each:
    run: foreach
    inputs:
      foreach: ${ input }
      do: { run: wfguest, inputs: { op: "${ item == 2 ? 'fail' : 'add' }", n: 1, msg: "bad item ${ item }" } }`, `[1, 2, 3]`, "each", "bad item 2"},
		{"while-limit", `
tasks:
  loop: { run: while, inputs: { while: "${ true }", limit: 3, do: { run: noop } } }`, `null`, "loop", "still true after limit 3"},
		{"foreach-not-a-list", `
tasks:
  each: { run: foreach, inputs: { foreach: "${ input }", do: { run: noop } } }`, `{"a": 1}`, "each", "foreach: want a list"},
		{"child-fails", `
tasks:
  sub: { run: workflow, inputs: { workflow: failing } }`, `null`, "sub", "task x: child says no"},
		{"missing-workflow", `
tasks:
  sub: { run: workflow, inputs: { workflow: nowhere } }`, `null`, "sub", `no workflow "nowhere"`},
	}
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: failing\ntasks:\n  x: { run: fail, inputs: child says no }\n")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: "+c.name+"\n"+c.src)
			inv := r.run(c.name, c.input)
			wantStatus(t, inv, StatusFailed)
			if inv.FailedTask != c.task || !contains(inv.Error, c.says) {
				t.Fatalf("failed task %q error %q; want task %q saying %q", inv.FailedTask, inv.Error, c.task, c.says)
			}
		})
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: flaky
tasks:
  a:
    run: wfguest
    inputs: { op: flaky, fails: 2 }
    retry: { max: 3, backoff: 20ms }
`)
	inv := r.run("flaky", "null")
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, `{"attempt": 3}`)
	got := types(r.events(inv.ID))
	want := []string{"InvocationCreated", "TaskScheduled a", "TaskStarted a", "TaskRetrying a", "TaskStarted a", "TaskRetrying a", "TaskStarted a", "TaskSucceeded a", "InvocationSucceeded"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events:\n%v\nwant\n%v", got, want)
	}
	evs := r.events(inv.ID)
	// Backoff doubles: 20ms, then 40ms.
	if d := evs[4].Time.Sub(evs[3].Time); d < 20*time.Millisecond {
		t.Fatalf("first retry after %s, want >= 20ms", d)
	}
	if d := evs[6].Time.Sub(evs[5].Time); d < 40*time.Millisecond {
		t.Fatalf("second retry after %s, want >= 40ms", d)
	}
}

func TestCancel(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: nap
tasks:
  nap: { run: sleep, inputs: 1h }
  slow: { run: wfguest, inputs: { op: sleep, ms: 60000 } }
  sub: { run: workflow, inputs: { workflow: long } }
`)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: long\ntasks:\n  z: { run: sleep, inputs: 1h }\n")
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "nap", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the tasks to start", func() bool {
		got, _ := r.e.Get(inv.ID)
		return got.Tasks["nap"] != nil && got.Tasks["slow"] != nil && got.Tasks["sub"] != nil && got.Tasks["sub"].Status == TaskRunning
	})
	got, err := r.e.Cancel(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, StatusCanceled)
	// The child is canceled with its parent.
	var child *Invocation
	for _, i := range r.e.List("long") {
		child = i
	}
	if child == nil {
		t.Fatal("no child invocation")
	}
	wantStatus(t, child, StatusCanceled)
	if _, err := r.e.Cancel(ctx, inv.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("cancel again: %v, want ErrConflict", err)
	}
	if _, err := r.e.Cancel(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v, want ErrNotFound", err)
	}
}

func TestInputs(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: same\ntasks:\n  a: { run: echo-wat, inputs: \"${ input }\" }\n")
	// Not JSON: a string, reaching the function as its raw bytes, and its
	// output (not JSON) a string again.
	inv := r.run("same", "plain words")
	wantJSON(t, inv.Output, `"plain words"`)
	inv = r.run("same", `{"a": [1, 2]}`)
	wantJSON(t, inv.Output, `{"a": [1, 2]}`)
	if _, err := r.e.Invoke(context.Background(), "nothing", nil, InvokeOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown workflow: %v", err)
	}
	// JSON (the default) refuses what is not JSON, saying where; a string
	// is taken as is; nothing at all is null.
	if _, err := r.e.Invoke(context.Background(), "same", []byte(`{"name": "Ada"`), InvokeOptions{}); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "the input is not JSON") || !strings.Contains(err.Error(), "at byte 14") {
		t.Fatalf("malformed JSON input: %v", err)
	}
	for _, c := range []struct {
		in   string
		f    InputFormat
		want string
	}{
		{`{"name": "Ada"`, InputString, `"{\"name\": \"Ada\""`},
		{` {"name": "Ada"} `, InputJSON, `{"name": "Ada"}`},
		{"", InputJSON, `null`},
		{"plain", InputAuto, `"plain"`},
	} {
		inv, err := r.e.Invoke(context.Background(), "same", []byte(c.in), InvokeOptions{Input: c.f})
		if err != nil {
			t.Fatalf("input %q (format %d): %v", c.in, c.f, err)
		}
		wantJSON(t, inv.Input, c.want)
	}
	// The same id twice is one invocation.
	a, err := r.e.Invoke(context.Background(), "same", []byte("x"), InvokeOptions{ID: "order-17", Input: InputString})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.e.Invoke(context.Background(), "same", []byte("x"), InvokeOptions{ID: "order-17", Input: InputString})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "order-17" || b.ID != a.ID || string(b.Input) != `"x"` {
		t.Fatalf("idempotent invoke: %+v %+v", a, b)
	}
}

func TestRedeployKeepsRunningRevision(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: v\ntasks:\n  nap: { run: sleep, inputs: 200ms }\n  out: { run: noop, requires: [nap], inputs: one }\n")
	inv, err := r.e.Invoke(context.Background(), "v", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: v\ntasks:\n  nap: { run: sleep, inputs: 1ms }\n  out: { run: noop, requires: [nap], inputs: two }\n")
	old, _ := r.e.Wait(context.Background(), inv.ID)
	wantJSON(t, old.Output, `"one"`)
	wantJSON(t, r.run("v", "").Output, `"two"`)
}
