package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/errcode"
)

func mustList(t testing.TB, entries ...string) *AllowList {
	t.Helper()
	a, err := ParseAllowList(entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseAllowList(t *testing.T) {
	tests := []struct {
		entry string
		err   string // "" for accepted
	}{
		{"api.example.com", ""},
		{"API.Example.com:8443", ""},
		{"127.0.0.1:8080", ""},
		{"127.0.0.1", ""},
		{"::1", ""},
		{"[::1]:8080", ""},
		{"*.example.com", ""},
		{"*.example.com:443", ""},
		{"http://api.example.com", "not a URL"},
		{"user@api.example.com", "not a URL"},
		{"api.example.com.", "ends with a dot"},
		{"bücher.example", "xn--"},
		{"2130706433", "dotted decimal"},
		{"0x7f.0.0.1", "dotted decimal"},
		{"0177.0.0.1", "dotted decimal"},
		{"api.example.com:0", "port"},
		{"api.example.com:99999", "port"},
		{"*", "host"},
		{"*.", "no host"},
		{"a_b.example.com", "letters, digits"},
		{"-a.example.com", "start or end"},
		{"[fe80::1%eth0]:80", "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			_, err := ParseAllowList([]string{tt.entry})
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && err == nil:
				t.Fatal("accepted")
			case tt.err != "" && !strings.Contains(err.Error(), tt.err):
				t.Fatalf("error %q does not say %q", err, tt.err)
			}
		})
	}
}

// TestURLTricks checks what the allow-list lets through: the URL's own
// host and port, in any case, and nothing that only looks like it.
func TestURLTricks(t *testing.T) {
	list := mustList(t, "allowed.example:8080", "plain.example", "127.0.0.1:9000", "*.wild.example")
	c := New(Config{Allow: list})
	tests := []struct {
		url  string
		kind error // nil: allowed
	}{
		{"http://allowed.example:8080/x", nil},
		{"http://ALLOWED.Example:8080/x", nil},
		{"http://plain.example/", nil},
		{"https://plain.example/", nil},
		{"http://plain.example:80/", nil},
		{"http://127.0.0.1:9000/", nil},
		{"http://[::ffff:127.0.0.1]:9000/", nil}, // the same address
		{"http://a.wild.example/", nil},
		{"http://a.b.wild.example/", nil},
		{"http://wild.example/", ErrNotAllowed},
		{"http://evilwild.example/", ErrNotAllowed},
		{"http://plain.example:443/", ErrNotAllowed}, // http's port is 80
		{"https://plain.example:80/", ErrNotAllowed},
		{"http://plain.example:8080/", ErrNotAllowed},
		{"http://allowed.example/", ErrNotAllowed},
		{"http://allowed.example:8081/", ErrNotAllowed},
		{"http://allowed.example:8080@evil.example/", ErrBadRequest},
		{"http://evil.example#@allowed.example:8080/", ErrNotAllowed},
		{"http://evil.example?@allowed.example:8080/", ErrNotAllowed},
		{"http://allowed.example:8080\\@evil.example/", ErrBadRequest},
		{"http://allowed.example.:8080/", ErrBadRequest},
		{"http://2130706433:9000/", ErrBadRequest},
		{"http://0177.0.0.1:9000/", ErrBadRequest},
		{"http://0x7f.0.0.1:9000/", ErrBadRequest},
		{"http://127.1:9000/", ErrBadRequest},
		{"http://xn--bcher-kva.example/", ErrNotAllowed},
		{"http://bücher.example/", ErrBadRequest},
		{"ftp://plain.example/", ErrBadRequest},
		{"file:///etc/passwd", ErrBadRequest},
		{"plain.example/x", ErrBadRequest},
		{"//plain.example/x", ErrBadRequest},
		{"http:plain.example", ErrBadRequest},
		{"http://[fe80::1%25eth0]/", ErrBadRequest},
		{"http://plain.example:/", ErrBadRequest},
		{"http://127.0.0.1:09000/", ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := c.request(context.Background(), Request{URL: tt.url})
			switch {
			case tt.kind == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.kind != nil && !errors.Is(err, tt.kind):
				t.Fatalf("error %v, want %v", err, tt.kind)
			}
		})
	}
}

