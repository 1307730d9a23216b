package console

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/engine"
)

// Limits of a flowchart.
const (
	// MaxLayoutNodes bounds the boxes of a flowchart: a layout's ordering
	// passes grow with boxes times edges, and a flowchart of more boxes
	// than this is not read on a screen anyway; a larger definition is
	// refused with that reason rather than drawn.
	MaxLayoutNodes = 400
	// maxLayoutCache bounds the drawings kept, by workflow revision: one
	// SVG is a few KiB to a few hundred, and a console shows a handful of
	// workflows at a time.
	maxLayoutCache = 64
)

// drawings are the flowcharts drawn, by revision.
var drawings struct {
	mu    sync.Mutex
	cache map[string][]byte
}

// A flowchart is a definition's tasks as boxes and what runs after what
// as edges, ready to be written as DOT or laid out as SVG.
type flowchart struct {
	name  string
	nodes []*box
	byID  map[string]*box
	edges []*arrow
}

// box is a node of a flowchart.
type box struct {
	id      string
	lines   []string
	shape   string // box, diamond, hexagon, oval
	href    string
	tooltip string
	fill    string
	stroke  string
	double  bool   // a child workflow
	dashed  bool   // known only when it runs
	class   string // more CSS classes of its group (a topology's kind, failing)

	rank, order int     // layout: layer and position in it
	x, y, w, h  float64 // layout: center, size
}

// arrow is an edge of a flowchart.
type arrow struct {
	from, to *box
	label    string
	back     bool   // a loop's return: drawn, not laid out
	handler  bool   // to a catch or undo task
	kind     string // a topology's edge kind (graph.EdgeKind)
	// via are the waypoints of an edge that crosses layers, one in each
	// (waypoints): it is drawn through them.
	via []*box
}

func nodeID(task string) string { return "task:" + task }

// loops are the built-ins whose do: runs again and again.
var loops = map[string]bool{"foreach": true, "while": true, "repeat": true}

// newFlowchart builds a definition's flowchart: an input and an output,
// a box per task and per branch task, requires and branches as edges.
func newFlowchart(s *engine.Shape) (*flowchart, error) {
	f := &flowchart{name: s.Workflow, byID: map[string]*box{}}
	start := f.add(&box{id: "start", lines: []string{"input"}, shape: "oval", fill: "#f3f4f6", stroke: "#9ca3af"})
	end := &box{id: "end", lines: []string{"output"}, shape: "oval", fill: "#f3f4f6", stroke: "#9ca3af"}
	required := map[string]bool{}
	for _, t := range s.Tasks {
		for _, r := range t.Requires {
			required[r] = true
		}
	}
	for _, t := range s.Tasks {
		f.task(t)
	}
	f.add(end)
	for _, t := range s.Tasks {
		b := f.byID[nodeID(t.ID)]
		if len(t.Requires) == 0 {
			f.link(start, b, "")
		}
		for _, r := range t.Requires {
			if from := f.byID[nodeID(r)]; from != nil {
				f.link(from, b, "")
			}
		}
		if !required[t.ID] {
			f.link(b, end, "")
		}
	}
	if len(f.nodes) > MaxLayoutNodes {
		return nil, fmt.Errorf("%w: workflow %q has %d tasks and branches to draw, over the %d a flowchart shows",
			ErrTooLarge, s.Workflow, len(f.nodes)-2, MaxLayoutNodes)
	}
	return f, nil
}

func (f *flowchart) add(b *box) *box {
	if f.byID[b.id] != nil {
		b.id += "'" // two tasks of one id: a shape never has them, a hand-made one might
	}
	f.nodes = append(f.nodes, b)
	f.byID[b.id] = b
	return b
}

func (f *flowchart) link(from, to *box, label string) *arrow {
	a := &arrow{from: from, to: to, label: label}
	f.edges = append(f.edges, a)
	return a
}

