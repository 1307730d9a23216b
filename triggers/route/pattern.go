// Package route is the routing of HTTP triggers: it parses route patterns
// (exact paths, path parameters and prefixes), finds the route a request
// path takes, and tells which routes would take the same requests.
//
// A pattern is an absolute path whose segments are each one of:
//
//	users        a literal: the segment, decoded, must be equal to it
//	{id}         a parameter: any one non-empty segment, its value decoded
//	*            a prefix, last segment only: the rest of the path, even none
//
// for example /hello, /users/{id}, /api/* and /users/{id}/files/*. A
// request path takes the most specific route that matches it and accepts
// its method: routes are compared segment by segment from the left, and at
// the first segment where they differ a literal beats a parameter, a
// parameter beats the prefix, and a route that ends there beats the prefix
// (/api beats /api/* on /api). So an exact path beats everything, and of
// two prefixes the longer wins. Two routes that would compare equal on some
// path (/users/{id} and /users/{name}, with a method in common) conflict:
// a Table refuses the second, and the catalog refuses it at create.
package route

import (
	"fmt"
	"strings"
)

// MaxPatternLen bounds a pattern: a route longer than a URL that proxies
// and browsers pass along reliably (2 KiB) could never be called.
const MaxPatternLen = 2048

// MaxParamNameLen bounds a parameter's name, which becomes part of a
// metadata key and of a WASI guest's environment variable name.
const MaxParamNameLen = 64

// kind is the kind of a pattern segment.
type kind uint8

const (
	literal kind = iota
	param
	prefix
)

type segment struct {
	kind kind
	text string // the literal, or the parameter's name
}

// Pattern is a parsed route pattern. Its zero value is not a pattern: use
// Parse.
type Pattern struct {
	text   string
	segs   []segment
	params []string
	shape  string
}

// Parse parses a route pattern, or says what is wrong with it, wrapping
// ErrPattern.
func Parse(s string) (*Pattern, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrPattern, s, fmt.Sprintf(format, args...))
	}
	switch {
	case s == "":
		return nil, bad("the path is empty: want an absolute path like /hello, /users/{id} or /api/*")
	case len(s) > MaxPatternLen:
		return nil, fmt.Errorf("%w %q...: the path is %d bytes long, over the %d a route may have", ErrPattern, s[:32], len(s), MaxPatternLen)
	case s[0] != '/':
		return nil, bad("want an absolute path like /hello, /users/{id} or /api/* (it starts with /)")
	}
	p := &Pattern{text: s}
	if s == "/" {
		p.segs = []segment{{kind: literal}}
		p.shape = s
		return p, nil
	}
	parts := strings.Split(s[1:], "/")
	seen := map[string]bool{}
	var shape strings.Builder
	for i, part := range parts {
		last := i == len(parts)-1
		switch {
		case part == "" && last:
			// a trailing slash: /hello/ is a route apart from /hello, as it
			// always was
			p.segs = append(p.segs, segment{kind: literal})
		case part == "":
			return nil, bad("an empty segment (//): every segment between slashes needs a name")
		case part == "*":
			if !last {
				return nil, bad("* stands for the rest of the path, so it must be the last segment (like /api/*)")
			}
			p.segs = append(p.segs, segment{kind: prefix})
		case part[0] == '{' || part[len(part)-1] == '}':
			name, err := paramName(part)
			if err != nil {
				return nil, bad("%s", err)
			}
			folded := strings.ToLower(name)
			if seen[folded] {
				return nil, bad("the parameter {%s} appears twice (names are compared without case, as a WASI guest's environment sees them)", name)
			}
			seen[folded] = true
			p.segs = append(p.segs, segment{kind: param, text: name})
			p.params = append(p.params, name)
		default:
			if part == "." || part == ".." {
				return nil, bad("no . or .. segments")
			}
			if err := literalText(part); err != nil {
				return nil, bad("%s", err)
			}
			p.segs = append(p.segs, segment{kind: literal, text: part})
		}
		shape.WriteByte('/')
		switch seg := p.segs[len(p.segs)-1]; seg.kind {
		case literal:
			shape.WriteString(seg.text)
		case param:
			shape.WriteString("{}")
		case prefix:
			shape.WriteByte('*')
		}
	}
	p.shape = shape.String()
	return p, nil
}

// paramName checks a {name} segment and returns the name.
func paramName(part string) (string, error) {
	switch {
	case part[0] == '{' && !strings.Contains(part[1:], "}"):
		return "", fmt.Errorf("%q opens a parameter it does not close: write {name}", part)
	case part[len(part)-1] == '}' && !strings.Contains(part[:len(part)-1], "{"):
		return "", fmt.Errorf("%q closes a parameter it does not open: write {name}", part)
	case len(part) < 2 || part[0] != '{' || part[len(part)-1] != '}' || strings.Count(part, "{") != 1 || strings.Count(part, "}") != 1:
		return "", fmt.Errorf("%q: a parameter is a whole segment, {name}, with nothing before or after the braces", part)
	}
	name := part[1 : len(part)-1]
	if name == "" {
		return "", fmt.Errorf("{} has no name: write {id}, {user_id}, ...")
	}
	if len(name) > MaxParamNameLen {
		return "", fmt.Errorf("the parameter name {%.16s...} is over %d characters", name, MaxParamNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return "", fmt.Errorf("the parameter name {%s}: use letters, digits and _, starting with a letter or _", name)
		}
	}
	return name, nil
}

// literalText checks a literal segment: the characters RFC 3986 allows
// in a path segment unencoded, less * (the prefix) and % (a route names
// decoded segments).
func literalText(part string) error {
	for i := 0; i < len(part); i++ {
		c := part[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		switch c {
		case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '+', ',', ';', '=', ':', '@':
			continue
		case '{', '}':
			return fmt.Errorf("%q: a parameter is a whole segment, {name}, with nothing before or after the braces", part)
		case '*':
			return fmt.Errorf("%q: * is a whole last segment (like /api/*), not part of one", part)
		}
		return fmt.Errorf("%q has %q: use letters, digits and -._~!$&'()+,;=:@ (no spaces, %%-escapes or non-ASCII)", part, c)
	}
	return nil
}

// String returns the pattern as it was written.
func (p *Pattern) String() string { return p.text }

// Params returns the names of the pattern's parameters, in order.
func (p *Pattern) Params() []string { return p.params }

// Prefix tells whether the pattern ends in *.
func (p *Pattern) Prefix() bool { return p.segs[len(p.segs)-1].kind == prefix }

// Exact tells whether the pattern is an exact path: no parameter, no *.
func (p *Pattern) Exact() bool { return len(p.params) == 0 && !p.Prefix() }

// Shape is the pattern with its parameters' names left out
// (/users/{}/files/*): two patterns match the same paths, equally
// specifically, if and only if they have the same shape.
func (p *Pattern) Shape() string { return p.shape }

// Overlap tells whether two routes would take the same requests: the
// same shape, and a method in common ("" is any method).
func Overlap(a *Pattern, aMethod string, b *Pattern, bMethod string) bool {
	return a.shape == b.shape && (aMethod == "" || bMethod == "" || aMethod == bMethod)
}
