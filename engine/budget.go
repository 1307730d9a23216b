package engine

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/sluicehq/sluice/units"
)

// An expression is written by whoever writes a definition, and runs in the
// daemon: nothing it does may take the daemon's memory or its time. expr
// bounds the size of an expression (evalMaxNodes) and the elements of the
// lists, maps and ranges it makes (evalMaxElements), but not the bytes of
// the strings it makes (doubling a string thirty times takes a gigabyte),
// nor its time (a loop in a loop in a loop), and it cannot be interrupted.
// So every expression is compiled a second time, patched (sandbox): each
// loop body counts a step, and the operations that make strings (+,
// repeat, join, replace, string, toJSON, ...) check their size before they
// allocate. Each evaluation gets a budget of steps, bytes and time; going
// over it fails the evaluation with an error that names the expression
// and the limit.

// Limits of one evaluation (a task's inputs, a condition, a foreach's
// list, the workflow's output).
const (
	// evalMaxNodes bounds an expression's size: expr's own default, a
	// screenful of code many times over.
	evalMaxNodes = 10000
	// evalMaxElements bounds the elements of the lists, maps and ranges an
	// evaluation makes in all (expr's memory budget): 1..1000000 is the
	// largest range. About 16 bytes each: 16 MiB.
	evalMaxElements = 1000000
	// evalMaxSteps bounds the iterations of an evaluation's loops (a body
	// of map, filter, reduce, ... runs once per element): a million lets a
	// loop in a loop walk 1,000 by 1,000 elements, in well under a second.
	evalMaxSteps = 1000000
	// evalMaxBytes bounds the bytes of the strings and lists an evaluation
	// makes in all: 64 times the largest value an event holds (MaxData),
	// room for any honest transformation of one.
	evalMaxBytes = 32 << 20
	// evalTimeout bounds an evaluation's time, whatever it does: honest
	// expressions take microseconds, a million loop steps a fraction of a
	// second (a few seconds on a loaded machine under the race detector),
	// and work that needs more belongs in a function.
	evalTimeout = 5 * time.Second
	// maxEvaluations bounds the evaluations running at once: with each
	// bounded by the limits above, at most 4 × (32 + 16) MiB in all.
	maxEvaluations = 4
)

// budgetKey is the name of an evaluation's budget in its environment: the
// patched programs pass it to the functions below. It is not a name an
// expression can write ('·' is not a letter).
const budgetKey = "sluice·budget"

// budget is what one evaluation may still use.
type budget struct {
	steps, bytes int
	deadline     time.Time
	stop         <-chan struct{}
}

func newBudget(stop <-chan struct{}) *budget {
	return &budget{deadline: time.Now().Add(evalTimeout), stop: stop}
}

// live fails once the evaluation has run out of time or the engine stops.
func (b *budget) live() error {
	select {
	case <-b.stop:
		return fmt.Errorf("%w: the workflow engine is shutting down", ErrLimit)
	default:
	}
	if time.Now().After(b.deadline) {
		return fmt.Errorf("%w: it ran for more than %s, the limit of one evaluation (do heavy work in a function)", ErrLimit, evalTimeout)
	}
	return nil
}

// step counts n iterations of a loop.
func (b *budget) step(n int) error {
	old := b.steps
	if b.steps += n; b.steps > evalMaxSteps {
		return fmt.Errorf("%w: its loops ran more than %d iterations, the limit of one evaluation (do heavy work in a function)", ErrLimit, evalMaxSteps)
	}
	if old>>6 != b.steps>>6 { // the clock, every 64 steps
		return b.live()
	}
	return nil
}

// alloc counts n bytes about to be made.
func (b *budget) alloc(n int) error {
	if n < 0 || b.bytes+n > evalMaxBytes {
		return fmt.Errorf("%w: it makes more than %d MiB of strings and lists, the limit of one evaluation", ErrLimit, evalMaxBytes>>20)
	}
	b.bytes += n
	return b.live()
}

// left is how many bytes the evaluation may still make.
func (b *budget) left() int { return evalMaxBytes - b.bytes }

