package engine

// This file has the http built-in: a task that sends one HTTP request
// through Options.HTTP (the daemon's outbound client, which allows only
// the hosts of `sluice daemon --allow-http`) and outputs the response as
// {status, headers, body}. See engine/README.md, "Calling out: the http
// built-in".

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/jsonquote"
	"github.com/sluicehq/sluice/logctx"
)

// builtinHTTP is the http built-in's run:.
const builtinHTTP = "http"

// httpInputs are the inputs of an http task.
var httpInputs = []string{"url", "method", "headers", "body"}

// maxMethod bounds a method's length: the longest registered one
// (UPDATEREDIRECTREF, 17) and then some.
const maxMethod = 32

// httpToken is an HTTP token (RFC 9110): what a method and a header name
// are made of.
var httpToken = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")

// ErrHTTPOff: the engine was given no Options.HTTP; every http task
// fails with it.
var ErrHTTPOff = errcode.Sentinel(errcode.InvalidArgument,
	"the http built-in is off on this daemon: start it with --allow-http HOST[:PORT],... naming the hosts workflows may call")

// httpStatusError is a response whose status says to try again later
// (408, 429, 5xx): a failed attempt, retried by retry:. retryAfter is
// the Retry-After of a 429 or 503 (http_retryafter.go).
type httpStatusError struct{ msg, retryAfter string }

func (e *httpStatusError) Error() string           { return e.msg }
func (e *httpStatusError) ErrorCode() errcode.Code { return errcode.Unavailable }

// retryStatus tells whether a status is a failed attempt rather than an
// output: the server asks to come back (408 Request Timeout, 429 Too Many
// Requests) or failed itself (5xx). Any other status, 4xx included, is
// the server's answer to this request, which sending it again would not
// change: the task's output, for the workflow to read.
func retryStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// httpInputs parses an http task's inputs: a mapping of url, method,
// headers and body, each a value; what is written without expressions
// is checked here (the URL, the method, the header names), the rest when
// the task runs. A whole expression is allowed, and checked when it runs.
func (p *parser) httpInputs(t *taskSpec, n *yaml.Node, what string) {
	shape := "{url: URL, method: GET, headers: {NAME: VALUE}, body: VALUE}"
	if n == nil {
		p.errorf(t.line, "%s: http takes inputs: %s", what, shape)
		return
	}
	literal := func(v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && !strings.Contains(v.Value, "${") }
	if n.Kind != yaml.MappingNode {
		t.inputs = p.value(n, t.scope)
		if t.inputs.static {
			p.errorf(n.Line, "%s: http takes inputs: %s", what, shape)
		}
		return
	}
	p.fields(n, what+": http", func(key string, k, v *yaml.Node) {
		switch key {
		case "url":
			if literal(v) {
				if err := checkHTTPURL(v.Value); err != nil {
					p.errorf(v.Line, "%s: http: %v", what, err)
				}
			}
		case "method":
			if literal(v) {
				if err := checkMethod(v.Value); err != nil {
					p.errorf(v.Line, "%s: http: %v", what, err)
				}
			}
		case "headers":
			if v.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(v.Content); i += 2 {
					if name := v.Content[i]; literal(name) && !httpToken.MatchString(name.Value) {
						p.errorf(name.Line, "%s: http: header name %q: letters, digits and !#$%%&'*+-.^_`|~ only", what, name.Value)
					}
					if val := v.Content[i+1]; val.Kind == yaml.MappingNode {
						p.secretHeader(v.Content[i].Value, val, what)
					}
				}
			} else if literal(v) && v.Tag != "!!null" {
				p.errorf(v.Line, "%s: http: headers: want a map of names to a string or a list of strings", what)
			}
		case "body":
		default:
			p.errorf(k.Line, "%s: http: unknown input %q (inputs: %s)", what, key, strings.Join(httpInputs, ", "))
		}
	}, "url")
	t.inputs = p.value(n, t.scope)
}

