package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/nats-io/nuid"
)

// value is a piece of a definition evaluated at run time: a literal, a
// whole-value expression (`${ expr }`, typed), an interpolated string
// ("Hello ${ input.name }"), or a map or list holding any of them.
type value struct {
	kind  valueKind
	line  int
	lit   any         // kindLiteral
	prog  *vm.Program // kindExpr
	src   string      // kindExpr: the expression's text
	parts []part      // kindInterp
	keys  []string    // kindMap, in the definition's order
	elems []*value    // kindMap (by keys) and kindList
	// static tells whether the value holds no expression: it evaluates to
	// lit without an environment.
	static bool
}

type valueKind int

const (
	kindLiteral valueKind = iota
	kindExpr
	kindInterp
	kindMap
	kindList
)

// part of an interpolated string: text, or an expression.
type part struct {
	text   string
	isExpr bool
	prog   *vm.Program
	src    string
}

// scope is what an expression may name, beyond the globals: loop
// variables of the dynamic task specs it sits in.
type scope struct {
	item, index, prev bool
}

func (s scope) names() []string {
	n := []string{"input", "tasks", "invocation"}
	if s.item {
		n = append(n, "item")
	}
	if s.index {
		n = append(n, "index")
	}
	if s.prev {
		n = append(n, "prev")
	}
	return n
}

// compileEnv gives expressions the types sluice knows: tasks is a map of
// task views, invocation a map; input, outputs and loop variables are
// JSON values whose type is only known at run time.
var compileEnv = map[string]any{
	"tasks":      map[string]any{},
	"invocation": map[string]any{},
}

// exprOptions are the options every expression is compiled with.
var exprOptions = []expr.Option{
	expr.Env(compileEnv),
	expr.AllowUndefinedVariables(), // names are checked by checkNames, per scope
	expr.Function("uid", func(...any) (any, error) { return nuid.Next(), nil }, new(func() string)),
}

// compiler compiles the expressions of one definition, collecting the
// tasks they refer to.
type compiler struct {
	// refs are the task ids named as tasks.ID by the expressions compiled
	// since the last reset, with the line of the first reference.
	refs map[string]int
}

// compile compiles one expression in a scope.
func (c *compiler) compile(src string, sc scope, line int) (*vm.Program, error) {
	src = strings.TrimSpace(src)
	if src == "" {
		return nil, fmt.Errorf("empty expression ${ }")
	}
	prog, err := expr.Compile(src, exprOptions...)
	if err != nil {
		return nil, fmt.Errorf("expression %q does not compile: %s", src, oneLine(err.Error()))
	}
	node := prog.Node()
	w := &nameWalker{allowed: map[string]bool{}, refs: c.refs, line: line}
	for _, n := range sc.names() {
		w.allowed[n] = true
	}
	w.allowed["uid"] = true
	ast.Walk(&node, declared(w.allowed)) // let names, wherever they are
	ast.Walk(&node, w)
	if w.err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, w.err)
	}
	return prog, nil
}

// oneLine keeps the first line of expr's multi-line error (the rest draws
// a caret under the expression, which our message quotes already).
func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// nameWalker checks the names an expression uses against its scope and
// records the tasks it refers to.
type nameWalker struct {
	allowed map[string]bool
	refs    map[string]int
	line    int
	err     error
}

// declared collects the names an expression declares with let.
type declared map[string]bool

func (d declared) Visit(n *ast.Node) {
	if v, ok := (*n).(*ast.VariableDeclaratorNode); ok {
		d[v.Name] = true
	}
}

func (w *nameWalker) Visit(n *ast.Node) {
	switch n := (*n).(type) {
	case *ast.IdentifierNode:
		if !w.allowed[n.Value] && w.err == nil {
			switch n.Value {
			case "item":
				w.err = fmt.Errorf("unknown name item: item and index exist only in the do: of a foreach")
			case "prev":
				w.err = fmt.Errorf("unknown name prev: prev exists only in a while or repeat (its do: and condition)")
			case "index":
				w.err = fmt.Errorf("unknown name index: index exists only in a foreach, while or repeat")
			default:
				w.err = fmt.Errorf("unknown name %s: expressions can use %s", n.Value, strings.Join(w.namesSorted(), ", "))
			}
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "tasks" {
			if s, ok := n.Property.(*ast.StringNode); ok && w.refs != nil {
				if _, seen := w.refs[s.Value]; !seen {
					w.refs[s.Value] = w.line
				}
			}
		}
	}
}

func (w *nameWalker) namesSorted() []string {
	var out []string
	for n := range w.allowed {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// splitInterp splits a string into text and ${ expr } parts. whole
// reports a string that is exactly one expression (a typed value). A
// string without "${" is plain text (parts is nil).
func splitInterp(s string) (parts []part, whole bool, err error) {
	if !strings.Contains(s, "${") {
		return nil, false, nil
	}
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			if rest != "" {
				parts = append(parts, part{text: rest})
			}
			break
		}
		if i > 0 {
			parts = append(parts, part{text: rest[:i]})
		}
		end, err := exprEnd(rest[i+2:])
		if err != nil {
			return nil, false, err
		}
		parts = append(parts, part{isExpr: true, src: rest[i+2 : i+2+end]})
		rest = rest[i+2+end+1:]
	}
	return parts, len(parts) == 1 && parts[0].isExpr, nil
}

// exprEnd finds the "}" closing an expression, skipping braces of map
// literals and anything inside string literals.
func exprEnd(s string) (int, error) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'', '`':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(s) {
				return 0, fmt.Errorf("unterminated string in ${ %s", s)
			}
			i = j
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i, nil
			}
			depth--
		}
	}
	return 0, fmt.Errorf("${ without its closing }: %q", "${"+s)
}

