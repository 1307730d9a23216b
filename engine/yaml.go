package engine

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Bounds of a definition's YAML. The parser walks yaml.Node trees itself,
// so the YAML library's own guard against alias expansion never applies:
// these are what stop a definition of a few bytes from taking the daemon's
// stack or memory.
const (
	// MaxDefinition bounds a definition's source, in bytes: the API's own
	// limit, and what a definition arriving from the catalog is held to.
	MaxDefinition = 512 << 10
	// maxYAMLDepth bounds how deep a definition's mappings and lists nest.
	// A hand-written workflow nests a dozen levels (a foreach whose do is an
	// if whose then is a task with a literal input); a hundred leaves room
	// for literal data while keeping every recursive walk of the parser
	// shallow.
	maxYAMLDepth = 100
	// maxYAMLNodes bounds the values of a definition once its aliases are
	// expanded: a thousand tasks (maxTasks) of a hundred values each. It is
	// what refuses an alias bomb ("billion laughs"), whose few lines expand
	// to billions of values.
	maxYAMLNodes = 100000
)

// expander copies a YAML tree replacing every alias with a copy of the
// value it names, counting what it makes.
type expander struct {
	nodes int
	// open holds the nodes being copied (the path from the root): an alias
	// naming one of them names a value that contains itself.
	open map[*yaml.Node]bool
	err  *lineError
}

// expandYAML returns the tree of n with its aliases expanded, or an error
// with a line: an alias inside its own anchor, nesting deeper than
// maxYAMLDepth, more than maxYAMLNodes values in all.
func expandYAML(n *yaml.Node) (*yaml.Node, *lineError) {
	x := &expander{open: map[*yaml.Node]bool{}}
	out := x.expand(n, 0)
	if x.err != nil {
		return nil, x.err
	}
	return out, nil
}

func (x *expander) fail(line int, format string, args ...any) *yaml.Node {
	if x.err == nil {
		x.err = &lineError{line, fmt.Sprintf(format, args...)}
	}
	return nil
}

func (x *expander) expand(n *yaml.Node, depth int) *yaml.Node {
	if x.err != nil || n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return x.fail(n.Line, "YAML: the alias *%s names no anchor", n.Value)
		}
		if x.open[n.Alias] {
			return x.fail(n.Line, "YAML: the alias *%s is inside the value it names (anchor &%s, line %d): it would never end",
				n.Value, n.Alias.Anchor, n.Alias.Line)
		}
		return x.expand(n.Alias, depth)
	}
	if x.nodes++; x.nodes > maxYAMLNodes {
		return x.fail(n.Line, "the definition holds more than %d values once its YAML aliases are expanded (a few aliases of aliases multiply fast): write the values out, or use fewer aliases", maxYAMLNodes)
	}
	if depth > maxYAMLDepth {
		return x.fail(n.Line, "values nest deeper than %d levels: flatten the definition, or pass deep data as the invocation's input", maxYAMLDepth)
	}
	out := *n
	out.Alias = nil
	if len(n.Content) == 0 {
		return &out
	}
	x.open[n] = true
	out.Content = make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		if out.Content[i] = x.expand(c, depth+1); out.Content[i] == nil {
			break
		}
	}
	delete(x.open, n)
	if x.err != nil {
		return nil
	}
	return &out
}
