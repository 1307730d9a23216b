// Package sluicehttp runs an http.Handler as a sluice function, so that
// a function behind an HTTP trigger is ordinary net/http code:
//
//	package main
//
//	import (
//		"net/http"
//
//		"github.com/sluicehq/sluice/guests/go/sluicehttp"
//	)
//
//	func init() {
//		mux := http.NewServeMux()
//		mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
//			w.Write([]byte("user " + r.PathValue("id")))
//		})
//		sluicehttp.Handle(mux)
//	}
//
//	func main() {}
//
// Each call becomes an *http.Request: the method, the URL (the path under
// /fn as the trigger received it, escapes kept, and the raw query), the
// headers, Host, RemoteAddr, Proto, the body with its ContentLength, and
// the trigger route's parameters as path values (r.PathValue("id") for
// a route /users/{id}, before a ServeMux sets its own). The handler's
// answer is buffered and becomes the call's status, headers and output.
// A panic fails the call (sluice answers 502 function_error).
//
// Called other than by an HTTP trigger (sluice fn invoke, a queue, a
// workflow) the request is a POST of the input to /.
//
// Natively (not GOOS=wasip1), Do runs the handler on a request, for
// unit tests.
package sluicehttp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	sluice "github.com/sluicehq/sluice/guests/go"
)

// Handle registers h as the function's handler. Call it once, from an
// init function.
func Handle(h http.Handler) {
	sluice.Handle(func(in []byte) ([]byte, error) {
		w := &responseWriter{header: http.Header{}}
		h.ServeHTTP(w, request(in))
		status := w.status
		if status == 0 {
			status = http.StatusOK
		}
		sluice.SetStatus(status)
		for name, values := range w.header {
			for _, v := range values {
				sluice.AddHeader(name, v)
			}
		}
		return w.body.Bytes(), nil
	})
}

// request makes the call's *http.Request from its metadata.
func request(in []byte) *http.Request {
	meta := func(k string) string { v, _ := sluice.Meta(k); return v }
	method := meta("http.method")
	if method == "" {
		method = http.MethodPost
	}
	path := meta("http.path")
	if path == "" {
		path = "/"
	}
	u := &url.URL{Path: path, RawQuery: meta("http.query")}
	if raw := meta("http.path.raw"); raw != "" && raw != u.EscapedPath() {
		u.RawPath = raw
	}
	r := &http.Request{
		Method:        method,
		URL:           u,
		RequestURI:    u.RequestURI(),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        parseHeaders(meta("http.headers")),
		Body:          io.NopCloser(bytes.NewReader(in)),
		ContentLength: int64(len(in)),
		Host:          meta("http.host"),
		RemoteAddr:    meta("http.remote"),
	}
	if p := meta("http.proto"); p != "" {
		if major, minor, ok := http.ParseHTTPVersion(p); ok {
			r.Proto, r.ProtoMajor, r.ProtoMinor = p, major, minor
		}
	}
	if len(in) == 0 {
		r.Body = http.NoBody
	}
	for _, name := range routeParams(meta("http.route")) {
		if v, ok := sluice.Meta("http.param." + name); ok {
			r.SetPathValue(name, v)
		}
	}
	return r.WithContext(context.Background())
}

// parseHeaders reads the http.headers block: "Name: value" lines.
func parseHeaders(block string) http.Header {
	h := http.Header{}
	for line := range strings.Lines(block) {
		name, value, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		if ok {
			h[name] = append(h[name], value)
		}
	}
	return h
}

// routeParams lists the {NAME} parameters of a trigger's route.
func routeParams(route string) []string {
	var names []string
	for seg := range strings.SplitSeq(route, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			names = append(names, seg[1:len(seg)-1])
		}
	}
	return names
}

// responseWriter buffers a handler's answer.
type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 || code >= 100 && code < 200 {
		return // the first final status counts; 1xx are interim
	}
	w.status = code
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if _, ok := w.header["Content-Type"]; !ok && w.body.Len() == 0 && len(p) > 0 {
		w.header.Set("Content-Type", http.DetectContentType(p))
	}
	return w.body.Write(p)
}
