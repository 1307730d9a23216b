package graph

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/catalog"
)

const parent = `apiVersion: sluice/v1
kind: Workflow
tasks:
  price:
    run: f
  child:
    run: c
  named:
    run: workflow
    inputs: {workflow: c, input: 1}
  each:
    run: foreach
    inputs:
      foreach: [1, 2]
      do: {run: g}
  pick:
    run: dynamic
    inputs: ${ tasks.price.output }
    requires: [price]
  any:
    run: workflow
    inputs: {workflow: "${ input.wf }", input: 1}
`

const child = `apiVersion: sluice/v1
kind: Workflow
tasks:
  a:
    run: g
  b:
    run: if
    inputs:
      if: ${ input.ok }
      then: {run: f}
      else: 0
`

// forced names a function deleted since it was created (--force).
const forced = `apiVersion: sluice/v1
kind: Workflow
tasks:
  a:
    run: deleted
`

func testInput() Input {
	return Input{
		Functions: []*catalog.Function{
			{Name: "f", Version: 2, Config: catalog.Config{ABI: "wasi"}},
			{Name: "g", Version: 1, Config: catalog.Config{ABI: "wasi"}},
		},
		Workflows: []*catalog.Workflow{
			{Name: "w", Version: 3, Revision: "r3", Source: parent},
			{Name: "c", Version: 1, Revision: "r1", Source: child},
			{Name: "old", Version: 1, Revision: "r0", Source: forced},
		},
		Triggers: []*catalog.Trigger{
			{Name: "hello", Function: "f", HTTP: &catalog.HTTPSpec{Path: "/hello", Method: "GET"}},
			{Name: "any", Function: "g", HTTP: &catalog.HTTPSpec{Path: "/any/{id}"}},
			{Name: "orders", Function: "f", Queue: &catalog.QueueSpec{Topic: "orders", RespTopic: "done", ErrorTopic: "dead", MaxRetries: 3}},
			{Name: "tick", Workflow: "w", Cron: &catalog.CronSpec{Schedule: "@every 1m", RespTopic: "ticks"}},
			{Name: "orphan", Function: "gone", Queue: &catalog.QueueSpec{Topic: "orders"}},
		},
		Topics: []eventlog.TopicInfo{
			{Name: "orders", Messages: 3, Last: 3},
			{Name: "from-code", Messages: 1, Last: 7},
		},
	}
}

func edges(g *Graph) []string {
	var out []string
	for _, e := range g.Edges {
		s := fmt.Sprintf("%s -%s-> %s", e.From, e.Kind, e.To)
		if e.Trigger != "" {
			s += " (" + e.Trigger + ")"
		}
		out = append(out, s)
	}
	return out
}

func TestBuild(t *testing.T) {
	g := Build(testInput())
	wantEdges := []string{
		"function:f -error-> topic:dead (orders)",
		"function:f -response-> topic:done (orders)",
		"route:* /fn/any/{id} -feeds-> trigger:any",
		"route:GET /fn/hello -feeds-> trigger:hello",
		"timer:tick -feeds-> trigger:tick",
		"topic:orders -feeds-> trigger:orders",
		"topic:orders -feeds-> trigger:orphan",
		"trigger:any -invokes-> function:g",
		"trigger:hello -invokes-> function:f",
		"trigger:orders -invokes-> function:f",
		"trigger:orphan -invokes-> function:gone",
		"trigger:tick -invokes-> workflow:w",
		"workflow:c -runs-> function:f",
		"workflow:c -runs-> function:g",
		"workflow:old -runs-> function:deleted",
		"workflow:w -dynamic-> dynamic:w",
		"workflow:w -runs-> function:f",
		"workflow:w -runs-> function:g",
		"workflow:w -response-> topic:ticks (tick)",
		"workflow:w -starts-> workflow:c",
	}
	if got := edges(g); !slices.Equal(got, wantEdges) {
		t.Errorf("edges:\n%q\nwant\n%q", got, wantEdges)
	}
	var ids []string
	byID := map[string]*Node{}
	for _, n := range g.Nodes {
		ids = append(ids, n.ID)
		byID[n.ID] = n
	}
	wantIDs := []string{
		"dynamic:w", "function:deleted", "function:f", "function:g", "function:gone",
		"route:* /fn/any/{id}", "route:GET /fn/hello", "timer:tick",
		"topic:dead", "topic:done", "topic:from-code", "topic:orders", "topic:ticks",
		"trigger:any", "trigger:hello", "trigger:orders", "trigger:orphan", "trigger:tick",
		"workflow:c", "workflow:old", "workflow:w",
	}
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("nodes:\n%q\nwant\n%q", ids, wantIDs)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"function f is at version 2", byID["function:f"].Function.Version == 2},
		{"a function a trigger names but not deployed is missing", byID["function:gone"].Missing},
		{"a function a forced workflow names is missing", byID["function:deleted"].Missing},
		{"deployed functions are not missing", !byID["function:f"].Missing},
		{"workflow w shows its revision", byID["workflow:w"].Workflow.Revision == "r3" && byID["workflow:w"].Workflow.Version == 3},
		{"the dynamic node names the tasks", slices.Equal(byID["dynamic:w"].Dynamic.Tasks, []string{"any", "pick"})},
		{"the queue trigger shows its options", byID["trigger:orders"].Trigger.Kind == "queue" && byID["trigger:orders"].Trigger.Queue.MaxRetries == 3},
		{"a trigger names its target", byID["trigger:tick"].Trigger.Target == "workflow:w"},
		{"the route shows method and path", byID["route:GET /fn/hello"].Route.Method == "GET" && byID["route:GET /fn/hello"].Route.Path == "/fn/hello"},
		{"the timer shows its schedule", byID["timer:tick"].Timer.Schedule == "@every 1m"},
		{"a topic on the broker has its counts", *byID["topic:orders"].Topic == TopicInfo{Stored: true, Messages: 3, Last: 3}},
		{"a topic only functions publish to is a node", byID["topic:from-code"].Topic.Stored},
		{"a topic never published to is not stored", !byID["topic:dead"].Topic.Stored},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: no", c.name)
		}
	}
}

// TestBuildIsStable: the same state in any order gives the same graph.
func TestBuildIsStable(t *testing.T) {
	a := Build(testInput())
	in := testInput()
	slices.Reverse(in.Functions)
	slices.Reverse(in.Triggers)
	slices.Reverse(in.Workflows)
	b := Build(in)
	if !slices.Equal(edges(a), edges(b)) {
		t.Fatalf("edges differ with the input reversed:\n%q\n%q", edges(a), edges(b))
	}
}

// TestUnreadableDefinition: a definition that no longer parses is a
// workflow node saying so, without edges.
func TestUnreadableDefinition(t *testing.T) {
	g := Build(Input{Workflows: []*catalog.Workflow{{Name: "bad", Source: "tasks: ["}}})
	if len(g.Nodes) != 1 || g.Nodes[0].Workflow.Error == "" || len(g.Edges) != 0 {
		t.Fatalf("graph of an unreadable definition: %+v, %+v", g.Nodes[0], g.Edges)
	}
}
