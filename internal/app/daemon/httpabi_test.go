package daemon

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
)

// httpDo makes a request to d with headers (name, value pairs; a name
// may repeat) and returns the status, body and response headers.
func httpDo(t *testing.T, d *Daemon, method, path, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	return request(t, method, "http://"+d.Addr()+path, body, h)
}

// The request's headers reach every kind of guest, and its status and
// headers come back, through a real daemon: a WAT reactor, a C reactor,
// a Go net/http ServeMux and a C WASI command run as a CGI script, each
// behind a parameter route and a prefix route.
func TestHTTPGuestsSpeakHTTP(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "wat", "http-wat", nil)
	deploy(t, c, "c", "http-c", nil)
	deploy(t, c, "go", "http-go", nil)
	deploy(t, c, "cgi", "cgi-c", url.Values{"cgi": {"true"}})
	guests := []struct {
		fn, prefix string // the routes are PREFIX/items/{id} and PREFIX/files/*
		// where the Location of /items/7 and /files/a/b.txt points
		itemLoc, fileLoc string
	}{
		{"wat", "/wat", "/items/7", "/files/a/b%20c.txt"},
		{"c", "/c", "/items/7", "/files/a/b%20c.txt"},
		{"go", "", "/items/7", "/files/a/b%20c.txt"},
		// a CGI script's own URL is SCRIPT_NAME + PATH_INFO
		{"cgi", "/cgi", "/fn/cgi/items/7", "/fn/cgi/files/a/b c.txt"},
	}
	for _, g := range guests {
		for _, r := range []struct{ name, path string }{{g.fn + "-items", g.prefix + "/items/{id}"}, {g.fn + "-files", g.prefix + "/files/*"}} {
			if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: r.name, Function: g.fn, HTTP: &catalog.HTTPSpec{Path: r.path}}); err != nil {
				t.Fatalf("create %s: %v", r.name, err)
			}
		}
	}
	in := []string{"Authorization", "Bearer t0k", "Content-Type", "application/json", "X-Multi", "1", "X-Multi", "2"}
	for _, g := range guests {
		t.Run(g.fn, func(t *testing.T) {
			for _, tc := range []struct{ path, loc string }{
				{g.prefix + "/items/7", g.itemLoc},
				{g.prefix + "/files/a/b%20c.txt", g.fileLoc},
			} {
				status, body, h := httpDo(t, d, "POST", "/fn"+tc.path, `{"name":"lamp"}`, in...)
				if status != 201 {
					t.Fatalf("POST %s: %d %s", tc.path, status, body)
				}
				if got := h.Get("Location"); got != strings.ReplaceAll(tc.loc, "%20", " ") && got != tc.loc {
					t.Errorf("POST %s: Location %q, want %q", tc.path, got, tc.loc)
				}
				if got := h.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
					t.Errorf("POST %s: Set-Cookie %q, want a=1 and b=2", tc.path, got)
				}
				for _, want := range []string{"Bearer t0k", "application/json", "1, 2"} {
					if !strings.Contains(body, want) {
						t.Errorf("POST %s: body %q does not hold the request's %q", tc.path, body, want)
					}
				}
				if h.Get("X-Sluice-Invocation") == "" || h.Get("Content-Length") == "" {
					t.Errorf("POST %s: the daemon's own headers are missing: %v", tc.path, h)
				}
			}
			// a 400 the guest chose is passed through as it chose it
			body := "bad"
			header := in
			if g.fn == "go" {
				header = []string{"Content-Type", "bad/input"} // what the Go example's prefix route refuses
			}
			status, got, h := httpDo(t, d, "POST", "/fn"+g.prefix+"/files/x", body, header...)
			if status != 400 || h.Get("Content-Type") != "application/json" || !strings.Contains(got, `"error"`) {
				t.Fatalf("bad input: %d %q %v", status, got, h)
			}
		})
	}
	// the Go example's JSON route: bad JSON is its own 400
	if status, body, _ := httpDo(t, d, "POST", "/fn/items/8", "not json", in...); status != 400 || !strings.Contains(body, "bad input") {
		t.Fatalf("Go, bad JSON: %d %q", status, body)
	}
	if status, body, h := httpDo(t, d, "GET", "/fn/items/7", ""); status != 200 || h.Get("Content-Type") != "application/json" || !strings.Contains(body, `"name":"lamp"`) {
		t.Fatalf("Go, GET /items/7: %d %q %v", status, body, h)
	}
}