// checkHTTPURL checks what can be known of a URL without the daemon's
// allow-list: it parses, is http or https, names a host, and carries no
// user info. The daemon's client checks the rest when the request is
// sent.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("url %q does not parse: %v", clip(raw), err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url %q: want an http:// or https:// URL", clip(raw))
	case u.Host == "":
		return fmt.Errorf("url %q names no host", clip(raw))
	case u.User != nil:
		return fmt.Errorf("url %q carries user info (the part before @): give credentials in headers (Authorization)", clip(raw))
	}
	return nil
}

func checkMethod(m string) error {
	if len(m) > maxMethod || !httpToken.MatchString(m) {
		return fmt.Errorf("method %q is not an HTTP method (a word like GET or POST)", clip(m))
	}
	return nil
}

// httpRequest is an http task's request as its TaskScheduled records
// it: the body goes beside it, as data (the task's child value).
// Secrets names the secret of each header that takes one: the name, not
// the value, is recorded, and every attempt (a retry, a takeover, a
// redrive) resolves it again when it sends.
type httpRequest struct {
	URL     string              `json:"url"`
	Method  string              `json:"method"`
	Headers map[string][]string `json:"headers,omitempty"`
	Secrets map[string]string   `json:"secrets,omitempty"`
}

// httpInput checks an http task's evaluated inputs and splits them into
// the request (d, read when the call starts) and its body (child, as
// data, exactly: the bytes a passed-on value holds, a string's bytes,
// bytes, or any other value as its JSON, with Content-Type
// application/json unless headers give one).
func httpInput(spec *taskSpec, v *view, b *budget) (d, child datum, err error) {
	fail := func(format string, args ...any) (datum, datum, error) {
		return datum{}, datum{}, spec.inputs.failed(fmt.Errorf("http: "+format, args...))
	}
	// A body that passes a stored value on is that value, not evaluated
	// (a value stored apart is not read).
	inputs := spec.inputs
	if p, ok := v.passed(httpBody(spec)); ok && p.data {
		child = p
		inputs = withoutBody(inputs)
	}
	en, err := v.env(b, inputs)
	if err != nil {
		return datum{}, datum{}, spec.inputs.failed(err)
	}
	x, err := inputs.eval(en, b)
	if err != nil {
		return datum{}, datum{}, err
	}
	m, ok := x.(map[string]any)
	if !ok {
		return fail("inputs is %s, want a map {url, method, headers, body}", brief(x))
	}
	for _, k := range sortedKeys(m) {
		if !slices.Contains(httpInputs, k) {
			return fail("unknown input %q (inputs: %s)", k, strings.Join(httpInputs, ", "))
		}
	}
	req := httpRequest{Method: http.MethodGet}
	u, ok := m["url"].(string)
	if !ok {
		return fail("url is %s, want a string", brief(m["url"]))
	}
	if err := checkHTTPURL(u); err != nil {
		return fail("%v", err)
	}
	req.URL = u
	switch method := m["method"].(type) {
	case nil:
	case string:
		if err := checkMethod(method); err != nil {
			return fail("%v", err)
		}
		req.Method = method
	default:
		return fail("method is %s, want a string like GET or POST", brief(method))
	}
	if req.Headers, req.Secrets, err = httpHeaders(m["headers"]); err != nil {
		return fail("%v", err)
	}
	if body := m["body"]; body != nil {
		switch b := body.(type) {
		case []byte:
			child = dataValue(b)
		case string:
			child = dataValue([]byte(b))
		default:
			// measured first, as any value; sent without HTML escapes
			if _, err := storable(b, v.limit()); err != nil {
				return fail("body: %v", err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(b); err != nil {
				return fail("body: %v", err)
			}
			child = dataValue(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		}
	}
	if child.data && child.ref == nil && len(child.b) > v.limit() {
		return fail("%v", tooLarge("the body", len(child.b), v.limit()))
	}
	if child.data && child.size() > 0 && child.form == "" && !hasHeader(req.Headers, "Content-Type") {
		if req.Headers == nil {
			req.Headers = map[string][]string{}
		}
		req.Headers["Content-Type"] = []string{"application/json"}
	}
	if child.data {
		if child, err = v.store(child, "http body"); err != nil {
			return fail("%v", err)
		}
	}
	recorded := map[string]any{"url": req.URL, "method": req.Method, "headers": anyHeaders(req.Headers)}
	if len(req.Secrets) > 0 {
		recorded["secrets"] = req.Secrets
	}
	if d, err = storable(recorded, MaxData); err != nil {
		return fail("%v", err)
	}
	return d, child, nil
}

// httpBody is the value of an http task's body: input, if it is written.
func httpBody(spec *taskSpec) *value {
	if spec.inputs == nil || spec.inputs.kind != kindMap {
		return nil
	}
	for i, k := range spec.inputs.keys {
		if k == "body" {
			return spec.inputs.elems[i]
		}
	}
	return nil
}

// withoutBody is an http task's inputs without the body.
func withoutBody(in *value) *value {
	out := *in
	out.keys, out.elems = nil, nil
	for i, k := range in.keys {
		if k != "body" {
			out.keys = append(out.keys, k)
			out.elems = append(out.elems, in.elems[i])
		}
	}
	return &out
}

// httpHeaders reads headers: a map of names to a string, a number, a
// list of strings, or {secret: NAME} (in secrets, by name).
func httpHeaders(x any) (headers map[string][]string, secrets map[string]string, err error) {
	if x == nil {
		return nil, nil, nil
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("headers is %s, want a map of names to a string or a list of strings", brief(x))
	}
	out := make(map[string][]string, len(m))
	for _, name := range sortedKeys(m) {
		v := m[name]
		if !httpToken.MatchString(name) {
			return nil, nil, fmt.Errorf("header name %q: letters, digits and !#$%%&'*+-.^_`|~ only", clip(name))
		}
		if sm, ok := v.(map[string]any); ok {
			secret, err := secretRef(name, sm)
			if err != nil {
				return nil, nil, err
			}
			for other := range m {
				if other != name && strings.EqualFold(other, name) {
					return nil, nil, fmt.Errorf("header %s takes a secret and is given again as %s", name, other)
				}
			}
			if secrets == nil {
				secrets = map[string]string{}
			}
			secrets[name] = secret
			continue
		}
		var values []string
		switch v := v.(type) {
		case string:
			values = []string{v}
		case int, int64, float64, json.Number:
			values = []string{stringify(v)}
		case []any:
			for _, el := range v {
				s, ok := el.(string)
				if !ok {
					return nil, nil, fmt.Errorf("header %s: %s in its list is not a string", name, brief(el))
				}
				values = append(values, s)
			}
		default:
			return nil, nil, fmt.Errorf("header %s is %s, want a string, a list of strings or {secret: NAME}", name, brief(v))
		}
		for _, s := range values {
			if strings.ContainsAny(s, "\r\n\x00") {
				return nil, nil, fmt.Errorf("header %s: a value holds CR, LF or NUL", name)
			}
		}
		out[name] = values
	}
	return out, secrets, nil
}

func anyHeaders(h map[string][]string) any {
	if h == nil {
		return nil
	}
	return h
}

func hasHeader(h map[string][]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// driveHTTP runs an http task: first attempt, retry after its backoff,
// or again after a restart found it started and not finished (at least
// once: the request may be sent again).
func (e *Engine) driveHTTP(inv *invState, spec *taskSpec, t *taskState) {
	e.driveAttempts(inv, spec, t, (*Engine).callHTTP)
}

// callHTTP writes TaskStarted and sends the request on its own
// goroutine, as a function is called: canceled with the invocation, its
// outcome recorded by called.
func (e *Engine) callHTTP(inv *invState, spec *taskSpec, t *taskState) {
	attempt := t.attempts + 1
	e.emit(inv, nil, &Event{Type: EventTaskStarted, Task: t.id, Attempt: attempt})
	base := logctx.With(context.Background(), slog.String(logctx.Invocation, inv.id), slog.String(logctx.Task, t.id))
	input, body := t.input, t.child
	e.runAttempt(inv, spec, t, attempt, base, func(ctx context.Context) (datum, error) {
		return e.sendHTTP(ctx, input, body)
	})
}

// sendHTTP sends an http task's request and makes its output.
func (e *Engine) sendHTTP(ctx context.Context, input, body datum) (datum, error) {
	if e.o.HTTP == nil {
		return datum{}, ErrHTTPOff
	}
	in, err := e.load(ctx, input)
	if err != nil {
		return datum{}, err
	}
	var rec httpRequest
	if err := json.Unmarshal(in.b, &rec); err != nil {
		return datum{}, fmt.Errorf("http: the recorded request cannot be read: %v", err)
	}
	req := HTTPRequest{Method: rec.Method, URL: rec.URL, Header: http.Header{}, Secrets: rec.Secrets}
	for name, values := range rec.Headers {
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	if body.data {
		b, err := e.load(ctx, body)
		if err != nil {
			return datum{}, err
		}
		req.Body = b.b
		if req.Body == nil {
			req.Body = []byte{}
		}
	}
	resp, err := e.o.HTTP.Do(ctx, req)
	if err != nil {
		return datum{}, err
	}
	if retryStatus(resp.Status) {
		return datum{}, statusError(req, resp)
	}
	out, err := httpOutput(resp)
	if err != nil {
		return datum{}, err
	}
	return jsonValue(out), nil
}

// httpOutput is a response as the task's output: {status, headers,
// body} as a workflow behind an HTTP route answers it, so that passing it
// on answers the same. Header names are in lower case, each with its
// value, or the list of its values if it has several. The body is the
// JSON value if the response is JSON (Content-Type application/json or
// +json, and the body one JSON document), else a string if it is UTF-8
// text, else body_base64 (standard, padded).
func httpOutput(resp HTTPResponse) (json.RawMessage, error) {
	headers := make(map[string]any, len(resp.Header))
	all := map[string][]string{}
	for name, values := range resp.Header {
		n := strings.ToLower(name)
		all[n] = append(all[n], values...)
	}
	for n, values := range all {
		if len(values) == 1 {
			headers[n] = values[0]
		} else {
			headers[n] = values
		}
	}
	out := struct {
		Status     int             `json:"status"`
		Headers    map[string]any  `json:"headers"`
		Body       json.RawMessage `json:"body,omitempty"`
		BodyBase64 *string         `json:"body_base64,omitempty"`
	}{Status: resp.Status, Headers: headers}
	b := resp.Body
	switch {
	case isJSONType(resp.Header.Get("Content-Type")) && json.Valid(b) && jsonDepthOK(b, MaxDepth):
		out.Body = b
	case utf8.Valid(b):
		out.Body = jsonquote.Append(nil, b)
	default:
		s := base64.StdEncoding.EncodeToString(b)
		out.BodyBase64 = &s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("http: the response cannot be made a value: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// isJSONType tells whether a Content-Type is JSON: application/json or a
// structured syntax suffix +json (RFC 6839).
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// bodyHint quotes the start of a failed response's body, for the message.
func bodyHint(b []byte) string {
	const max = 200
	if len(b) == 0 {
		return ""
	}
	if !utf8.Valid(b) {
		return fmt.Sprintf(" (%d bytes of body)", len(b))
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return ": " + s
}

// redact drops a URL's query from a message: it may hold a key.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return clip(raw)
	}
	u.RawQuery, u.Fragment = "", ""
	return u.Redacted()
}