// env is the environment an expression runs in.
type env map[string]any

// eval evaluates a value.
func (v *value) eval(e env) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch v.kind {
	case kindLiteral:
		return v.lit, nil
	case kindExpr:
		out, err := expr.Run(v.prog, map[string]any(e))
		if err != nil {
			return nil, fmt.Errorf("line %d: ${ %s }: %s", v.line, v.src, oneLine(err.Error()))
		}
		return out, nil
	case kindInterp:
		var b strings.Builder
		for _, p := range v.parts {
			if !p.isExpr {
				b.WriteString(p.text)
				continue
			}
			out, err := expr.Run(p.prog, map[string]any(e))
			if err != nil {
				return nil, fmt.Errorf("line %d: ${ %s }: %s", v.line, p.src, oneLine(err.Error()))
			}
			b.WriteString(stringify(out))
		}
		return b.String(), nil
	case kindMap:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			x, err := v.elems[i].eval(e)
			if err != nil {
				return nil, err
			}
			m[k] = x
		}
		return m, nil
	case kindList:
		l := make([]any, len(v.elems))
		for i, el := range v.elems {
			x, err := el.eval(e)
			if err != nil {
				return nil, err
			}
			l[i] = x
		}
		return l, nil
	}
	return nil, fmt.Errorf("unknown value kind %d", v.kind)
}

// stringify renders an interpolated value: strings as they are, anything
// else as JSON.
func stringify(x any) string {
	if s, ok := x.(string); ok {
		return s
	}
	b, err := json.Marshal(x)
	if err != nil {
		return fmt.Sprint(x)
	}
	return string(b)
}

// toJSON encodes an evaluated value for an event.
func toJSON(x any) (json.RawMessage, error) {
	b, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("the value is not JSON: %w", err)
	}
	return b, nil
}

// fromJSON decodes a JSON value for expressions (nil for none). Whole
// numbers become ints, so that expressions like item % 2 work on them.
func fromJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var x any
	if err := json.Unmarshal(raw, &x); err != nil {
		return string(raw)
	}
	return ints(x)
}

// ints turns the whole float64s of a decoded JSON value into ints.
func ints(x any) any {
	switch v := x.(type) {
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= 1<<53 {
			return int(v)
		}
	case map[string]any:
		for k, el := range v {
			v[k] = ints(el)
		}
	case []any:
		for i, el := range v {
			v[i] = ints(el)
		}
	}
	return x
}

// MaxDepth bounds how deep the JSON values of an invocation nest: its
// input, the outputs of its functions and the values of its expressions.
// Go's decoder refuses documents nested over 10,000 levels, and an event
// wraps a value in a level or two more: a value accepted just under that
// would be stored and then unreadable by every engine, the invocation lost.
// Real documents nest a few dozen levels; 1,000 leaves them all the room
// they need, and keeps the recursive walks over values (decoding,
// expressions, encoding) shallow.
const MaxDepth = 1000

// jsonDepthOK tells whether the JSON text b nests at most max levels. It
// does not check that b is JSON.
func jsonDepthOK(b []byte, max int) bool {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > max {
				return false
			}
		case ']', '}':
			depth--
		}
	}
	return true
}

// errTooDeep says a value nests deeper than MaxDepth.
func errTooDeep(what string) error {
	return fmt.Errorf("%s nests deeper than %d levels of lists and maps, the limit of a workflow value", what, MaxDepth)
}

// dataJSON turns bytes given as data (an invocation's input, a function's
// output) into a JSON value: JSON if they parse, else a string; no bytes
// at all are null.
func dataJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return append(json.RawMessage(nil), b...)
	}
	s, _ := json.Marshal(string(b))
	return s
}

// functionInput is what a function task receives: a string's raw bytes,
// anything else as JSON.
func functionInput(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return []byte(s)
		}
	}
	if string(raw) == "null" {
		return nil
	}
	return raw
}