// encode renders a value as JSON (or with indent, as toJSON does) once it
// is sure the text fits what is left of the budget.
func (b *budget) encode(x any, indent bool) ([]byte, error) {
	if _, err := measure(x, measureBound, b.left(), indent); err != nil {
		return nil, err
	}
	var out []byte
	var err error
	if indent {
		out, err = json.MarshalIndent(x, "", "  ")
	} else {
		out, err = json.Marshal(x)
	}
	if err != nil {
		return nil, fmt.Errorf("the value is not JSON: %w", err)
	}
	return out, b.alloc(len(out))
}

// The functions the sandbox calls, by the name it calls them: a
// budget-checking version of a built-in has its name.
var budgetFuncs = map[string]func(b *budget, args []any) (any, error){
	"step": func(b *budget, args []any) (any, error) {
		return args[0], b.step(1)
	},
	// a step of groupBy, which files each element in a map of lists
	// that expr does not count
	"stepFiled": func(b *budget, args []any) (any, error) {
		if err := b.alloc(filedBytes); err != nil {
			return nil, err
		}
		return args[0], b.step(1)
	},
	// a map or list literal: expr counts its entries, not their bytes
	"made": func(b *budget, args []any) (any, error) {
		n, _ := args[1].(int)
		return args[0], b.alloc(n)
	},
	"+":          budgetAdd,
	"in":         budgetIn,
	"repeat":     budgetRepeat,
	"join":       budgetJoin,
	"replace":    budgetReplace,
	"string":     budgetString,
	"toJSON":     budgetToJSON,
	"uniq":       budgetUniq,
	"upper":      charged("upper"),
	"lower":      charged("lower"),
	"toBase64":   budgetBase64,
	"base64":     budgetBase64,
	"fromBase64": budgetFromBase64,
	"float":      budgetFloat,
	"split":      charged("split"),
	"splitAfter": charged("splitAfter"),
	"fromJSON":   charged("fromJSON"),
	"keys":       charged("keys"),
	"values":     charged("values"),
	"toPairs":    charged("toPairs"),
	"fromPairs":  charged("fromPairs"),
}

// sandboxName is the name under which the sandbox calls a function.
func sandboxName(name string) string { return "sluice·" + name }

// getName is the sandbox's member access (get).
var getName = sandboxName("get")

// sandboxOptions register the sandbox's functions.
func sandboxOptions() []expr.Option {
	var opts []expr.Option
	for name, fn := range budgetFuncs {
		fn := fn
		opts = append(opts, expr.Function(sandboxName(name), func(args ...any) (any, error) {
			b, ok := args[0].(*budget)
			if !ok {
				return nil, fmt.Errorf("internal: an expression ran without its budget")
			}
			return fn(b, args[1:])
		}))
	}
	return append(opts, expr.Function(getName, member))
}

// The bytes a map or list literal, and an element filed by groupBy, are
// counted for (expr counts entries): what Go allocates for them, about.
const (
	mapBytes   = 320 // a map of up to 8 entries: its header and one group
	entryBytes = 40  // each entry beyond
	listBytes  = 24  // a slice header
	elemBytes  = 16  // each element
	filedBytes = 96  // groupBy: a key, a list header, an element, map growth
)

// members notes, before the sandbox patches anything, how each member
// access is written (for messages), which ones a missing field may end
// without an error (the left side of ??, as in input.name ?? "Ada"), and
// the predicates of groupBy.
type members struct {
	lenient map[ast.Node]bool
	path    map[ast.Node]string
	filed   map[ast.Node]bool
}

func newMembers() *members {
	return &members{lenient: map[ast.Node]bool{}, path: map[ast.Node]string{}, filed: map[ast.Node]bool{}}
}

func (l *members) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if n.Name == "groupBy" && len(n.Arguments) == 2 {
			l.filed[n.Arguments[1]] = true
		}
	case *ast.MemberNode:
		l.path[n] = clipPath(n.Node.String())
	case *ast.BinaryNode:
		if n.Operator != "??" {
			return
		}
		left := n.Left
		if c, ok := left.(*ast.ChainNode); ok {
			left = c.Node
		}
		if m, ok := left.(*ast.MemberNode); ok {
			l.lenient[m] = true
		}
	}
}

// sandbox patches an expression: see the top of this file. It runs after
// members, which fills its maps.
type sandbox struct{ m *members }

func budgetArg() ast.Node { return &ast.IdentifierNode{Value: budgetKey} }

func sandboxCall(name string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: sandboxName(name)}, Arguments: append([]ast.Node{budgetArg()}, args...)}
}

