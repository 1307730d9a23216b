package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/fn"
)

// APIVersion is the apiVersion of a workflow definition.
const APIVersion = "sluice/v1"

// Definition limits.
const (
	// maxTasks bounds the static tasks of one definition.
	maxTasks = 1000
	// maxRetries bounds retry.max: a task that failed a hundred times is
	// not going to succeed on the next try.
	maxRetries = 100
	// defaultBackoff is the first retry's delay when retry gives none.
	defaultBackoff = 100 * time.Millisecond
	// maxBackoff caps the exponential backoff between two attempts.
	maxBackoff = 10 * time.Minute
	// maxWhileLimit bounds a while loop's limit.
	maxWhileLimit = 100000
)

// Built-in task kinds: the values of run: that are not functions.
const (
	builtinIf       = "if"
	builtinSwitch   = "switch"
	builtinForeach  = "foreach"
	builtinWhile    = "while"
	builtinRepeat   = "repeat"
	builtinSleep    = "sleep"
	builtinFail     = "fail"
	builtinNoop     = "noop"
	builtinCompose  = "compose"
	builtinWorkflow = "workflow"
	builtinDynamic  = "dynamic"
	// builtinWait = "wait": signal.go
)

var builtins = map[string]bool{
	builtinIf: true, builtinSwitch: true, builtinForeach: true, builtinWhile: true, builtinRepeat: true,
	builtinSleep: true, builtinFail: true, builtinNoop: true, builtinCompose: true, builtinWorkflow: true,
	builtinDynamic: true,
	builtinWait:    true,
	builtinHTTP:    true,
}

func builtinList() string {
	return "if, switch, foreach, while, repeat, sleep, fail, noop, compose, workflow, dynamic, wait, http"
}

// Definition is a parsed, validated workflow definition.
type Definition struct {
	// Name is the workflow's name.
	Name   string
	output *value
	tasks  map[string]*taskSpec
	// order lists the static tasks in a topological order.
	order []string
	// sinks are the tasks no other task requires: without output:, the
	// workflow's output is theirs.
	sinks []string
	// functions and workflows are the functions and child workflows the
	// definition names, static and dynamic tasks alike, sorted.
	functions, workflows []string
	// fixedOutput is output: evaluated at parse time, if it holds no
	// expression.
	fixedOutput *evaluation
	// timeout is the invocation's deadline, from its creation (0: none).
	timeout time.Duration
}

// Uses returns the functions and the child workflows the definition names
// (in its static tasks and in the tasks it gives built-ins as data),
// sorted: what must not be deleted while the workflow exists. A workflow
// that runs itself is among its own workflows.
func (d *Definition) Uses() (functions, workflows []string) {
	return d.functions, d.workflows
}

// Known tells the parser what is deployed, so that a definition naming a
// function or a child workflow that does not exist is refused when it is
// created rather than failing when it runs. A nil func skips its check (a
// definition already stored is parsed again without them: what it names
// may have been deleted since, with --force).
type Known struct {
	Function func(name string) bool
	Workflow func(name string) bool
}

// taskSpec is a task of a definition: a static one (under tasks:) or a
// dynamic one (a task spec given as data to a built-in).
type taskSpec struct {
	id       string
	run      string
	builtin  bool
	inputs   *value
	requires []string
	// reqLine is the line of requires:, for messages about it.
	reqLine int
	retry   retryPolicy
	timeout time.Duration
	line    int
	// scope is what its expressions may name.
	scope scope

	// Built-ins: cond is if's condition, switch's subject, while's
	// condition, foreach's list and repeat's count; branches are the
	// values or dynamic tasks it may run, by key: "then", "else",
	// "case/N", "default", "do"; cases are switch's case values.
	cond     *value
	branches map[string]*branch
	cases    []*value
	parallel *value
	limit    int
	// workflow is the child workflow's name (workflow built-in); when
	// it is an expression, cond is.
	workflow string
	// match is a topic wait's condition on each message (topicwait.go).
	match *value
	// fixed is the task's input and fixedCond a while's condition,
	// evaluated at parse time when they hold no expression: running the
	// task then needs no evaluation.
	fixed, fixedCond *evaluation
}

