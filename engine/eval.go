package engine

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/sluicehq/sluice/units"
)

// Expressions are evaluated outside the engine's lock, so that one slow
// expression (bounded by its budget, but seconds long) stops nothing but
// its own invocation. The owner still decides alone and in order:
//
//   - reconcile, under the lock, finds a decision that needs an expression
//     (a task's input, a branch's value, a while's condition, the output),
//     takes a snapshot of what the expression may read, and starts an
//     evaluation on its own goroutine (evaluate returns nil: not yet);
//   - the evaluation runs on the snapshot, with its budget, on one of
//     maxEvaluations slots;
//   - its result is kept with the invocation (local.evals, by decision)
//     and the invocation is reconciled again: the decision, if it is
//     still to be made, takes the result and writes its event.
//
// An expression reads the invocation's input, the tasks its task requires
// (finished: they do not change) and the loop variables of its task, so
// its value does not depend on when it runs; what a snapshot may see
// differently (the status of a task still running, read by name) is the
// state of the moment it was taken, as if evaluated then. The result is
// recorded in the event (TaskScheduled carries the evaluated input), so a
// replay never evaluates anything. Results are dropped with the
// invocation's local state: when it ends, when it goes stale, when another
// node takes it over.

// evaluation is the result of evaluating the expressions of one decision.
type evaluation struct {
	done bool
	// val is the value, as stored: a task's input, a branch's value, the
	// workflow's output.
	val datum
	// child is a workflow task's child input when it is data (passed on
	// from outside, or bytes an expression made): given to the child
	// exactly, beside val's {"workflow", "input"}.
	child datum
	// cond is a while's condition.
	cond bool
	err  error
}

// view is what an evaluation sees of an invocation: taken under the lock,
// read outside it. Its parts are never changed once taken.
type view struct {
	id, workflow string
	input        *lazyView
	tasks        []taskView
	// vars are the loop variables in scope (item, index, prev).
	vars map[string]any
	// undo is, in an undo's expressions, the task it undoes (task).
	undo *undoTask
	// load fetches a value stored apart (Engine.load), spill stores one
	// apart if it is over MaxData (Engine.spill), both nil at parse time;
	// maxValue is the largest value to store (0: MaxData).
	load     func(datum) (datum, error)
	spill    func(d datum, what string) (datum, error)
	maxValue int
}

// store returns a value as an event carries it: a value over MaxData
// stored apart.
func (v *view) store(d datum, what string) (datum, error) {
	if v.spill == nil {
		return d, nil
	}
	return v.spill(d, what)
}

type taskView struct {
	id, status, err string
	out             *lazyView
}

// passed returns the stored value a pass value (see value.pass) names in
// the view, if it is there.
func (v *view) passed(val *value) (datum, bool) {
	if val == nil || val.kind != kindExpr || val.pass == "" {
		return datum{}, false
	}
	if val.pass == "input" {
		if v.input == nil {
			return datum{}, false
		}
		return v.input.d, true
	}
	id := strings.TrimPrefix(val.pass, "tasks.")
	for _, t := range v.tasks {
		if t.id == id && t.status == TaskSucceeded && t.out != nil {
			return t.out.d, true
		}
	}
	return datum{}, false
}

// tasksView lists the workflow's tasks for expressions, once per change
// of one of them. The dynamic tasks (a loop's iterations, a branch) are
// not listed: an expression names a task of the definition (tasks.ID), and
// a foreach of n items would otherwise copy n tasks per item.
func (inv *invState) tasksView(def *Definition) []taskView {
	if inv.view == nil {
		inv.view = []taskView{}
		if def != nil {
			for _, id := range def.order {
				if t := inv.tasks[id]; t != nil {
					inv.view = append(inv.view, taskView{id: id, status: t.status, err: t.err, out: t.out})
				}
			}
		}
	}
	return inv.view
}

// viewOf takes what the expressions of task id (any task for "") see:
// the globals, the loop variables of the tasks it sits in, and add.
func (e *Engine) viewOf(inv *invState, id string, add map[string]any) *view {
	def, _ := e.definitionOf(inv)
	v := &view{id: inv.id, workflow: inv.workflow, input: inv.in, tasks: inv.tasksView(def),
		maxValue: e.MaxValue(),
		load:     func(d datum) (datum, error) { return e.load(context.Background(), d) },
		spill:    func(d datum, what string) (datum, error) { return e.spill(context.Background(), inv.root, d, what) }}
	var chain []string
	for p := id; p != ""; p = parentID(p) {
		chain = append(chain, p)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if t := inv.tasks[chain[i]]; t != nil && len(t.scope) > 0 {
			if v.vars == nil {
				v.vars = map[string]any{}
			}
			for k, x := range t.scope {
				v.vars[k] = x
			}
		}
	}
	v.undo = undoScope(inv, chain)
	if len(add) > 0 && v.vars == nil {
		v.vars = map[string]any{}
	}
	for k, x := range add {
		v.vars[k] = x
	}
	return v
}