func (s sandbox) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		if s.m.filed[n] {
			n.Node = sandboxCall("stepFiled", n.Node)
		} else {
			n.Node = sandboxCall("step", n.Node)
		}
	case *ast.MapNode:
		size := mapBytes + entryBytes*max(0, len(n.Pairs)-8)
		ast.Patch(node, sandboxCall("made", n, &ast.IntegerNode{Value: size}))
	case *ast.ArrayNode:
		ast.Patch(node, sandboxCall("made", n, &ast.IntegerNode{Value: listBytes + elemBytes*len(n.Nodes)}))
	case *ast.BinaryNode:
		switch {
		case n.Operator == "+" && !(isNumber(n.Left) && isNumber(n.Right)):
			ast.Patch(node, sandboxCall("+", n.Left, n.Right))
		case n.Operator == "in" && !isKind(n.Right, reflect.Map) && !isLiteralList(n.Right):
			ast.Patch(node, sandboxCall("in", n.Left, n.Right))
		}
	case *ast.BuiltinNode:
		if _, ok := budgetFuncs[n.Name]; ok {
			ast.Patch(node, sandboxCall(n.Name, n.Arguments...))
		}
	case *ast.CallNode:
		if isIdent(n.Callee, "base64") {
			ast.Patch(node, sandboxCall("base64", n.Arguments...))
		}
	case *ast.MemberNode:
		if n.Optional || n.Method || s.m.lenient[n] {
			return
		}
		// The object comes first: in a chain (a?.b.c) an optional access
		// inside it may jump past the call, leaving only its own value.
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: getName},
			Arguments: []ast.Node{n.Node, n.Property, &ast.StringNode{Value: s.m.path[n]}}})
	}
}

// clipPath keeps what an error names short.
func clipPath(s string) string {
	const max = 60
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// isNumeric tells whether x is a number expr reads as a count.
func isNumeric(x any) bool {
	switch x.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return true
	}
	return false
}

