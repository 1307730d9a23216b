package triggers

// This file has the workflow side of the HTTP trigger with the
// HTTPRoute.Request option: the request, whole, as the workflow's input,
// and an output of the shape {status, headers, body} as the response. The
// README's "Workflows behind HTTP" documents both shapes.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/triggers/route"
	"github.com/sluicehq/sluice/units"
)

// requestInput is a request as a workflow with HTTPRoute.Request gets it.
// The body is not a field: it is written after the others (see
// workflowInput), so that a JSON body is its bytes as sent.
type requestInput struct {
	Method string `json:"method"`
	// Path is decoded, RawPath as sent; both are under HTTPPrefix.
	Path    string `json:"path"`
	RawPath string `json:"raw_path"`
	// Route is the trigger's route; Params its parameters' values and
	// Rest what its * matched (a prefix route's only).
	Route  string            `json:"route"`
	Params map[string]string `json:"params"`
	Rest   *string           `json:"rest,omitempty"`
	// Query has each name's first value, QueryAll all of them; RawQuery
	// is the query as sent.
	Query    map[string]string   `json:"query"`
	QueryAll map[string][]string `json:"query_all"`
	RawQuery string              `json:"raw_query"`
	// Headers has each header, its name in lower case, its values joined
	// as HTTP joins a repeated header (", "; "; " for cookie); HeadersAll
	// the values one by one.
	Headers    map[string]string   `json:"headers"`
	HeadersAll map[string][]string `json:"headers_all"`
}

