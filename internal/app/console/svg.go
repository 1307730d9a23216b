package console

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/engine"
)

// FlowchartSVG draws a workflow definition as a flowchart in SVG: its
// tasks as boxes in layers (a task below what it requires, a branch below
// its built-in), a loop's return as a dashed arc, boxes linking to their
// function's or child workflow's console page. key names the drawing for
// the cache (the definition's revision; "" for none).
//
// The layout is a layered one, done here in Go (see docs/RATIONALE.md,
// "A console without npm"): layers by longest path, the order in each
// layer by a few barycenter sweeps, each box pulled toward those it
// follows. A definition is a DAG by construction, which is what such a
// layout draws well.
func FlowchartSVG(key string, s *engine.Shape) ([]byte, error) {
	drawings.mu.Lock()
	svg, ok := drawings.cache[key]
	drawings.mu.Unlock()
	if ok && key != "" {
		return svg, nil
	}
	f, err := newFlowchart(s)
	if err != nil {
		return nil, err
	}
	f.layout()
	svg = f.svg()
	if key != "" {
		drawings.mu.Lock()
		if drawings.cache == nil || len(drawings.cache) >= maxLayoutCache {
			drawings.cache = map[string][]byte{}
		}
		drawings.cache[key] = svg
		drawings.mu.Unlock()
	}
	return svg, nil
}

// Drawing constants, in SVG user units (CSS pixels at scale 1).
const (
	fontSize   = 11
	charWidth  = 6.6 // an average sans-serif character at fontSize
	lineHeight = 14
	gapX       = 28 // between boxes of a layer
	gapY       = 48 // between layers
	margin     = 16
	// sweeps is how many times the order of the layers is improved, down
	// and up: most of what barycenter ordering gains, it gains in the
	// first few.
	sweeps = 4
)

func (f *flowchart) layout() {
	in := map[*box][]*box{}
	out := map[*box][]*box{}
	for _, a := range f.edges {
		if !a.back {
			in[a.to] = append(in[a.to], a.from)
			out[a.from] = append(out[a.from], a.to)
		}
	}
	// sizes
	for _, b := range f.nodes {
		longest := 0
		for _, l := range b.lines {
			longest = max(longest, utf8.RuneCountInString(l))
		}
		b.w = max(72, float64(longest)*charWidth+28)
		b.h = float64(len(b.lines))*lineHeight + 16
		switch b.shape {
		case "diamond":
			b.w, b.h = b.w*1.5, b.h*1.6
		case "hexagon":
			b.w += 28
		}
	}
	// layers: the nodes come in a topological order (a task after what it
	// requires, a branch after its built-in), so one pass gives each its
	// longest path from the input
	end := f.nodes[len(f.nodes)-1]
	last := 0
	for _, b := range f.nodes {
		for _, p := range in[b] {
			b.rank = max(b.rank, p.rank+1)
		}
		if b != end {
			last = max(last, b.rank)
		}
	}
	end.rank = last + 1
	layers := layered(f.nodes, last+2)
	in, out = waypoints(f.edges, layers)
	arrange(layers, in, out)
	// y: layer after layer
	for i, c := range layerCenters(layers, gapY) {
		for _, b := range layers[i] {
			b.y = c
		}
	}
	minX := math.Inf(1)
	for _, layer := range layers {
		for _, b := range layer {
			minX = min(minX, b.x-b.w/2)
		}
	}
	for _, layer := range layers {
		for _, b := range layer {
			b.x += margin - minX
			b.y += margin
		}
	}
}

// layered puts boxes in their layers (by rank), each in the order it
// comes.
func layered(nodes []*box, n int) [][]*box {
	layers := make([][]*box, n)
	for _, b := range nodes {
		b.order = len(layers[b.rank])
		layers[b.rank] = append(layers[b.rank], b)
	}
	return layers
}

// waypointWidth is the room a waypoint takes across its layer: an edge
// and a little air on each side.
const waypointWidth = 8

// waypoints gives every edge laid out that crosses layers a waypoint in
// each layer between its ends: an empty box, ordered and placed with the
// boxes of its layer, so that the edge runs between those boxes rather
// than through them. It returns the neighbors of every box, waypoints
// included, for arrange.
func waypoints(edges []*arrow, layers [][]*box) (in, out map[*box][]*box) {
	in, out = map[*box][]*box{}, map[*box][]*box{}
	for _, a := range edges {
		a.via = nil
		if a.back {
			continue
		}
		prev := a.from
		for r := a.from.rank + 1; r < a.to.rank; r++ {
			w := &box{rank: r, order: len(layers[r]), w: waypointWidth}
			layers[r] = append(layers[r], w)
			a.via = append(a.via, w)
			in[w] = append(in[w], prev)
			out[prev] = append(out[prev], w)
			prev = w
		}
		in[a.to] = append(in[a.to], prev)
		out[prev] = append(out[prev], a.to)
	}
	return in, out
}