func isNumber(n ast.Node) bool {
	t := n.Type()
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func isKind(n ast.Node, k reflect.Kind) bool {
	t := n.Type()
	return t != nil && t.Kind() == k
}

// isLiteralList tells whether n is a list written out (the sandbox may
// have wrapped it already): in on it is a lookup, after expr's optimizer.
func isLiteralList(n ast.Node) bool {
	if c, ok := n.(*ast.CallNode); ok && isIdent(c.Callee, sandboxName("made")) && len(c.Arguments) == 3 {
		n = c.Arguments[1]
	}
	_, ok := n.(*ast.ArrayNode)
	return ok
}

// member is the sandbox's a.b and a[i]: expr's, but a map without the key
// is an error naming the fields it has, as Step Functions fails a path
// that is not there. a?.b and a.b ?? c still take a missing field as nil.
func member(args ...any) (any, error) {
	from, key, path := args[0], args[1], args[2].(string)
	if m, ok := from.(map[string]any); ok {
		k, isString := key.(string)
		if !isString {
			return nil, fmt.Errorf("%s is a map: index it with a string, not %s", path, describe(key))
		}
		v, found := m[k]
		if !found {
			return nil, missingField(path, k, sortedKeys(m))
		}
		return v, nil
	}
	if from == nil {
		return nil, fmt.Errorf("%s is null: it has no field %s (write %s?.%s if it may be null)", path, render(key), path, render(key))
	}
	if v := reflect.ValueOf(from); v.Kind() == reflect.Map {
		kv := reflect.ValueOf(key)
		if key == nil || !kv.Type().AssignableTo(v.Type().Key()) {
			return runtime.Fetch(from, key), nil // expr's own error
		}
		if el := v.MapIndex(kv); el.IsValid() {
			return el.Interface(), nil
		}
		var keys []string
		for _, k := range v.MapKeys() {
			keys = append(keys, fmt.Sprint(k.Interface()))
		}
		return nil, missingField(path, fmt.Sprint(key), keys)
	}
	return runtime.Fetch(from, key), nil
}

// maxNamedFields is how many fields an error about a missing field lists.
const maxNamedFields = 20

func missingField(path, field string, have []string) error {
	list := "it has none"
	if len(have) > 0 {
		if len(have) > maxNamedFields {
			have = append(have[:maxNamedFields:maxNamedFields], "...")
		}
		list = "it has " + strings.Join(have, ", ")
	}
	return fmt.Errorf("%s has no field %s (%s): write %s?.%s, or %s.%s ?? DEFAULT, if it may be missing",
		path, field, list, path, field, path, field)
}

func render(x any) string {
	if s, ok := x.(string); ok {
		return s
	}
	return fmt.Sprint(x)
}

func describe(x any) string {
	if x == nil {
		return "null"
	}
	return fmt.Sprintf("%T", x)
}

func budgetAdd(b *budget, args []any) (any, error) {
	if x, ok := args[0].(string); ok {
		if y, ok := args[1].(string); ok {
			if err := b.alloc(len(x) + len(y)); err != nil {
				return nil, err
			}
			return x + y, nil
		}
	}
	return runtime.Add(args[0], args[1]), nil
}

func budgetIn(b *budget, args []any) (any, error) {
	if v := reflect.ValueOf(args[1]); v.Kind() == reflect.Slice || v.Kind() == reflect.Array {
		// a step per element compared: the scan is a loop too
		if err := b.step(v.Len() + 1); err != nil {
			return nil, err
		}
	}
	return runtime.In(args[0], args[1]), nil
}

func budgetRepeat(b *budget, args []any) (any, error) {
	s, ok := args[0].(string)
	if !ok || len(args) != 2 || !isNumeric(args[1]) {
		return callBuiltin("repeat", args)
	}
	n := runtime.ToInt(args[1]) // as expr's repeat reads it: 1e9 is a float
	if n < 0 {
		return callBuiltin("repeat", args)
	}
	if len(s) > 0 && n > b.left()/len(s) {
		return nil, fmt.Errorf("%w: repeat would make %d bytes, more than the %d MiB one evaluation may make", ErrLimit, uint64(len(s))*uint64(n), evalMaxBytes>>20)
	}
	if err := b.alloc(len(s) * n); err != nil {
		return nil, err
	}
	return strings.Repeat(s, n), nil
}

func budgetJoin(b *budget, args []any) (any, error) {
	glue := ""
	if len(args) == 2 {
		glue, _ = args[1].(string)
	}
	n := 0
	switch l := args[0].(type) {
	case []string:
		for _, s := range l {
			n += len(s) + len(glue)
		}
	case []any:
		for _, s := range l {
			if s, ok := s.(string); ok {
				n += len(s) + len(glue)
			}
		}
	}
	if err := b.alloc(n); err != nil {
		return nil, err
	}
	return callBuiltin("join", args)
}

func budgetReplace(b *budget, args []any) (any, error) {
	if len(args) >= 3 {
		s, ok1 := args[0].(string)
		old, ok2 := args[1].(string)
		nw, ok3 := args[2].(string)
		if ok1 && ok2 && ok3 {
			n := len(s)
			if old == "" {
				n += (len(s) + 1) * len(nw)
			} else if len(nw) > len(old) {
				n += strings.Count(s, old) * (len(nw) - len(old))
			}
			if err := b.alloc(n); err != nil {
				return nil, err
			}
		}
	}
	return callBuiltin("replace", args)
}

func budgetString(b *budget, args []any) (any, error) {
	if len(args) == 1 {
		switch v := args[0].(type) {
		case json.Number:
			return string(v), nil
		case []byte:
			return nil, errBytesInText(len(v))
		}
		if _, err := measure(args[0], measureBound, b.left(), false); err != nil {
			return nil, err
		}
	}
	out, err := callBuiltin("string", args)
	if s, ok := out.(string); ok && err == nil {
		err = b.alloc(len(s))
	}
	return out, err
}

func budgetToJSON(b *budget, args []any) (any, error) {
	if len(args) != 1 {
		return callBuiltin("toJSON", args)
	}
	out, err := b.encode(args[0], true)
	if err != nil {
		return nil, err
	}
	return string(out), nil
}

// budgetBase64 is base64(x) and toBase64(x): the standard base64 (with
// padding) of a bytes value or of a string's bytes.
func budgetBase64(b *budget, args []any) (any, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("base64 takes one argument, bytes or a string; got %d", len(args))
	}
	var in []byte
	switch v := args[0].(type) {
	case []byte:
		in = v
	case string:
		in = []byte(v)
	default:
		return nil, fmt.Errorf("base64 takes bytes or a string, not %s", describe(args[0]))
	}
	if err := b.alloc(base64.StdEncoding.EncodedLen(len(in))); err != nil {
		return nil, err
	}
	return base64.StdEncoding.EncodeToString(in), nil
}

