package engine

import (
	"slices"
	"testing"
)

// TestDynamic: the tasks whose target is an expression are listed, at
// any depth; those whose target is written in the definition are not.
func TestDynamic(t *testing.T) {
	src := `apiVersion: sluice/v1
kind: Workflow
name: g
tasks:
  plan:
    run: f
  fixed:
    run: dynamic
    inputs: {run: f, inputs: 1}
  fixedspec:
    run: dynamic
    inputs: {spec: {run: f}, input: "${ input }"}
  fromplan:
    run: dynamic
    inputs: ${ tasks.plan.output }
    requires: [plan]
  child:
    run: workflow
    inputs: {workflow: w, input: 1}
  anychild:
    run: workflow
    inputs: {workflow: "${ input.wf }", input: 1}
  branch:
    run: if
    inputs:
      if: ${ input.ok }
      then: {run: dynamic, inputs: "${ input.spec }"}
      else: {run: f}
`
	d, err := ParseDefinition("", []byte(src), Known{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Dynamic(), []string{"anychild", "branch/then", "fromplan"}; !slices.Equal(got, want) {
		t.Fatalf("Dynamic() = %q; want %q", got, want)
	}
	fns, wfs := d.Uses()
	if !slices.Contains(fns, "f") || !slices.Contains(wfs, "w") {
		t.Fatalf("Uses() = %q, %q; want f among the functions, w among the workflows", fns, wfs)
	}
}
