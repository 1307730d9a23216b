package abi

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// A WASI command deployed with --cgi runs as a CGI script (RFC 3875):
// the request in CGI's environment variables (CGIEnv), the body on stdin,
// and a CGI response on stdout (ParseCGI).

// HTTPPrefix is where the HTTP triggers' routes live: a CGI script's
// SCRIPT_NAME starts with it, as the client sees the path.
const HTTPPrefix = "/fn"

// MaxCGIHeaderBlock bounds a CGI response's header block, its blank line
// included: the response headers' own limit (MaxResponseHeaderBytes)
// with room for the field syntax and the line ends. A script whose
// stdout has no blank line within it fails with a message that says so,
// rather than the daemon reading megabytes as headers.
const MaxCGIHeaderBlock = MaxResponseHeaderBytes + 8<<10

// ErrCGI means a CGI command's stdout does not begin with a valid CGI
// response header block.
var ErrCGI = errors.New("bad CGI response")

// CGIResponse is a CGI script's answer.
type CGIResponse struct {
	// Status is the Status field's code; 302 for a Location without a
	// Status (RFC 3875 6.2.3, a client redirect), else 200.
	Status int
	// Header holds the other fields, Location and Content-Type included.
	Header map[string][]string
	// Body is what follows the blank line.
	Body []byte
}

// ParseCGI parses a CGI script's stdout: header fields ("Name: value",
// lines ending in LF or CRLF), a blank line, the body. It is strict: a
// line that is not a field, a folded line, a bad Status, a header a guest
// may not set (CheckHeader) or a block over MaxCGIHeaderBlock fails with
// an error (wrapping ErrCGI) that says what is wrong. At least one of
// Content-Type, Location and Status must be given (RFC 3875 6.2).
func ParseCGI(out []byte) (CGIResponse, error) {
	var r CGIResponse
	if len(out) == 0 {
		return r, fmt.Errorf("%w: the command printed nothing; a CGI command prints a header block (Content-Type: text/plain, or Status: 204 No Content), a blank line, then the body", ErrCGI)
	}
	var h Headers
	status, statusSet, rest := 0, false, out
	for n := 1; ; n++ {
		used := len(out) - len(rest)
		i := bytes.IndexByte(rest, '\n')
		if i < 0 && len(out) <= MaxCGIHeaderBlock {
			return r, fmt.Errorf("%w: the output ends inside the header block (line %d: %q): a CGI command prints its header fields, then a blank line, then the body", ErrCGI, n, clip(string(rest)))
		}
		if i < 0 || used+i+1 > MaxCGIHeaderBlock {
			return r, fmt.Errorf("%w: no blank line ends the header block within the first %d KiB of the output (the limit)", ErrCGI, MaxCGIHeaderBlock>>10)
		}
		line := rest[:i]
		rest = rest[i+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			if n == 1 {
				return r, fmt.Errorf("%w: the output starts with a blank line: a CGI command prints at least one header field (Content-Type, Location or Status) before it", ErrCGI)
			}
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return r, fmt.Errorf("%w: line %d continues the line before (folded header lines are not accepted)", ErrCGI, n)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return r, fmt.Errorf("%w: line %d (%q) is not a header field \"Name: value\": a CGI command prints its header block (Content-Type: ..., then a blank line) before the body", ErrCGI, n, clip(string(line)))
		}
		key := string(name)
		val := strings.Trim(string(value), " \t")
		if strings.EqualFold(key, "Status") {
			if statusSet {
				return r, fmt.Errorf("%w: line %d: a second Status field", ErrCGI, n)
			}
			code, err := parseCGIStatus(val)
			if err != nil {
				return r, fmt.Errorf("%w: line %d: %v", ErrCGI, n, err)
			}
			status, statusSet = code, true
			continue
		}
		if err := h.Add(key, val); err != nil {
			return r, fmt.Errorf("%w: line %d: %v", ErrCGI, n, err)
		}
	}
	_, hasType := h.Header["Content-Type"]
	_, hasLoc := h.Header["Location"]
	switch {
	case statusSet:
	case hasLoc:
		status = 302
	case hasType:
		status = 200
	default:
		return r, fmt.Errorf("%w: the header block has none of Content-Type, Location and Status: a CGI response needs at least one", ErrCGI)
	}
	r.Status, r.Header, r.Body = status, h.Header, rest
	return r, nil
}

// parseCGIStatus parses a Status field's value: a three-digit code and an
// optional reason phrase ("201 Created").
func parseCGIStatus(v string) (int, error) {
	code, _, _ := strings.Cut(v, " ")
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 {
		return 0, fmt.Errorf("Status %q does not start with a three-digit code (Status: 201 Created)", clip(v))
	}
	if err := CheckStatus(int64(n)); err != nil {
		return 0, fmt.Errorf("Status: %v", err)
	}
	return n, nil
}

// CGIEnv returns the CGI variables (RFC 3875 4.1) of a call, as name,
// value pairs, from its metadata (what an HTTP trigger sets) and the
// length of its body. A call that did not come through an HTTP trigger
// (sluice fn invoke, a queue, a workflow) is a POST of its input to
// /fn/FUNCTION.
//
// Every request header is an HTTP_ variable (4.1.18) except
// Content-Type and Content-Length (CONTENT_TYPE and CONTENT_LENGTH),
// Proxy (HTTP_PROXY is read as a proxy setting by many HTTP clients: the
// "httpoxy" hole) and names holding '_' (X_Foo and X-Foo would be one
// variable, so a client could forge the other). Authorization is passed:
// sluice does not authenticate the requests of its triggers, so the
// function is the only one that can, as in WAGI.
func CGIEnv(meta map[string]string, bodyLen int) []string {
	get := func(k string) string { return meta[k] }
	method := get(MetaHTTPMethod)
	if method == "" {
		method = "POST"
	}
	path, ok := meta[MetaHTTPPath]
	if !ok {
		path = "/" + get(MetaFunction)
	}
	script, info := HTTPPrefix+path, ""
	if rest, ok := meta[MetaHTTPRest]; ok && rest != "" {
		info = "/" + rest
		script = strings.TrimSuffix(script, info)
	}
	proto := get(MetaHTTPProto)
	if proto == "" {
		proto = "HTTP/1.1"
	}
	host, port := get(MetaHTTPHost), ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		host, port = h, p
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "80"
	}
	env := []string{
		"GATEWAY_INTERFACE", "CGI/1.1",
		"SERVER_SOFTWARE", "sluice",
		"SERVER_PROTOCOL", proto,
		"SERVER_NAME", host,
		"SERVER_PORT", port,
		"REQUEST_METHOD", method,
		"SCRIPT_NAME", script,
		"PATH_INFO", info,
		"QUERY_STRING", get(MetaHTTPQuery),
	}
	if ip, p, err := net.SplitHostPort(get(MetaHTTPRemote)); err == nil {
		env = append(env, "REMOTE_ADDR", ip, "REMOTE_PORT", p)
	}
	if bodyLen > 0 {
		env = append(env, "CONTENT_LENGTH", strconv.Itoa(bodyLen))
	}
	if ct, ok := meta[MetaHTTPHeaderPrefix+"content-type"]; ok {
		env = append(env, "CONTENT_TYPE", ct)
	}
	var names []string
	for k := range meta {
		if name, ok := strings.CutPrefix(k, MetaHTTPHeaderPrefix); ok {
			switch {
			case name == "content-type", name == "content-length", name == "proxy", strings.Contains(name, "_"):
				continue
			}
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		env = append(env, "HTTP_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")), meta[MetaHTTPHeaderPrefix+name])
	}
	return env
}
