package abi

import (
	"bufio"
	"bytes"
	"errors"
	"net/textproto"
	"slices"
	"strings"
	"testing"
)

func TestHeadersAdd(t *testing.T) {
	tests := []struct {
		name, value string
		err         string // "" for accepted
		dropped     bool
	}{
		{name: "Location", value: "/items/7"},
		{name: "set-cookie", value: "a=1; Path=/; HttpOnly"},
		{name: "X-Tab", value: "a\tb"},
		{name: "X-Obs", value: "caf\xc3\xa9"},
		{name: "Content-Length", value: "12", dropped: true},
		{name: "transfer-encoding", value: "chunked", dropped: true},
		{name: "Connection", value: "close", dropped: true},
		{name: "X-Sluice-Invocation", value: "forged", dropped: true},
		{name: "x-request-id", value: "forged", dropped: true},
		{name: "", value: "x", err: "empty header name"},
		{name: "Bad Name", value: "x", err: `header name "Bad Name" holds ' '`},
		{name: "X-A:", value: "x", err: "holds ':'"},
		{name: "X-Split", value: "a\r\nSet-Cookie: x=1", err: `control byte '\r'`},
		{name: "X-LF", value: "a\nb", err: `control byte '\n'`},
		{name: "X-Nul", value: "a\x00", err: `control byte '\x00'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Headers
			err := h.Add(tc.name, tc.value)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Add(%q, %q) = %v, want an error saying %q", tc.name, tc.value, err, tc.err)
				}
			case err != nil:
				t.Fatalf("Add(%q, %q): %v", tc.name, tc.value, err)
			case tc.dropped && len(h.Header) != 0:
				t.Fatalf("Add(%q): kept %v, want it dropped", tc.name, h.Header)
			case !tc.dropped && len(h.Header[textproto.CanonicalMIMEHeaderKey(tc.name)]) != 1:
				t.Fatalf("Add(%q): %v, want it under its canonical name", tc.name, h.Header)
			}
		})
	}
}

func TestHeadersLimits(t *testing.T) {
	var h Headers
	for i := range MaxResponseHeaders {
		if err := h.Add("Set-Cookie", "a=1"); err != nil {
			t.Fatalf("value %d: %v", i+1, err)
		}
	}
	if err := h.Add("Set-Cookie", "a=1"); err == nil || !strings.Contains(err.Error(), "more than 100") {
		t.Fatalf("value 101: %v", err)
	}
	h = Headers{}
	big := strings.Repeat("x", MaxResponseHeaderBytes/2)
	if err := h.Add("A", big); err != nil {
		t.Fatal(err)
	}
	if err := h.Add("B", big); err == nil || !strings.Contains(err.Error(), "64 KiB") {
		t.Fatalf("past 64 KiB: %v", err)
	}
}

func TestParseCGI(t *testing.T) {
	tests := []struct {
		name, out string
		status    int
		header    map[string][]string
		body      string
		err       string
	}{
		{name: "content type", out: "Content-Type: text/plain\n\nhi", status: 200, header: map[string][]string{"Content-Type": {"text/plain"}}, body: "hi"},
		{name: "crlf", out: "Status: 201 Created\r\nLocation: /x\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n", status: 201,
			header: map[string][]string{"Location": {"/x"}, "Set-Cookie": {"a=1", "b=2"}}},
		{name: "redirect", out: "Location: https://example.com/\n\n", status: 302, header: map[string][]string{"Location": {"https://example.com/"}}},
		{name: "status only", out: "status:204\n\n", status: 204},
		{name: "content length dropped", out: "Content-Type: a/b\nContent-Length: 99\n\nbody\n\nmore", status: 200, header: map[string][]string{"Content-Type": {"a/b"}}, body: "body\n\nmore"},
		{name: "empty", out: "", err: "printed nothing"},
		{name: "no header block", out: "hello world\n", err: `line 1 ("hello world") is not a header field`},
		{name: "no blank line", out: "Content-Type: text/plain\nhi", err: "ends inside the header block"},
		{name: "blank first", out: "\nbody", err: "starts with a blank line"},
		{name: "no cgi field", out: "X-A: 1\n\n", err: "none of Content-Type, Location and Status"},
		{name: "bad status", out: "Status: 1000 Big\n\n", err: `Status "1000 Big" does not start with a three-digit code`},
		{name: "status out of range", out: "Status: 999\n\n", err: "999 is not an HTTP status"},
		{name: "interim status", out: "Status: 100 Continue\n\n", err: "100 is not an HTTP status"},
		{name: "two statuses", out: "Status: 200\nStatus: 201\n\n", err: "a second Status"},
		{name: "folded", out: "Content-Type: a\n b\n\n", err: "folded"},
		{name: "split", out: "Content-Type: a\rSet-Cookie: x=1\n\n", err: `control byte '\r'`},
		{name: "bad name", out: "Content Type: a\n\n", err: `holds ' '`},
		{name: "too long", out: "Content-Type: a\nX-A: " + strings.Repeat("b", MaxCGIHeaderBlock) + "\n\n", err: "within the first"},
		{name: "no end", out: "Content-Type: a\n" + strings.Repeat("b", MaxCGIHeaderBlock), err: "within the first"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseCGI([]byte(tc.out))
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrCGI) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseCGI = %+v, %v; want an error saying %q", r, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status || string(r.Body) != tc.body || len(r.Header) != len(tc.header) {
				t.Fatalf("ParseCGI = %d %v %q, want %d %v %q", r.Status, r.Header, r.Body, tc.status, tc.header, tc.body)
			}
			for k, v := range tc.header {
				if !slices.Equal(r.Header[k], v) {
					t.Fatalf("header %s = %q, want %q", k, r.Header[k], v)
				}
			}
		})
	}
}

// FuzzCGIHeaders: whatever a script prints, the parser does not panic,
// and what it accepts is a response a client reads back as it was meant:
// a final status, headers that each stay one header (no CR, LF, NUL; no
// framing header), within the limits, and a body that is the output's
// tail.
func FuzzCGIHeaders(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain\n\nhi",
		"Status: 201 Created\r\nLocation: /x\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody",
		"Location: /y\n\n",
		"Status: 404\nContent-Length: 3\n\nabc",
		"X: a\rb\n\n",
		"Content-Type: a\n b\n\n",
		"hello\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := ParseCGI(out)
		if err != nil {
			if !errors.Is(err, ErrCGI) {
				t.Fatalf("error %v does not wrap ErrCGI", err)
			}
			return
		}
		if r.Status < MinHTTPStatus || r.Status > MaxHTTPStatus {
			t.Fatalf("status %d accepted", r.Status)
		}
		if !bytes.HasSuffix(out, r.Body) {
			t.Fatalf("body %q is not the output's tail", r.Body)
		}
		checkHeaders(t, r.Header)
	})
}

// FuzzHeaderValidation: a header Add accepts is written and read back by
// an HTTP parser as the one header it was, never as two.
func FuzzHeaderValidation(f *testing.F) {
	for _, s := range [][2]string{{"Location", "/x"}, {"X-A", "a\r\nB: c"}, {"Set-Cookie", "a=1"}, {"Bad Name", "x"}, {"X", "\x00"}, {"Content-Length", "1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		var h Headers
		if err := h.Add(name, value); err != nil {
			return
		}
		checkHeaders(t, h.Header)
	})
}

func checkHeaders(t *testing.T, h map[string][]string) {
	t.Helper()
	count, size := 0, 0
	for name, values := range h {
		if DroppedHeader(name) {
			t.Fatalf("dropped header %s kept", name)
		}
		for _, v := range values {
			count++
			size += len(name) + len(v)
			var b bytes.Buffer
			b.WriteString(name + ": " + v + "\r\n\r\n")
			got, err := textproto.NewReader(bufio.NewReader(&b)).ReadMIMEHeader()
			if err != nil {
				t.Fatalf("%s: %q accepted, but an HTTP parser refuses it: %v", name, v, err)
			}
			if len(got) != 1 || len(got[textproto.CanonicalMIMEHeaderKey(name)]) != 1 {
				t.Fatalf("%s: %q accepted, and read back as %v", name, v, got)
			}
			if got := got[textproto.CanonicalMIMEHeaderKey(name)][0]; got != strings.Trim(v, " \t") {
				t.Fatalf("%s: %q accepted, and read back as %q", name, v, got)
			}
		}
	}
	if count > MaxResponseHeaders || size > MaxResponseHeaderBytes {
		t.Fatalf("%d values, %d bytes accepted", count, size)
	}
}

func TestCGIEnv(t *testing.T) {
	env := CGIEnv(map[string]string{
		MetaHTTPMethod: "GET", MetaHTTPPath: "/app/a/b", MetaHTTPRest: "a/b", MetaHTTPQuery: "q=1",
		MetaHTTPHost: "example.com:8080", MetaHTTPRemote: "[::1]:5000", MetaHTTPProto: "HTTP/2.0",
		MetaHTTPHeaderPrefix + "content-type": "text/plain", MetaHTTPHeaderPrefix + "authorization": "Bearer x",
		MetaHTTPHeaderPrefix + "proxy": "http://evil", MetaHTTPHeaderPrefix + "x_forged": "1", MetaHTTPHeaderPrefix + "x-a": "1, 2",
	}, 5)
	got := map[string]string{}
	for i := 0; i+1 < len(env); i += 2 {
		got[env[i]] = env[i+1]
	}
	want := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "sluice", "SERVER_PROTOCOL": "HTTP/2.0",
		"SERVER_NAME": "example.com", "SERVER_PORT": "8080", "REQUEST_METHOD": "GET",
		"SCRIPT_NAME": "/fn/app", "PATH_INFO": "/a/b", "QUERY_STRING": "q=1",
		"REMOTE_ADDR": "::1", "REMOTE_PORT": "5000", "CONTENT_LENGTH": "5", "CONTENT_TYPE": "text/plain",
		"HTTP_AUTHORIZATION": "Bearer x", "HTTP_X_A": "1, 2",
	}
	if len(got) != len(want) {
		t.Errorf("CGIEnv = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// a call that did not come through HTTP is a POST of its input
	env = CGIEnv(map[string]string{MetaFunction: "report"}, 0)
	got = map[string]string{}
	for i := 0; i+1 < len(env); i += 2 {
		got[env[i]] = env[i+1]
	}
	if got["REQUEST_METHOD"] != "POST" || got["SCRIPT_NAME"] != "/fn/report" || got["PATH_INFO"] != "" {
		t.Errorf("without HTTP: %v", got)
	}
}

// One call's response headers as a handler sets them: a Content-Type, a
// Location, two cookies and a lower-case name.
func BenchmarkHeadersAdd(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var h Headers
		for _, kv := range [][2]string{{"Content-Type", "application/json"}, {"Location", "/items/7"},
			{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}, {"x-trace", "abc"}} {
			if err := h.Add(kv[0], kv[1]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
