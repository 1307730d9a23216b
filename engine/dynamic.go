package engine

// Dynamic tasks and workflows as values (engine/README.md, "Dynamic tasks
// and workflows as values"):
//
//   - run: dynamic runs the task spec or workflow spec its inputs evaluate
//     to, as a child invocation of an inline workflow whose definition
//     (JSON) its InvocationCreated carries;
//   - run: NAME naming a workflow runs it as a child workflow, resolved
//     when the task is scheduled and recorded as a workflow task;
//   - workflow: ${ expr } names a workflow task's child workflow at run
//     time.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/jsonquote"
)

const (
	// inlineTaskID is the id of the one task a task spec runs as: the
	// child's tasks.spec.
	inlineTaskID = "spec"
	// inlineCacheBytes bounds the sources of the inline definitions kept
	// parsed, by revision: a foreach running one spec per item parses it
	// once, and specs made per invocation (each with its own values) do
	// not pile up. 16 MiB is 32 of the largest specs, thousands of usual
	// ones; an evicted one is parsed again from its invocation.
	inlineCacheBytes = 16 << 20
)

// startsChild tells whether a task of kind run (as its TaskScheduled
// records it) runs a child invocation.
func startsChild(run string) bool { return run == builtinWorkflow || run == builtinDynamic }

// isWorkflow tells whether a name is a workflow, when the parser is told.
func (p *parser) isWorkflow(name string) bool {
	return p.known.Workflow != nil && p.known.Workflow(name)
}

// useRun notes the function or workflow a task's run: names. Told what
// exists, it records what the name is (both, if it is both: a function
// runs while it is deployed, else the workflow); not told (a stored
// definition parsed again), it may be either, and is recorded as both, so
// that neither is deleted while this definition uses it.
func (p *parser) useRun(name string, line int) {
	switch {
	case p.known.Function == nil:
		use(p.fns, name, line)
		if p.known.Workflow == nil || p.known.Workflow(name) {
			use(p.wfs, name, line)
		}
	case p.known.Function(name):
		use(p.fns, name, line)
		if p.isWorkflow(name) {
			use(p.wfs, name, line)
		}
	case p.isWorkflow(name):
		use(p.wfs, name, line)
	default:
		use(p.fns, name, line) // refused already
	}
}

// workflowExpr parses a workflow task's workflow: that is an expression
// (${ input.workflow }): evaluated when the task is scheduled (into its
// TaskScheduled's {"workflow"}), and checked when the child starts.
func (p *parser) workflowExpr(t *taskSpec, v *yaml.Node, sc scope) bool {
	if v.Kind != yaml.ScalarNode || !strings.Contains(v.Value, "${") {
		return false
	}
	t.cond = p.value(v, sc)
	return true
}

