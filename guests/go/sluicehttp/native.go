//go:build !wasip1

package sluicehttp

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	sluice "github.com/sluicehq/sluice/guests/go"
)

// Do runs the registered handler natively on r, as sluice would run it
// behind an HTTP trigger whose route is route (e.g. "/users/{id}", or ""
// for the request's own path), and returns its answer; for unit tests of
// a handler. It exists only in native builds.
func Do(r *http.Request, route string) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
	}
	if route == "" {
		route = r.URL.Path
	}
	meta := map[string]string{
		"http.method":   r.Method,
		"http.path":     r.URL.Path,
		"http.path.raw": r.URL.EscapedPath(),
		"http.query":    r.URL.RawQuery,
		"http.route":    route,
		"http.host":     r.Host,
		"http.remote":   r.RemoteAddr,
		"http.proto":    r.Proto,
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range r.Header {
			if !yield(k) {
				return
			}
		}
	})
	var block strings.Builder
	for _, name := range names {
		meta["http.header."+strings.ToLower(name)] = strings.Join(r.Header[name], ", ")
		for _, v := range r.Header[name] {
			block.WriteString(name + ": " + v + "\n")
		}
	}
	meta["http.headers"] = block.String()
	for i, seg := range strings.Split(route, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			if parts := strings.Split(r.URL.Path, "/"); i < len(parts) {
				meta["http.param."+seg[1:len(seg)-1]] = parts[i]
			}
		}
	}
	res, err := sluice.CallResponse(body, meta)
	if err != nil {
		return nil, err
	}
	status := res.Status
	if status == 0 {
		status = http.StatusOK
	}
	return &http.Response{
		Status:        statusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header(res.Header),
		Body:          io.NopCloser(bytes.NewReader(res.Output)),
		ContentLength: int64(len(res.Output)),
		Request:       r,
	}, nil
}

// statusText is a response's Status: "201 Created".
func statusText(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }
