package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/graph"
)

// Limits of a topology drawing.
const (
	// MaxTopologyNodes bounds the nodes of a topology drawing (GET
	// /v1/graph?format=svg): the layout's ordering sweeps grow with nodes
	// times edges, and a drawing of more boxes than this is not read on a
	// screen; a larger graph is refused with that reason (the console
	// then lists it by kind, and GET /v1/graph gives it whole).
	MaxTopologyNodes = 1000
	// maxLabel bounds a node's label in runes: one long topic name would
	// widen its whole column; the tooltip holds it all.
	maxLabel = 40
	// columnGap is the room between two columns of a topology: an edge's
	// live figures ("12.5/s · 0.3 err/s") are written in it.
	columnGap = 120
)

// Topology is a graph drawn: the SVG and the hash of what it shows (an
// ETag: the same graph gives the same drawing, whatever its topics'
// message counts).
type Topology struct {
	SVG  []byte
	Hash string
}

// kindColumn is where a kind's nodes go when nothing else says:
// sources, then triggers, then what they call.
var kindColumn = map[graph.Kind]int{
	graph.KindRoute: 0, graph.KindTimer: 0, graph.KindTopic: 0,
	graph.KindTrigger: 1, graph.KindFunction: 2, graph.KindWorkflow: 2, graph.KindDynamic: 3,
}

// TopologySVG draws the system's graph left to right: routes, timers and
// topics, then the triggers they feed, the functions and workflows those
// call, and the topics their results and errors go to; a workflow's
// functions and child workflows after it. Every node is a group with its
// id (data-id) and its kind as a class (kind-function, ...), "failing"
// for a missing node or a workflow whose definition cannot be read; every
// edge a path with data-from, data-to and its kind as a class
// (edge-invokes, ...). A trigger's invokes edge carries an empty
// text.figure the console fills with live figures.
//
// The layout is the flowchart's (layers by longest path, barycenter
// ordering) turned on its side. A graph may have cycles (a function whose
// response topic feeds another of its triggers): the edges a depth-first
// search finds going back are reversed for the layering, and drawn as
// they are, as an arc below the boxes.
func TopologySVG(g *graph.Graph) (*Topology, error) {
	if len(g.Nodes) > MaxTopologyNodes {
		return nil, fmt.Errorf("%w: the graph has %d nodes, over the %d a topology drawing shows (GET /v1/graph lists them all)",
			ErrTooLarge, len(g.Nodes), MaxTopologyNodes)
	}
	f := newTopology(g)
	hash := f.hash()
	key := "graph:" + hash
	drawings.mu.Lock()
	svg, ok := drawings.cache[key]
	drawings.mu.Unlock()
	if ok {
		return &Topology{SVG: svg, Hash: hash}, nil
	}
	f.layoutLR()
	svg = f.topologySVG()
	drawings.mu.Lock()
	if drawings.cache == nil || len(drawings.cache) >= maxLayoutCache {
		drawings.cache = map[string][]byte{}
	}
	drawings.cache[key] = svg
	drawings.mu.Unlock()
	return &Topology{SVG: svg, Hash: hash}, nil
}

// newTopology makes a graph's boxes and arrows, in the graph's order.
func newTopology(g *graph.Graph) *flowchart {
	f := &flowchart{name: "topology", byID: map[string]*box{}}
	for _, n := range g.Nodes {
		f.add(nodeBox(n))
	}
	seen := map[[3]string]bool{}
	for _, e := range g.Edges {
		from, to := f.byID[e.From], f.byID[e.To]
		k := [3]string{e.From, e.To, string(e.Kind)}
		if from == nil || to == nil || seen[k] {
			continue // two triggers answering on one topic: one arrow
		}
		seen[k] = true
		f.link(from, to, "").kind = string(e.Kind)
	}
	return f
}

func label(s string) string {
	if utf8.RuneCountInString(s) <= maxLabel {
		return s
	}
	return string([]rune(s)[:maxLabel-1]) + "…"
}