// dynamic parses a dynamic task's inputs: the spec it runs. Given as an
// expression (${ tasks.plan.output }), it is what the expression
// evaluates to. Written in the definition (a mapping with run, tasks or
// spec: a mapping), the spec is a literal: its ${ } are the child's
// expressions, evaluated in the child (only {spec, input}'s input, and a
// spec: that is an expression, are the task's own values), and it is
// checked now, as a definition is.
func (p *parser) dynamic(t *taskSpec, n *yaml.Node, what string) {
	if n == nil {
		p.errorf(t.line, "%s: dynamic takes inputs: the spec to run, like inputs: ${ tasks.plan.output } (%s)", what, specShapes)
		return
	}
	if n.Kind != yaml.MappingNode || !hasKey(n, "run") && !hasKey(n, "tasks") && !hasKey(n, "spec") {
		t.inputs = p.value(n, t.scope)
		if t.inputs.static {
			p.checkSpec(t.id, t.inputs.lit, n.Line, what)
		}
		return
	}
	literal := func(n *yaml.Node) *value {
		var x any
		if err := n.Decode(&x); err != nil {
			p.errorf(n.Line, "%s: %v", what, err)
		}
		return &value{kind: kindLiteral, line: n.Line, lit: x, static: true}
	}
	if !hasKey(n, "spec") {
		t.inputs = literal(n)
		p.checkSpec(t.id, t.inputs.lit, n.Line, what)
		return
	}
	v := &value{kind: kindMap, line: n.Line, static: true}
	lit := map[string]any{}
	written := false // the spec is a mapping, not an expression
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, c := n.Content[i], n.Content[i+1]
		var el *value
		if k.Value == "spec" && c.Kind == yaml.MappingNode {
			el = literal(c)
			written = true
		} else {
			el = p.value(c, t.scope)
		}
		v.keys, v.elems = append(v.keys, k.Value), append(v.elems, el)
		v.static = v.static && el.static
		lit[k.Value] = el.lit
	}
	t.inputs = v
	if v.static {
		t.inputs = &value{kind: kindLiteral, line: n.Line, lit: lit, static: true}
	}
	if !written {
		return
	}
	check := map[string]any{}
	for k := range lit {
		check[k] = nil // unknown fields are reported; input's value does not matter
	}
	check["spec"] = lit["spec"]
	p.checkSpec(t.id, check, n.Line, what)
}

// checkSpec checks a spec written in a definition as a definition is
// checked: against what is deployed, if the parser is told.
func (p *parser) checkSpec(id string, x any, line int, what string) {
	raw, err := encodeLiteral(x)
	if err != nil {
		p.errorf(line, "%s: %v", what, err)
		return
	}
	sp, err := readSpec(raw)
	if err == nil {
		_, err = parseInline(id, sp, p.known)
	}
	if err != nil {
		p.errorf(line, "%s: %v", what, err)
	}
}

func encodeLiteral(x any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// specShapes says what a dynamic task may be given.
const specShapes = `a task {"run": NAME, "inputs": VALUE}, a workflow {"tasks": {...}, "output": VALUE}, or {"spec": one of those, "input": VALUE}`

// inlineSpec is what a dynamic task runs.
type inlineSpec struct {
	// source is the inline workflow's definition: compact JSON, its keys
	// sorted, with apiVersion and kind. Its sha256 is its revision.
	source []byte
	// input is the child's input: {spec, input}'s input, else null.
	input json.RawMessage
	// task: a task spec, run as the workflow's one task (inlineTaskID).
	task bool
}

// readSpec reads a dynamic task's input (JSON): a task spec, a workflow
// spec, or {spec, input}. Anything else is refused, saying what a spec
// looks like.
func readSpec(raw []byte) (*inlineSpec, error) {
	notSpec := func() error {
		return fmt.Errorf("dynamic: the value to run is %s, not a spec: give it %s", brief(fromJSON(raw)), specShapes)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil || top == nil {
		return nil, notSpec()
	}
	sp := &inlineSpec{input: json.RawMessage("null")}
	if s, ok := top["spec"]; ok {
		for k := range top {
			if k != "spec" && k != "input" {
				return nil, fmt.Errorf("dynamic: unknown field %q beside spec (fields: spec, input)", k)
			}
		}
		if in, ok := top["input"]; ok {
			sp.input = in
		}
		top = nil
		if json.Unmarshal(s, &top) != nil || top == nil {
			return nil, fmt.Errorf("dynamic: spec is %s: want a task {\"run\": NAME, \"inputs\": VALUE} or a workflow {\"tasks\": {...}, \"output\": VALUE}", brief(fromJSON(s)))
		}
	}
	_, isTask := top["run"]
	_, isWorkflow := top["tasks"]
	body := top
	switch {
	case isTask && isWorkflow:
		return nil, errors.New(`dynamic: the spec has both run (a task) and tasks (a workflow): give one`)
	case isTask:
		sp.task = true
		task, _ := encodeLiteral(top)
		tasks, _ := encodeLiteral(map[string]json.RawMessage{inlineTaskID: task})
		body = map[string]json.RawMessage{"tasks": tasks}
	case isWorkflow:
		if _, ok := top["name"]; ok {
			return nil, errors.New("dynamic: a workflow spec takes no name: it runs as PARENT_WORKFLOW/TASK")
		}
	default:
		return nil, notSpec()
	}
	if body["apiVersion"] == nil {
		body["apiVersion"] = json.RawMessage(`"` + APIVersion + `"`)
	}
	if body["kind"] == nil {
		body["kind"] = json.RawMessage(`"Workflow"`)
	}
	var err error
	if sp.source, err = encodeLiteral(body); err != nil {
		return nil, fmt.Errorf("dynamic: %v", err)
	}
	return sp, nil
}

// parseInline parses and checks an inline workflow with the definition
// parser; its problems are one message, without lines (the spec is a
// value: no file has them).
func parseInline(name string, sp *inlineSpec, known Known) (def *Definition, err error) {
	defer func() {
		if r := recover(); r != nil {
			def, err = nil, fmt.Errorf("the dynamic spec cannot be read: internal error: %v", r)
		}
	}()
	p := &parser{known: known, fns: map[string]int{}, wfs: map[string]int{}}
	d := p.parse(name, sp.source)
	p.checkUses(d)
	if len(p.errs) == 0 {
		d.fix()
		return d, nil
	}
	var msgs []string
	for i, e := range p.errs {
		if i == maxErrors {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(p.errs)-maxErrors))
			break
		}
		msg := e.msg
		if sp.task {
			msg = strings.TrimPrefix(msg, "task "+inlineTaskID+": ")
		}
		msgs = append(msgs, msg)
	}
	what := "workflow"
	if sp.task {
		what = "task"
	}
	return nil, fmt.Errorf("in the dynamic spec (a %s): %s", what, strings.Join(msgs, "; "))
}

