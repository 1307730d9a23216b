package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	prog  *vm.Program // kindExpr: the sandboxed program
	src   string      // kindExpr: the expression's text
	refs  []string    // kindExpr: the tasks it names as tasks.ID
	parts []part      // kindInterp
	keys  []string    // kindMap, in the definition's order
	elems []*value    // kindMap (by keys) and kindList
	// pass is, for an expression that passes a value on as it is (${ input
	// }, ${ tasks.ID.output }), "input" or "tasks.ID": its value is the
	// stored one, byte for byte, with nothing to evaluate.
	pass string
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
	refs   []string
}

// scope is what an expression may name, beyond the globals: loop
// variables of the dynamic task specs it sits in.
type scope struct {
	item, index, prev bool
	// error is a catch's (failure.go), task an undo's.
	error, task bool
	// message is a topic wait's match: (topicwait.go).
	message bool
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
	if s.error {
		n = append(n, "error")
	}
	if s.task {
		n = append(n, "task")
	}
	if s.message {
		n = append(n, "message")
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

// exprOptions are the options every expression is compiled with: as it is
// written, to check it; then sandboxed, to run it (budget.go).
var exprOptions = []expr.Option{
	expr.Env(compileEnv),
	expr.AllowUndefinedVariables(), // names are checked by nameWalker, per scope
	expr.Function("uid", func(...any) (any, error) { return nuid.Next(), nil }, new(func() string)),
	// base64(x): the standard base64 of bytes or of a string (the sandbox
	// runs budgetBase64 in its place)
	expr.Function("base64", func(args ...any) (any, error) { return budgetBase64(newBudget(nil), args) }),
	expr.MaxNodes(evalMaxNodes),
}

// sandboxed compiles an expression to run it: with the sandbox's functions
// and patches, on a fresh visitor (it holds per-expression state).
func sandboxed(src string) (*vm.Program, error) {
	m := newMembers()
	opts := append(append(append([]expr.Option(nil), exprOptions...), sandboxOptions()...),
		expr.Patch(m), expr.Patch(sandbox{m: m}))
	return expr.Compile(src, opts...)
}

// compiler compiles the expressions of one definition, collecting the
// tasks they refer to.
type compiler struct {
	// refs are the task ids named as tasks.ID by the expressions compiled
	// since the last reset, with the line of the first reference.
	refs map[string]int
}

// compile compiles one expression in a scope, checking the names it uses,
// and returns the program to run and the tasks it names.
func (c *compiler) compile(src string, sc scope, line int) (*vm.Program, []string, error) {
	src = strings.TrimSpace(src)
	if src == "" {
		return nil, nil, fmt.Errorf("empty expression ${ }")
	}
	prog, err := expr.Compile(src, exprOptions...)
	if err != nil {
		return nil, nil, fmt.Errorf("expression %q does not compile: %s", clip(src), oneLine(err.Error()))
	}
	node := prog.Node()
	refs := map[string]int{}
	w := &nameWalker{allowed: map[string]bool{}, refs: refs, line: line}
	for _, n := range sc.names() {
		w.allowed[n] = true
	}
	w.allowed["uid"] = true
	w.allowed["base64"] = true
	ast.Walk(&node, declared(w.allowed)) // let names, wherever they are
	ast.Walk(&node, w)
	if w.err != nil {
		return nil, nil, fmt.Errorf("expression %q: %w", clip(src), w.err)
	}
	for ref := range refs {
		if _, seen := c.refs[ref]; !seen && c.refs != nil {
			c.refs[ref] = line
		}
	}
	run, err := sandboxed(src)
	if err != nil {
		return nil, nil, fmt.Errorf("expression %q: cannot be made safe to run: %s", clip(src), oneLine(err.Error()))
	}
	return run, sortedKeys(refs), nil
}

// passOf tells whether a program only reads input or tasks.ID.output
// (see value.pass).
func passOf(prog *vm.Program) string {
	if prog == nil {
		return ""
	}
	switch n := prog.Node().(type) {
	case *ast.IdentifierNode:
		if n.Value == "input" {
			return "input"
		}
	case *ast.CallNode: // the sandbox's member access
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != getName || len(n.Arguments) != 3 {
			return ""
		}
		if f, ok := n.Arguments[1].(*ast.StringNode); !ok || f.Value != "output" {
			return ""
		}
		inner, ok := n.Arguments[0].(*ast.CallNode)
		if !ok || len(inner.Arguments) != 3 || !isIdent(inner.Callee, getName) || !isIdent(inner.Arguments[0], "tasks") {
			return ""
		}
		if task, ok := inner.Arguments[1].(*ast.StringNode); ok {
			return "tasks." + task.Value
		}
	}
	return ""
}

// passed returns the stored value a pass value names in an invocation,
// if it is there: a data value stays data, byte for byte.
func (v *value) passed(inv *invState) (datum, bool) {
	switch {
	case v == nil || v.kind != kindExpr || v.pass == "":
		return datum{}, false
	case v.pass == "input":
		if inv.input.none() {
			return jsonNull, true
		}
		return inv.input, true
	}
	t := inv.tasks[strings.TrimPrefix(v.pass, "tasks.")]
	if t == nil || t.status != TaskSucceeded {
		return datum{}, false
	}
	if t.output.none() {
		return jsonNull, true
	}
	return t.output, true
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
			case "error":
				w.err = fmt.Errorf("unknown name error: error exists only in a task's catch: (the failure it catches)")
			case "task":
				w.err = fmt.Errorf("unknown name task: task exists only in a task's undo: (the task it undoes); tasks.ID names a task")
			case "message":
				w.err = fmt.Errorf("unknown name message: message exists only in the match: of a wait on a topic (the message it examines)")
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
		field, ok := n.Property.(*ast.StringNode)
		if !ok || w.err != nil {
			return
		}
		switch {
		case isTask(n.Node) != "" && !taskFields[field.Value]:
			w.err = fmt.Errorf("tasks.%s has no field %s: a task has output, status and error", isTask(n.Node), field.Value)
		case isIdent(n.Node, "invocation") && field.Value != "id" && field.Value != "workflow":
			w.err = fmt.Errorf("invocation has no field %s: it has id and workflow", field.Value)
		}
	}
}

// taskFields are what expressions read of a task: tasks.ID.FIELD.
var taskFields = map[string]bool{"output": true, "status": true, "error": true}

// isTask returns ID if n is tasks.ID.
func isTask(n ast.Node) string {
	m, ok := n.(*ast.MemberNode)
	if !ok || !isIdent(m.Node, "tasks") {
		return ""
	}
	if s, ok := m.Property.(*ast.StringNode); ok {
		return s.Value
	}
	return ""
}

func isIdent(n ast.Node, name string) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == name
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

// env is the environment an expression runs in (with its budget under
// budgetKey).
type env map[string]any

// eval evaluates a value within a budget.
func (v *value) eval(e env, b *budget) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch v.kind {
	case kindLiteral:
		return v.lit, nil
	case kindExpr:
		return runExpr(v.prog, v.src, v.line, e, b)
	case kindInterp:
		var s strings.Builder
		for _, p := range v.parts {
			if !p.isExpr {
				if err := b.alloc(len(p.text)); err != nil {
					return nil, err
				}
				s.WriteString(p.text)
				continue
			}
			out, err := runExpr(p.prog, p.src, v.line, e, b)
			if err != nil {
				return nil, err
			}
			str, ok := out.(string)
			if bs, isBytes := out.([]byte); isBytes {
				return nil, exprError(v.line, p.src, errBytesInText(len(bs)))
			}
			if !ok {
				text, err := b.encode(out, false)
				if err != nil {
					return nil, exprError(v.line, p.src, err)
				}
				str = string(text)
			} else if err := b.alloc(len(str)); err != nil {
				return nil, exprError(v.line, p.src, err)
			}
			s.WriteString(str)
		}
		return s.String(), nil
	case kindMap:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			x, err := v.elems[i].eval(e, b)
			if err != nil {
				return nil, err
			}
			m[k] = x
		}
		return m, nil
	case kindList:
		l := make([]any, len(v.elems))
		for i, el := range v.elems {
			x, err := el.eval(e, b)
			if err != nil {
				return nil, err
			}
			l[i] = x
		}
		return l, nil
	}
	return nil, fmt.Errorf("unknown value kind %d", v.kind)
}