// budgetFromBase64 decodes standard base64 (padded or not): a string if
// the bytes are UTF-8 text (what fromBase64 always gave), else a bytes
// value, which no string holds without changing it.
func budgetFromBase64(b *budget, args []any) (any, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("fromBase64 takes one argument, a string; got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("fromBase64 takes a string, not %s", describe(args[0]))
	}
	if err := b.alloc(base64.StdEncoding.DecodedLen(len(s))); err != nil {
		return nil, err
	}
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	out, err := enc.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("fromBase64: %s is not standard base64: %v", clip(s), err)
	}
	if utf8.Valid(out) {
		return string(out), nil
	}
	return out, nil
}

// budgetFloat is float(x), which also rounds a number kept as its JSON
// text (json.Number) to a float64.
func budgetFloat(b *budget, args []any) (any, error) {
	if len(args) == 1 {
		if n, ok := args[0].(json.Number); ok {
			f, err := strconv.ParseFloat(string(n), 64)
			if err != nil {
				return nil, fmt.Errorf("float: %s is beyond what a float64 holds", clip(string(n)))
			}
			return f, nil
		}
	}
	return callBuiltin("float", args)
}

// budgetUniq is uniq in linear time for the values that can be map keys
// (expr's compares each element with every one kept: minutes for a list
// of a hundred thousand), counting the comparisons of the others.
func budgetUniq(b *budget, args []any) (any, error) {
	if len(args) != 1 {
		return callBuiltin("uniq", args)
	}
	v := reflect.ValueOf(args[0])
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return callBuiltin("uniq", args)
	}
	if err := b.alloc(16 * v.Len()); err != nil {
		return nil, err
	}
	out := []any{}
	seen := map[any]bool{}
	var others []any
	for i := 0; i < v.Len(); i++ {
		x := v.Index(i).Interface()
		if k, ok := uniqKey(x); ok {
			if !seen[k] {
				seen[k] = true
				out = append(out, x)
			}
			continue
		}
		if err := b.step(len(others) + 1); err != nil {
			return nil, err
		}
		dup := false
		for _, o := range others {
			if runtime.Equal(x, o) {
				dup = true
				break
			}
		}
		if !dup {
			others = append(others, x)
			out = append(out, x)
		}
	}
	return out, nil
}

// uniqKey is the map key under which values runtime.Equal calls equal
// meet: numbers by their float64 value (1 and 1.0 are equal), strings,
// booleans, nil.
func uniqKey(x any) (any, bool) {
	switch v := x.(type) {
	case nil:
		return struct{}{}, true
	case string, bool:
		return v, true
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		if v >= -1<<53 && v <= 1<<53 {
			return float64(v), true
		}
	case int64:
		if v >= -1<<53 && v <= 1<<53 {
			return float64(v), true
		}
	case int32:
		return float64(v), true
	}
	return nil, false
}

// charged calls a built-in whose result is at most a few times its
// arguments, then counts what it made.
func charged(name string) func(b *budget, args []any) (any, error) {
	return func(b *budget, args []any) (any, error) {
		out, err := callBuiltin(name, args)
		if err != nil {
			return nil, err
		}
		return out, b.alloc(madeBytes(out))
	}
}

// madeBytes estimates the bytes a built-in's result holds of its own.
func madeBytes(x any) int {
	switch v := x.(type) {
	case string:
		return len(v)
	case []string:
		return 16 * len(v)
	case []any, map[string]any:
		return valueSize(v)
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return 32 * rv.Len()
	}
	return 16
}

// callBuiltin calls expr's own built-in.
func callBuiltin(name string, args []any) (any, error) {
	f := builtin.Builtins[builtin.Index[name]]
	switch {
	case f.Fast != nil && len(args) == 1:
		return f.Fast(args[0]), nil
	case f.Func != nil:
		return f.Func(args...)
	case f.Safe != nil:
		out, _, err := f.Safe(args...)
		return out, err
	}
	return nil, fmt.Errorf("internal: built-in %s cannot be called", name)
}