// nodeBox is a node's box: its name, what it is, its page.
func nodeBox(n *graph.Node) *box {
	b := &box{id: n.ID, lines: []string{label(n.Name)}, shape: "box", tooltip: string(n.Kind) + " " + n.Name,
		class: "kind-" + string(n.Kind), fill: "#f3f4f6", stroke: "#9ca3af"}
	switch n.Kind {
	case graph.KindRoute:
		b.lines = append(b.lines, "HTTP route")
		b.fill, b.stroke = "#ecf7ef", "#3f8f5a"
	case graph.KindTimer:
		b.shape, b.fill, b.stroke = "hexagon", "#fdf6e3", "#b58900"
		b.href = "#/triggers/" + url.PathEscape(n.Name)
		if n.Timer != nil {
			b.lines = append(b.lines, "every "+label(n.Timer.Schedule))
		}
	case graph.KindTopic:
		b.shape, b.fill, b.stroke = "oval", "#fff7e8", "#c27c0e"
		b.href = "#/topics/" + url.PathEscape(n.Name)
		b.lines = append(b.lines, "topic")
	case graph.KindTrigger:
		b.href = "#/triggers/" + url.PathEscape(n.Name)
		if n.Trigger != nil {
			b.lines = append(b.lines, n.Trigger.Kind+" trigger")
		}
	case graph.KindFunction:
		b.fill, b.stroke = "#eef3fb", "#5b7bb5"
		b.href = "#/functions/" + url.PathEscape(n.Name)
		if n.Function != nil {
			b.lines = append(b.lines, fmt.Sprintf("function v%d", n.Function.Version))
		}
	case graph.KindWorkflow:
		b.double, b.fill, b.stroke = true, "#f0ebfa", "#7c5bb5"
		b.href = "#/workflows/" + url.PathEscape(n.Name)
		if n.Workflow != nil {
			b.lines = append(b.lines, fmt.Sprintf("workflow v%d", n.Workflow.Version))
			if n.Workflow.Error != "" {
				b.lines[1] = "definition unreadable"
				b.class += " failing broken"
				b.tooltip = n.Workflow.Error
			}
		}
	case graph.KindDynamic:
		b.dashed, b.fill, b.stroke = true, "#f0ebfa", "#7c5bb5"
		b.href = "#/workflows/" + url.PathEscape(n.Name)
		b.lines = append(b.lines, "known when it runs")
		if n.Dynamic != nil {
			b.tooltip = "tasks of " + n.Name + " known only as they run: " + strings.Join(n.Dynamic.Tasks, ", ")
		}
	}
	if n.Missing {
		b.lines = append(b.lines[:1], "missing "+string(n.Kind))
		b.class += " failing missing"
		b.dashed = true
		b.tooltip = string(n.Kind) + " " + n.Name + " is named but not deployed"
	}
	return b
}