// runExpr runs one expression's program within the budget.
func runExpr(prog *vm.Program, src string, line int, e env, b *budget) (any, error) {
	if err := b.live(); err != nil {
		return nil, exprError(line, src, err)
	}
	e[budgetKey] = b
	m := vm.VM{MemoryBudget: evalMaxElements}
	out, err := m.Run(prog, map[string]any(e))
	if err != nil {
		return nil, exprError(line, src, err)
	}
	return out, nil
}

// failed names the value whose evaluated result is refused.
func (v *value) failed(err error) error {
	switch {
	case v == nil:
		return err
	case v.kind == kindExpr:
		return exprError(v.line, v.src, err)
	}
	return fmt.Errorf("line %d: %w", v.line, err)
}

// exprError names the expression that failed, and says which limit expr's
// own memory budget is.
func exprError(line int, src string, err error) error {
	msg := oneLine(err.Error())
	if strings.Contains(msg, "json.Number") {
		msg += ": " + errNumberText
	}
	if strings.HasPrefix(msg, "memory budget exceeded") {
		msg = fmt.Sprintf("%v: it makes lists, maps and ranges of more than %d elements in all, the limit of one evaluation%s",
			ErrLimit, evalMaxElements, strings.TrimPrefix(msg, "memory budget exceeded"))
	}
	return fmt.Errorf("line %d: ${ %s }: %s", line, clip(src), msg)
}

// brief renders a value for a message: as JSON, cut short; a value too
// large to render is named by its type.
func brief(x any) string {
	if _, err := measure(x, measureFloor, 4<<10, false); err != nil {
		return fmt.Sprintf("a %T of more than 4 KiB", x)
	}
	return clip(stringify(x))
}

// stringify renders a value decoded from an event (bounded by MaxData):
// strings as they are, anything else as JSON.
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

// fromJSON decodes a JSON value for expressions (nil for none), its
// numbers kept exactly (numbers). Text that is not JSON (a forged event)
// is a string.
func fromJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	if x, ok := decodeJSON(raw); ok {
		return x
	}
	return string(raw)
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

// compactJSON returns JSON text without its insignificant spaces. ok is
// false if b is not JSON.
func compactJSON(b []byte) (json.RawMessage, bool) {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return nil, false
	}
	return out.Bytes(), true
}

// encodeEvent encodes an event as it is stored: values as they are (no
// HTML escaping, which json.Marshal would apply to the values it copies).
func encodeEvent(ev *Event) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// decodeEvent decodes a stored event (its loop variables' numbers as JSON
// numbers: see Vars).
func decodeEvent(data []byte) (*Event, error) {
	ev := new(Event)
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// functionInput is what a function task receives of a json value: a
// string's raw bytes, anything else as JSON (null: no bytes).
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