// A CGI command sees the request in RFC 3875's variables.
func TestCGIVariables(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	v := deploy(t, c, "cgi", "cgi-c", url.Values{"cgi": {"true"}})
	if !v.CGI {
		t.Fatalf("deployed with cgi=true, the view says %+v", v)
	}
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "cgi", Function: "cgi", HTTP: &catalog.HTTPSpec{Path: "/app/*"}}); err != nil {
		t.Fatal(err)
	}
	header := []string{"Authorization", "Basic eDp5", "Content-Type", "text/x-env", "X-Multi", "1", "X-Multi", "2", "Proxy", "http://evil:1", "X_Forged", "yes"}
	for name, want := range map[string]string{
		"REQUEST_METHOD":     "PUT",
		"GATEWAY_INTERFACE":  "CGI/1.1",
		"SERVER_PROTOCOL":    "HTTP/1.1",
		"SCRIPT_NAME":        "/fn/app",
		"PATH_INFO":          "/a/b",
		"QUERY_STRING":       "x=1&y=%20",
		"CONTENT_TYPE":       "text/x-env",
		"CONTENT_LENGTH":     "18", // len("env:CONTENT_LENGTH")
		"SERVER_NAME":        "127.0.0.1",
		"REMOTE_ADDR":        "127.0.0.1",
		"HTTP_AUTHORIZATION": "Basic eDp5",
		"HTTP_X_MULTI":       "1, 2",
		"HTTP_PROXY":         "<unset>", // httpoxy
		"HTTP_X_FORGED":      "<unset>", // a name with '_' is not passed
		"HTTP_CONTENT_TYPE":  "<unset>",
		"SLUICE_HTTP_METHOD": "<unset>", // only with --meta-env
	} {
		body := "env:" + name
		status, got, h := httpDo(t, d, "PUT", "/fn/app/a/b?x=1&y=%20", body, header...)
		if status != 200 || got != want {
			t.Errorf("%s: %d %q, want %q", name, status, got, want)
		}
		if h.Get("Content-Type") != "text/plain" {
			t.Errorf("%s: Content-Type %q, want the script's text/plain", name, h.Get("Content-Type"))
		}
	}
	// a reactor sets its response with imports, not on stdout
	_, err := c.Deploy(ctx, "cgi-reactor", testutil.Wasm(t, "http-wat"), url.Values{"cgi": {"true"}})
	apiError(t, err, 400, "invalid_argument", "--cgi is for WASI commands", "sluice.http_status")

	// a plain command prints its output only: the same module without
	// --cgi answers its header block as its body
	deploy(t, c, "plain", "cgi-c", nil)
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "plain", Function: "plain", HTTP: &catalog.HTTPSpec{Path: "/plain"}}); err != nil {
		t.Fatal(err)
	}
	if status, got, _ := httpDo(t, d, "POST", "/fn/plain", "env:REQUEST_METHOD"); status != 200 || got != "Content-Type: text/plain\n\n<unset>" {
		t.Fatalf("plain command: %d %q", status, got)
	}
}

// An old guest answers exactly as before; a failed call keeps sluice's
// error whatever status the guest set; a hostile guest's response fails
// its call with a message that says why, and the daemon serves on.
func TestHTTPResponseErrors(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "echo", "echo-wat", nil)
	deploy(t, c, "wat", "http-wat", nil)
	deploy(t, c, "cgi", "cgi-c", url.Values{"cgi": {"true"}})
	for _, r := range []struct{ name, fn, path string }{{"echo", "echo", "/echo"}, {"wat", "wat", "/wat/*"}, {"cgi", "cgi", "/cgi"}} {
		if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: r.name, Function: r.fn, HTTP: &catalog.HTTPSpec{Path: r.path}}); err != nil {
			t.Fatal(err)
		}
	}

	status, body, h := httpDo(t, d, "POST", "/fn/echo", `{"a":1}`, "Authorization", "Bearer x")
	var names []string
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"Content-Length", "Content-Type", "Date", "Traceparent", "X-Request-Id", "X-Sluice-Duration", "X-Sluice-Invocation"}; status != 200 || body != `{"a":1}` ||
		h.Get("Content-Type") != "text/plain; charset=utf-8" || !slices.Equal(names, want) {
		t.Fatalf("old guest: %d %q, headers %v; want 200, its input, text/plain and the headers %v", status, body, h, want)
	}

	for _, tc := range []struct {
		path, body string
		says       string
	}{
		{"/wat/x", "fail", `refused`}, // set 418, then failed: sluice's error, not 418
		{"/wat/x", "r", `the value of header X-Evil holds the control byte '\\r'`},
		{"/wat/x", "s", `sluice.http_status: 1000 is not an HTTP status (want 200 to 599)`},
		{"/wat/x", "n", `more than 100 response header values`},
		{"/cgi", "noheader", `line 1 (\"just a body\") is not a header field`},
		{"/cgi", "split", `holds the control byte '\\r'`},
	} {
		status, body, h := httpDo(t, d, "POST", "/fn"+tc.path, tc.body)
		if status != 502 || !strings.Contains(body, `"code": "function_error"`) || !strings.Contains(body, tc.says) {
			t.Errorf("%s %q: %d %s; want 502 function_error saying %s", tc.path, tc.body, status, body, tc.says)
		}
		if h.Get("X-Evil") != "" || len(h.Values("Set-Cookie")) > 0 || h.Get("X-N") != "" {
			t.Errorf("%s %q: a failed call's headers reached the client: %v", tc.path, tc.body, h)
		}
	}
	// the same instances serve on
	if status, _, h := httpDo(t, d, "POST", "/fn/wat/x", "ok"); status != 201 || h.Get("Location") != "/files/x" {
		t.Fatalf("after the hostile calls: %d %v", status, h)
	}

	// fn invoke tells the function's answer in headers of its own
	req, _ := http.NewRequest("POST", "http://"+d.Addr()+"/v1/functions/wat/invoke", strings.NewReader("ok"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(api.StatusHeader) != "201" ||
		!slices.Equal(resp.Header.Values(api.HeaderHeader), []string{"Content-Type: text/plain", "Location: /files/", "Set-Cookie: a=1", "Set-Cookie: b=2"}) ||
		resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("fn invoke: %d %v", resp.StatusCode, resp.Header)
	}
}