type retryPolicy struct {
	max     int
	backoff time.Duration
	// maxBackoff caps the doubling (0: the hard cap, maxBackoff), jitter
	// takes up to that fraction off each delay, on lists the codes
	// retried (none: every code). See failure.go.
	maxBackoff time.Duration
	jitter     float64
	on         []string
}

// delay is the wait before the attempt after the n-th failure (n from 1),
// before jitter.
func (r retryPolicy) delay(n int) time.Duration {
	limit := maxBackoff
	if r.maxBackoff > 0 {
		limit = r.maxBackoff
	}
	d := r.backoff
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// branch is what a built-in may run: a dynamic task, or a value.
type branch struct {
	spec *taskSpec
	val  *value
	// fixed is val, evaluated at parse time if it holds no expression.
	fixed *evaluation
}

// isFunction tells whether the task calls a function.
func (t *taskSpec) isFunction() bool { return !t.builtin }

// child resolves a dynamic task by its id segment under t: "then",
// "else", "default", "case/N" name branches, a number names an iteration
// of a loop's do.
func (t *taskSpec) child(seg string) *taskSpec {
	if b, ok := t.branches[seg]; ok {
		return b.spec
	}
	if _, err := strconv.Atoi(seg); err == nil {
		if b, ok := t.branches["do"]; ok {
			return b.spec
		}
	}
	return nil
}

// spec resolves a task id, static ("price") or dynamic ("route/then",
// "each/3", "each/3/then").
func (d *Definition) spec(id string) *taskSpec {
	segs := strings.Split(id, "/")
	t := d.tasks[segs[0]]
	for i := 1; t != nil && i < len(segs); i++ {
		if segs[i] == "case" && i+1 < len(segs) {
			t = t.child("case/" + segs[i+1])
			i++
			continue
		}
		t = t.child(segs[i])
	}
	return t
}

var taskIDPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ParseDefinition parses and validates a workflow definition. name is the
// name it is created under ("" takes the definition's own); known tells
// which functions and workflows exist. The error lists every problem
// found, each with its line.
func ParseDefinition(name string, source []byte, known Known) (*Definition, error) {
	p := &parser{known: known, fns: map[string]int{}, wfs: map[string]int{}}
	d := p.parse(name, source)
	p.checkUses(d)
	if len(p.errs) > 0 {
		return nil, p.err(d)
	}
	d.fix()
	return d, nil
}

// fix evaluates, once, what holds no expression.
func (d *Definition) fix() {
	if d.output != nil && d.output.static {
		d.fixedOutput = fixed(valueOf(d.output))
	}
	var walk func(t *taskSpec)
	walk = func(t *taskSpec) {
		if t.static() {
			t.fixed = fixed(inputOf(t))
		}
		if t.run == builtinWhile && t.cond != nil && t.cond.static {
			t.fixedCond = fixed(conditionOf(t.cond))
		}
		for _, b := range t.branches {
			if b == nil {
				continue
			}
			if b.val != nil && b.val.static {
				b.fixed = fixed(valueOf(b.val))
			}
			if b.spec != nil {
				walk(b.spec)
			}
		}
	}
	for _, t := range d.tasks {
		walk(t)
	}
}

// passes tells whether a task's TaskScheduled records its inputs as they
// are (not the parts of a built-in's), so that inputs passing a stored
// value on need no evaluation.
func (t *taskSpec) passes() bool {
	switch t.run {
	case builtinIf, builtinSwitch, builtinForeach, builtinWhile, builtinRepeat, builtinWorkflow, builtinSleep, builtinHTTP:
		return false
	}
	return t.inputs != nil && t.inputs.pass != ""
}

// static tells whether what a task's TaskScheduled records holds no
// expression.
func (t *taskSpec) static() bool {
	if t.run == builtinWhile {
		return true // it records its limit; its condition is evaluated per iteration
	}
	for _, v := range append([]*value{t.inputs, t.cond, t.parallel}, t.cases...) {
		if v != nil && !v.static {
			return false
		}
	}
	return true
}

type parser struct {
	known Known
	errs  []lineError
	c     compiler
	// fns and wfs are the functions and child workflows named, with the
	// line of their first mention.
	fns, wfs map[string]int
	// handling counts the catch: and undo: tasks being parsed around the
	// current one (failure.go).
	handling int
}

// checkUses records what the definition names and refuses a child
// workflow that does not exist (functions are checked where they are
// named). A workflow may run itself.
func (p *parser) checkUses(d *Definition) {
	d.functions, d.workflows = sortedKeys(p.fns), sortedKeys(p.wfs)
	if p.known.Workflow == nil {
		return
	}
	for _, wf := range d.workflows {
		if wf != d.Name && !p.known.Workflow(wf) {
			p.errorf(p.wfs[wf], "workflow: %q is not a workflow: create it first (sluice wf create %s -f FILE)", wf, wf)
		}
	}
}

// use notes that the definition names something at a line.
func use(m map[string]int, name string, line int) {
	if _, ok := m[name]; !ok {
		m[name] = line
	}
}

type lineError struct {
	line int
	msg  string
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, lineError{line, fmt.Sprintf(format, args...)})
}

