package console

import (
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/graph"
)

// cyclic is a graph with a cycle: worker's results on jobs.out feed a
// second trigger of worker; an HTTP route, a missing function and a
// workflow whose definition cannot be read.
func cyclic() *graph.Graph {
	n := func(kind graph.Kind, name string) *graph.Node {
		return &graph.Node{ID: graph.ID(kind, name), Kind: kind, Name: name}
	}
	e := func(from, to *graph.Node, kind graph.EdgeKind) *graph.Edge {
		return &graph.Edge{From: from.ID, To: to.ID, Kind: kind}
	}
	jobs, out, dead := n(graph.KindTopic, "jobs"), n(graph.KindTopic, "jobs.out"), n(graph.KindTopic, "jobs.dead")
	t1, t2, th := n(graph.KindTrigger, "t1"), n(graph.KindTrigger, "t2"), n(graph.KindTrigger, "web")
	worker, gone := n(graph.KindFunction, "worker"), n(graph.KindFunction, "gone")
	gone.Missing = true
	route := &graph.Node{ID: graph.RouteID("POST", "/hook"), Kind: graph.KindRoute, Name: "POST /fn/hook"}
	wf := n(graph.KindWorkflow, "broken")
	wf.Workflow = &graph.WorkflowInfo{Version: 1, Error: "the definition cannot be read: tasks: missing"}
	return &graph.Graph{
		Nodes: []*graph.Node{jobs, out, dead, t1, t2, th, worker, gone, route, wf},
		Edges: []*graph.Edge{
			e(jobs, t1, graph.EdgeFeeds), e(t1, worker, graph.EdgeInvokes),
			e(worker, out, graph.EdgeResponse), e(worker, dead, graph.EdgeError),
			e(out, t2, graph.EdgeFeeds), e(t2, worker, graph.EdgeInvokes),
			e(route, th, graph.EdgeFeeds), e(th, gone, graph.EdgeInvokes),
		},
	}
}

// TestTopologyDrawsACycle: a graph with a cycle is drawn left to right
// (sources, triggers, functions, then the topics they answer on), every
// node a box with its id and kind, every edge drawn (the cycle's too),
// failing parts marked; the drawing is valid XML and the same graph gives
// the same bytes and hash.
func TestTopologyDrawsACycle(t *testing.T) {
	top, err := TopologySVG(cyclic())
	if err != nil {
		t.Fatal(err)
	}
	svg := string(top.SVG)
	if err := xml.Unmarshal(top.SVG, new(struct{})); err != nil {
		t.Fatalf("not XML: %v\n%s", err, svg)
	}
	x := map[string]float64{}
	re := regexp.MustCompile(`<g id="[^"]*" class="([^"]*)" data-id="([^"]*)">(?:<a [^>]*>)?(?:<title>[^<]*</title>)?<(?:rect|ellipse|polygon) (?:x="([-0-9.]+)"|cx="([-0-9.]+)"|points="([-0-9.]+))`)
	for _, m := range re.FindAllStringSubmatch(svg, -1) {
		v, _ := strconv.ParseFloat(m[3]+m[4]+m[5], 64)
		x[m[2]] = v
		kind := strings.SplitN(m[2], ":", 2)[0]
		if !strings.Contains(m[1], "kind-"+kind) {
			t.Errorf("node %s has classes %q, want kind-%s", m[2], m[1], kind)
		}
	}
	for _, n := range cyclic().Nodes {
		if _, ok := x[n.ID]; !ok {
			t.Errorf("no box for %s in\n%s", n.ID, svg)
		}
	}
	for _, lr := range [][2]string{{"topic:jobs", "trigger:t1"}, {"trigger:t1", "function:worker"}, {"function:worker", "topic:jobs.out"},
		{"function:worker", "topic:jobs.dead"}, {"route:POST /fn/hook", "trigger:web"}, {"trigger:web", "function:gone"}} {
		if x[lr[0]] >= x[lr[1]] {
			t.Errorf("%s (x %.0f) is not left of %s (x %.0f)", lr[0], x[lr[0]], lr[1], x[lr[1]])
		}
	}
	for _, e := range cyclic().Edges {
		if !strings.Contains(svg, fmt.Sprintf(`data-from="%s" data-to="%s"`, esc(e.From), esc(e.To))) {
			t.Errorf("no edge %s -> %s", e.From, e.To)
		}
	}
	if n := strings.Count(svg, `class="edge edge-`); n != len(cyclic().Edges) {
		t.Errorf("%d edges drawn, want %d", n, len(cyclic().Edges))
	}
	if !strings.Contains(svg, `class="edge edge-feeds back"`) && !strings.Contains(svg, `class="edge edge-invokes back"`) &&
		!strings.Contains(svg, `class="edge edge-response back"`) {
		t.Errorf("the cycle has no edge drawn going back:\n%s", svg)
	}
	if n := strings.Count(svg, `<text class="figure"`); n != 3 {
		t.Errorf("%d figure labels, want one per invokes edge (3)", n)
	}
	for _, id := range []string{"function:gone", "workflow:broken"} {
		if !regexp.MustCompile(`class="[^"]*failing[^"]*" data-id="` + id + `"`).MatchString(svg) {
			t.Errorf("%s is not marked failing", id)
		}
	}
	if regexp.MustCompile(`class="[^"]*failing[^"]*" data-id="function:worker"`).MatchString(svg) {
		t.Errorf("worker is marked failing")
	}
	again, err := TopologySVG(cyclic())
	if err != nil || again.Hash != top.Hash || string(again.SVG) != svg {
		t.Fatalf("the same graph drawn again differs (hash %s, %s; %v)", top.Hash, again.Hash, err)
	}
	counted := cyclic()
	counted.Nodes[0].Topic = &graph.TopicInfo{Stored: true, Messages: 12, Last: 12}
	if other, err := TopologySVG(counted); err != nil || other.Hash != top.Hash {
		t.Fatalf("a topic's message count changed the drawing's hash: %v", err)
	}
	counted.Nodes[6].Function = &graph.FunctionInfo{Version: 2}
	if other, err := TopologySVG(counted); err != nil || other.Hash == top.Hash {
		t.Fatalf("a new version of a function kept the drawing's hash: %v", err)
	}
}

// TestTopologyTooLarge: a graph over MaxTopologyNodes is refused, saying
// the limit and where the whole graph is.
func TestTopologyTooLarge(t *testing.T) {
	g := &graph.Graph{}
	for i := range MaxTopologyNodes + 1 {
		g.Nodes = append(g.Nodes, &graph.Node{ID: graph.ID(graph.KindTopic, strconv.Itoa(i)), Kind: graph.KindTopic, Name: strconv.Itoa(i)})
	}
	_, err := TopologySVG(g)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), strconv.Itoa(MaxTopologyNodes)) || !strings.Contains(err.Error(), "GET /v1/graph") {
		t.Fatalf("err %v", err)
	}
	g.Nodes = g.Nodes[:MaxTopologyNodes]
	if _, err := TopologySVG(g); err != nil {
		t.Fatalf("a graph of %d nodes: %v", MaxTopologyNodes, err)
	}
}