// curve is an SVG path through points, each stretch a cubic whose
// handles run along the axis the layers follow each other on: down the
// page (down), or across it.
func curve(pts [][2]float64, down bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "M%.1f,%.1f", pts[0][0], pts[0][1])
	for i := 1; i < len(pts); i++ {
		x1, y1, x2, y2 := pts[i-1][0], pts[i-1][1], pts[i][0], pts[i][1]
		if down {
			mid := (y2 - y1) / 2
			fmt.Fprintf(&b, " C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1+mid, x2, y2-mid, x2, y2)
		} else {
			mid := (x2 - x1) / 2
			fmt.Fprintf(&b, " C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1+mid, y1, x2-mid, y2, x2, y2)
		}
	}
	return b.String()
}

// through is an edge's points from its start to its end, by its
// waypoints.
func through(start [2]float64, a *arrow, end [2]float64) [][2]float64 {
	pts := [][2]float64{start}
	for _, w := range a.via {
		pts = append(pts, [2]float64{w.x, w.y})
	}
	return append(pts, end)
}

// arrange orders each layer by a few barycenter sweeps (the mean order
// of a box's neighbors in the layer before, then after), then sets each
// box's x (its position across the layers): side by side, then pulled
// toward the mean of its neighbors, overlaps pushed apart.
func arrange(layers [][]*box, in, out map[*box][]*box) {
	for range sweeps {
		for r := 1; r < len(layers); r++ {
			bary(layers[r], in)
		}
		for r := len(layers) - 2; r >= 0; r-- {
			bary(layers[r], out)
		}
	}
	for _, layer := range layers {
		x := 0.0
		for _, b := range layer {
			b.x = x + b.w/2
			x += b.w + gapX
		}
		shift := (x - gapX) / 2
		for _, b := range layer {
			b.x -= shift
		}
	}
	for range 2 {
		for r := 1; r < len(layers); r++ {
			place(layers[r], in)
		}
		for r := len(layers) - 2; r >= 0; r-- {
			place(layers[r], out)
		}
	}
}

// bary sorts a layer by the mean order of each box's neighbors (a box
// without any keeps its place).
func bary(layer []*box, nbrs map[*box][]*box) {
	key := map[*box]float64{}
	for _, b := range layer {
		if len(nbrs[b]) == 0 {
			key[b] = float64(b.order)
			continue
		}
		sum := 0.0
		for _, n := range nbrs[b] {
			sum += float64(n.order)
		}
		key[b] = sum / float64(len(nbrs[b]))
	}
	slices.SortStableFunc(layer, func(a, b *box) int {
		switch {
		case key[a] < key[b]:
			return -1
		case key[a] > key[b]:
			return 1
		}
		return 0
	})
	for i, b := range layer {
		b.order = i
	}
}

// place moves a layer's boxes toward the mean x of their neighbors,
// keeping their order and gapX between them.
func place(layer []*box, nbrs map[*box][]*box) {
	want := make([]float64, len(layer))
	for i, b := range layer {
		want[i] = b.x
		if ns := nbrs[b]; len(ns) > 0 {
			sum := 0.0
			for _, n := range ns {
				sum += n.x
			}
			want[i] = sum / float64(len(ns))
		}
	}
	for i, b := range layer {
		b.x = want[i]
		if i > 0 {
			prev := layer[i-1]
			b.x = max(b.x, prev.x+prev.w/2+gapX+b.w/2)
		}
	}
	// the push went rightward only: center the layer on what it wanted
	drift := 0.0
	for i, b := range layer {
		drift += b.x - want[i]
	}
	drift /= float64(len(layer))
	for _, b := range layer {
		b.x -= drift
	}
}

// xmlEscaper escapes text and attribute values.
var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;")

func esc(s string) string {
	// control characters are not XML: dropped, as Quote drops them
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	return xmlEscaper.Replace(s)
}

func (f *flowchart) svg() []byte {
	width, height := 0.0, 0.0
	for _, b := range f.nodes {
		width = max(width, b.x+b.w/2+margin)
		height = max(height, b.y+b.h/2+margin)
	}
	width += 40 // room for the arcs of loops on the right
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="%d">`+"\n",
		width, height, width, height, fontSize)
	fmt.Fprintf(&buf, `<title>%s</title>`+"\n", esc("workflow "+f.name))
	buf.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>` + "\n")
	for _, a := range f.edges {
		f.writeEdge(&buf, a)
	}
	for _, b := range f.nodes {
		writeBox(&buf, b)
	}
	buf.WriteString("</svg>\n")
	return buf.Bytes()
}