// maxErrors is how many problems one error lists.
const maxErrors = 20

func (p *parser) err(d *Definition) error {
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].line < p.errs[j].line })
	var b strings.Builder
	what := "workflow definition"
	if d != nil && d.Name != "" {
		what = fmt.Sprintf("workflow %q", d.Name)
	}
	if len(p.errs) == 1 {
		e := p.errs[0]
		if e.line > 0 {
			fmt.Fprintf(&b, "%s: line %d: %s", what, e.line, e.msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", what, e.msg)
		}
		return fmt.Errorf("%w: %s", ErrInvalid, b.String())
	}
	fmt.Fprintf(&b, "%s has %d problems:", what, len(p.errs))
	for i, e := range p.errs {
		if i == maxErrors {
			fmt.Fprintf(&b, "\n  ... and %d more", len(p.errs)-maxErrors)
			break
		}
		if e.line > 0 {
			fmt.Fprintf(&b, "\n  line %d: %s", e.line, e.msg)
		} else {
			fmt.Fprintf(&b, "\n  %s", e.msg)
		}
	}
	return fmt.Errorf("%w: %s", ErrInvalid, b.String())
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) parse(name string, source []byte) *Definition {
	d := &Definition{Name: name, tasks: map[string]*taskSpec{}}
	if len(source) > MaxDefinition {
		p.errorf(0, "the definition is %d KiB, over the limit of %d KiB", len(source)>>10, MaxDefinition>>10)
		return d
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(source))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(0, "the file is empty")
			return d
		}
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			hint := ""
			if lines := strings.Split(string(source), "\n"); n >= 1 && n <= len(lines) && strings.Contains(lines[n-1], "${") {
				hint = ` (an expression with ": ", "{" or "#" in it must be quoted: "${ ... }")`
			}
			p.errorf(n, "YAML: %s%s", m[2], hint)
		} else {
			p.errorf(0, "YAML: %s", strings.TrimPrefix(msg, "yaml: "))
		}
		return d
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(extra.Line, "a second YAML document: a workflow file holds one workflow (sluice apply takes several documents)")
	}
	root, lerr := expandYAML(&doc)
	if lerr != nil {
		p.errs = append(p.errs, *lerr)
		return d
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "want a mapping with apiVersion, kind, name, output and tasks")
		return d
	}
	var tasksNode, outputNode *yaml.Node
	nameGiven, apiGiven, kindGiven := false, false, false
	p.fields(root, "workflow", func(key string, k, v *yaml.Node) {
		switch key {
		case "apiVersion":
			apiGiven = true
			if v.Value != APIVersion {
				p.errorf(v.Line, "apiVersion %q: want %s", v.Value, APIVersion)
			}
		case "kind":
			kindGiven = true
			if v.Value != "Workflow" {
				p.errorf(v.Line, "kind %q: want Workflow", v.Value)
			}
		case "name":
			nameGiven = true
			if !fn.ValidName(v.Value) {
				p.errorf(v.Line, "%s", badName(v.Value))
			} else if name != "" && v.Value != name {
				p.errorf(v.Line, "the file names workflow %q, not %q: change name: or the name you create it under", v.Value, name)
			} else {
				d.Name = v.Value
			}
		case "description":
		case "output":
			outputNode = v
		case "tasks":
			tasksNode = v
		case "timeout":
			d.timeout = p.deadline(v)
		default:
			p.errorf(k.Line, "unknown field %q (fields: apiVersion, kind, name, description, output, tasks, timeout)", key)
		}
	})
	if !apiGiven {
		p.errorf(root.Line, "apiVersion is missing: add apiVersion: %s", APIVersion)
	}
	if !kindGiven {
		p.errorf(root.Line, "kind is missing: add kind: Workflow")
	}
	if !nameGiven && name == "" {
		p.errorf(root.Line, "the workflow has no name: add name:")
	}
	if tasksNode == nil {
		p.errorf(root.Line, "no tasks: a workflow needs at least one task under tasks:")
		return d
	}
	if tasksNode.Kind != yaml.MappingNode || len(tasksNode.Content) == 0 {
		p.errorf(tasksNode.Line, "tasks: want a mapping of task ids to tasks, with at least one task")
		return d
	}
	if len(tasksNode.Content)/2 > maxTasks {
		p.errorf(tasksNode.Line, "%d tasks: at most %d", len(tasksNode.Content)/2, maxTasks)
		return d
	}
	var ids []string
	for i := 0; i < len(tasksNode.Content); i += 2 {
		k, v := tasksNode.Content[i], tasksNode.Content[i+1]
		id := k.Value
		if !taskIDPattern.MatchString(id) {
			p.errorf(k.Line, "task id %q: use letters, digits and _, starting with a letter (expressions name it as tasks.ID)", id)
			continue
		}
		if _, dup := d.tasks[id]; dup {
			p.errorf(k.Line, "task %q is defined twice", id)
			continue
		}
		t := p.task(id, v, scope{}, false)
		if t != nil {
			d.tasks[id] = t
			ids = append(ids, id)
		}
	}
	p.checkGraph(d, ids)
	if outputNode != nil {
		p.c.refs = map[string]int{}
		d.output = p.value(outputNode, scope{})
		for ref, line := range p.c.refs {
			if _, ok := d.tasks[ref]; !ok {
				p.errorf(line, "output: uses tasks.%s, which is not a task (tasks: %s)", ref, strings.Join(sortedKeys(d.tasks), ", "))
			}
		}
	}
	return d
}