// workflowInput is the input of a workflow with HTTPRoute.Request: the
// request's fields (requestInput), and its body as "body" or
// "body_base64": the parsed JSON value, verbatim, if the Content-Type is
// JSON (application/json or a +json type) and the body is JSON; else
// the body as a string if it is UTF-8 ("" if empty); else, binary,
// body_base64 (standard, padded).
func workflowInput(r *http.Request, m route.Match[HTTPRoute], path, raw string, body []byte) []byte {
	in := requestInput{
		Method: r.Method, Path: path, RawPath: raw, Route: m.Value.Path,
		Params: map[string]string{}, Query: map[string]string{}, QueryAll: map[string][]string{}, RawQuery: r.URL.RawQuery,
		Headers: map[string]string{}, HeadersAll: map[string][]string{},
	}
	for i, name := range m.Pattern.Params() {
		in.Params[name] = m.Params[i]
	}
	if m.Pattern.Prefix() {
		in.Rest = &m.Rest
	}
	// a malformed pair (a bad escape) is left out; raw_query has it
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for name, vs := range q {
		in.Query[name], in.QueryAll[name] = vs[0], vs
	}
	for name, vs := range r.Header {
		name = strings.ToLower(name)
		in.HeadersAll[name] = append(in.HeadersAll[name], vs...)
	}
	if r.Host != "" { // net/http moves it out of the header
		in.HeadersAll["host"] = []string{r.Host}
	}
	for name, vs := range in.HeadersAll {
		sep := ", "
		if name == "cookie" {
			sep = "; "
		}
		in.Headers[name] = strings.Join(vs, sep)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(in) // strings and maps of strings
	// room for the body as base64, the largest it can be written
	doc := make([]byte, 0, b.Len()+base64.StdEncoding.EncodedLen(len(body))+32)
	doc = append(doc, bytes.TrimSuffix(b.Bytes(), []byte("}\n"))...)
	switch {
	case jsonMediaType(r.Header.Get("Content-Type")) && json.Valid(body):
		doc = append(append(doc, `,"body":`...), body...)
	case utf8.Valid(body):
		b.Reset()
		_ = enc.Encode(string(body))
		doc = append(append(doc, `,"body":`...), bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
	default:
		doc = append(doc, `,"body_base64":"`...)
		doc = base64.StdEncoding.AppendEncode(doc, body)
		doc = append(doc, '"')
	}
	return append(doc, '}')
}

// jsonMediaType tells whether a Content-Type is JSON: application/json or
// a structured syntax suffix +json (RFC 6839).
func jsonMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// serveRequestWorkflow serves a request with a workflow that gets the
// whole request (HTTPRoute.Request): c is the call ServeHTTP made, with
// the body as its input.
func (h *HTTP) serveRequestWorkflow(ctx context.Context, w http.ResponseWriter, r *http.Request, m route.Match[HTTPRoute], path, raw string, c fn.Call) {
	hr := m.Value
	c.Input = workflowInput(r, m, path, raw, c.Input)
	if limit := h.maxInput(hr.Target); len(c.Input) > limit {
		errcode.Write(w, errcode.New(errcode.InputTooLarge, fmt.Sprintf(
			"the request as the input of %s (its fields, headers and body; a binary body in base64) is %d bytes, over the input limit of %s: send a smaller body",
			hr.Target, len(c.Input), units.Bytes(uint64(limit)))))
		return
	}
	res, err := h.inv.Invoke(ctx, hr.Target, c)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	w.Header().Set("X-Sluice-Duration", res.Duration.Round(time.Microsecond).String())
	resp, ok, err := decodeResponse(res.Output)
	if err != nil {
		errcode.Write(w, errcode.New(errcode.InvalidResponse, fmt.Sprintf(
			"%s invocation %s succeeded, but its output has a status, so it is the response, and it cannot be sent: %v", hr.Target, c.ID, err)))
		return
	}
	if !ok { // not a response: the output is the body, as without Request
		w.Header().Set("Content-Type", http.DetectContentType(res.Output))
		w.Header().Set("Content-Length", strconv.Itoa(len(res.Output)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(res.Output)
		}
		return
	}
	for name, vs := range resp.header {
		w.Header()[name] = vs
	}
	if resp.bodyAllowed() {
		w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	w.WriteHeader(resp.status)
	if r.Method != http.MethodHead && len(resp.body) > 0 {
		_, _ = w.Write(resp.body)
	}
}

// workflowResponse is a workflow's output read as an HTTP response.
type workflowResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r *workflowResponse) bodyAllowed() bool {
	return r.status != http.StatusNoContent && r.status != http.StatusNotModified
}

// responseFields are the fields of the response shape.
var responseFields = []string{"status", "headers", "body", "body_base64"}

// decodeResponse reads a workflow's output as a response. An output is
// of the shape if it is a JSON object whose "status" is a number; ok is
// false for any other, which is answered as the body. err says why an
// output of the shape cannot be sent:
//
//   - status: an integer from 200 to 599 (net/http sends a 1xx status as
//     an interim answer, to be followed by a final one);
//   - headers: an object of names to a string, a number or a list of
//     strings, checked as a function's response headers are (see
//     decodeHeaders);
//   - body: a string's bytes, or any other JSON value as its JSON text
//     (Content-Type application/json unless headers set one); or
//     body_base64, standard base64 with padding, for bytes; not both,
//     and none with status 204 or 304. Without a Content-Type, one is
//     detected from the body (http.DetectContentType), as without
//     Request.
//
// Any other field is refused: it is a misspelt one.
func decodeResponse(out []byte) (resp *workflowResponse, ok bool, err error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 || out[0] != '{' {
		return nil, false, nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(out, &fields) != nil {
		return nil, false, nil
	}
	status, ok := fields["status"]
	if !ok || !isJSONNumber(status) {
		return nil, false, nil
	}
	for name := range fields {
		if !slices.Contains(responseFields, name) {
			return nil, true, fmt.Errorf("field %q is not one of a response's (%s)", name, strings.Join(responseFields, ", "))
		}
	}
	resp = &workflowResponse{header: http.Header{}}
	code, err := strconv.Atoi(string(status))
	if err != nil {
		return nil, true, fmt.Errorf("status %s: want an integer from %d to %d", clip(status), abi.MinHTTPStatus, abi.MaxHTTPStatus)
	}
	if err := abi.CheckStatus(int64(code)); err != nil {
		return nil, true, fmt.Errorf("status %w", err)
	}
	resp.status = code
	if err := resp.decodeHeaders(fields["headers"]); err != nil {
		return nil, true, err
	}
	body, hasBody := fields["body"]
	b64, hasB64 := fields["body_base64"]
	hasBody = hasBody && string(body) != "null"
	hasB64 = hasB64 && string(b64) != "null"
	switch {
	case hasBody && hasB64:
		return nil, true, fmt.Errorf("both body and body_base64: give one")
	case hasB64:
		var s string
		if json.Unmarshal(b64, &s) != nil {
			return nil, true, fmt.Errorf("body_base64 %s: want a string of standard base64", clip(b64))
		}
		if resp.body, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, true, fmt.Errorf("body_base64: %v: want standard base64 with padding", err)
		}
	case hasBody && body[0] == '"':
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, true, fmt.Errorf("body: %v", err)
		}
		resp.body = []byte(s)
	case hasBody:
		resp.body = body
		if resp.header.Get("Content-Type") == "" {
			resp.header.Set("Content-Type", "application/json")
		}
	}
	if !resp.bodyAllowed() {
		if len(resp.body) > 0 {
			return nil, true, fmt.Errorf("status %d has no body, and the output gives one of %d bytes", code, len(resp.body))
		}
		return resp, true, nil
	}
	if resp.header.Get("Content-Type") == "" {
		resp.header.Set("Content-Type", http.DetectContentType(resp.body))
	}
	return resp, true, nil
}

// decodeHeaders decodes and checks the headers of a response by the
// rules a function's response follows (abi.Headers): names are tokens,
// values hold no control byte but tab, within abi.MaxResponseHeaders and
// abi.MaxResponseHeaderBytes; the framing, hop-by-hop and sluice's own
// headers are dropped, as a function's are.
func (resp *workflowResponse) decodeHeaders(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var hs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &hs); err != nil {
		return fmt.Errorf("headers %s: want an object of names to a string or a list of strings", clip(raw))
	}
	var set abi.Headers
	for _, name := range slices.Sorted(maps.Keys(hs)) {
		v := hs[name]
		var values []string
		switch {
		case isJSONNumber(v):
			values = []string{string(v)}
		case len(v) > 0 && v[0] == '"':
			var s string
			if json.Unmarshal(v, &s) != nil {
				return fmt.Errorf("header %s: value %s is not a string", clip([]byte(name)), clip(v))
			}
			values = []string{s}
		default:
			if json.Unmarshal(v, &values) != nil {
				return fmt.Errorf("header %s: value %s: want a string, a number or a list of strings", clip([]byte(name)), clip(v))
			}
		}
		for _, s := range values {
			if err := set.Add(name, s); err != nil {
				return err
			}
		}
	}
	for name, values := range set.Header {
		resp.header[name] = values
	}
	return nil
}

func isJSONNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// clip shortens what a message quotes of a hostile output.
func clip(b []byte) string {
	const max = 64
	if len(b) <= max {
		return string(b)
	}
	return string(b[:max]) + "..."
}