// How measure bounds the text of a value.
const (
	// measureBound: an upper bound of its JSON or fmt text (what may be
	// allocated), against the bytes left to the evaluation.
	measureBound = iota
	// measureFloor: a lower bound of its JSON text, against the largest
	// value to store (MaxData, or MaxValue): a value over it cannot be
	// stored, whatever its exact text.
	measureFloor
)

// measure walks a value and returns a bound of the size of its text (see
// measureBound and measureFloor), failing as soon as it passes limit or
// the value nests deeper than MaxDepth. indent counts toJSON's
// indentation.
func measure(x any, mode, limit int, indent bool) (int, error) {
	m := &meter{mode: mode, limit: limit, indent: indent}
	m.walk(x, 0)
	return m.n, m.err
}

type meter struct {
	mode, limit, n int
	indent         bool
	err            error
}

func (m *meter) add(n int) bool {
	if m.err != nil {
		return false
	}
	if m.n += n; m.n > m.limit {
		if m.mode == measureFloor {
			m.err = fmt.Errorf("the value takes more than %d KiB, the most a workflow event holds", MaxData>>10)
			if m.limit != MaxData {
				m.err = &tooLargeError{fmt.Sprintf("the value takes more than %s, the most a workflow value may be (sluice daemon --max-value)", units.Bytes(uint64(m.limit)))}
			}
		} else {
			m.err = fmt.Errorf("%w: its text would take more than the %d MiB one evaluation may make", ErrLimit, evalMaxBytes>>20)
		}
		return false
	}
	return true
}

// text counts a string of n bytes: as it is at least, escaped at most.
func (m *meter) text(n int) bool {
	if m.mode == measureFloor {
		return m.add(n + 2)
	}
	return m.add(6*n + 2)
}

// elem counts what comes with each element of a list or map: a comma,
// and with indent a new line and the indentation.
func (m *meter) elem(depth int) bool {
	if m.indent {
		return m.add(2 + 2*depth)
	}
	return m.add(1)
}

func (m *meter) walk(x any, depth int) {
	if m.err != nil {
		return
	}
	if depth > MaxDepth {
		m.err = errTooDeep("the value")
		return
	}
	scalar := 24 // a number's text at most
	if m.mode == measureFloor {
		scalar = 1
	}
	switch v := x.(type) {
	case nil, bool:
		m.add(5)
	case string:
		m.text(len(v))
	case json.Number:
		if m.mode == measureFloor {
			m.add(len(v))
		} else {
			m.add(len(v) + 2)
		}
	case []byte: // a base64 string inside a value
		m.text(base64.StdEncoding.EncodedLen(len(v)))
	case int, int64, float64, float32, int32, uint, uint64:
		m.add(scalar)
	case []any:
		m.add(2)
		for _, el := range v {
			if !m.elem(depth) {
				return
			}
			m.walk(el, depth+1)
		}
	case map[string]any:
		m.add(2)
		for k, el := range v {
			if !m.elem(depth) || !m.text(len(k)) || !m.add(2) {
				return
			}
			m.walk(el, depth+1)
		}
	case []string:
		m.add(2)
		for _, s := range v {
			if !m.elem(depth) || !m.text(len(s)) {
				return
			}
		}
	case []int:
		m.add(2 + len(v)*(scalar+1))
	case []float64:
		m.add(2 + len(v)*(scalar+1))
	default:
		rv := reflect.ValueOf(x)
		switch rv.Kind() {
		case reflect.Slice, reflect.Array:
			m.add(2)
			for i := 0; i < rv.Len(); i++ {
				if !m.elem(depth) {
					return
				}
				m.walk(rv.Index(i).Interface(), depth+1)
			}
		case reflect.Map:
			m.add(2)
			it := rv.MapRange()
			for it.Next() {
				if !m.elem(depth) {
					return
				}
				m.walk(it.Key().Interface(), depth+1)
				m.walk(it.Value().Interface(), depth+1)
			}
		case reflect.Pointer, reflect.Interface:
			if rv.IsNil() {
				m.add(5)
				return
			}
			m.walk(rv.Elem().Interface(), depth+1)
		case reflect.String:
			m.text(rv.Len())
		default:
			if m.mode == measureFloor {
				m.add(1)
			} else {
				m.add(64) // a time, a duration, a struct of scalars
			}
		}
	}
}