// fields walks a mapping's keys, checking the required ones exist and no
// key repeats.
func (p *parser) fields(m *yaml.Node, what string, fn func(key string, k, v *yaml.Node), required ...string) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if seen[k.Value] {
			p.errorf(k.Line, "%s: %q is given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		fn(k.Value, k, v)
	}
	for _, r := range required {
		if !seen[r] {
			p.errorf(m.Line, "%s: %s: is missing", what, r)
		}
	}
}

// task parses a task: a static one under tasks:, or a dynamic one
// (dynamic: no requires).
func (p *parser) task(id string, n *yaml.Node, sc scope, dynamic bool) *taskSpec {
	t := &taskSpec{id: id, line: n.Line, scope: sc}
	what := fmt.Sprintf("task %s", id)
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: want a mapping with run: and inputs:", what)
		return nil
	}
	var inputs, retry, timeout, catch, undo *yaml.Node
	p.fields(n, what, func(key string, k, v *yaml.Node) {
		switch key {
		case "run":
			t.run = v.Value
		case "inputs":
			inputs = v
		case "requires":
			if dynamic {
				p.errorf(k.Line, "%s: a task given as data runs when its parent decides: it takes no requires:", what)
				return
			}
			t.requires = p.stringList(v, what+": requires")
			t.reqLine = v.Line
		case "retry":
			retry = v
		case "timeout":
			timeout = v
		case "catch":
			catch = v
		case "undo":
			undo = v
		case "description":
		default:
			p.errorf(k.Line, "%s: unknown field %q (fields: run, inputs, requires, retry, timeout, catch, undo, description)", what, key)
		}
	})
	switch {
	case t.run == "":
		p.errorf(n.Line, "%s has no run: name a deployed function, a workflow or a built-in (%s)", what, builtinList())
		return nil
	case builtins[t.run]:
		t.builtin = true
	case p.known.Function != nil && !p.known.Function(t.run) && !p.isWorkflow(t.run):
		p.errorf(n.Line, "%s: run: %q is neither a built-in (%s), a deployed function nor a workflow: deploy or create it first", what, t.run, builtinList())
	}
	if !t.builtin {
		p.useRun(t.run, n.Line)
	}
	if retry != nil {
		p.retry(t, retry, what)
	}
	if timeout != nil {
		d, err := time.ParseDuration(timeout.Value)
		switch {
		case err != nil || d <= 0:
			p.errorf(timeout.Line, "%s: timeout %q: want a duration like 5s or 2m", what, timeout.Value)
		default:
			t.timeout = d
		}
	}
	if t.builtin {
		p.builtin(t, inputs, what)
	} else if inputs != nil {
		t.inputs = p.value(inputs, sc)
	}
	p.handlers(t, catch, undo, what)
	return t
}