// env builds the environment of an evaluation of vals from a view
// (decoding, once, the values its expressions may read). A value stored
// apart is fetched, within the budget, only if vals read it (name input,
// or tasks.ID); else it is null.
func (v *view) env(b *budget, vals ...*value) (env, error) {
	var need *reads
	read := func(l *lazyView, what, task string) (any, error) {
		if l == nil || l.d.ref == nil {
			return l.value(), nil
		}
		if need == nil {
			need = readsOf(vals...)
		}
		if task == "" && !need.input || task != "" && !need.tasks[task] {
			return nil, nil
		}
		return v.fetch(l.d, what, b)
	}
	tasks := make(map[string]any, len(v.tasks))
	for _, t := range v.tasks {
		out, err := read(t.out, "tasks."+t.id+".output", t.id)
		if err != nil {
			return nil, err
		}
		tasks[t.id] = map[string]any{"output": out, "status": t.status, "error": t.err}
	}
	input, err := read(v.input, "input", "")
	if err != nil {
		return nil, err
	}
	m := env{"input": input, "tasks": tasks, "invocation": map[string]any{"id": v.id, "workflow": v.workflow}}
	for k, x := range v.vars {
		m[k] = x
	}
	if v.undo != nil {
		x, err := v.undo.value(v, b, func() bool {
			if need == nil {
				need = readsOf(vals...)
			}
			return need.task
		})
		if err != nil {
			return nil, err
		}
		m["task"] = x
	}
	return m, nil
}

// fetch reads a value stored apart for an expression: its bytes count
// against the evaluation's budget, and its decoded value is not kept (the
// invocation holds the reference only).
func (v *view) fetch(d datum, what string, b *budget) (any, error) {
	if d.ref.size > b.left() {
		return nil, fmt.Errorf("%w: %s is %d bytes (stored apart), more than the %d MiB one evaluation may make: "+
			"pass it on as it is (${ %s }) or read it in a function", ErrLimit, what, d.ref.size, evalMaxBytes>>20, what)
	}
	if v.load == nil {
		return nil, fmt.Errorf("%s is stored apart and cannot be read here", what)
	}
	loaded, err := v.load(d)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if err := b.alloc(d.ref.size); err != nil {
		return nil, err
	}
	return loaded.view(), nil
}

// reads is what some values' expressions read: input, tasks.ID, and an
// undo's task.
type reads struct {
	input, task bool
	tasks       map[string]bool
}

// readsOf finds what values read (only asked when a value is stored
// apart: it walks their programs).
func readsOf(vals ...*value) *reads {
	r := &reads{tasks: map[string]bool{}}
	prog := func(p *vm.Program, refs []string) {
		for _, id := range refs {
			r.tasks[id] = true
		}
		if p != nil && (!r.input || !r.task) {
			node := p.Node()
			ast.Walk(&node, inputFinder{r})
		}
	}
	var walk func(v *value)
	walk = func(v *value) {
		if v == nil {
			return
		}
		switch v.kind {
		case kindExpr:
			prog(v.prog, v.refs)
		case kindInterp:
			for _, pt := range v.parts {
				prog(pt.prog, pt.refs)
			}
		case kindMap, kindList:
			for _, el := range v.elems {
				walk(el)
			}
		}
	}
	for _, v := range vals {
		walk(v)
	}
	return r
}

// inputFinder notes an expression that names input, or task.
type inputFinder struct{ r *reads }

func (f inputFinder) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		switch id.Value {
		case "input":
			f.r.input = true
		case "task":
			f.r.task = true
		}
	}
}

// evaluate returns the result of an invocation's decision key once it is
// ready, and forgets it (the decision is made); until then it starts run
// (once) on a view taken now, and returns nil. The invocation is
// reconciled when the result is ready.
func (e *Engine) evaluate(inv *invState, key string, viewNow func() *view, run func(v *view, b *budget) *evaluation) *evaluation {
	l := e.localOf(inv.id)
	if res := l.evals[key]; res != nil {
		if !res.done {
			return nil
		}
		delete(l.evals, key)
		return res
	}
	e.prepare(inv, key, viewNow, run)
	return nil
}

