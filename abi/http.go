package abi

import (
	"fmt"
	"strings"
)

// The HTTP response a guest sets (ABI 1.1 additions, see README.md): a
// reactor with the http_status and http_header imports, a WASI command
// deployed with --cgi with the header block at the head of its stdout.

// Import names of the response, added in ABI 1.1. A module imports them
// only if it sets a response; one that does not runs as before.
const (
	ImportHTTPStatus = "http_status"
	ImportHTTPHeader = "http_header"
)

// Limits of a guest's response headers.
const (
	// MaxResponseHeaders is how many header values a guest may set in
	// one call: enough for any real response (a few dozen at most, a
	// handful of Set-Cookie), and a bound on what a looping guest makes
	// the host keep.
	MaxResponseHeaders = 100
	// MaxResponseHeaderBytes is the total of the names and values a
	// guest may set in one call. Proxies in front of a daemon hold a
	// response's header in one buffer (nginx: 4-8 KiB by default, up to
	// a few tens when raised); 64 KiB passes any of them that were
	// raised, and is the daemon's own limit on a request's header.
	MaxResponseHeaderBytes = 64 << 10
)

// The metadata keys of the request's headers (see README.md): one key
// per header name, lower case, and one with the whole block.
const (
	// MetaHTTPHeaderPrefix + a header's name in lower case
	// (http.header.content-type) holds its values joined as HTTP joins
	// a repeated header: ", " (a Cookie header's with "; ").
	MetaHTTPHeaderPrefix = "http.header."
	// MetaHTTPHeaders holds every header, one "Name: value" line per
	// value, each line ending in "\n", names in canonical form
	// (Content-Type) and sorted, values of a name in the order sent.
	MetaHTTPHeaders = "http.headers"
	// MetaHTTPHost is the request's Host (host[:port]), MetaHTTPRemote
	// the client's address (ip:port) as the daemon sees it, and
	// MetaHTTPProto the protocol (HTTP/1.1).
	MetaHTTPHost   = "http.host"
	MetaHTTPRemote = "http.remote"
	MetaHTTPProto  = "http.proto"
)

// Status bounds: what a guest may answer with. 1xx are interim answers,
// not a response: a guest cannot end a request with one.
const (
	MinHTTPStatus = 200
	MaxHTTPStatus = 599
)

// CheckStatus says why code is not a status a guest may set, or returns
// nil.
func CheckStatus(code int64) error {
	if code < MinHTTPStatus || code > MaxHTTPStatus {
		return fmt.Errorf("%d is not an HTTP status (want %d to %d)", code, MinHTTPStatus, MaxHTTPStatus)
	}
	return nil
}

// droppedHeaders are the response headers a guest may not set, by their
// canonical names: the framing of the message (the daemon writes the body
// and frames it), the connection's (hop-by-hop, RFC 9110 7.6.1) and the
// daemon's own (X-Sluice-*, traceparent, X-Request-Id). A guest's value
// of one is dropped without failing the call, so that a handler or a CGI
// script that sets Content-Length, as many do, runs unchanged.
var droppedHeaders = map[string]bool{
	"Content-Length":      true,
	"Transfer-Encoding":   true,
	"Connection":          true,
	"Keep-Alive":          true,
	"Proxy-Connection":    true,
	"Te":                  true,
	"Trailer":             true,
	"Upgrade":             true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Traceparent":         true,
	"X-Request-Id":        true, // the daemon's echo of the request's id
}

// DroppedHeader tells whether a response header a guest sets is dropped
// (see README.md for the list and why).
func DroppedHeader(name string) bool { return dropped(canonical(name)) }

// dropped is DroppedHeader of a name in canonical form.
func dropped(key string) bool {
	return droppedHeaders[key] || strings.HasPrefix(key, "X-Sluice-")
}

// CheckHeader says why name: value is not a response header a guest may
// set, or returns nil: the name must be an RFC 9110 token, the value
// visible ASCII, spaces, tabs or bytes from 0x80 (obs-text), with no CR,
// LF or NUL, so that a guest cannot split the response or forge a
// header of its own.
func CheckHeader(name, value string) error {
	if name == "" {
		return fmt.Errorf("empty header name")
	}
	for i := 0; i < len(name); i++ {
		if !tokenChars[name[i]] {
			return fmt.Errorf("header name %q holds %q, which is not allowed in a name (letters, digits and !#$%%&'*+-.^_`|~ only)", clip(name), name[i])
		}
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("the value of header %s holds the control byte %q (CR, LF and NUL could split the response)", clip(name), c)
		}
	}
	return nil
}

// Headers collects the response headers of one call within the limits:
// the host keeps one per call, the CGI parser one per response.
type Headers struct {
	// Names in the order first set, and their values.
	Header map[string][]string
	// vals backs the first value of each name, a few names to an
	// allocation: most names have one value.
	vals  []string
	count int
	size  int
}

// Add validates and adds one value. A dropped header (DroppedHeader) is
// left out and returns nil. The error says what is wrong and which limit.
func (h *Headers) Add(name, value string) error {
	if err := CheckHeader(name, value); err != nil {
		return err
	}
	key := canonical(name)
	if dropped(key) {
		return nil
	}
	if h.count+1 > MaxResponseHeaders {
		return fmt.Errorf("more than %d response header values", MaxResponseHeaders)
	}
	if h.size+len(name)+len(value) > MaxResponseHeaderBytes {
		return fmt.Errorf("response headers over %d KiB in total", MaxResponseHeaderBytes>>10)
	}
	h.count++
	h.size += len(name) + len(value)
	if h.Header == nil {
		h.Header = make(map[string][]string, 4)
	}
	if vs, ok := h.Header[key]; ok {
		h.Header[key] = append(vs, value) // full: a copy of its own
		return nil
	}
	if len(h.vals) == cap(h.vals) {
		h.vals = make([]string, 0, 8)
	}
	h.vals = append(h.vals, value)
	n := len(h.vals)
	h.Header[key] = h.vals[n-1 : n : n]
	return nil
}

// Reset empties h for another call, keeping its map.
func (h *Headers) Reset() {
	clear(h.Header)
	h.vals = nil
	h.count, h.size = 0, 0
}

// canonical is net/http's canonical form of a header name
// (content-type becomes Content-Type), for a valid token.
func canonical(s string) string {
	upper := true
	ok := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if upper && c >= 'a' && c <= 'z' || !upper && c >= 'A' && c <= 'Z' {
			ok = false
			break
		}
		upper = c == '-'
	}
	if ok {
		return s
	}
	b := []byte(s)
	upper = true
	for i, c := range b {
		switch {
		case upper && c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

// tokenChars are the bytes of an RFC 9110 token.
var tokenChars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// clip shortens s for a message.
func clip(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
