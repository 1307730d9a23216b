package triggers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/triggers/route"
)

// match looks a request path up in a table of one route.
func match(t *testing.T, pattern, rawPath string) route.Match[HTTPRoute] {
	t.Helper()
	p, err := route.Parse(pattern)
	if err != nil {
		t.Fatal(err)
	}
	tab := route.NewTable[HTTPRoute]()
	if err := tab.Add("t", p, "", HTTPRoute{Trigger: "t", Target: fn.Workflow("w"), Path: pattern, Request: true}); err != nil {
		t.Fatal(err)
	}
	m, ok, _ := tab.Lookup(rawPath, "GET")
	if !ok {
		t.Fatalf("%s does not match %s", rawPath, pattern)
	}
	return m
}

// The request as a workflow's input: every part, and the body as JSON
// (verbatim), text or base64 by what it is.
func TestWorkflowInput(t *testing.T) {
	binary := []byte{0, 0xff, 0xfe, 'a', 0x80}
	for _, tc := range []struct {
		name, ct string
		body     []byte
		want     string // the body's part of the input
	}{
		{"json", "application/json; charset=utf-8", []byte(`{"n": 12345678901234567890, "f": 1.50}`), `"body":{"n": 12345678901234567890, "f": 1.50}`},
		{"json suffix", "application/problem+json", []byte(`[1]`), `"body":[1]`},
		{"json that is not", "application/json", []byte(`{"n":`), `"body":"{\"n\":"`},
		{"json text as text", "text/plain", []byte(`{"n":1}`), `"body":"{\"n\":1}"`},
		{"no content type", "", []byte(`null`), `"body":"null"`},
		{"empty", "application/json", nil, `"body":""`},
		{"html is not escaped", "text/html", []byte(`<a href="x">&</a>`), `"body":"<a href=\"x\">&</a>"`},
		{"binary", "application/octet-stream", binary, `"body_base64":"` + base64.StdEncoding.EncodeToString(binary) + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://example.com/fn/orders/a%2Fb/x/y?q=1&q=2&e=&bad=%zz", bytes.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.ct)
			r.Header.Add("Cookie", "a=1")
			r.Header.Add("Cookie", "b=2")
			r.Header.Add("X-Many", "1")
			r.Header.Add("X-Many", "2")
			path, raw := requestPath(r.URL)
			doc := workflowInput(r, match(t, "/orders/{id}/*", raw), path, raw, tc.body)
			if !json.Valid(doc) || !bytes.HasSuffix(doc, []byte(","+tc.want+"}")) {
				t.Fatalf("input %s\nwant it to end with %s", doc, tc.want)
			}
			var in struct {
				requestInput
				Body       any    `json:"body"`
				BodyBase64 string `json:"body_base64"`
			}
			if err := json.Unmarshal(doc, &in); err != nil {
				t.Fatal(err)
			}
			rest := "x/y"
			want := requestInput{
				Method: "POST", Path: "/orders/a/b/x/y", RawPath: "/orders/a%2Fb/x/y", Route: "/orders/{id}/*",
				Params: map[string]string{"id": "a/b"}, Rest: &rest,
				Query: map[string]string{"q": "1", "e": ""}, QueryAll: map[string][]string{"q": {"1", "2"}, "e": {""}}, RawQuery: "q=1&q=2&e=&bad=%zz",
				Headers:    map[string]string{"content-type": tc.ct, "cookie": "a=1; b=2", "x-many": "1, 2", "host": "example.com"},
				HeadersAll: map[string][]string{"content-type": {tc.ct}, "cookie": {"a=1", "b=2"}, "x-many": {"1", "2"}, "host": {"example.com"}},
			}
			if !reflect.DeepEqual(in.requestInput, want) {
				t.Fatalf("input %s\n got %+v\nwant %+v", doc, in.requestInput, want)
			}
		})
	}
}

// An exact route's input has empty params and no rest: never null, so
// that ${ input.params.id } and the like need no guard.
func TestWorkflowInputOfAnExactRoute(t *testing.T) {
	r := httptest.NewRequest("GET", "http://h/fn/x", nil)
	doc := workflowInput(r, match(t, "/x", "/x"), "/x", "/x", nil)
	var in map[string]any
	if err := json.Unmarshal(doc, &in); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"params", "query", "query_all"} {
		if m, ok := in[k].(map[string]any); !ok || len(m) != 0 {
			t.Fatalf("%s: %v in %s", k, in[k], doc)
		}
	}
	if _, ok := in["rest"]; ok || in["body"] != "" {
		t.Fatalf("input %s", doc)
	}
}

