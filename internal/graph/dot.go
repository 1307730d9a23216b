package graph

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// dotShapes are the shapes of the node kinds in Graphviz.
var dotShapes = map[Kind]string{
	KindRoute:    "cds",
	KindTopic:    "cylinder",
	KindTimer:    "circle",
	KindTrigger:  "hexagon",
	KindFunction: "box",
	KindWorkflow: "box3d",
	KindDynamic:  "diamond",
}

// WriteDot writes the graph in Graphviz's dot language: one statement a
// line, every ID and label a quoted string (DotQuote), so that no name
// can end a string or add a statement.
func WriteDot(w io.Writer, g *Graph) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "digraph sluice {")
	fmt.Fprintln(bw, "  rankdir=LR;")
	for _, n := range g.Nodes {
		style := ""
		if n.Missing {
			style = `, style="dashed"`
		}
		fmt.Fprintf(bw, "  %s [label=%s, shape=%q%s];\n", DotQuote(n.ID), DotQuote(Label(n)), dotShapes[n.Kind], style)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(bw, "  %s -> %s [label=%s];\n", DotQuote(e.From), DotQuote(e.To), DotQuote(edgeLabel(e)))
	}
	fmt.Fprintln(bw, "}")
	return bw.Flush()
}

// DotQuote returns s as a dot quoted string that Graphviz shows as s: a
// double quote and a backslash are escaped; a control character, which
// would end the line or change a label's layout, is written as \xHH
// or \uHHHH (shown as such); bytes that are not UTF-8 become U+FFFD.
func DotQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			fmt.Fprintf(&b, `\\x%02x`, r)
		case r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Label is what a drawing shows of a node: its name, and its version or
// kind.
func Label(n *Node) string {
	switch {
	case n.Missing:
		return n.Name + " (missing)"
	case n.Function != nil:
		return fmt.Sprintf("%s v%d", n.Name, n.Function.Version)
	case n.Workflow != nil:
		return fmt.Sprintf("%s v%d", n.Name, n.Workflow.Version)
	case n.Trigger != nil:
		return n.Name + " (" + n.Trigger.Kind + ")"
	case n.Timer != nil:
		return n.Timer.Schedule
	case n.Dynamic != nil:
		return "dynamic: " + strings.Join(n.Dynamic.Tasks, ", ")
	}
	return n.Name
}

func edgeLabel(e *Edge) string {
	if e.Trigger != "" {
		return string(e.Kind) + " (" + e.Trigger + ")"
	}
	return string(e.Kind)
}
