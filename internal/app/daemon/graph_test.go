package daemon

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/graph"
	"github.com/sluicehq/sluice/testutil"
)

const graphWorkflow = `apiVersion: sluice/v1
kind: Workflow
tasks:
  first:
    run: echo
  then:
    run: dynamic
    inputs: ${ tasks.first.output }
    requires: [first]
`

// TestGraphAndTopics: on a daemon with functions, triggers and a
// workflow, GET /v1/graph has their nodes and edges, and the topics the
// broker holds, those no trigger reads among them, with their counts;
// GET /v1/topics lists them, and none of sluice's own streams.
func TestGraphAndTopics(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	deploy(t, c, "echo", "echo-wat", nil)
	if _, _, err := c.CreateWorkflow(ctx, "flow", []byte(graphWorkflow)); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []api.TriggerRequest{
		{Name: "web", Function: "echo", HTTP: &catalog.HTTPSpec{Path: "/echo", Method: "POST"}},
		{Name: "q", Function: "echo", Queue: &api.QueueRequest{Topic: "in", RespTopic: "out", ErrorTopic: "dead"}},
		{Name: "hourly", Workflow: "flow", Cron: &catalog.CronSpec{Schedule: "@every 1h"}},
	} {
		if _, err := c.CreateTrigger(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range []string{"in", "in", "side"} {
		if err := c.Publish(ctx, topic, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	counts := func() map[string]uint64 {
		ts, err := c.Topics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]uint64{}
		for _, tp := range ts {
			if eventlog.OwnStream(tp.Name) || tp.Last == 0 {
				t.Fatalf("topic list holds %+v", tp)
			}
			m[tp.Name] = tp.Messages
		}
		return m
	}
	testutil.Eventually(t, 30*time.Second, "both messages answered on out", func() bool { return counts()["out"] == 2 })
	if got := counts(); got["in"] != 2 || got["side"] != 1 || len(got) != 3 {
		t.Fatalf("topics %v; want in 2, out 2, side 1", got)
	}

	g, err := c.Graph(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range g.Edges {
		got = append(got, e.From+" "+string(e.Kind)+" "+e.To)
	}
	want := []string{
		"function:echo error topic:dead",
		"function:echo response topic:out",
		"route:POST /fn/echo feeds trigger:web",
		"timer:hourly feeds trigger:hourly",
		"topic:in feeds trigger:q",
		"trigger:hourly invokes workflow:flow",
		"trigger:q invokes function:echo",
		"trigger:web invokes function:echo",
		"workflow:flow dynamic dynamic:flow",
		"workflow:flow runs function:echo",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("edges:\n%q\nwant\n%q", got, want)
	}
	nodes := map[string]*graph.Node{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	side := nodes["topic:side"]
	if side == nil || !side.Topic.Stored || side.Topic.Messages != 1 {
		t.Fatalf("topic:side, which no trigger reads: %+v", side)
	}
	if f := nodes["function:echo"]; f == nil || f.Function.Version != 1 {
		t.Fatalf("function:echo: %+v", f)
	}
	if w := nodes["workflow:flow"]; w == nil || w.Workflow.Revision == "" {
		t.Fatalf("workflow:flow: %+v", w)
	}
	if len(g.Warnings) != 0 {
		t.Fatalf("warnings: %q", g.Warnings)
	}
	dot, err := c.GraphText(ctx, "dot")
	if err != nil || !strings.Contains(string(dot), `"topic:in" -> "trigger:q" [label="feeds"];`) {
		t.Fatalf("dot: %v\n%s", err, dot)
	}
	mermaid, err := c.GraphText(ctx, "mermaid")
	if err != nil || !strings.HasPrefix(string(mermaid), "flowchart LR\n") {
		t.Fatalf("mermaid: %v\n%s", err, mermaid)
	}
	svg, err := c.GraphText(ctx, "svg")
	if err != nil || !strings.HasPrefix(string(svg), "<svg ") || !strings.Contains(string(svg), `data-id="trigger:q"`) {
		t.Fatalf("svg: %v\n%s", err, svg)
	}
	_, err = c.GraphText(ctx, "png")
	apiError(t, err, 400, "invalid_argument", "json, dot or mermaid")
}
