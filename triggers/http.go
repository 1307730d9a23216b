// Package triggers binds functions to events. This file has the HTTP
// trigger: a route under /fn/ whose request body is a function's input and
// whose response body is its output. Routes are exact paths, paths with
// parameters and prefixes; package route says which one a request takes.
package triggers

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/logctx"
	"github.com/sluicehq/sluice/triggers/route"
	"github.com/sluicehq/sluice/units"
)

// HTTPRoute is an HTTP trigger: requests to HTTPPrefix + Path with Method
// (any method if "") run Target. Path is a route pattern: an exact path
// (/hello), with parameters (/users/{id}) or a prefix (/api/*).
type HTTPRoute struct {
	Trigger string
	Target  fn.Target
	Path    string
	Method  string
	// Request gives a workflow target the whole request as its input,
	// and lets its output set the response (see httpworkflow.go).
	Request bool
}

// HTTPPrefix is where HTTP trigger routes live.
const HTTPPrefix = "/fn"

// maxBodyGrace is read past a function's max input so that an oversized
// body is recognised as such rather than cut silently.
const maxBodyGrace = 1

// HTTP serves the HTTP triggers. Routes change while it serves.
type HTTP struct {
	inv      fn.Invoker
	maxInput func(fn.Target) int

	mu     sync.RWMutex
	routes *route.Table[HTTPRoute]
}

// NewHTTP returns an HTTP trigger server. maxInput tells a function's
// input limit, so that a body over it is refused before it is read whole.
func NewHTTP(inv fn.Invoker, maxInput func(fn.Target) int) *HTTP {
	return &HTTP{inv: inv, maxInput: maxInput, routes: route.NewTable[HTTPRoute]()}
}

// Set adds or replaces the route of a trigger. A malformed path, or a
// route that would take the requests of another trigger's (a
// *route.ConflictError), is refused, and the trigger's route is left as
// it was.
func (h *HTTP) Set(r HTTPRoute) error {
	p, err := route.Parse(r.Path)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.routes.Add(r.Trigger, p, r.Method, r)
}

// Remove removes the route of a trigger.
func (h *HTTP) Remove(trigger string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes.Remove(trigger)
}

// Routes returns the number of routes.
func (h *HTTP) Routes() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.routes.Len()
}

func (h *HTTP) lookup(path, method string) (route.Match[HTTPRoute], bool, []string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.routes.Lookup(path, method)
}

// requestPath returns a request's path under HTTPPrefix, decoded and as
// sent (escaped).
func requestPath(u *url.URL) (path, raw string) {
	path = strings.TrimPrefix(u.Path, HTTPPrefix)
	if path == "" {
		path = "/"
	}
	raw = u.EscapedPath()
	if rest, ok := strings.CutPrefix(raw, HTTPPrefix); ok && (rest == "" || rest[0] == '/') {
		raw = rest
	} else { // the prefix itself was escaped (/f%6E/...): escape the path again
		raw = (&url.URL{Path: path}).EscapedPath()
	}
	if raw == "" {
		raw = "/"
	}
	return path, raw
}

// ServeHTTP serves a request under HTTPPrefix.
func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, raw := requestPath(r.URL)
	m, ok, allowed := h.lookup(raw, r.Method)
	if !ok {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			errcode.Write(w, errcode.New(errcode.MethodNotAllowed,
				fmt.Sprintf("%s %s%s: method not allowed (allowed: %s)", r.Method, HTTPPrefix, path, strings.Join(allowed, ", "))))
			return
		}
		errcode.Write(w, errcode.New(errcode.NotFound, fmt.Sprintf("no HTTP trigger at %s%s", HTTPPrefix, path)))
		return
	}
	hr := m.Value
	limit := h.maxInput(hr.Target)
	if r.ContentLength > int64(limit) {
		errcode.Write(w, errcode.New(errcode.InputTooLarge,
			fmt.Sprintf("request body of %d bytes is over the input limit of %s (%s)", r.ContentLength, hr.Target, units.Bytes(uint64(limit)))))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+maxBodyGrace))
	if err != nil {
		errcode.Write(w, errcode.ReadError("request body", err))
		return
	}
	id := fn.NewID()
	w.Header().Set("X-Sluice-Invocation", id)
	tc := TraceOf(r.Header)
	w.Header().Set(logctx.TraceparentHeader, tc.Traceparent())
	meta := make(map[string]string, 10+len(r.Header))
	meta[abi.MetaTrigger] = hr.Trigger
	meta[abi.MetaHTTPMethod] = r.Method
	meta[abi.MetaHTTPPath] = path
	meta[abi.MetaHTTPRawPath] = raw
	meta[abi.MetaHTTPQuery] = r.URL.RawQuery
	meta[abi.MetaHTTPRoute] = hr.Path
	meta[abi.MetaHTTPHost] = r.Host
	meta[abi.MetaHTTPRemote] = r.RemoteAddr
	meta[abi.MetaHTTPProto] = r.Proto
	HeaderMeta(meta, r.Header)
	for i, name := range m.Pattern.Params() {
		meta[abi.MetaHTTPParamPrefix+name] = m.Params[i]
	}
	if m.Pattern.Prefix() {
		meta[abi.MetaHTTPRest] = m.Rest
	}
	if hr.Request && hr.Target.Kind == fn.KindWorkflow {
		h.serveRequestWorkflow(logctx.WithTrace(r.Context(), tc), w, r, m, path, raw, fn.Call{ID: id, Input: body, Meta: meta})
		return
	}
	res, err := h.inv.Invoke(logctx.WithTrace(r.Context(), tc), hr.Target, fn.Call{ID: id, Input: body, Meta: meta})
	if err != nil {
		errcode.Write(w, err)
		return
	}
	writeResult(w, r, res)
}

