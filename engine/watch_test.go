package engine

import (
	"context"
	"testing"
	"time"
)

// TestWatchWakesOnEveryChange: a watch of a root invocation wakes when a
// task of it changes and when its child workflow's do; it stops waking
// once stopped, and no watch is left behind.
func TestWatchWakesOnEveryChange(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: kid
tasks:
  hold: { run: wait, inputs: { signal: go } }
`)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: mom
tasks:
  first: { run: wait, inputs: { signal: go } }
  child: { run: workflow, requires: [first], inputs: { workflow: kid } }
`)
	id := invokeOn(t, r.e, "mom", "")
	changed, stop := r.e.Watch(id)
	waitFor(t, r.e, id, "first", "go")
	drain(changed)
	signal(t, r.e, id, "go", "")
	woken(t, changed, "the root's signal")
	inv, _ := r.e.Get(id)
	var kid string
	for {
		inv, _ = r.e.Get(id)
		if c := inv.Tasks["child"]; c != nil && c.Attempts > 0 {
			kid = ChildID(id, "child", c.Attempts)
			if k, err := r.e.Get(kid); err == nil && k.Tasks["hold"] != nil && k.Tasks["hold"].Waiting == "go" {
				break
			}
		}
		woken(t, changed, "the child to start waiting")
	}
	drain(changed)
	signal(t, r.e, kid, "go", "")
	woken(t, changed, "the child's signal, on the root's watch")
	done := waitDone(t, r.e, id)
	wantStatus(t, done, StatusSucceeded)
	stop()
	r.e.mu.Lock()
	left := len(r.e.watches)
	r.e.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d watches left after stop", left)
	}
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func woken(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("no wake-up for %s", what)
	}
}

// TestShape: a definition's shape has its tasks in order with what they
// require, the built-ins' branches nested, and a child workflow named or
// marked dynamic.
func TestShape(t *testing.T) {
	def, err := ParseDefinition("", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: shapes
tasks:
  a: { run: wfguest, retry: { max: 2 } }
  pick:
    run: if
    requires: [a]
    inputs:
      if: ${ tasks.a.output > 1 }
      then: { run: wfguest }
      else: 3
  each:
    run: foreach
    requires: [a]
    inputs: { foreach: [1, 2], do: { run: workflow, inputs: { workflow: other } } }
  dyn: { run: workflow, requires: [pick, each], inputs: { workflow: "${ 'x' + 'y' }" } }
`), Known{})
	if err != nil {
		t.Fatal(err)
	}
	s := def.Shape()
	var ids []string
	byID := map[string]*ShapeTask{}
	for _, task := range s.Tasks {
		ids = append(ids, task.ID)
		byID[task.ID] = task
	}
	if s.Workflow != "shapes" || len(ids) != 4 || ids[0] != "a" || ids[3] != "dyn" {
		t.Fatalf("tasks %v", ids)
	}
	if a := byID["a"]; a.Run != "wfguest" || a.Builtin || a.Retries != 2 {
		t.Fatalf("a = %+v", a)
	}
	pick := byID["pick"]
	if !pick.Builtin || len(pick.Requires) != 1 || len(pick.Branches) != 2 ||
		pick.Branches[0].Key != "then" || pick.Branches[0].Task == nil || pick.Branches[0].Task.Run != "wfguest" ||
		pick.Branches[1].Key != "else" || pick.Branches[1].Task != nil {
		t.Fatalf("pick = %+v", pick)
	}
	each := byID["each"]
	if len(each.Branches) != 1 || each.Branches[0].Key != "do" || each.Branches[0].Task.Workflow != "other" {
		t.Fatalf("each = %+v", each)
	}
	if d := byID["dyn"]; !d.Dynamic || d.Workflow != "" || len(d.Requires) != 2 {
		t.Fatalf("dyn = %+v", d)
	}
}
