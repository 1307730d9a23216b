package triggers

import (
	"net/http"
	"testing"
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