func TestDecodeResponse(t *testing.T) {
	bin := []byte{0, 0xff, 0x80, '\n'}
	for _, tc := range []struct {
		name   string
		out    string
		status int
		header http.Header
		body   string
		err    string // "" if it can be sent; "-" if it is not of the shape
	}{
		{"text", `hello`, 0, nil, "", "-"},
		{"a string", `"{\"status\": 201}"`, 0, nil, "", "-"},
		{"a list", `[{"status": 201}]`, 0, nil, "", "-"},
		{"no status", `{"body": "x"}`, 0, nil, "", "-"},
		{"a status that is not a number", `{"status": "ok", "data": 1}`, 0, nil, "", "-"},
		{"not JSON", `{"status": 201`, 0, nil, "", "-"},
		{"status alone", `{"status": 204}`, 204, http.Header{}, "", ""},
		{"text body", `{"status": 201, "headers": {"location": "/orders/42", "Set-Cookie": ["a=1", "b=2"]}, "body": "made"}`, 201,
			http.Header{"Location": {"/orders/42"}, "Set-Cookie": {"a=1", "b=2"}, "Content-Type": {"text/plain; charset=utf-8"}}, "made", ""},
		{"JSON body kept as written", `{"status": 400, "body": {"n": 1.50, "big": 12345678901234567890}}`, 400,
			http.Header{"Content-Type": {"application/json"}}, `{"n": 1.50, "big": 12345678901234567890}`, ""},
		{"JSON body with its own type", `{"status": 200, "headers": {"content-type": "application/problem+json"}, "body": [1]}`, 200,
			http.Header{"Content-Type": {"application/problem+json"}}, `[1]`, ""},
		{"null body", `{"status": 200, "body": null}`, 200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, "", ""},
		{"base64 body", `{"status": 200, "body_base64": "` + base64.StdEncoding.EncodeToString(bin) + `"}`, 200,
			http.Header{"Content-Type": {"application/octet-stream"}}, string(bin), ""},
		{"a number header", `{"status": 503, "headers": {"Retry-After": 120}}`, 503,
			http.Header{"Retry-After": {"120"}, "Content-Type": {"text/plain; charset=utf-8"}}, "", ""},
		{"status out of range", `{"status": 99}`, 0, nil, "", "status 99 is not an HTTP status (want 200 to 599)"},
		{"interim status", `{"status": 101}`, 0, nil, "", "status 101"},
		{"status too big", `{"status": 600}`, 0, nil, "", "status 600"},
		{"fractional status", `{"status": 200.5}`, 0, nil, "", "status 200.5"},
		{"misspelt field", `{"status": 200, "header": {}}`, 0, nil, "", `field "header" is not one of a response's (status, headers, body, body_base64)`},
		{"both bodies", `{"status": 200, "body": "a", "body_base64": "YQ=="}`, 0, nil, "", "both body and body_base64"},
		{"bad base64", `{"status": 200, "body_base64": "not base64!"}`, 0, nil, "", "body_base64: illegal base64"},
		{"body with 204", `{"status": 204, "body": "x"}`, 0, nil, "", "status 204 has no body"},
		{"CRLF in a value", `{"status": 200, "headers": {"X-A": "a\r\nSet-Cookie: evil=1"}}`, 0, nil, "", "the value of header X-A holds the control byte '\\r'"},
		{"LF in a value", `{"status": 200, "headers": {"X-A": ["ok", "a\nb"]}}`, 0, nil, "", "the value of header X-A holds the control byte '\\n'"},
		{"bad name", `{"status": 200, "headers": {"X A": "1"}}`, 0, nil, "", `header name "X A" holds ' ', which is not allowed`},
		{"framing, dropped", `{"status": 200, "headers": {"content-length": "1", "X-A": "1"}}`, 200, http.Header{"X-A": {"1"}, "Content-Type": {"text/plain; charset=utf-8"}}, "", ""},
		{"hop by hop, dropped", `{"status": 200, "headers": {"Transfer-Encoding": "chunked"}}`, 200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, "", ""},
		{"sluice's own, dropped", `{"status": 200, "headers": {"x-sluice-invocation": "forged"}}`, 200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, "", ""},
		{"the request's id, dropped", `{"status": 200, "headers": {"X-Request-ID": "forged"}}`, 200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, "", ""},
		{"headers not an object", `{"status": 200, "headers": ["a"]}`, 0, nil, "", "headers [\"a\"]: want an object"},
		{"a value of the wrong type", `{"status": 200, "headers": {"X-A": {"b": 1}}}`, 0, nil, "", "header X-A: value {\"b\": 1}: want a string"},
		{"too many values", `{"status": 200, "headers": {"X-A": [` + strings.Repeat(`"1",`, abi.MaxResponseHeaders) + `"1"]}}`, 0, nil, "", "more than 100 response header values"},
		{"too many bytes", `{"status": 200, "headers": {"X-A": "` + strings.Repeat("a", abi.MaxResponseHeaderBytes) + `"}}`, 0, nil, "", "response headers over 64 KiB in total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, ok, err := decodeResponse([]byte(tc.out))
			switch {
			case tc.err == "-":
				if ok || err != nil {
					t.Fatalf("%s: read as a response (%v)", tc.out, err)
				}
			case tc.err != "":
				if !ok || err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
			case err != nil || !ok:
				t.Fatalf("%v %v", ok, err)
			case resp.status != tc.status || !reflect.DeepEqual(resp.header, tc.header) || string(resp.body) != tc.body:
				t.Fatalf("got %d %v %q, want %d %v %q", resp.status, resp.header, resp.body, tc.status, tc.header, tc.body)
			}
		})
	}
}

