package graph

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// mermaidShapes are the brackets around the node kinds' labels in
// Mermaid.
var mermaidShapes = map[Kind][2]string{
	KindRoute:    {"([", "])"},
	KindTopic:    {"[(", ")]"},
	KindTimer:    {"((", "))"},
	KindTrigger:  {"{{", "}}"},
	KindFunction: {"[", "]"},
	KindWorkflow: {"[[", "]]"},
	KindDynamic:  {">", "]"},
}

// WriteMermaid writes the graph as a Mermaid flowchart. Mermaid's node
// ids are n0, n1... in the order of g.Nodes (a name is never an id), and
// every label is a quoted string in which all but letters, digits, space
// and ._/:- is an entity code (MermaidQuote): no name can end a string or
// add a statement.
func WriteMermaid(w io.Writer, g *Graph) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "flowchart LR")
	ids := make(map[string]string, len(g.Nodes))
	for i, n := range g.Nodes {
		id := fmt.Sprintf("n%d", i)
		ids[n.ID] = id
		sh := mermaidShapes[n.Kind]
		fmt.Fprintf(bw, "    %s%s%s%s\n", id, sh[0], MermaidQuote(Label(n)), sh[1])
	}
	for _, e := range g.Edges {
		from, to := ids[e.From], ids[e.To]
		if from == "" || to == "" {
			return fmt.Errorf("graph: edge %s -> %s: no such node", e.From, e.To)
		}
		fmt.Fprintf(bw, "    %s -->|%s| %s\n", from, MermaidQuote(edgeLabel(e)), to)
	}
	return bw.Flush()
}

// MermaidQuote returns s as a Mermaid quoted label: letters, digits,
// space and ._/:- as they are, every other character as its entity code
// (#35; for #), which Mermaid shows as the character; bytes that are
// not UTF-8 become U+FFFD.
func MermaidQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == ' ', r == '.', r == '_', r == '/', r == ':', r == '-':
			b.WriteRune(r)
		default:
			fmt.Fprintf(&b, "#%d;", r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