func (f *flowchart) writeEdge(buf *bytes.Buffer, a *arrow) {
	color := "#6b7280"
	if a.handler {
		color = "#c0392b"
	}
	dash := ""
	if a.back || a.handler {
		dash = ` stroke-dasharray="4 3"`
	}
	var d string
	var lx, ly float64
	if a.back { // from the loop's body back up to the loop, on the right
		x1, y1 := a.from.x+a.from.w/2, a.from.y
		x2, y2 := a.to.x+a.to.w/2, a.to.y
		bulge := max(x1, x2) + 36
		d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, bulge, y1, bulge, y2, x2, y2)
		lx, ly = bulge-6, (y1+y2)/2
	} else {
		pts := through([2]float64{a.from.x, a.from.y + a.from.h/2}, a, [2]float64{a.to.x, a.to.y - a.to.h/2})
		d = curve(pts, true)
		lx, ly = (pts[0][0]+pts[1][0])/2+4, (pts[0][1]+pts[1][1])/2
	}
	fmt.Fprintf(buf, `<path class="edge" d="%s" fill="none" stroke="%s"%s marker-end="url(#arrow)"/>`+"\n", d, color, dash)
	if a.label != "" {
		fmt.Fprintf(buf, `<text x="%.1f" y="%.1f" font-size="9" fill="%s">%s</text>`+"\n", lx, ly, color, esc(a.label))
	}
}

func writeBox(buf *bytes.Buffer, b *box) {
	class := "node"
	if b.class != "" {
		class += " " + b.class
	}
	fmt.Fprintf(buf, `<g id="%s" class="%s" data-id="%s">`, esc(b.id), esc(class), esc(b.id))
	if b.href != "" {
		fmt.Fprintf(buf, `<a href="%s">`, esc(b.href))
	}
	if b.tooltip != "" {
		fmt.Fprintf(buf, `<title>%s</title>`, esc(b.tooltip))
	}
	x0, y0 := b.x-b.w/2, b.y-b.h/2
	style := fmt.Sprintf(`fill="%s" stroke="%s"`, b.fill, b.stroke)
	if b.dashed {
		style += ` stroke-dasharray="4 3"`
	}
	switch b.shape {
	case "oval":
		fmt.Fprintf(buf, `<ellipse cx="%.1f" cy="%.1f" rx="%.1f" ry="%.1f" %s/>`, b.x, b.y, b.w/2, b.h/2, style)
	case "diamond":
		fmt.Fprintf(buf, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" %s/>`, b.x, y0, x0+b.w, b.y, b.x, y0+b.h, x0, b.y, style)
	case "hexagon":
		fmt.Fprintf(buf, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" %s/>`,
			x0, b.y, x0+14, y0, x0+b.w-14, y0, x0+b.w, b.y, x0+b.w-14, y0+b.h, x0+14, y0+b.h, style)
	default:
		fmt.Fprintf(buf, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="6" %s/>`, x0, y0, b.w, b.h, style)
		if b.double {
			fmt.Fprintf(buf, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="4" fill="none" stroke="%s"/>`, x0+3, y0+3, b.w-6, b.h-6, b.stroke)
		}
	}
	top := b.y - float64(len(b.lines)-1)*lineHeight/2 + 4
	for i, l := range b.lines {
		weight := ""
		if i == 0 && b.shape != "oval" {
			weight = ` font-weight="600"`
		}
		fmt.Fprintf(buf, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#1f2933"%s>%s</text>`, b.x, top+float64(i)*lineHeight, weight, esc(l))
	}
	if b.href != "" {
		buf.WriteString(`</a>`)
	}
	buf.WriteString("</g>\n")
}

// layerCenters places layers one after the other, each as thick as its
// thickest box (b.h) and gap apart, and returns each one's middle.
func layerCenters(layers [][]*box, gap float64) []float64 {
	centers := make([]float64, len(layers))
	at := 0.0
	for i, layer := range layers {
		thickest := 0.0
		for _, b := range layer {
			thickest = max(thickest, b.h)
		}
		centers[i] = at + thickest/2
		at += thickest + gap
	}
	return centers
}