// hash is what the drawing shows, hashed: the boxes and the arrows.
func (f *flowchart) hash() string {
	h := sha256.New()
	for _, b := range f.nodes {
		fmt.Fprintf(h, "%q %q %q %q %q %s %v %v\n", b.id, b.lines, b.class, b.href, b.tooltip, b.shape, b.double, b.dashed)
	}
	for _, a := range f.edges {
		fmt.Fprintf(h, "%q %q %s\n", a.from.id, a.to.id, a.kind)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// breakCycles marks the edges a depth-first search finds going back (to
// a box on its path) as back: without them the graph is a DAG, which is
// what a layered layout draws. The search starts from the boxes nothing
// feeds, in order, so what is drawn left to right follows the flow.
func (f *flowchart) breakCycles() {
	out := map[*box][]*arrow{}
	fed := map[*box]bool{}
	for _, a := range f.edges {
		out[a.from] = append(out[a.from], a)
		fed[a.to] = true
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[*box]int{}
	var visit func(b *box)
	visit = func(b *box) {
		state[b] = onPath
		for _, a := range out[b] {
			switch state[a.to] {
			case onPath:
				a.back = true
			case unseen:
				visit(a.to)
			}
		}
		state[b] = done
	}
	for _, b := range f.nodes {
		if !fed[b] && state[b] == unseen {
			visit(b)
		}
	}
	for _, b := range f.nodes { // what is only on cycles
		if state[b] == unseen {
			visit(b)
		}
	}
}

// layoutLR lays a topology out left to right: the flowchart's layered
// layout with each box's width and height swapped, then turned.
func (f *flowchart) layoutLR() {
	f.breakCycles()
	in := map[*box][]*box{}
	out := map[*box][]*box{}
	indeg := map[*box]int{}
	for _, a := range f.edges {
		if !a.back {
			in[a.to] = append(in[a.to], a.from)
			out[a.from] = append(out[a.from], a.to)
			indeg[a.to]++
		}
	}
	for _, b := range f.nodes {
		longest := 0
		for _, l := range b.lines {
			longest = max(longest, utf8.RuneCountInString(l))
		}
		w := max(72, float64(longest)*charWidth+28)
		h := float64(len(b.lines))*lineHeight + 16
		if b.shape == "hexagon" {
			w += 28
		}
		b.w, b.h = h, w // on its side: across a layer is down the page
		b.rank = 0
	}
	// ranks: longest path, in a topological order (Kahn's), and a node
	// without edges in its kind's column
	queue := []*box{}
	for _, b := range f.nodes {
		if indeg[b] == 0 {
			queue = append(queue, b)
			if len(in[b]) == 0 && len(out[b]) == 0 {
				b.rank = kindColumn[graph.Kind(strings.TrimPrefix(kindOf(b), "kind-"))]
			}
		}
	}
	last := 0
	for len(queue) > 0 {
		b := queue[0]
		queue = queue[1:]
		last = max(last, b.rank)
		for _, n := range out[b] {
			n.rank = max(n.rank, b.rank+1)
			if indeg[n]--; indeg[n] == 0 {
				queue = append(queue, n)
			}
		}
	}
	layers := layered(f.nodes, last+1)
	in, out = waypoints(f.edges, layers)
	arrange(layers, in, out)
	// turn: a layer is a column, its boxes down the page
	for i, c := range layerCenters(layers, columnGap) {
		for _, b := range layers[i] {
			b.w, b.h = b.h, b.w
			b.x, b.y = c, b.x
		}
	}
	minY := math.Inf(1)
	for _, layer := range layers {
		for _, b := range layer {
			minY = min(minY, b.y-b.h/2)
		}
	}
	for _, layer := range layers {
		for _, b := range layer {
			b.x += margin
			b.y += margin - minY
		}
	}
}

// kindOf is a box's kind class (kind-NAME).
func kindOf(b *box) string {
	for c := range strings.FieldsSeq(b.class) {
		if strings.HasPrefix(c, "kind-") {
			return c
		}
	}
	return ""
}

// edge colors by kind
var edgeColor = map[string]string{
	string(graph.EdgeError):   "#c0392b",
	string(graph.EdgeRuns):    "#7c5bb5",
	string(graph.EdgeStarts):  "#7c5bb5",
	string(graph.EdgeDynamic): "#7c5bb5",
}

func (f *flowchart) topologySVG() []byte {
	width, height := 0.0, 0.0
	for _, b := range f.nodes {
		width = max(width, b.x+b.w/2+margin)
		height = max(height, b.y+b.h/2+margin)
	}
	height += 40 // room for the arcs of cycles below
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<svg xmlns="http://www.w3.org/2000/svg" class="chart topology" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="%d">`+"\n",
		width, height, width, height, fontSize)
	buf.WriteString("<title>topology</title>\n")
	buf.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>` + "\n")
	for _, a := range f.edges {
		writeLREdge(&buf, a)
	}
	for _, b := range f.nodes {
		writeBox(&buf, b)
	}
	buf.WriteString("</svg>\n")
	return buf.Bytes()
}

// writeLREdge draws an edge from the right of one box to the left of the
// next; one going back (or within a column), as an arc below both.
func writeLREdge(buf *bytes.Buffer, a *arrow) {
	color := edgeColor[a.kind]
	if color == "" {
		color = "#6b7280"
	}
	class := "edge edge-" + a.kind
	dash := ""
	switch graph.EdgeKind(a.kind) {
	case graph.EdgeError, graph.EdgeDynamic:
		dash = ` stroke-dasharray="4 3"`
	}
	var d string
	var mx, my float64
	if a.to.x <= a.from.x {
		class += " back"
		x1, y1 := a.from.x, a.from.y+a.from.h/2
		x2, y2 := a.to.x, a.to.y+a.to.h/2
		bulge := max(y1, y2) + 36
		d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, x1, bulge, x2, bulge, x2, y2)
		mx, my = (x1+x2)/2, bulge-4
	} else {
		pts := through([2]float64{a.from.x + a.from.w/2, a.from.y}, a, [2]float64{a.to.x - a.to.w/2, a.to.y})
		d = curve(pts, false)
		mx, my = (pts[0][0]+pts[1][0])/2, (pts[0][1]+pts[1][1])/2-5
	}
	fmt.Fprintf(buf, `<path class="%s" data-from="%s" data-to="%s" d="%s" fill="none" stroke="%s"%s marker-end="url(#arrow)"/>`+"\n",
		class, esc(a.from.id), esc(a.to.id), d, color, dash)
	if a.kind == string(graph.EdgeInvokes) {
		fmt.Fprintf(buf, `<text class="figure" data-from="%s" data-to="%s" x="%.1f" y="%.1f" text-anchor="middle" font-size="10"></text>`+"\n",
			esc(a.from.id), esc(a.to.id), mx, my)
	}
}
