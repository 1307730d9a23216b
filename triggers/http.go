// Package triggers binds functions to events. This file has the HTTP
// trigger: a route under /fn/ whose request body is a function's input and
// whose response body is its output.
package triggers

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/internal/logctx"
	"github.com/sluicehq/sluice/internal/units"
)

// HTTPRoute is an HTTP trigger: requests to Prefix + Path with Method (any
// method if "") run Target.
type HTTPRoute struct {
	Trigger string
	Target  fn.Target
	Path    string
	Method  string
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
	routes map[string][]HTTPRoute // by path
}

// NewHTTP returns an HTTP trigger server. maxInput tells a function's
// input limit, so that a body over it is refused before it is read whole.
func NewHTTP(inv fn.Invoker, maxInput func(fn.Target) int) *HTTP {
	return &HTTP{inv: inv, maxInput: maxInput, routes: map[string][]HTTPRoute{}}
}

// Set adds or replaces a route.
func (h *HTTP) Set(r HTTPRoute) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(r.Trigger)
	h.routes[r.Path] = append(h.routes[r.Path], r)
}

// Remove removes the route of a trigger.
func (h *HTTP) Remove(trigger string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(trigger)
}

func (h *HTTP) removeLocked(trigger string) {
	for path, rs := range h.routes {
		for i, r := range rs {
			if r.Trigger == trigger {
				rs = append(rs[:i:i], rs[i+1:]...)
				if len(rs) == 0 {
					delete(h.routes, path)
				} else {
					h.routes[path] = rs
				}
				return
			}
		}
	}
}

// Routes returns the number of routes.
func (h *HTTP) Routes() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, rs := range h.routes {
		n += len(rs)
	}
	return n
}

func (h *HTTP) lookup(path, method string) (HTTPRoute, bool, []string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	rs := h.routes[path]
	if len(rs) == 0 && strings.HasSuffix(path, "/") && len(path) > 1 {
		rs = h.routes[strings.TrimSuffix(path, "/")]
	}
	var allowed []string
	for _, r := range rs {
		if r.Method == "" || r.Method == method {
			return r, true, nil
		}
		allowed = append(allowed, r.Method)
	}
	return HTTPRoute{}, false, allowed
}

// ServeHTTP serves a request under HTTPPrefix.
func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, HTTPPrefix)
	if path == "" {
		path = "/"
	}
	route, ok, allowed := h.lookup(path, r.Method)
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
	limit := h.maxInput(route.Target)
	if r.ContentLength > int64(limit) {
		errcode.Write(w, errcode.New(errcode.InputTooLarge,
			fmt.Sprintf("request body of %d bytes is over the input limit of %s (%s)", r.ContentLength, route.Target, units.Bytes(uint64(limit)))))
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
	res, err := h.inv.Invoke(logctx.WithTrace(r.Context(), tc), route.Target, fn.Call{
		ID:    id,
		Input: body,
		Meta: map[string]string{
			abi.MetaTrigger:    route.Trigger,
			abi.MetaHTTPMethod: r.Method,
			abi.MetaHTTPPath:   path,
			abi.MetaHTTPQuery:  r.URL.RawQuery,
		},
	})
	if err != nil {
		errcode.Write(w, err)
		return
	}
	w.Header().Set("Content-Type", http.DetectContentType(res.Output))
	w.Header().Set("Content-Length", strconv.Itoa(len(res.Output)))
	w.Header().Set("X-Sluice-Duration", res.Duration.Round(time.Microsecond).String())
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(res.Output)
	}
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