// inlineName is the workflow name of a dynamic task's child: its parent's
// workflow and the task, "order/plan" (no workflow of the catalog has a
// "/" in its name).
func inlineName(inv *invState, task string) string { return inv.workflow + "/" + task }

// inlineRevision reads, parses and checks, against what is deployed now,
// the spec a dynamic task was given: the revision its child runs, and the
// child's input.
func (e *Engine) inlineRevision(inv *invState, t *taskState) (Revision, datum, error) {
	raw, form := t.input.jsonView()
	if form != "" {
		return Revision{}, datum{}, fmt.Errorf("dynamic: the value to run is %s, not a spec: give it %s", brief(t.input.view()), specShapes)
	}
	sp, err := readSpec(raw)
	if err != nil {
		return Revision{}, datum{}, err
	}
	name := inlineName(inv, t.id)
	def, err := parseInline(name, sp, Known{Function: e.o.Functions.Exists, Workflow: func(wf string) bool {
		_, ok := e.o.Definitions.Current(wf)
		return ok
	}})
	if err != nil {
		return Revision{}, datum{}, err
	}
	sum := sha256.Sum256(sp.source)
	rev := Revision{Name: name, Revision: hex.EncodeToString(sum[:]), inline: sp.source}
	e.inlineDefs().put(rev.Revision, def, len(sp.source))
	return rev, jsonValue(sp.input), nil
}

// definitionOf is the definition an invocation runs: its inline source,
// if its creation carried one, else its revision in the catalog.
func (e *Engine) definitionOf(inv *invState) (*Definition, error) {
	if len(inv.source) == 0 {
		return e.definition(inv.revision)
	}
	c := e.inlineDefs()
	if d := c.defs[inv.revision]; d != nil {
		return d, nil
	}
	d, err := parseInline(inv.workflow, &inlineSpec{source: inv.source}, Known{})
	if err != nil {
		return nil, fmt.Errorf("workflow %s (inline, revision %s): %v", inv.workflow, short(inv.revision), err)
	}
	c.put(inv.revision, d, len(inv.source))
	return d, nil
}