func (p *parser) retry(t *taskSpec, n *yaml.Node, what string) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: retry: want {max: N, backoff: DURATION}", what)
		return
	}
	if !t.runsAttempts() && !startsChild(t.run) {
		p.errorf(n.Line, "%s: retry applies to function, workflow, dynamic and http tasks, not to the built-in %s", what, t.run)
		return
	}
	t.retry.backoff = defaultBackoff
	p.fields(n, what+": retry", func(key string, k, v *yaml.Node) {
		switch key {
		case "max":
			m, err := strconv.Atoi(v.Value)
			if err != nil || m < 0 || m > maxRetries {
				p.errorf(v.Line, "%s: retry: max %q: want a number of retries from 0 to %d", what, v.Value, maxRetries)
				return
			}
			t.retry.max = m
		case "backoff":
			d, err := time.ParseDuration(v.Value)
			if err != nil || d <= 0 {
				p.errorf(v.Line, "%s: retry: backoff %q: want a duration like 200ms or 1s (it doubles on each retry)", what, v.Value)
				return
			}
			t.retry.backoff = d
		default:
			p.retryMore(t, key, k, v, what)
		}
	}, "max")
	p.checkRetry(t, n, what)
}

// builtin parses a built-in's inputs.
func (p *parser) builtin(t *taskSpec, n *yaml.Node, what string) {
	sc := t.scope
	need := func(shape string) bool {
		if n == nil || n.Kind != yaml.MappingNode {
			line := t.line
			if n != nil {
				line = n.Line
			}
			p.errorf(line, "%s: %s takes inputs: %s", what, t.run, shape)
			return false
		}
		return true
	}
	dyn := func(key string, v *yaml.Node, sc scope, valueOK bool) *branch {
		if v.Kind == yaml.MappingNode && hasKey(v, "run") {
			spec := p.task(t.id+"/"+key, v, sc, true)
			if spec == nil {
				return nil
			}
			return &branch{spec: spec}
		}
		if !valueOK {
			p.errorf(v.Line, "%s: %s: want a task {run: ..., inputs: ...}", what, key)
			return nil
		}
		return &branch{val: p.value(v, sc)}
	}
	t.branches = map[string]*branch{}
	switch t.run {
	case builtinIf:
		if !need("{if: CONDITION, then: VALUE or TASK, else: VALUE or TASK}") {
			return
		}
		p.fields(n, what, func(key string, k, v *yaml.Node) {
			switch key {
			case "if":
				t.cond = p.value(v, sc)
			case "then", "else":
				if b := dyn(key, v, sc, true); b != nil {
					t.branches[key] = b
				}
			default:
				p.errorf(k.Line, "%s: if: unknown input %q (inputs: if, then, else)", what, key)
			}
		}, "if", "then")
	case builtinSwitch:
		if !need("{switch: VALUE, cases: [{case: VALUE, do: VALUE or TASK}], default: VALUE or TASK}") {
			return
		}
		p.fields(n, what, func(key string, k, v *yaml.Node) {
			switch key {
			case "switch":
				t.cond = p.value(v, sc)
			case "cases":
				if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
					p.errorf(v.Line, "%s: cases: want a list of {case: VALUE, do: VALUE or TASK}", what)
					return
				}
				for i, c := range v.Content {
					if c.Kind != yaml.MappingNode {
						p.errorf(c.Line, "%s: cases[%d]: want {case: VALUE, do: VALUE or TASK}", what, i)
						continue
					}
					var cv *value
					p.fields(c, fmt.Sprintf("%s: cases[%d]", what, i), func(key string, k, v *yaml.Node) {
						switch key {
						case "case":
							cv = p.value(v, sc)
						case "do":
							if b := dyn(fmt.Sprintf("case/%d", i), v, sc, true); b != nil {
								t.branches[fmt.Sprintf("case/%d", i)] = b
							}
						default:
							p.errorf(k.Line, "%s: cases[%d]: unknown field %q (fields: case, do)", what, i, key)
						}
					}, "case", "do")
					t.cases = append(t.cases, cv)
				}
			case "default":
				if b := dyn("default", v, sc, true); b != nil {
					t.branches["default"] = b
				}
			default:
				p.errorf(k.Line, "%s: switch: unknown input %q (inputs: switch, cases, default)", what, key)
			}
		}, "switch", "cases")
	case builtinForeach:
		if !need("{foreach: LIST, do: TASK, parallel: N}") {
			return
		}
		p.fields(n, what, func(key string, k, v *yaml.Node) {
			switch key {
			case "foreach":
				t.cond = p.value(v, sc)
			case "do":
				inner := sc
				inner.item, inner.index = true, true
				if b := dyn("do", v, inner, false); b != nil {
					t.branches["do"] = b
				}
			case "parallel":
				t.parallel = p.value(v, sc)
				if t.parallel.static {
					if n, ok := t.parallel.lit.(int); !ok || n < 1 {
						p.errorf(v.Line, "%s: parallel %q: want a number of iterations at once, 1 or more (default: all)", what, v.Value)
					}
				}
			default:
				p.errorf(k.Line, "%s: foreach: unknown input %q (inputs: foreach, do, parallel)", what, key)
			}
		}, "foreach", "do")
	case builtinWhile:
		if !need("{while: CONDITION, do: TASK, limit: N}") {
			return
		}
		loop := sc
		loop.prev, loop.index = true, true
		p.fields(n, what, func(key string, k, v *yaml.Node) {
			switch key {
			case "while":
				t.cond = p.value(v, loop)
			case "do":
				if b := dyn("do", v, loop, false); b != nil {
					t.branches["do"] = b
				}
			case "limit":
				l, err := strconv.Atoi(v.Value)
				if err != nil || l < 1 || l > maxWhileLimit {
					p.errorf(v.Line, "%s: limit %q: want the most iterations allowed, 1 to %d", what, v.Value, maxWhileLimit)
					return
				}
				t.limit = l
			default:
				p.errorf(k.Line, "%s: while: unknown input %q (inputs: while, do, limit)", what, key)
			}
		}, "while", "do", "limit")
	case builtinRepeat:
		if !need("{times: N, do: TASK}") {
			return
		}
		loop := sc
		loop.prev, loop.index = true, true
		p.fields(n, what, func(key string, k, v *yaml.Node) {
			switch key {
			case "times":
				t.cond = p.value(v, sc)
			case "do":
				if b := dyn("do", v, loop, false); b != nil {
					t.branches["do"] = b
				}
			default:
				p.errorf(k.Line, "%s: repeat: unknown input %q (inputs: times, do)", what, key)
			}
		}, "times", "do")
	case builtinWorkflow:
		if !need("{workflow: NAME, input: VALUE}") {
			return
		}
		p.fields(n, what, func(key string, k, v *yaml.Node) {
			switch key {
			case "workflow":
				if p.workflowExpr(t, v, sc) {
					return
				}
				if !fn.ValidName(v.Value) {
					p.errorf(v.Line, "%s: workflow: %s", what, badName(v.Value))
				} else {
					use(p.wfs, v.Value, v.Line)
				}
				t.workflow = v.Value
			case "input":
				t.inputs = p.value(v, sc)
			default:
				p.errorf(k.Line, "%s: workflow: unknown input %q (inputs: workflow, input)", what, key)
			}
		}, "workflow")
	case builtinSleep:
		if n == nil {
			p.errorf(t.line, "%s: sleep takes a duration as inputs, like inputs: 10s", what)
			return
		}
		t.inputs = p.value(n, sc)
		if t.inputs.static {
			if _, err := sleepDuration(t.inputs.lit); err != nil {
				p.errorf(n.Line, "%s: %v", what, err)
			}
		}
	case builtinWait:
		p.wait(t, n, what)
	case builtinFail:
		if n != nil {
			t.inputs = p.value(n, sc)
		}
	case builtinNoop, builtinCompose:
		if n != nil {
			t.inputs = p.value(n, sc)
		}
	case builtinDynamic:
		p.dynamic(t, n, what)
	case builtinHTTP:
		p.httpInputs(t, n, what)
	}
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

