package engine

import (
	"slices"
	"strings"
)

// Shape is a definition's structure as a reader draws it (the console's
// flowchart): its static tasks in a topological order, what each
// requires, and what the built-ins may run. Expressions are not in it.
type Shape struct {
	Workflow string       `json:"workflow"`
	Tasks    []*ShapeTask `json:"tasks"`
}

// ShapeTask is a task of a Shape.
type ShapeTask struct {
	ID string `json:"id"`
	// Run is the function's name, or the built-in's (if, foreach, ...).
	Run     string `json:"run"`
	Builtin bool   `json:"builtin,omitempty"`
	// Requires are the tasks it runs after (static tasks only).
	Requires []string `json:"requires,omitempty"`
	// Workflow is the child workflow a workflow task runs; Dynamic tells
	// that the workflow (or a dynamic task's definition) is an expression,
	// known only when it runs.
	Workflow string `json:"workflow,omitempty"`
	Dynamic  bool   `json:"dynamic,omitempty"`
	// Retries is how many times a failed attempt is retried.
	Retries int `json:"retries,omitempty"`
	// Branches are what a built-in may run (then, else, case/N, default,
	// do) and its catch and undo tasks, sorted by key; a branch that is a
	// value, not a task, has no Task.
	Branches []*ShapeBranch `json:"branches,omitempty"`
}

// ShapeBranch is a branch of a built-in task.
type ShapeBranch struct {
	Key  string     `json:"key"`
	Task *ShapeTask `json:"task,omitempty"`
}

// Shape returns the definition's structure.
func (d *Definition) Shape() *Shape {
	s := &Shape{Workflow: d.Name, Tasks: make([]*ShapeTask, 0, len(d.order))}
	for _, id := range d.order {
		if t := d.tasks[id]; t != nil {
			s.Tasks = append(s.Tasks, shapeOf(t, 0))
		}
	}
	return s
}

// maxShapeDepth bounds the nesting of branches a Shape shows: deeper
// than a definition of MaxDefinition bytes reasonably nests, and a guard
// against a walk without end.
const maxShapeDepth = 32

func shapeOf(t *taskSpec, depth int) *ShapeTask {
	st := &ShapeTask{ID: t.id, Run: t.run, Builtin: t.builtin, Requires: slices.Clone(t.requires), Retries: t.retry.max}
	switch t.run {
	case builtinWorkflow:
		st.Workflow, st.Dynamic = t.workflow, t.workflow == ""
	case builtinDynamic:
		st.Dynamic = true
	}
	if depth >= maxShapeDepth {
		return st
	}
	keys := make([]string, 0, len(t.branches))
	for k := range t.branches {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, branchOrder)
	for _, k := range keys {
		b := &ShapeBranch{Key: k}
		if sp := t.branches[k].spec; sp != nil {
			b.Task = shapeOf(sp, depth+1)
		}
		st.Branches = append(st.Branches, b)
	}
	return st
}

// branchOrder sorts branches as a reader expects them: then before else,
// the cases in their order, default after them, catch and undo last.
func branchOrder(a, b string) int {
	rank := func(k string) (int, int) {
		switch {
		case k == "then" || k == "do":
			return 0, 0
		case k == "else":
			return 1, 0
		case strings.HasPrefix(k, "case/"):
			n := 0
			for _, c := range k[len("case/"):] {
				n = n*10 + int(c-'0')
			}
			return 2, n
		case k == "default":
			return 3, 0
		case k == "catch":
			return 4, 0
		}
		return 5, 0
	}
	ra, na := rank(a)
	rb, nb := rank(b)
	if ra != rb {
		return ra - rb
	}
	if na != nb {
		return na - nb
	}
	return strings.Compare(a, b)
}
