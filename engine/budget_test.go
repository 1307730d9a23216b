package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expr-lang/expr"
)

// TestExpressionBudgets: an expression that makes an ever larger value,
// or loops without end, fails its task with a message naming the
// expression and the limit; the engine goes on. Before the budgets, the
// first ones ended the process (out of memory) and the loop held the
// engine's lock for as long as it ran.
func TestExpressionBudgets(t *testing.T) {
	r := newRig(t, false)
	big := fmt.Sprintf(`{"s": %q, "f": 999999.5}`, strings.Repeat("x", 100<<10))
	// Loops stop at their step count, or on a slow machine at the time
	// limit first: both name the expression and the limit.
	const loopLimit = "more than 1000000 iterations|ran for more than"
	// So do the largest makers of memory, before their memory limit.
	const bigLimit = "more than 32 MiB of strings and lists|ran for more than"
	cases := []struct {
		name, expr, says string
	}{
		{"doubling", `reduce(1..40, #acc + #acc, "xxxxxxxxxxxxxxxx")`, "more than 32 MiB of strings and lists"},
		{"repeat", `repeat(input.s, 100000)`, "repeat would make 10240000000 bytes"},
		{"repeat-float", `repeat(input.s, input.f)`, "repeat would make 102399897600 bytes"},
		{"loops", `let xs = 1..2000; reduce(xs, reduce(xs, #acc + 1, 0) + #acc, 0)`, loopLimit},
		{"elements", `len(1..2000000)`, "more than 1000000 elements"},
		{"references", `map(1..100000, input.s)`, "more than 512 KiB"},
		{"to-json", `toJSON(map(1..2000, input.s))`, "more than the 32 MiB one evaluation may make"},
		{"string", `string(map(1..2000, input.s))`, "more than the 32 MiB one evaluation may make"},
		{"join", `join(map(1..2000, input.s), "")`, "more than 32 MiB of strings and lists"},
		{"replace", `replace(input.s, "", input.s)`, "more than 32 MiB of strings and lists"},
		{"split", `map(1..1000, split(input.s, ""))`, "more than 32 MiB of strings and lists"},
		{"in", `let xs = 1..100000; reduce(1..1000, #acc + (0 in xs ? 1 : 0), 0)`, loopLimit},
		{"map-literals", `map(1..500000, let m = {"a": #}; m)`, bigLimit},
		{"group-by", `groupBy(1..999999, #)`, bigLimit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.defs.put(t, fmt.Sprintf("apiVersion: sluice/v1\nkind: Workflow\nname: %s\ntasks:\n  a: { run: noop, inputs: '${ %s }' }\n", c.name, c.expr))
			inv := r.run(c.name, big)
			wantStatus(t, inv, StatusFailed)
			if inv.FailedTask != "a" || !containsAny(inv.Error, c.says) || !strings.Contains(inv.Error, "${ "+c.expr) {
				t.Fatalf("failed task %q: %q; want task a naming the expression, saying %q", inv.FailedTask, inv.Error, c.says)
			}
		})
	}
	// In a string, an interpolated value is held to the same budget.
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: interp\ntasks:\n  a: { run: noop, inputs: 'all: ${ map(1..2000, input.s) }' }\n")
	if inv := r.run("interp", big); inv.Status != StatusFailed || !strings.Contains(inv.Error, "32 MiB") {
		t.Fatalf("interpolation: %s %q", inv.Status, inv.Error)
	}
	// What honest expressions do still works: uniq is linear now (it was
	// quadratic: minutes for this list).
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: honest\noutput: '${ [len(uniq(1..200000)), len(uniq([1, 1.0, \"1\", [1], [1], nil, nil])), tasks.a.output] }'\ntasks:\n  a: { run: noop, inputs: '${ reduce(1..10, #acc + #acc, \"ab\") }' }\n")
	inv := r.run("honest", "null")
	wantStatus(t, inv, StatusSucceeded)
	wantJSON(t, inv.Output, fmt.Sprintf(`[200000, 4, %q]`, strings.Repeat("ab", 1024)))
}