// task adds a task's box and, nested, its branches' boxes.
func (f *flowchart) task(t *engine.ShapeTask) *box {
	b := &box{id: nodeID(t.ID), lines: []string{t.ID}, shape: "box", fill: "#eef3fb", stroke: "#5b7bb5"}
	if t.ID != t.Run && !strings.HasSuffix(t.ID, "/"+t.Run) {
		b.lines = append(b.lines, t.Run)
	}
	switch {
	case !t.Builtin:
		b.href, b.tooltip = "#/functions/"+url.PathEscape(t.Run), "function "+t.Run
	case t.Run == "workflow" && !t.Dynamic:
		b.lines = []string{t.ID, "workflow " + t.Workflow}
		b.double, b.fill, b.stroke = true, "#f0ebfa", "#7c5bb5"
		b.href, b.tooltip = "#/workflows/"+url.PathEscape(t.Workflow), "workflow "+t.Workflow
	case t.Dynamic:
		b.dashed, b.fill, b.stroke, b.tooltip = true, "#f0ebfa", "#7c5bb5", "known when it runs"
		b.lines = append(b.lines, "(dynamic)")
	case t.Run == "if" || t.Run == "switch":
		b.shape, b.fill, b.stroke = "diamond", "#fdf6e3", "#b58900"
	case loops[t.Run]:
		b.shape, b.fill, b.stroke = "hexagon", "#fdf6e3", "#b58900"
	default:
		b.fill, b.stroke = "#f3f4f6", "#9ca3af"
	}
	if t.Retries > 0 {
		b.lines = append(b.lines, fmt.Sprintf("retry ×%d", t.Retries))
	}
	f.add(b)
	for _, br := range t.Branches {
		if br.Task == nil || len(f.nodes) > MaxLayoutNodes {
			continue // a value: nothing runs
		}
		kid := f.task(br.Task)
		a := f.link(b, kid, br.Key)
		switch {
		case br.Key == "catch" || br.Key == "undo":
			a.handler = true
		case loops[t.Run]:
			f.link(kid, b, "next").back = true
		}
	}
	return b
}

// FlowchartDOT writes a definition's flowchart in the DOT language (GET
// /v1/workflows/NAME/flowchart?format=dot, for Graphviz). Every name is
// quoted (Quote), so no task or function name can end a statement or add
// one.
func FlowchartDOT(s *engine.Shape) ([]byte, error) {
	f, err := newFlowchart(s)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "digraph %s {\n  graph [rankdir=TB];\n  node [shape=box, style=\"rounded,filled\"];\n", Quote(f.name))
	for _, b := range f.nodes {
		attrs := []string{"label=" + Quote(strings.Join(b.lines, "\n")), "fillcolor=" + Quote(b.fill), "color=" + Quote(b.stroke)}
		switch b.shape {
		case "diamond", "hexagon", "oval":
			attrs = append(attrs, "shape="+b.shape, "style=filled")
		}
		if b.double {
			attrs = append(attrs, "peripheries=2")
		}
		if b.href != "" {
			attrs = append(attrs, "URL="+Quote(b.href), "tooltip="+Quote(b.tooltip))
		}
		fmt.Fprintf(&buf, "  %s [%s];\n", Quote(b.id), strings.Join(attrs, ", "))
	}
	for _, a := range f.edges {
		var attrs []string
		if a.label != "" {
			attrs = append(attrs, "label="+Quote(a.label))
		}
		if a.back || a.handler {
			attrs = append(attrs, "style=dashed")
		}
		if a.back {
			attrs = append(attrs, "constraint=false")
		}
		fmt.Fprintf(&buf, "  %s -> %s [%s];\n", Quote(a.from.id), Quote(a.to.id), strings.Join(attrs, ", "))
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// Quote returns s as a DOT quoted string: backslashes and double quotes
// escaped, line breaks as \n, other control characters dropped. Whatever
// s holds, the result is one ID: it cannot end the string, the statement
// or the graph.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			// dropped: nothing to show
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
