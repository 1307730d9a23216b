package engine

import "sort"

// Dynamic returns the ids of the tasks whose target is known only when
// they run, sorted: a dynamic task whose spec is an expression (a
// literal spec's functions and workflows are among Uses), and a workflow
// task whose workflow: is an expression. Tasks inside built-ins' bodies,
// catch: and undo: are named by their id paths ("route/then",
// "each/do"). What Uses returns is all that the others can run.
func (d *Definition) Dynamic() []string {
	var out []string
	var walk func(t *taskSpec)
	walk = func(t *taskSpec) {
		if t.runtimeTarget() {
			out = append(out, t.id)
		}
		for _, b := range t.branches {
			if b != nil && b.spec != nil {
				walk(b.spec)
			}
		}
	}
	for _, t := range d.tasks {
		walk(t)
	}
	sort.Strings(out)
	return out
}

// runtimeTarget tells whether what the task runs is known only when it
// runs.
func (t *taskSpec) runtimeTarget() bool {
	switch t.run {
	case builtinWorkflow:
		return t.workflow == "" && t.cond != nil
	case builtinDynamic:
		v := t.inputs
		if v == nil || v.static {
			return false
		}
		if v.kind == kindMap {
			for i, k := range v.keys {
				if k == "spec" {
					return !v.elems[i].static
				}
			}
		}
		return true
	}
	return false
}