// writeResult answers with a function's result: the status and headers
// it set (200 and none if it set none), its Content-Type or else one
// detected from the output, and the output as the body.
func writeResult(w http.ResponseWriter, r *http.Request, res fn.Result) {
	h := w.Header()
	for name, values := range res.Header {
		h[name] = values // checked by the host: no framing or X-Sluice-* headers
	}
	if _, ok := h["Content-Type"]; !ok {
		h.Set("Content-Type", http.DetectContentType(res.Output))
	}
	status := res.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := status != http.StatusNoContent && status != http.StatusNotModified
	if body {
		h.Set("Content-Length", strconv.Itoa(len(res.Output)))
	}
	h.Set("X-Sluice-Duration", res.Duration.Round(time.Microsecond).String())
	w.WriteHeader(status)
	if body && r.Method != http.MethodHead {
		_, _ = w.Write(res.Output)
	}
}

// commonHeaderKeys are the metadata keys of the request headers most
// requests carry, made once rather than for every request.
var commonHeaderKeys = func() map[string]string {
	m := map[string]string{}
	for _, name := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "If-Modified-Since", "If-None-Match", "Origin",
		"Referer", "Traceparent", "Tracestate", "User-Agent", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id"} {
		m[name] = abi.MetaHTTPHeaderPrefix + strings.ToLower(name)
	}
	return m
}()

// headerKey is the metadata key of a header: abi.MetaHTTPHeaderPrefix
// and the name in lower case, made in one allocation.
func headerKey(name string) string {
	if k, ok := commonHeaderKeys[name]; ok {
		return k
	}
	var b strings.Builder
	b.Grow(len(abi.MetaHTTPHeaderPrefix) + len(name))
	b.WriteString(abi.MetaHTTPHeaderPrefix)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// HeaderMeta adds a request's headers to call metadata (abi/README.md):
// each name's values joined under abi.MetaHTTPHeaderPrefix + its name in
// lower case, and the whole block under abi.MetaHTTPHeaders. The
// daemon's limit on a request's header (64 KiB) bounds what they add.
func HeaderMeta(meta map[string]string, header http.Header) {
	if len(header) == 0 {
		meta[abi.MetaHTTPHeaders] = ""
		return
	}
	names := make([]string, 0, len(header))
	size := 0
	for name, values := range header {
		names = append(names, name)
		sep := ", "
		if name == "Cookie" {
			sep = "; " // RFC 6265 5.4: one Cookie header, pairs joined with "; "
		}
		v := values[0]
		if len(values) > 1 {
			v = strings.Join(values, sep)
		}
		meta[headerKey(name)] = v
		for _, v := range values {
			size += len(name) + len(v) + 3
		}
	}
	slices.Sort(names)
	var b strings.Builder
	b.Grow(size)
	for _, name := range names {
		for _, v := range header[name] {
			b.WriteString(name)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	meta[abi.MetaHTTPHeaders] = b.String()
}

// TraceOf returns the span of a call an HTTP request makes: a child of
// the request's traceparent header if it is valid (with its tracestate
// headers, joined as HTTP joins a repeated header), else the first span of
// a new trace. A request with more than one traceparent header is a new
// trace: the spec makes such a request's trace context invalid.
func TraceOf(h http.Header) logctx.Trace {
	parents := h.Values(logctx.TraceparentHeader)
	if len(parents) != 1 {
		return logctx.NewTrace()
	}
	return logctx.Continue(parents[0], strings.Join(h.Values(logctx.TracestateHeader), ","))
}
