package graph

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// dotLine is a statement of WriteDot's: a node or an edge, its IDs and
// labels quoted strings in which a backslash escapes one character.
var (
	dotQuoted = `"((?:[^"\\\n]|\\[^\n])*)"`
	dotNode   = regexp.MustCompile(`^  ` + dotQuoted + ` \[label=` + dotQuoted + `, shape="[a-z0-9]+"(?:, style="dashed")?\];$`)
	dotEdge   = regexp.MustCompile(`^  ` + dotQuoted + ` -> ` + dotQuoted + ` \[label=` + dotQuoted + `\];$`)
)

// dotUnquote reads back a DotQuote'd string's content, as Graphviz does.
func dotUnquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// shown is what DotQuote makes Graphviz show of s.
func shown(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			fmt.Fprintf(&b, `\x%02x`, r)
			continue
		case r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

var mermaidLabel = `"([A-Za-z0-9 ._/:#;-]*)"`
var (
	mermaidNode = regexp.MustCompile(`^    n[0-9]+(?:\(\[|\[\(|\(\(|\{\{|\[\[|\[|>)` + mermaidLabel + `(?:\]\)|\)\]|\)\)|\}\}|\]\]|\])$`)
	mermaidEdge = regexp.MustCompile(`^    n[0-9]+ -->\|` + mermaidLabel + `\| n[0-9]+$`)
	entity      = regexp.MustCompile(`#([0-9]+);`)
)

func mermaidUnquote(s string) string {
	return entity.ReplaceAllStringFunc(s, func(e string) string {
		var r rune
		for _, c := range e[1 : len(e)-1] {
			r = r*10 + c - '0'
		}
		return string(r)
	})
}

// nameGraph is a graph of every kind of node, each named name, with an
// edge from each to the next.
func nameGraph(name string) *Graph {
	g := &Graph{}
	for _, k := range []Kind{KindRoute, KindTopic, KindTimer, KindTrigger, KindFunction, KindWorkflow, KindDynamic} {
		n := &Node{ID: ID(k, name), Kind: k, Name: name}
		switch k {
		case KindFunction:
			n.Function = &FunctionInfo{Version: 1}
		case KindWorkflow:
			n.Missing = true
		case KindTrigger:
			n.Trigger = &TriggerInfo{Kind: "queue"}
		}
		g.Nodes = append(g.Nodes, n)
	}
	for i := 1; i < len(g.Nodes); i++ {
		g.Edges = append(g.Edges, &Edge{From: g.Nodes[i-1].ID, To: g.Nodes[i].ID, Kind: EdgeFeeds, Trigger: name})
	}
	return g
}

// checkDot checks that WriteDot gives exactly one statement per node and
// edge, each well formed, showing the names as they are.
func checkDot(t *testing.T, g *Graph) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDot(&buf, g); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3+len(g.Nodes)+len(g.Edges) || lines[0] != "digraph sluice {" || lines[1] != "  rankdir=LR;" || lines[len(lines)-1] != "}" {
		t.Fatalf("dot: %d lines, want %d:\n%s", len(lines), 3+len(g.Nodes)+len(g.Edges), buf.String())
	}
	for i, n := range g.Nodes {
		m := dotNode.FindStringSubmatch(lines[2+i])
		if m == nil {
			t.Fatalf("dot: node line %q is not one statement", lines[2+i])
		}
		if got := dotUnquote(m[1]); got != shown(n.ID) {
			t.Fatalf("dot: node %q shown as %q", n.ID, got)
		}
	}
	for i, e := range g.Edges {
		m := dotEdge.FindStringSubmatch(lines[2+len(g.Nodes)+i])
		if m == nil {
			t.Fatalf("dot: edge line %q is not one statement", lines[2+len(g.Nodes)+i])
		}
		if dotUnquote(m[1]) != shown(e.From) || dotUnquote(m[2]) != shown(e.To) || dotUnquote(m[3]) != shown(edgeLabel(e)) {
			t.Fatalf("dot: edge %s -> %s shown as %q", e.From, e.To, m[1:])
		}
	}
}

// checkMermaid is checkDot for WriteMermaid.
func checkMermaid(t *testing.T, g *Graph) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteMermaid(&buf, g); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1+len(g.Nodes)+len(g.Edges) || lines[0] != "flowchart LR" {
		t.Fatalf("mermaid: %d lines, want %d:\n%s", len(lines), 1+len(g.Nodes)+len(g.Edges), buf.String())
	}
	for i, n := range g.Nodes {
		m := mermaidNode.FindStringSubmatch(lines[1+i])
		if m == nil {
			t.Fatalf("mermaid: node line %q is not one statement", lines[1+i])
		}
		if got, want := mermaidUnquote(m[1]), strings.ToValidUTF8(Label(n), string(utf8.RuneError)); got != want {
			t.Fatalf("mermaid: label %q shown as %q", want, got)
		}
	}
	for i := range g.Edges {
		if !mermaidEdge.MatchString(lines[1+len(g.Nodes)+i]) {
			t.Fatalf("mermaid: edge line %q is not one statement", lines[1+len(g.Nodes)+i])
		}
	}
}

var hostileNames = []string{
	"orders",
	`a"b`,
	`end\`,
	"x\"];\n  \"evil\" -> \"y",
	"a]\n    n9[\"evil\"",
	"#quot; #35; &amp; <b>html</b>",
	"line\nbreak\r\x00\x7f",
	"\u2028\u0085émoji 🎉",
	"\xff\xfe not utf-8",
	"",
	"}",
	"-->|x| n0",
}

func TestWritersQuoteEveryName(t *testing.T) {
	for _, name := range hostileNames {
		t.Run(strings.ToValidUTF8(name, "?"), func(t *testing.T) {
			g := nameGraph(name)
			checkDot(t, g)
			checkMermaid(t, g)
		})
	}
	g := Build(testInput())
	checkDot(t, g)
	checkMermaid(t, g)
}

func FuzzWriters(f *testing.F) {
	for _, name := range hostileNames {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		g := nameGraph(name)
		checkDot(t, g)
		checkMermaid(t, g)
	})
}

// TestDotOfState: a state's dot is what Graphviz is given: a spot check
// of a node and an edge.
func TestDotOfState(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteDot(&buf, Build(testInput())); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`  "function:f" [label="f v2", shape="box"];`,
		`  "topic:orders" -> "trigger:orders" [label="feeds"];`,
		`  "function:gone" [label="gone (missing)", shape="box", style="dashed"];`,
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("dot lacks %s:\n%s", want, buf.String())
		}
	}
}
