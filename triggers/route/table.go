package route

import (
	"net/url"
	"slices"
	"strings"
)

// Table is a set of routes, each under a name, with a value V. It is not
// safe for concurrent use: its user locks it.
type Table[V any] struct {
	root node[V]
	// exact holds the routes of exact patterns too, by their text: a
	// request path without escapes that names one is served with a single
	// map lookup.
	exact  map[string][]*entry[V]
	byName map[string]*entry[V]
	// byShape finds the routes a new one could conflict with.
	byShape map[string][]*entry[V]
}

type entry[V any] struct {
	name    string
	pattern *Pattern
	method  string
	value   V
}

// node is a trie over a pattern's segments.
type node[V any] struct {
	literals map[string]*node[V]
	param    *node[V]
	// end are the routes that end here; prefix those ending here in *.
	end, prefix []*entry[V]
}

// NewTable returns an empty table.
func NewTable[V any]() *Table[V] {
	return &Table[V]{exact: map[string][]*entry[V]{}, byName: map[string]*entry[V]{}, byShape: map[string][]*entry[V]{}}
}

// Len returns the number of routes.
func (t *Table[V]) Len() int { return len(t.byName) }

// Add adds a route under a name, replacing the route of that name. A
// method of "" accepts any method. A route that would take the same
// requests as another's is refused with a *ConflictError (the route of
// that name, if any, is then left as it was).
func (t *Table[V]) Add(name string, p *Pattern, method string, v V) error {
	for _, e := range t.byShape[p.shape] {
		if e.name != name && Overlap(p, method, e.pattern, e.method) {
			return &ConflictError{Route: p.text, Method: method, Other: e.name, OtherRoute: e.pattern.text, OtherMethod: e.method}
		}
	}
	t.Remove(name)
	e := &entry[V]{name: name, pattern: p, method: method, value: v}
	t.byName[name] = e
	t.byShape[p.shape] = append(t.byShape[p.shape], e)
	n := &t.root
	for _, s := range p.segs {
		switch s.kind {
		case literal:
			if n.literals == nil {
				n.literals = map[string]*node[V]{}
			}
			c := n.literals[s.text]
			if c == nil {
				c = &node[V]{}
				n.literals[s.text] = c
			}
			n = c
		case param:
			if n.param == nil {
				n.param = &node[V]{}
			}
			n = n.param
		case prefix:
			n.prefix = append(n.prefix, e)
			return nil
		}
	}
	n.end = append(n.end, e)
	if p.Exact() {
		t.exact[p.text] = append(t.exact[p.text], e)
	}
	return nil
}

// Remove removes the route of a name, if there is one. Nodes left empty
// stay: a table's routes come and go by the few, and a later route on the
// same path uses them again.
func (t *Table[V]) Remove(name string) {
	e, ok := t.byName[name]
	if !ok {
		return
	}
	delete(t.byName, name)
	drop := func(es []*entry[V]) []*entry[V] {
		return slices.DeleteFunc(es, func(x *entry[V]) bool { return x == e })
	}
	if es := drop(t.byShape[e.pattern.shape]); len(es) > 0 {
		t.byShape[e.pattern.shape] = es
	} else {
		delete(t.byShape, e.pattern.shape)
	}
	n := &t.root
	for _, s := range e.pattern.segs {
		switch s.kind {
		case literal:
			n = n.literals[s.text]
		case param:
			n = n.param
		case prefix:
			n.prefix = drop(n.prefix)
			return
		}
	}
	n.end = drop(n.end)
	if e.pattern.Exact() {
		if es := drop(t.exact[e.pattern.text]); len(es) > 0 {
			t.exact[e.pattern.text] = es
		} else {
			delete(t.exact, e.pattern.text)
		}
	}
}

// Match is the route a request path took.
type Match[V any] struct {
	// Name, Pattern and Value are the route's.
	Name    string
	Pattern *Pattern
	Value   V
	// Params are the parameters' values, decoded, in the order of
	// Pattern.Params.
	Params []string
	// Rest is what * matched, decoded, without a leading slash ("" when
	// the path ends where the prefix does); RawRest the same as sent.
	Rest, RawRest string
}

// Lookup finds the route of a request with an escaped path (a URL's
// EscapedPath: segments are split on the slashes that were sent as
// slashes, then decoded) and a method. Without one it returns the methods
// that routes matching the path accept, sorted, for a 405's Allow header
// (none: no route matches the path). A path with a trailing slash that no
// route matches is tried without it.
func (t *Table[V]) Lookup(path, method string) (Match[V], bool, []string) {
	m, ok, allowed := t.lookup(path, method)
	if !ok && len(allowed) == 0 && len(path) > 1 && path[len(path)-1] == '/' {
		return t.lookup(path[:len(path)-1], method)
	}
	return m, ok, allowed
}

func (t *Table[V]) lookup(path, method string) (Match[V], bool, []string) {
	if !strings.Contains(path, "%") { // the common case: one map lookup
		for _, e := range t.exact[path] {
			if e.method == "" || e.method == method {
				return Match[V]{Name: e.name, Pattern: e.pattern, Value: e.value}, true, nil
			}
		}
	}
	w := walker[V]{method: method}
	if !w.walk(&t.root, path) {
		slices.Sort(w.allowed)
		return Match[V]{}, false, slices.Compact(w.allowed)
	}
	return w.match, true, nil
}

// walker finds a route by a depth-first walk of the trie in order of
// precedence (literal, parameter, the end, prefix): the first route found
// that accepts the method is the most specific. Each node is visited at
// most once, so a lookup costs at most the size of the trie.
type walker[V any] struct {
	method  string
	params  []string
	match   Match[V]
	allowed []string
}

// walk walks n with rem, the rest of the path: "" at its end, else a
// slash and what follows.
func (w *walker[V]) walk(n *node[V], rem string) bool {
	if rem == "" {
		if w.accept(n.end, "") {
			return true
		}
		return w.accept(n.prefix, "")
	}
	seg, next := rem[1:], ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, next = seg[:i], seg[i:]
	}
	decoded := unescape(seg)
	if c := n.literals[decoded]; c != nil && w.walk(c, next) {
		return true
	}
	if n.param != nil && decoded != "" {
		w.params = append(w.params, decoded)
		if w.walk(n.param, next) {
			return true
		}
		w.params = w.params[:len(w.params)-1]
	}
	return w.accept(n.prefix, rem[1:])
}

// accept takes the route of es that accepts the method, if any, with
// rest as what its * matched; else it notes their methods.
func (w *walker[V]) accept(es []*entry[V], rest string) bool {
	for _, e := range es {
		if e.method == "" || e.method == w.method {
			w.match = Match[V]{Name: e.name, Pattern: e.pattern, Value: e.value}
			if len(w.params) > 0 {
				w.match.Params = slices.Clone(w.params)
			}
			if e.pattern.Prefix() {
				w.match.Rest, w.match.RawRest = unescape(rest), rest
			}
			return true
		}
	}
	for _, e := range es {
		w.allowed = append(w.allowed, e.method)
	}
	return false
}

// unescape decodes a path's %-escapes once. An escaped path from
// net/http has only valid ones; an invalid one is left as it is.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	d, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return d
}