// childRevision is the revision a child invocation runs: the catalog's
// current version of the workflow named (literally or by an expression:
// checked here), or a dynamic task's inline workflow.
func (e *Engine) childRevision(inv *invState, t *taskState, workflow string, input datum) (Revision, datum, error) {
	if t.run == builtinDynamic {
		return e.inlineRevision(inv, t)
	}
	if !fn.ValidName(workflow) {
		return Revision{}, datum{}, fmt.Errorf("workflow: %s", badName(workflow))
	}
	rev, ok := e.o.Definitions.Current(workflow)
	if !ok {
		return Revision{}, datum{}, fmt.Errorf("no workflow %q: create it first (sluice wf create %s -f FILE)", workflow, workflow)
	}
	if _, err := e.definition(rev.Revision); err != nil {
		return Revision{}, datum{}, err
	}
	return rev, input, nil
}

// workflowName is the child workflow a workflow task names: its literal
// name, or what its expression evaluates to, which must be a valid name.
func workflowName(spec *taskSpec, en env, b *budget) (string, error) {
	if spec.cond == nil {
		return spec.workflow, nil
	}
	x, err := spec.cond.eval(en, b)
	if err != nil {
		return "", err
	}
	s, ok := x.(string)
	if !ok || !fn.ValidName(s) {
		what := brief(x)
		if ok {
			what = fmt.Sprintf("%q", clip(s))
		}
		return "", spec.cond.failed(fmt.Errorf("workflow: the name is %s: want the name of a workflow (%s)", what, fn.NameRule))
	}
	return s, nil
}

// resolveRun decides, when a task whose run: names no built-in is
// scheduled, what the name is now: a function the invocation pinned (it
// was deployed when the invocation started, and its version is kept) or
// a deployed function (the task as it is), else a workflow (ev becomes a
// workflow task's TaskScheduled, {"workflow": NAME} with the input as the
// child's). The choice is in the event, so a replay is exact whatever is
// deployed later.
func (e *Engine) resolveRun(inv *invState, spec *taskSpec, ev *Event) error {
	if !spec.isFunction() || e.o.Functions.Exists(spec.run) {
		return nil
	}
	if _, pinned := lookupPin(inv.pins, spec.run); pinned {
		return nil // a function when the invocation started: its version is kept
	}
	if _, ok := e.o.Definitions.Current(spec.run); !ok {
		return fmt.Errorf("run: %q is neither a deployed function nor a workflow (deleted since the workflow was created?): deploy or create it", spec.run)
	}
	name := jsonquote.AppendString(nil, spec.run)
	in := append([]byte(`{"workflow":`), name...)
	if ev.InputData == nil {
		raw := ev.Input
		if len(raw) == 0 {
			raw = json.RawMessage("null")
		}
		in = append(append(in, `,"input":`...), raw...)
	}
	ev.Run, ev.Input = builtinWorkflow, append(in, '}')
	return nil
}

// inlineDefs are the parsed inline definitions, by revision, the oldest
// evicted beyond inlineCacheBytes of sources.
type inlineDefs struct {
	defs  map[string]*Definition
	sizes map[string]int
	order []string
	bytes int
}

func (e *Engine) inlineDefs() *inlineDefs {
	if e.inline == nil {
		e.inline = &inlineDefs{defs: map[string]*Definition{}, sizes: map[string]int{}}
	}
	return e.inline
}

func (c *inlineDefs) put(rev string, d *Definition, size int) {
	if _, ok := c.defs[rev]; ok {
		return
	}
	c.defs[rev], c.sizes[rev] = d, size
	c.order = append(c.order, rev)
	c.bytes += size
	for c.bytes > inlineCacheBytes && len(c.order) > 1 {
		old := c.order[0]
		c.order[0] = ""
		c.order = c.order[1:]
		c.bytes -= c.sizes[old]
		delete(c.defs, old)
		delete(c.sizes, old)
	}
}