func (p *parser) stringList(n *yaml.Node, what string) []string {
	if n.Kind == yaml.ScalarNode && n.Value != "" {
		return []string{n.Value}
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "%s: want a list of task ids", what)
		return nil
	}
	var out []string
	for _, e := range n.Content {
		if e.Kind != yaml.ScalarNode {
			p.errorf(e.Line, "%s: want a list of task ids", what)
			continue
		}
		out = append(out, e.Value)
	}
	return out
}

// value parses a value of the definition, compiling its expressions in
// scope sc.
func (p *parser) value(n *yaml.Node, sc scope) *value {
	v := &value{line: n.Line, static: true}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Tag == "" {
			parts, whole, err := splitInterp(n.Value)
			if err != nil {
				p.errorf(n.Line, "%v", err)
				v.lit = n.Value
				return v
			}
			if parts == nil {
				v.lit = n.Value
				return v
			}
			v.static = false
			if whole {
				v.kind, v.src = kindExpr, strings.TrimSpace(parts[0].src)
				prog, refs, err := p.c.compile(parts[0].src, sc, n.Line)
				if err != nil {
					p.errorf(n.Line, "%v", err)
				}
				v.prog, v.refs = prog, refs
				v.pass = passOf(prog)
				return v
			}
			v.kind = kindInterp
			for i := range parts {
				if !parts[i].isExpr {
					continue
				}
				prog, refs, err := p.c.compile(parts[i].src, sc, n.Line)
				if err != nil {
					p.errorf(n.Line, "%v", err)
				}
				parts[i].prog, parts[i].refs = prog, refs
				parts[i].src = strings.TrimSpace(parts[i].src)
			}
			v.parts = parts
			return v
		}
		var x any
		if err := n.Decode(&x); err != nil {
			p.errorf(n.Line, "value %q: %v", n.Value, err)
		}
		v.lit = x
		return v
	case yaml.MappingNode:
		v.kind = kindMap
		lit := map[string]any{}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				p.errorf(k.Line, "map keys must be strings")
				continue
			}
			if seen[k.Value] {
				p.errorf(k.Line, "key %q is given twice", k.Value)
				continue
			}
			seen[k.Value] = true
			el := p.value(n.Content[i+1], sc)
			v.keys = append(v.keys, k.Value)
			v.elems = append(v.elems, el)
			v.static = v.static && el.static
			lit[k.Value] = el.lit
		}
		if v.static {
			v.kind, v.lit, v.keys, v.elems = kindLiteral, lit, nil, nil
		}
		return v
	case yaml.SequenceNode:
		v.kind = kindList
		lit := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			el := p.value(c, sc)
			v.elems = append(v.elems, el)
			v.static = v.static && el.static
			lit = append(lit, el.lit)
		}
		if v.static {
			v.kind, v.lit, v.elems = kindLiteral, lit, nil
		}
		return v
	}
	p.errorf(n.Line, "unsupported YAML value")
	return v
}