// prepare starts the evaluation of a decision that will be made later (a
// foreach's next iterations), unless it is started already.
func (e *Engine) prepare(inv *invState, key string, viewNow func() *view, run func(v *view, b *budget) *evaluation) {
	l := e.localOf(inv.id)
	if l.evals[key] != nil {
		return
	}
	pending := &evaluation{}
	l.evals[key] = pending
	e.evalMu.Lock()
	e.evalQueue = append(e.evalQueue, &evalJob{id: inv.id, workflow: inv.workflow, key: key, view: viewNow(), run: run, pending: pending})
	e.evalMu.Unlock()
	e.evalCond.Signal()
}

// evalJob is an evaluation waiting for a worker.
type evalJob struct {
	id, workflow, key string
	view              *view
	run               func(v *view, b *budget) *evaluation
	pending           *evaluation
}

// evalWorker runs evaluations until the engine stops: maxEvaluations of
// them run at once, on goroutines whose stacks have grown once.
func (e *Engine) evalWorker() {
	defer e.calls.Done()
	for {
		e.evalMu.Lock()
		for len(e.evalQueue) == 0 && !e.evalStopped {
			e.evalCond.Wait()
		}
		if e.evalStopped {
			e.evalMu.Unlock()
			return
		}
		job := e.evalQueue[0]
		e.evalQueue[0] = nil
		e.evalQueue = e.evalQueue[1:]
		e.evalMu.Unlock()
		res := e.runEvaluation(job.id, job.workflow, job.view, job.run)
		res.done = true
		e.deliver(job, res)
	}
}

// deliver keeps an evaluation's result with its invocation and reconciles
// it, unless the evaluation was dropped meanwhile (the invocation ended,
// went stale, moved).
func (e *Engine) deliver(job *evalJob, res *evaluation) {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.guard(job.id)
	if e.closed {
		return
	}
	if l := e.local[job.id]; l == nil || l.evals[job.key] != job.pending {
		return
	}
	e.local[job.id].evals[job.key] = res
	if inv := e.st.invs[job.id]; inv != nil {
		inv.touchKey(job.key)
		e.reconcile(inv)
	}
}

// stopEvaluations ends the workers; evaluations not started are dropped.
func (e *Engine) stopEvaluations() {
	e.evalMu.Lock()
	e.evalStopped = true
	e.evalQueue = nil
	e.evalMu.Unlock()
	e.evalCond.Broadcast()
}

// testEvaluating, if set (tests), is called as each evaluation starts, with
// the invocation's workflow, outside the engine's lock.
var testEvaluating func(workflow string)

// runEvaluation runs one evaluation within a fresh budget. A panic (a bug
// in a built-in) fails the evaluation, not the daemon.
func (e *Engine) runEvaluation(id, workflow string, v *view, run func(v *view, b *budget) *evaluation) (res *evaluation) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("an expression's evaluation panicked; its task fails", "invocation", id, "workflow", workflow,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			res = &evaluation{err: fmt.Errorf("internal error while evaluating: %v", r)}
		}
	}()
	if testEvaluating != nil {
		testEvaluating(workflow)
	}
	return run(v, newBudget(e.stop))
}

// The evaluations of the decisions. Each is a pure function of the view,
// the definition and the budget: it may run on any goroutine.

// inputOf evaluates what a task's TaskScheduled records.
func inputOf(spec *taskSpec) func(v *view, b *budget) *evaluation {
	return func(v *view, b *budget) *evaluation {
		val, child, err := evalInput(spec, v, b)
		return &evaluation{val: val, child: child, err: err}
	}
}

// valueOf evaluates a value to store: a branch's value, the output.
func valueOf(val *value) func(v *view, b *budget) *evaluation {
	return func(v *view, b *budget) *evaluation {
		en, err := v.env(b, val)
		if err != nil {
			return &evaluation{err: val.failed(err)}
		}
		x, err := val.eval(en, b)
		if err != nil {
			return &evaluation{err: err}
		}
		d, err := storable(x, v.maxValue)
		if err == nil {
			d, err = v.store(d, "value")
		}
		if err != nil {
			err = val.failed(err)
		}
		return &evaluation{val: d, err: err}
	}
}