func containsAny(s, alternatives string) bool {
	for _, a := range strings.Split(alternatives, "|") {
		if strings.Contains(s, a) {
			return true
		}
	}
	return false
}

// TestBudgetDeadline: an evaluation past its time fails, naming the
// limit, and one whose engine is stopping fails at once (what makes a
// CPU-heavy expression stop on SIGTERM).
func TestBudgetDeadline(t *testing.T) {
	d, err := ParseDefinition("", []byte("apiVersion: sluice/v1\nkind: Workflow\nname: slow\ntasks:\n  a: { run: noop, inputs: '${ map(1..10, # * 2) }' }\n"), Known{})
	if err != nil {
		t.Fatal(err)
	}
	b := newBudget(nil)
	b.deadline = time.Now().Add(-time.Second)
	_, err = d.tasks["a"].inputs.eval(env{}, b)
	if err == nil || !strings.Contains(err.Error(), "ran for more than "+evalTimeout.String()) {
		t.Fatalf("past its deadline: %v", err)
	}
	stop := make(chan struct{})
	close(stop)
	if _, err := d.tasks["a"].inputs.eval(env{}, newBudget(stop)); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("engine stopping: %v", err)
	}
}

// TestMissingField: reading a field a map does not have is an error that
// names the field and those the map has (it was null, quietly); ?. and
// ?? still take a missing field as null.
func TestMissingField(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: typo\ntasks:\n  a: { run: noop, inputs: '${ input.nmae }' }\n")
	inv := r.run("typo", `{"name": "Ada", "age": 36}`)
	wantStatus(t, inv, StatusFailed)
	if !strings.Contains(inv.Error, "input has no field nmae (it has age, name)") {
		t.Fatalf("error %q", inv.Error)
	}
	cases := []struct{ name, expr, input, want string }{
		{"optional", `input?.nmae`, `{"name": "Ada"}`, `null`},
		{"default", `input.nmae ?? "x"`, `{"name": "Ada"}`, `"x"`},
		{"nested-default", `input.a.b ?? "x"`, `{"a": {}}`, `"x"`},
		{"optional-chain", `input?.a?.b`, `{"b": 1}`, `null`},
		{"present", `input.a.b`, `{"a": {"b": 2}}`, `2`},
		{"in", `"nmae" in input`, `{"name": "Ada"}`, `false`},
		{"get", `get(input, "nmae")`, `{"name": "Ada"}`, `null`},
		{"filter", `filter(input, #?.on ?? false)`, `[{"on": true}, {}]`, `[{"on": true}]`},
		{"predicate-field", `map(input, .n)`, `[{"n": 1}, {"n": 2}]`, `[1, 2]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.defs.put(t, fmt.Sprintf("apiVersion: sluice/v1\nkind: Workflow\nname: %s\ntasks:\n  a: { run: noop, inputs: '${ %s }' }\n", c.name, c.expr))
			inv := r.run(c.name, c.input)
			wantStatus(t, inv, StatusSucceeded)
			wantJSON(t, inv.Output, c.want)
		})
	}
	fails := []struct{ name, expr, input, says string }{
		{"task-output", `tasks.a.output.x`, `null`, "tasks.a.output has no field x (it has n)"},
		{"null", `input.a.b`, `{"a": null}`, "input.a is null: it has no field b"},
		{"element", `map(input, .n)`, `[{"n": 1}, {}]`, "# has no field n (it has none)"},
	}
	for _, c := range fails {
		t.Run(c.name, func(t *testing.T) {
			r.defs.put(t, fmt.Sprintf("apiVersion: sluice/v1\nkind: Workflow\nname: %s\ntasks:\n  a: { run: noop, inputs: { n: 1 } }\n  b: { run: noop, requires: [a], inputs: '${ %s }' }\n", c.name, c.expr))
			inv := r.run(c.name, c.input)
			wantStatus(t, inv, StatusFailed)
			if !strings.Contains(inv.Error, c.says) {
				t.Fatalf("error %q, want %q", inv.Error, c.says)
			}
		})
	}
}

// TestEvaluationOutsideTheLock: while one invocation's expression is being
// evaluated (held here, as a slow one would be), the others run, and the
// engine answers.
func TestEvaluationOutsideTheLock(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: slow\ntasks:\n  a: { run: noop, inputs: '${ input + 1 }' }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: quick\noutput: '${ tasks.b.output * 2 }'\ntasks:\n  a: { run: wfguest, inputs: { op: add, n: '${ input }' } }\n  b: { run: noop, requires: [a], inputs: '${ tasks.a.output.n }' }\n")
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	testEvaluating = func(workflow string) {
		if workflow == "slow" {
			once.Do(func() { close(held) })
			<-release
		}
	}
	defer func() { testEvaluating = nil }()
	ctx := context.Background()
	slow, err := r.e.Invoke(ctx, "slow", []byte("1"), InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-held
	quick := r.run("quick", "20")
	wantStatus(t, quick, StatusSucceeded)
	wantJSON(t, quick.Output, "42")
	if got, err := r.e.Get(slow.ID); err != nil || got.Status != StatusRunning {
		t.Fatalf("the held invocation: %v %+v", err, got)
	}
	close(release)
	done, err := r.e.Wait(ctx, slow.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, "2")
}

// TestSandboxKeepsExpressions: the sandboxed program of a valid expression
// computes what expr computes of it as written.
func TestSandboxKeepsExpressions(t *testing.T) {
	in := map[string]any{"name": "Ada", "n": 3, "items": []any{map[string]any{"price": 2.5, "on": true}, map[string]any{"price": 4, "on": false}},
		"tags": []any{"a", "b", "a"}, "nested": map[string]any{"deep": map[string]any{"x": 1}}}
	for _, src := range []string{
		`input.name + "!"`, `"Hello " + input.name + ", " + string(input.n)`, `input.n * 2 + 1`, `input.n / 2`, `input.n ** 2`,
		`sum(map(input.items, .price))`, `filter(input.items, .on) | map(.price)`, `count(input.items, .price > 3)`,
		`reduce(input.items, #acc + #.price, 0)`, `let p = input.items[0].price; p * 2`, `input.items[-1].price`,
		`input?.missing ?? "x"`, `input.missing ?? "y"`, `input.nested.deep.x`, `input.nested?.deep?.x`, `input["name"]`,
		`"a" in input.tags`, `"name" in input`, `uniq(input.tags)`, `join(input.tags, "-")`, `repeat("ab", 3)`,
		`replace(input.name, "d", "D")`, `upper(input.name)`, `split("a,b", ",")`, `toJSON(input.nested)`, `fromJSON("[1, 2]")`,
		`keys(input.nested)`, `len(input.tags) > 2 ? "many" : "few"`, `sortBy(input.items, .price, "desc")[0].price`,
		`groupBy(input.tags, #)["a"]`, `{"a": input.n, "b": [input.name]}`, `1..5`, `map(1..3, # * index)`, `all(input.items, .price > 1)`,
		`first(input.tags)`, `last(input.tags)`, `take(input.tags, 2)`, `max(1, input.n)`, `abs(-input.n)`, `trim("  x ")`,
		`findIndex(input.items, .on)`, `input.n == 3 && input.name != "Bob"`, `input.items[0]?.price`, `concat(input.tags, ["c"])`,
		`tasks.a.output.v + index`, `item.k ?? prev`,
	} {
		t.Run(src, func(t *testing.T) {
			en := func() map[string]any {
				return map[string]any{"input": in, "tasks": map[string]any{"a": map[string]any{"output": map[string]any{"v": 1}, "status": "succeeded", "error": ""}},
					"invocation": map[string]any{"id": "i", "workflow": "w"}, "item": map[string]any{"k": "v"}, "index": 2, "prev": nil}
			}
			plain, err := expr.Compile(src, exprOptions...)
			if err != nil {
				t.Fatal(err)
			}
			want, err := expr.Run(plain, en())
			if err != nil {
				t.Fatal(err)
			}
			c := compiler{refs: map[string]int{}}
			prog, _, err := c.compile(src, scope{item: true, index: true, prev: true}, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := (&value{kind: kindExpr, prog: prog, src: src, line: 1}).eval(en(), newBudget(nil))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("sandboxed: %v, as written: %v", got, want)
			}
		})
	}
}
