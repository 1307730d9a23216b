package triggers

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicehq/sluice/fn"
)

func TestHeaderMeta(t *testing.T) {
	meta := map[string]string{}
	HeaderMeta(meta, http.Header{
		"Authorization": {"Bearer x"},
		"X-Multi":       {"1", "2"},
		"Cookie":        {"a=1", "b=2"},
		"Content-Type":  {"application/json"},
	})
	want := map[string]string{
		"http.header.authorization": "Bearer x",
		"http.header.x-multi":       "1, 2",
		"http.header.cookie":        "a=1; b=2",
		"http.header.content-type":  "application/json",
		"http.headers":              "Authorization: Bearer x\nContent-Type: application/json\nCookie: a=1\nCookie: b=2\nX-Multi: 1\nX-Multi: 2\n",
	}
	if len(meta) != len(want) {
		t.Fatalf("HeaderMeta = %q, want %q", meta, want)
	}
	for k, v := range want {
		if meta[k] != v {
			t.Errorf("%s = %q, want %q", k, meta[k], v)
		}
	}
	empty := map[string]string{}
	HeaderMeta(empty, nil)
	if v, ok := empty["http.headers"]; !ok || v != "" || len(empty) != 1 {
		t.Errorf("no headers: %q", empty)
	}
}

func BenchmarkHeaderMeta(b *testing.B) {
	h := http.Header{"User-Agent": {"Go-http-client/1.1"}, "Content-Type": {"application/octet-stream"}, "Authorization": {"Bearer t0k"}, "X-Multi": {"1", "2"}}
	b.ReportAllocs()
	for b.Loop() {
		HeaderMeta(make(map[string]string, 16), h)
	}
}

// The answer of a function's result: as before when it set nothing; its
// status, headers and Content-Type when it did; no body where HTTP allows
// none.
func TestWriteResult(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		res          fn.Result
		status       int
		header       map[string]string
		body         string
	}{
		{name: "set nothing", method: "POST", res: fn.Result{Output: []byte(`{"a":1}`)}, status: 200,
			header: map[string]string{"Content-Type": "text/plain; charset=utf-8", "Content-Length": "7"}, body: `{"a":1}`},
		{name: "created", method: "POST", res: fn.Result{Output: []byte(`{}`), Status: 201, Header: map[string][]string{"Content-Type": {"application/json"}, "Location": {"/x"}}},
			status: 201, header: map[string]string{"Content-Type": "application/json", "Location": "/x", "Content-Length": "2"}, body: `{}`},
		{name: "headers without a status", method: "POST", res: fn.Result{Output: []byte("hi"), Header: map[string][]string{"X-A": {"1"}}},
			status: 200, header: map[string]string{"X-A": "1", "Content-Type": "text/plain; charset=utf-8"}, body: "hi"},
		{name: "no content", method: "DELETE", res: fn.Result{Output: []byte("dropped"), Status: 204}, status: 204, header: map[string]string{"Content-Length": ""}, body: ""},
		{name: "head", method: "HEAD", res: fn.Result{Output: []byte("abc"), Status: 404}, status: 404, header: map[string]string{"Content-Length": "3"}, body: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeResult(w, httptest.NewRequest(tc.method, "/fn/x", nil), tc.res)
			if w.Code != tc.status || w.Body.String() != tc.body {
				t.Fatalf("answer %d %q, want %d %q", w.Code, w.Body.String(), tc.status, tc.body)
			}
			for k, v := range tc.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}