// conditionOf evaluates a while's condition.
func conditionOf(cond *value) func(v *view, b *budget) *evaluation {
	return func(v *view, b *budget) *evaluation {
		en, err := v.env(b, cond)
		if err != nil {
			return &evaluation{err: cond.failed(err)}
		}
		c, err := cond.eval(en, b)
		if err != nil {
			return &evaluation{err: err}
		}
		more, ok := c.(bool)
		if !ok {
			return &evaluation{err: fmt.Errorf("while: the condition is %s, not true or false", brief(c))}
		}
		return &evaluation{cond: more}
	}
}

// fixed evaluates at parse time what holds no expression, so that
// running it needs no evaluation at all.
func fixed(run func(v *view, b *budget) *evaluation) *evaluation {
	res := run(&view{}, newBudget(nil))
	res.done = true
	return res
}

// storable encodes an evaluated value for an event: JSON, at most MaxData
// bytes, nested at most MaxDepth levels; a value that is bytes as a whole
// (fromBase64, a binary output) is stored as data, exactly. Its size is
// bounded from below before it is encoded, so that a value made of many
// references to one large string is refused without being written out.
//
// limit is the largest value to store (0: MaxData, what an event holds:
// a built-in's input, which the engine reads under its lock).
func storable(x any, limit int) (datum, error) {
	if limit <= 0 {
		limit = MaxData
	}
	if bs, ok := x.([]byte); ok {
		d := dataValue(bs)
		if limit == MaxData {
			if err := d.checkStored("a bytes value"); err != nil {
				return datum{}, err
			}
		} else if len(bs) > limit {
			return datum{}, tooLarge("a bytes value", len(bs), limit)
		}
		return d, nil
	}
	if _, err := measure(x, measureFloor, limit, false); err != nil {
		return datum{}, err
	}
	raw, err := toJSON(x)
	if err != nil {
		return datum{}, err
	}
	if len(raw) > limit {
		return datum{}, tooLarge("a value", len(raw), limit)
	}
	return jsonValue(raw), nil
}

// tooLarge says a value is over a limit: MaxData (what an event holds, for
// a built-in's input), else the engine's MaxValue.
func tooLarge(what string, n, limit int) error {
	if limit == MaxData {
		return fmt.Errorf("%s of %d bytes is over the %d KiB a workflow event holds", what, n, MaxData>>10)
	}
	return &tooLargeError{fmt.Sprintf("%s of %d bytes is over the %s a workflow value may be (sluice daemon --max-value)", what, n, units.Bytes(uint64(limit)))}
}

// defEntry is a revision's definition, parsed once (or why it cannot be).
type defEntry struct {
	def *Definition
	err error
}

// definition returns a revision's parsed definition. Parsing is bounded
// (its size, its YAML, its expressions): it runs under the lock the first
// time a revision is needed and never again.
func (e *Engine) definition(rev string) (*Definition, error) {
	if d, ok := e.defs[rev]; ok {
		return d.def, d.err
	}
	d := e.parseRevision(rev)
	e.defs[rev] = d
	return d.def, d.err
}

// preparse parses a revision outside the lock, if it is not yet.
func (e *Engine) preparse(rev string) {
	e.mu.Lock()
	_, ok := e.defs[rev]
	e.mu.Unlock()
	if ok {
		return
	}
	d := e.parseRevision(rev)
	e.mu.Lock()
	if _, ok := e.defs[rev]; !ok {
		e.defs[rev] = d
	}
	e.mu.Unlock()
}

// parseRevision reads a revision from the catalog and parses it: what a
// forged event or a definition stored before a fix may hold is an error
// here, never a panic.
func (e *Engine) parseRevision(rev string) (d *defEntry) {
	defer func() {
		if r := recover(); r != nil {
			d = &defEntry{err: fmt.Errorf("workflow revision %s cannot be read: internal error: %v", short(rev), r)}
			e.log.Error("parsing a workflow definition panicked", "revision", rev, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	r, ok := e.o.Definitions.Revision(rev)
	if !ok {
		return &defEntry{err: fmt.Errorf("workflow revision %s is not in the catalog", short(rev))}
	}
	def, err := ParseDefinition(r.Name, []byte(r.Source), Known{})
	return &defEntry{def: def, err: err}
}

// limit is the largest value an evaluation may store.
func (v *view) limit() int {
	if v.maxValue <= 0 {
		return MaxData
	}
	return v.maxValue
}
