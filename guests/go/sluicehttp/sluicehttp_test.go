//go:build !wasip1

package sluicehttp

import (
	"io"
	"net/http"
	"strings"
	"testing"

	sluice "github.com/sluicehq/sluice/guests/go"
)

// The request a handler gets is the one the trigger received: method,
// escaped path, query, headers (repeated ones too), Host, RemoteAddr,
// the route's parameters and the body.
func TestRequest(t *testing.T) {
	var got *http.Request
	var body string
	Handle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusAccepted)
		w.WriteHeader(http.StatusTeapot) // ignored, as net/http does
	}))
	out, err := sluice.CallResponse([]byte("hello"), map[string]string{
		"http.method": "PUT", "http.path": "/users/a/b", "http.path.raw": "/users/a%2Fb", "http.query": "x=1",
		"http.route": "/users/{id}", "http.param.id": "a/b", "http.host": "example.com", "http.remote": "10.0.0.1:5000",
		"http.proto": "HTTP/2.0", "http.headers": "Authorization: Bearer t\nX-Multi: 1\nX-Multi: 2\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case got.Method != "PUT", got.URL.EscapedPath() != "/users/a%2Fb", got.URL.Path != "/users/a/b", got.URL.RawQuery != "x=1",
		got.PathValue("id") != "a/b", got.Host != "example.com", got.RemoteAddr != "10.0.0.1:5000", got.ProtoMajor != 2,
		got.Header.Get("Authorization") != "Bearer t", strings.Join(got.Header.Values("X-Multi"), ",") != "1,2",
		got.ContentLength != 5, body != "hello":
		t.Fatalf("request: %+v, body %q", got, body)
	}
	if out.Status != http.StatusAccepted || strings.Join(out.Header["Set-Cookie"], ",") != "a=1,b=2" {
		t.Fatalf("response: %+v", out)
	}
}