// checkGraph checks requires (known tasks, no cycles) and that every
// expression names only tasks its task (transitively) requires.
func (p *parser) checkGraph(d *Definition, ids []string) {
	for _, id := range ids {
		t := d.tasks[id]
		for _, r := range t.requires {
			switch {
			case r == id:
				p.errorf(t.reqLine, "task %s requires itself", id)
			case d.tasks[r] == nil:
				p.errorf(t.reqLine, "task %s requires %q, which is not a task (tasks: %s)", id, r, strings.Join(sortedKeys(d.tasks), ", "))
			}
		}
	}
	// Topological order (Kahn), ids in definition order for stable output.
	indeg := map[string]int{}
	dependents := map[string][]string{}
	for _, id := range ids {
		for _, r := range uniq(d.tasks[id].requires) {
			if d.tasks[r] != nil && r != id {
				indeg[id]++
				dependents[r] = append(dependents[r], id)
			}
		}
	}
	var queue []string
	for _, id := range ids {
		if indeg[id] == 0 {
			queue = append(queue, id)
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		d.order = append(d.order, id)
		for _, dep := range dependents[id] {
			if indeg[dep]--; indeg[dep] == 0 {
				queue = append(queue, dep)
			}
		}
	}
	if len(d.order) < len(ids) {
		p.errorf(0, "requires form a cycle: %s", strings.Join(findCycle(d, ids, indeg), " -> "))
		return
	}
	for _, id := range ids {
		if len(dependents[id]) == 0 {
			d.sinks = append(d.sinks, id)
		}
	}
	// References: what each task's expressions name must run before it.
	for _, id := range ids {
		t := d.tasks[id]
		before := ancestors(d, id)
		refs := map[string]int{}
		collectRefs(t, refs)
		for _, ref := range sortedKeys(refs) {
			line := refs[ref]
			switch {
			case d.tasks[ref] == nil:
				p.errorf(line, "task %s uses tasks.%s, which is not a task (tasks: %s)", id, ref, strings.Join(sortedKeys(d.tasks), ", "))
			case ref == id:
				p.errorf(line, "task %s uses its own tasks.%s: a task cannot read its own output", id, ref)
			case !before[ref]:
				p.errorf(line, "task %s uses tasks.%s but does not require it: add %s to its requires:", id, ref, ref)
			}
		}
	}
}

// collectRefs gathers the task references of a task's expressions,
// dynamic tasks included. They were recorded while compiling: recompute
// them per task from its values.
func collectRefs(t *taskSpec, refs map[string]int) {
	var walk func(v *value)
	walk = func(v *value) {
		if v == nil {
			return
		}
		add := func(names []string) {
			for _, ref := range names {
				if _, seen := refs[ref]; !seen {
					refs[ref] = v.line
				}
			}
		}
		switch v.kind {
		case kindExpr:
			add(v.refs)
		case kindInterp:
			for _, pt := range v.parts {
				add(pt.refs)
			}
		case kindMap, kindList:
			for _, el := range v.elems {
				walk(el)
			}
		}
	}
	walk(t.inputs)
	walk(t.cond)
	walk(t.parallel)
	walk(t.match)
	for _, c := range t.cases {
		walk(c)
	}
	for _, b := range t.branches {
		if b == nil {
			continue
		}
		walk(b.val)
		if b.spec != nil {
			collectRefs(b.spec, refs)
		}
	}
}

func ancestors(d *Definition, id string) map[string]bool {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(id string) {
		for _, r := range d.tasks[id].requires {
			if d.tasks[r] != nil && !seen[r] {
				seen[r] = true
				visit(r)
			}
		}
	}
	visit(id)
	return seen
}

func findCycle(d *Definition, ids []string, indeg map[string]int) []string {
	// Walk requires among the tasks left with indegree > 0 until a task
	// repeats.
	left := map[string]bool{}
	start := ""
	for _, id := range ids {
		if indeg[id] > 0 {
			left[id] = true
			if start == "" {
				start = id
			}
		}
	}
	pos := map[string]int{}
	var path []string
	for cur := start; ; {
		if i, ok := pos[cur]; ok {
			return append(path[i:], cur)
		}
		pos[cur] = len(path)
		path = append(path, cur)
		next := ""
		for _, r := range d.tasks[cur].requires {
			if left[r] {
				next = r
				break
			}
		}
		if next == "" {
			return path
		}
		cur = next
	}
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sleepDuration reads a sleep task's input: "10s" or {duration: "10s"}.
func sleepDuration(x any) (time.Duration, error) {
	if m, ok := x.(map[string]any); ok {
		x = m["duration"]
	}
	s, ok := x.(string)
	if !ok {
		return 0, fmt.Errorf("sleep: want a duration like 10s or 5m, got %s", brief(x))
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("sleep: %q is not a duration like 10s or 5m", clip(s))
	}
	return d, nil
}

// badName says why a workflow's name is refused.
func badName(name string) string {
	if name == "" {
		return "workflow name is missing"
	}
	return fmt.Sprintf("workflow name %q: use %s", name, fn.NameRule)
}
