package route

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseRefusesMalformedPatterns(t *testing.T) {
	tests := []struct{ pattern, says string }{
		{"", "empty"},
		{"hello", "absolute path"},
		{"/a//b", "empty segment"},
		{"/users/{}", "{} has no name"},
		{"/users/{id", `"{id" opens a parameter it does not close`},
		{"/users/id}", `"id}" closes a parameter it does not open`},
		{"/users/x{id}", "whole segment"},
		{"/users/{id}x", "whole segment"},
		{"/users/{a}{b}", "whole segment"},
		{"/api/*/x", "must be the last segment"},
		{"/api/x*", "* is a whole last segment"},
		{"/a/{id}/b/{id}", "{id} appears twice"},
		{"/a/{id}/b/{ID}", "{ID} appears twice"},
		{"/a/{1x}", "starting with a letter"},
		{"/a/{user-id}", "letters, digits and _"},
		{"/a b", `has ' '`},
		{"/caf\u00e9", "non-ASCII"},
		{"/a%20b", "%-escapes"},
		{"/a/../b", "no . or .."},
		{"/" + strings.Repeat("a", MaxPatternLen), "over the 2048"},
		{"/{" + strings.Repeat("a", MaxParamNameLen+1) + "}", "over 64 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			p, err := Parse(tc.pattern)
			if err == nil {
				t.Fatalf("parsed as %q", p.Shape())
			}
			if !errors.Is(err, ErrPattern) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q, want ErrPattern saying %q", err, tc.says)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		pattern, shape string
		params         []string
		prefix, exact  bool
	}{
		{"/", "/", nil, false, true},
		{"/hello", "/hello", nil, false, true},
		{"/hello/", "/hello/", nil, false, true},
		{"/orders/new;v=2", "/orders/new;v=2", nil, false, true},
		{"/users/{id}", "/users/{}", []string{"id"}, false, false},
		{"/api/*", "/api/*", nil, true, false},
		{"/*", "/*", nil, true, false},
		{"/users/{id}/files/*", "/users/{}/files/*", []string{"id"}, true, false},
		{"/{org}/{repo}/{_x1}", "/{}/{}/{}", []string{"org", "repo", "_x1"}, false, false},
	}
	for _, tc := range tests {
		p, err := Parse(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		if p.String() != tc.pattern || p.Shape() != tc.shape || !slices.Equal(p.Params(), tc.params) || p.Prefix() != tc.prefix || p.Exact() != tc.exact {
			t.Fatalf("%s: shape %q params %q prefix %v exact %v", tc.pattern, p.Shape(), p.Params(), p.Prefix(), p.Exact())
		}
	}
}

func mustAdd(t testing.TB, tb *Table[string], name, pattern, method string) {
	t.Helper()
	p, err := Parse(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Add(name, p, method, pattern); err != nil {
		t.Fatal(err)
	}
}

func TestLookupPrecedence(t *testing.T) {
	tb := NewTable[string]()
	for _, r := range []struct{ name, pattern, method string }{
		{"root", "/", ""},
		{"all", "/*", ""},
		{"hello", "/hello", ""},
		{"hello-slash", "/hello/", ""},
		{"user", "/users/{id}", ""},
		{"me", "/users/me", ""},
		{"user-files", "/users/{id}/files/*", ""},
		{"users-any", "/users/*", ""},
		{"api", "/api/*", ""},
		{"api-v2", "/api/v2/*", ""},
		{"api-exact", "/api", "DELETE"},
		{"repo", "/{org}/{repo}", ""},
		{"org-me", "/{org}/me", ""},
		{"post-only", "/form/{id}", "POST"},
		{"get-only", "/form/{id}", "GET"},
		{"form-new", "/form/new", "PUT"},
	} {
		mustAdd(t, tb, r.name, r.pattern, r.method)
	}
	tests := []struct {
		method, path, name string
		params             []string
		rest, rawRest      string
	}{
		{"GET", "/", "root", nil, "", ""},
		{"GET", "/hello", "hello", nil, "", ""},
		{"GET", "/hello/", "hello-slash", nil, "", ""},
		{"GET", "/users/me", "me", nil, "", ""},
		{"GET", "/users/7", "user", []string{"7"}, "", ""},
		{"GET", "/users/a%2Fb", "user", []string{"a/b"}, "", ""},
		{"GET", "/users/%2525", "user", []string{"%25"}, "", ""}, // decoded once
		{"GET", "/users/", "users-any", nil, "", ""},             // a parameter is never empty
		{"GET", "/users", "users-any", nil, "", ""},              // * matches nothing too
		{"GET", "/users/7/files", "user-files", []string{"7"}, "", ""},
		{"GET", "/users/7/files/a/b%20c", "user-files", []string{"7"}, "a/b c", "a/b%20c"},
		{"GET", "/users/7/other", "users-any", nil, "7/other", "7/other"},
		{"GET", "/api/v1/x", "api", nil, "v1/x", "v1/x"},
		{"GET", "/api/v2/x", "api-v2", nil, "x", "x"},
		{"GET", "/api/v2", "api-v2", nil, "", ""},
		{"GET", "/api", "api", nil, "", ""},          // DELETE /api is exact, but not for GET
		{"DELETE", "/api", "api-exact", nil, "", ""}, // the end beats *
		{"GET", "/acme/me", "org-me", []string{"acme"}, "", ""},
		{"GET", "/acme/widgets", "repo", []string{"acme", "widgets"}, "", ""},
		{"GET", "/hello/x", "repo", []string{"hello", "x"}, "", ""},
		{"POST", "/form/1", "post-only", []string{"1"}, "", ""},
		{"GET", "/form/1", "get-only", []string{"1"}, "", ""},
		{"GET", "/form/new", "get-only", []string{"new"}, "", ""}, // the exact route is PUT only
		{"PUT", "/form/new", "form-new", nil, "", ""},
		{"GET", "/a/b/c", "all", nil, "a/b/c", "a/b/c"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			m, ok, _ := tb.Lookup(tc.path, tc.method)
			if !ok {
				t.Fatal("no route")
			}
			if m.Name != tc.name || m.Value != m.Pattern.String() || !slices.Equal(m.Params, tc.params) || m.Rest != tc.rest || m.RawRest != tc.rawRest {
				t.Fatalf("took %s (%s) params %q rest %q raw %q; want %s params %q rest %q raw %q",
					m.Name, m.Pattern, m.Params, m.Rest, m.RawRest, tc.name, tc.params, tc.rest, tc.rawRest)
			}
		})
	}
}

func TestLookupMethodNotAllowed(t *testing.T) {
	tb := NewTable[string]()
	mustAdd(t, tb, "a", "/form/{id}", "POST")
	mustAdd(t, tb, "b", "/form/{id}", "GET")
	mustAdd(t, tb, "c", "/form/new", "PUT")
	mustAdd(t, tb, "d", "/form/*", "PUT")
	mustAdd(t, tb, "e", "/exact", "GET")
	tests := []struct {
		method, path string
		allowed      []string
	}{
		{"DELETE", "/form/new", []string{"GET", "POST", "PUT"}},
		{"DELETE", "/form/1", []string{"GET", "POST", "PUT"}},
		{"DELETE", "/form/1/x", []string{"PUT"}},
		{"POST", "/exact", []string{"GET"}},
		{"POST", "/exact/", []string{"GET"}}, // the trailing slash dropped
		{"GET", "/nowhere", nil},
	}
	for _, tc := range tests {
		m, ok, allowed := tb.Lookup(tc.path, tc.method)
		if ok || !slices.Equal(allowed, tc.allowed) {
			t.Fatalf("%s %s: took %q, allowed %q; want %q", tc.method, tc.path, m.Name, allowed, tc.allowed)
		}
	}
}

func TestConflicts(t *testing.T) {
	tests := []struct {
		a, am, b, bm string
		conflict     bool
	}{
		{"/users/{id}", "", "/users/{name}", "", true},
		{"/users/{id}", "GET", "/users/{name}", "", true},
		{"/users/{id}", "GET", "/users/{name}", "POST", false},
		{"/a/*", "", "/a/*", "", true},
		{"/hello", "GET", "/hello", "GET", true},
		{"/hello", "GET", "/hello", "POST", false},
		{"/users/{id}", "", "/users/me", "", false},
		{"/api/*", "", "/api/v2/*", "", false},
		{"/api/*", "", "/api", "", false},
		{"/hello", "", "/hello/", "", false},
		{"/{a}/x/*", "", "/{b}/x/*", "", true},
		{"/{a}/x", "", "/x/{b}", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.a+" "+tc.b, func(t *testing.T) {
			tb := NewTable[string]()
			mustAdd(t, tb, "first", tc.a, tc.am)
			pb, _ := Parse(tc.b)
			err := tb.Add("second", pb, tc.bm, tc.b)
			var ce *ConflictError
			if tc.conflict != errors.As(err, &ce) {
				t.Fatalf("error %v, want a conflict: %v", err, tc.conflict)
			}
			if tc.conflict {
				if ce.Other != "first" || ce.OtherRoute != tc.a || !strings.Contains(err.Error(), `trigger "first"`) {
					t.Fatalf("conflict %+v: %v", ce, err)
				}
				if tb.Len() != 1 {
					t.Fatalf("%d routes after a refused one", tb.Len())
				}
			}
		})
	}
}

func TestAddReplacesAndRemoveRemoves(t *testing.T) {
	tb := NewTable[string]()
	mustAdd(t, tb, "u", "/users/{id}", "")
	mustAdd(t, tb, "u", "/users/{name}", "") // the same name: replaced, no conflict
	if m, ok, _ := tb.Lookup("/users/1", "GET"); !ok || m.Pattern.String() != "/users/{name}" || tb.Len() != 1 {
		t.Fatalf("after replace: %v %+v", ok, m)
	}
	mustAdd(t, tb, "h", "/hello", "GET")
	mustAdd(t, tb, "p", "/p/*", "")
	for _, name := range []string{"u", "h", "p"} {
		tb.Remove(name)
	}
	for _, path := range []string{"/users/1", "/hello", "/p/x"} {
		if m, ok, allowed := tb.Lookup(path, "GET"); ok || len(allowed) > 0 {
			t.Fatalf("%s after remove: %+v %q", path, m, allowed)
		}
	}
	if tb.Len() != 0 {
		t.Fatal(tb.Len())
	}
	mustAdd(t, tb, "again", "/users/{x}", "") // nothing left to conflict with
}

// examples returns request paths a pattern matches, escaped: parameters
// filled with each of values and the prefix with each of rests.
func examples(p *Pattern, values, rests []string) []string {
	var out []string
	for _, v := range values {
		for _, r := range rests {
			var b strings.Builder
			for _, s := range p.segs {
				b.WriteByte('/')
				switch s.kind {
				case literal:
					b.WriteString(s.text)
				case param:
					b.WriteString(v)
				case prefix:
					b.WriteString(r)
				}
			}
			out = append(out, b.String())
		}
	}
	return out
}

// FuzzRoutePattern: the parser never panics; a pattern it accepts, alone
// in a table, matches its own example paths with their parameters and
// rest; and a pattern's text parses to the same pattern again.
func FuzzRoutePattern(f *testing.F) {
	for _, s := range []string{"/", "/hello", "/hello/", "/users/{id}", "/api/*", "/*", "/users/{id}/files/*",
		"/{a}/{b}/{c}", "/users/{id", "/{}", "/a//b", "/a/*/b", "/{x}/{X}", "/a b", "/%41", "/{\u00e9}", "/x/{y}/"} {
		f.Add(s, "v", "r/s")
	}
	f.Add("/users/{id}", "a%2Fb", "x%20y/z")
	f.Fuzz(func(t *testing.T, pattern, value, rest string) {
		p, err := Parse(pattern)
		if err != nil {
			if !errors.Is(err, ErrPattern) {
				t.Fatalf("error %v is not ErrPattern", err)
			}
			return
		}
		again, err := Parse(p.String())
		if err != nil || again.Shape() != p.Shape() {
			t.Fatalf("%q does not parse again the same: %v", p, err)
		}
		// a parameter's value: one non-empty escaped segment
		value = escapeSegment(value)
		if value == "" {
			value = "v"
		}
		rest = escapePath(rest)
		tb := NewTable[int]()
		if err := tb.Add("t", p, "", 1); err != nil {
			t.Fatal(err)
		}
		for _, path := range examples(p, []string{value}, []string{rest}) {
			m, ok, _ := tb.Lookup(path, "GET")
			if !ok || m.Name != "t" {
				t.Fatalf("%s does not match its example %q", p, path)
			}
			if len(m.Params) != len(p.Params()) {
				t.Fatalf("%s on %q: params %q", p, path, m.Params)
			}
			for _, v := range m.Params {
				if v != unescape(value) {
					t.Fatalf("%s on %q: param %q, want %q", p, path, v, unescape(value))
				}
			}
			if p.Prefix() && (m.RawRest != rest || m.Rest != unescape(rest)) {
				t.Fatalf("%s on %q: rest %q (raw %q), want %q", p, path, m.Rest, m.RawRest, rest)
			}
		}
		// a second route of the same shape conflicts, whatever its names
		if err := tb.Add("u", again, "GET", 2); !errors.As(err, new(*ConflictError)) {
			t.Fatalf("the same pattern twice: %v", err)
		}
	})
}

// escapeSegment escapes s as one path segment: every byte but the
// unreserved ones as %XX.
func escapeSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// escapePath escapes each slash-separated part of s as a segment.
func escapePath(s string) string {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		parts[i] = escapeSegment(p)
	}
	return strings.Join(parts, "/")
}

func BenchmarkRoute(b *testing.B) {
	// 1,000 routes of mixed kinds: a quarter each exact, one parameter,
	// two parameters and a prefix, spread over 50 first segments.
	tb := NewTable[int]()
	for i := 0; i < 1000; i++ {
		var pattern string
		switch i % 4 {
		case 0:
			pattern = fmt.Sprintf("/svc%d/items/n%d", i%50, i)
		case 1:
			pattern = fmt.Sprintf("/svc%d/r%d/{id}", i%50, i)
		case 2:
			pattern = fmt.Sprintf("/svc%d/r%d/{id}/files/{file}", i%50, i)
		case 3:
			pattern = fmt.Sprintf("/svc%d/p%d/*", i%50, i)
		}
		p, err := Parse(pattern)
		if err != nil {
			b.Fatal(err)
		}
		if err := tb.Add(fmt.Sprint(i), p, "", i); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct{ name, path string }{
		{"exact", "/svc8/items/n508"},
		{"param", "/svc9/r509/42"},
		{"params", "/svc10/r510/42/files/report.pdf"},
		{"prefix", "/svc11/p511/a/b/c"},
		{"escaped", "/svc9/r509/a%2Fb"},
		{"miss", "/svc12/nothing/here"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, want, _ := tb.Lookup(bc.path, "GET")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, ok, _ := tb.Lookup(bc.path, "GET"); ok != want {
					b.Fatal("lookup changed")
				}
			}
		})
	}
}