// A hostile workflow output never panics the decoding, and what it lets
// through can be sent: a status net/http sends as it is, header names
// that are tokens and values that cannot split the response, none of the
// headers net/http or sluice write, within the limits.
func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{
		`{"status": 201, "headers": {"Location": "/x", "Set-Cookie": ["a=1", "b=2"]}, "body": {"id": 1}}`,
		`{"status": 200, "body_base64": "AP8="}`,
		`{"status": 200, "headers": {"X-A": "a\r\nB: c"}}`,
		`{"status": 204, "headers": {"": "x"}}`,
		`{"status": 1e3}`, `{"status": -1}`, `{"status": 200, "status": 300}`,
		`{"status": 200, "headers": {"x-a": 1, "X-A": ["2"]}}`,
		`{"status": 200, "headers": null, "body": null}`,
		`hello`, `"x"`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		resp, ok, err := decodeResponse(out)
		if !ok || err != nil {
			return
		}
		if resp.status < 200 || resp.status > 599 {
			t.Fatalf("status %d", resp.status)
		}
		count, size := 0, 0
		for name, vs := range resp.header {
			if abi.CheckHeader(name, "") != nil || name != http.CanonicalHeaderKey(name) || abi.DroppedHeader(name) && name != "Content-Type" {
				t.Fatalf("header name %q", name)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("header %s: value %q", name, v)
				}
				count++
				size += len(name) + len(v)
			}
		}
		if count > abi.MaxResponseHeaders+1 || size > abi.MaxResponseHeaderBytes+len("Content-Type")+64 { // + the Content-Type set
			t.Fatalf("%d values, %d bytes", count, size)
		}
		if !resp.bodyAllowed() && len(resp.body) > 0 {
			t.Fatalf("status %d with a body", resp.status)
		}
		// what net/http makes of it: one response, as decoded
		rec := httptest.NewRecorder()
		for name, vs := range resp.header {
			rec.Header()[name] = vs
		}
		rec.WriteHeader(resp.status)
		if rec.Code != resp.status {
			t.Fatalf("written %d, want %d", rec.Code, resp.status)
		}
	})
}

// The cost of the request as a workflow's input and of reading its
// output as a response: a 1 KiB JSON body, ten headers, a query.
func BenchmarkWorkflowRequestAndResponse(b *testing.B) {
	body := []byte(`{"items": [` + strings.Repeat(`{"sku": "a-1", "n": 2},`, 44) + `{"sku": "z", "n": 1}]}`)
	r := httptest.NewRequest("POST", "http://h/fn/orders/42?tag=a&tag=b&page=2", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for i := range 9 {
		r.Header.Set("X-Header-"+string(rune('a'+i)), "some value of a header")
	}
	p, _ := route.Parse("/orders/{id}")
	tab := route.NewTable[HTTPRoute]()
	_ = tab.Add("t", p, "", HTTPRoute{Path: "/orders/{id}"})
	m, _, _ := tab.Lookup("/orders/42", "POST")
	out := []byte(`{"status": 201, "headers": {"Location": "/orders/42", "Set-Cookie": ["a=1", "b=2"]}, "body": {"id": "42", "total": 12.5}}`)
	b.Run("input", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			workflowInput(r, m, "/orders/42", "/orders/42", body)
		}
	})
	b.Run("response", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := decodeResponse(out); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}