// server is a test server that counts its requests.
type server struct {
	*httptest.Server
	hits atomic.Int64
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) hostport() string { return strings.TrimPrefix(s.URL, "http://") }

func do(t *testing.T, c *Client, r Request) (*Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.Do(ctx, r)
}

func wantKind(t *testing.T, err, kind error, says string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v, want %v", err, kind)
	}
	if !strings.Contains(err.Error(), says) {
		t.Fatalf("error %q does not say %q", err, says)
	}
}

func TestDo(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, 64)
		n, _ := r.Body.Read(body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"method":%q,"body":%q,"auth":%q,"ua":%q}`, r.Method, body[:n], r.Header.Get("Authorization"), r.Header.Get("User-Agent"))
	})
	c := New(Config{Allow: mustList(t, s.hostport())})
	resp, err := do(t, c, Request{Method: "POST", URL: s.URL + "/things", Header: http.Header{"Authorization": {"Bearer x"}}, Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusCreated || string(resp.Body) != `{"method":"POST","body":"hi","auth":"Bearer x","ua":"sluice"}` {
		t.Fatalf("response %d %s", resp.Status, resp.Body)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 {
		t.Fatalf("Set-Cookie %v", got)
	}
	if st := c.Stats(); st.Answered != 1 || st.Refused != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOffAndRefusedSendNothing(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	_, err := do(t, New(Config{}), Request{URL: s.URL})
	wantKind(t, err, ErrOff, "--allow-http")
	if errcode.Of(err) != errcode.InvalidArgument {
		t.Fatalf("code %s", errcode.Of(err))
	}
	other := mustList(t, "127.0.0.1:1")
	_, err = do(t, New(Config{Allow: other}), Request{URL: s.URL})
	wantKind(t, err, ErrNotAllowed, "host "+s.hostport()+" is not in the daemon's allow-list")
	if s.hits.Load() != 0 {
		t.Fatalf("the server got %d requests", s.hits.Load())
	}
}

func TestBadRequests(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	c := New(Config{Allow: mustList(t, s.hostport()), MaxRequestBody: 10})
	tests := []struct {
		name string
		r    Request
		kind error
		says string
	}{
		{"method", Request{Method: "GE T", URL: s.URL}, ErrBadRequest, "not an HTTP method"},
		{"host header", Request{URL: s.URL, Header: http.Header{"Host": {"evil.example"}}}, ErrBadRequest, "Host is set by the client"},
		{"framing", Request{URL: s.URL, Header: http.Header{"Transfer-Encoding": {"chunked"}}}, ErrBadRequest, "set by the client"},
		{"header value", Request{URL: s.URL, Header: http.Header{"X-A": {"a\r\nX-B: b"}}}, ErrBadRequest, "control byte"},
		{"header name", Request{URL: s.URL, Header: http.Header{"X A": {"a"}}}, ErrBadRequest, "not allowed in a name"},
		{"body", Request{Method: "POST", URL: s.URL, Body: make([]byte, 11)}, ErrRequestTooLarge, "11 bytes is over the 10 B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := do(t, c, tt.r)
			wantKind(t, err, tt.kind, tt.says)
		})
	}
	if s.hits.Load() != 0 {
		t.Fatalf("the server got %d requests", s.hits.Load())
	}
}

func TestRedirects(t *testing.T) {
	outside := newServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "outside") })
	var s *server
	s = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/in":
			http.Redirect(w, r, "/target", http.StatusFound)
		case "/target":
			fmt.Fprint(w, "in")
		case "/out":
			http.Redirect(w, r, outside.URL+"/", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/scheme":
			http.Redirect(w, r, "ftp://"+s.hostport()+"/", http.StatusFound)
		}
	})
	c := New(Config{Allow: mustList(t, s.hostport())})
	resp, err := do(t, c, Request{URL: s.URL + "/in"})
	if err != nil || string(resp.Body) != "in" {
		t.Fatalf("redirect within the list: %v %v", resp, err)
	}
	_, err = do(t, c, Request{URL: s.URL + "/out"})
	wantKind(t, err, ErrNotAllowed, "whose host "+outside.hostport()+" is not in the daemon's allow-list")
	if outside.hits.Load() != 0 {
		t.Fatal("the redirect outside the list was followed")
	}
	before := s.hits.Load()
	_, err = do(t, c, Request{URL: s.URL + "/loop"})
	wantKind(t, err, ErrBadResponse, "more than 5 redirects")
	if n := s.hits.Load() - before; n != MaxRedirects+1 {
		t.Fatalf("%d requests for a redirect loop, want %d", n, MaxRedirects+1)
	}
	_, err = do(t, c, Request{URL: s.URL + "/scheme"})
	wantKind(t, err, ErrBadRequest, "only http and https")
}

func TestResponseLimits(t *testing.T) {
	big := strings.Repeat("x", 2000)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			fmt.Fprint(w, big) // with Content-Length
		case "/chunked":
			for range 4 {
				fmt.Fprint(w, big[:500])
				w.(http.Flusher).Flush()
			}
		case "/fits":
			fmt.Fprint(w, big[:1024])
		case "/headers":
			w.Header().Set("X-Big", strings.Repeat("h", MaxResponseHeaderBytes+1))
		}
	})
	c := New(Config{Allow: mustList(t, s.hostport()), MaxResponseBody: 1024})
	for _, path := range []string{"/length", "/chunked"} {
		_, err := do(t, c, Request{URL: s.URL + path})
		wantKind(t, err, ErrResponseTooLarge, "over the 1 KiB a request reads")
		if errcode.Of(err) != errcode.OutputTooLarge {
			t.Fatalf("code %s", errcode.Of(err))
		}
	}
	if resp, err := do(t, c, Request{URL: s.URL + "/fits"}); err != nil || len(resp.Body) != 1024 {
		t.Fatalf("a body at the limit: %v", err)
	}
	_, err := do(t, c, Request{URL: s.URL + "/headers"})
	wantKind(t, err, ErrBadResponse, "headers are over 64 KiB")
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := New(Config{Allow: mustList(t, s.hostport()), Timeout: 50 * time.Millisecond})
	_, err := do(t, c, Request{URL: s.URL})
	wantKind(t, err, ErrTimeout, "no whole response within 50ms")
	if errcode.Of(err) != errcode.Timeout {
		t.Fatalf("code %s", errcode.Of(err))
	}
	// the caller's own deadline is the caller's to report
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(Config{Allow: mustList(t, s.hostport())}).Do(ctx, Request{URL: s.URL}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a canceled request: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = do(t, New(Config{Allow: mustList(t, addr)}), Request{URL: "http://" + addr + "/"})
	wantKind(t, err, ErrUnavailable, "could not be reached")
	if errcode.Of(err) != errcode.Unavailable {
		t.Fatalf("code %s", errcode.Of(err))
	}
}

func TestHTTPS(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.TLS != nil) }))
	defer s.Close()
	tlsConf := s.Client().Transport.(*http.Transport).TLSClientConfig
	c := New(Config{Allow: mustList(t, strings.TrimPrefix(s.URL, "https://")), TLS: tlsConf})
	resp, err := do(t, c, Request{URL: s.URL})
	if err != nil || string(resp.Body) != "true" {
		t.Fatalf("https: %v %v", resp, err)
	}
	// without the server's CA, the handshake fails: unavailable
	_, err = do(t, New(Config{Allow: mustList(t, strings.TrimPrefix(s.URL, "https://"))}), Request{URL: s.URL})
	wantKind(t, err, ErrUnavailable, "certificate")
}
