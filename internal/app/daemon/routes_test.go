package daemon

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
)

// httpCall makes a request to an HTTP trigger of d.
func httpCall(t *testing.T, d *Daemon, method, path, body string) (int, string, http.Header) {
	t.Helper()
	return request(t, method, "http://"+d.Addr()+"/fn"+path, body, http.Header{})
}

// Prefix and parameter routes through a real daemon: the route a request
// takes by the documented precedence, and what the function reads of it,
// as a reactor (meta_get) and as a WASI command deployed with
// --meta-env (its environment).
func TestHTTPRoutes(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "go", "goguest", nil)
	deploy(t, c, "env", "getenv-c", url.Values{"meta-env": {"true"}})
	for _, r := range []struct{ name, fn, path, method string }{
		{"user", "go", "/users/{id}", "GET"},
		{"me", "go", "/users/me", ""},
		{"files", "go", "/users/{id}/files/*", ""},
		{"json", "go", "/json/*", ""},
		{"api", "go", "/api/*", ""},
		{"api-v2", "go", "/api/v2/*", ""},
		{"repo", "env", "/repos/{org}/{repo_name}/*", ""},
		{"form", "go", "/form/{id}", "POST"},
		{"form-put", "go", "/form/{id}", "PUT"},
	} {
		if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: r.name, Function: r.fn, HTTP: &catalog.HTTPSpec{Path: r.path, Method: r.method}}); err != nil {
			t.Fatalf("create %s %s: %v", r.name, r.path, err)
		}
	}
	tests := []struct {
		method, path, key, want string
	}{
		// which route: exact beats parameter beats prefix, longer first
		{"GET", "/users/me", "trigger", "me"},
		{"GET", "/users/42", "trigger", "user"},
		{"GET", "/users/42/files/a/b.txt", "trigger", "files"},
		{"GET", "/json/sub", "trigger", "json"},
		{"GET", "/api/v1/x", "trigger", "api"},
		{"GET", "/api/v2/x", "trigger", "api-v2"},
		{"GET", "/api", "trigger", "api"},
		// what the function reads
		{"GET", "/users/42", "http.route", "/users/{id}"},
		{"GET", "/users/42", "http.param.id", "42"},
		{"GET", "/users/42", "http.path.rest", "<absent>"},
		{"GET", "/users/me", "http.param.id", "<absent>"},
		{"GET", "/users/me", "http.route", "/users/me"},
		{"GET", "/users/a%2Fb%20c", "http.param.id", "a/b c"},
		{"GET", "/users/%2541", "http.param.id", "%41"}, // decoded once
		{"GET", "/users/a%2Fb%20c", "http.path.raw", "/users/a%2Fb%20c"},
		{"GET", "/users/a%2Fb%20c", "http.path", "/users/a/b c"},
		{"GET", "/users/42/files/a/b%20c.txt", "http.path.rest", "a/b c.txt"},
		{"GET", "/users/42/files/a/b%20c.txt", "http.param.id", "42"},
		{"GET", "/users/42/files", "http.path.rest", ""},
		{"GET", "/json/sub?x=1", "http.path.rest", "sub"},
		{"GET", "/json/sub?x=1", "http.query", "x=1"},
		{"GET", "/api/v2/a/b", "http.path.rest", "a/b"},
		{"GET", "/api/v2/a/b", "http.route", "/api/v2/*"},
		{"POST", "/form/7", "trigger", "form"},
		{"PUT", "/form/7", "trigger", "form-put"},
		// a WASI command sees the same keys in its environment
		{"GET", "/repos/acme/widgets/src/main.go", "SLUICE_HTTP_ROUTE", "/repos/{org}/{repo_name}/*"},
		{"GET", "/repos/acme/widgets/src/main.go", "SLUICE_HTTP_PARAM_ORG", "acme"},
		{"GET", "/repos/acme/wid%20gets/src/main.go", "SLUICE_HTTP_PARAM_REPO_NAME", "wid gets"},
		{"GET", "/repos/acme/widgets/src/main.go", "SLUICE_HTTP_PATH_REST", "src/main.go"},
		{"GET", "/repos/acme/widgets/src/main.go", "SLUICE_TRIGGER", "repo"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path+" "+tc.key, func(t *testing.T) {
			body := tc.key
			if !strings.HasPrefix(tc.key, "SLUICE_") {
				body = "meta:" + tc.key
			}
			status, got, _ := httpCall(t, d, tc.method, tc.path, body)
			if status != 200 || got != tc.want {
				t.Fatalf("%d %q, want %q", status, got, tc.want)
			}
		})
	}
	// a path no route takes, and a route with other methods
	if status, body, _ := httpCall(t, d, "GET", "/users/", ""); status != 404 || !strings.Contains(body, "no HTTP trigger at /fn/users/") {
		t.Fatalf("GET /users/ (a parameter is never empty): %d %s", status, body)
	}
	if status, body, h := httpCall(t, d, "DELETE", "/form/7", ""); status != 405 || h.Get("Allow") != "POST, PUT" || !strings.Contains(body, "method_not_allowed") {
		t.Fatalf("DELETE /form/7: %d %s, Allow %q", status, body, h.Get("Allow"))
	}
	if status, body, h := httpCall(t, d, "POST", "/users/42", ""); status != 405 || h.Get("Allow") != "GET" {
		t.Fatalf("POST /users/42 (GET only): %d %s", status, body)
	}
	// deleting the more specific route hands its requests to the next
	if err := c.DeleteTrigger(ctx, "api-v2"); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := httpCall(t, d, "GET", "/api/v2/x", "meta:http.path.rest"); status != 200 || body != "v2/x" {
		t.Fatalf("GET /api/v2/x after api-v2 is gone: %d %q", status, body)
	}
}

// Routes that would take the same requests are refused at create, naming
// the trigger and route they conflict with; malformed ones too, saying
// what is wrong. Routes that only overlap are not conflicts.
func TestHTTPRouteConflicts(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	deploy(t, c, "echo", "echo-wat", nil)
	create := func(name, path, method string) error {
		_, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: name, Function: "echo", HTTP: &catalog.HTTPSpec{Path: path, Method: method}})
		return err
	}
	for _, r := range []struct{ name, path, method string }{
		{"user", "/users/{id}", ""},
		{"me", "/users/me", ""},
		{"api", "/api/*", "GET"},
		{"api-v2", "/api/v2/*", "GET"},
		{"api-post", "/api/*", "POST"},
		{"hello", "/hello", "GET"},
	} {
		if err := create(r.name, r.path, r.method); err != nil {
			t.Fatalf("%s %s: %v", r.name, r.path, err)
		}
	}
	tests := []struct {
		name, path, method string
		status             int
		code               string
		says               string
	}{
		{"by-name", "/users/{name}", "", 409, "conflict", `route ANY /users/{name} is taken by trigger "user" (its route ANY /users/{id} takes the same requests`},
		{"api-again", "/api/*", "", 409, "conflict", `route ANY /api/* is taken by trigger "api"`},
		{"hello-again", "/hello", "GET", 409, "conflict", `route GET /hello is taken by trigger "hello": use another path or method, or delete trigger "hello" first`},
		{"empty-param", "/users/{}", "", 400, "invalid_argument", `--http-path "/users/{}": {} has no name`},
		{"open-param", "/users/{id", "", 400, "invalid_argument", `"{id" opens a parameter it does not close: write {name}`},
		{"star-inside", "/api/*/x", "", 400, "invalid_argument", "* stands for the rest of the path, so it must be the last segment"},
		{"twice", "/a/{id}/b/{id}", "", 400, "invalid_argument", "the parameter {id} appears twice"},
		{"space", "/a b", "", 400, "invalid_argument", `"a b" has ' '`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			apiError(t, create(tc.name, tc.path, tc.method), tc.status, tc.code, tc.says)
		})
	}
	if err := create("hello-post", "/hello", "POST"); err != nil {
		t.Fatalf("another method on a taken path: %v", err)
	}
}

// A queue trigger passes message bytes unchanged both
// ways, whatever they are (every byte value, invalid UTF-8, NUL, JSON
// text with a number no float holds), for a reactor and a WASI command.
func TestQueueTriggerKeepsBinaryPayloads(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "echo-wat", "echo-wat", nil)
	deploy(t, c, "echo-c", "echo-c", nil)
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	reversed := bytes.Clone(every)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	sent := []string{
		string(every),
		string(reversed),
		"\xff\xfe\xfd invalid UTF-8 \xc3\x28 \xed\xa0\x80 \xf8\x88\x80\x80\x80",
		"\x00\x00\x00",
		`{"n": 12345678901234567890, "f": 1.50, "e": 1e3}`,
		strings.Repeat(string(every), 64), // 16 KiB
	}
	a := newApp(t, d.NATSURL())
	for _, fn := range []string{"echo-wat", "echo-c"} {
		t.Run(fn, func(t *testing.T) {
			in, out := "bin-in-"+fn, "bin-out-"+fn
			results := a.collect(out)
			if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "bin-" + fn, Function: fn, Queue: &api.QueueRequest{Topic: in, RespTopic: out}}); err != nil {
				t.Fatal(err)
			}
			a.publish(in, sent...)
			testutil.Eventually(t, 60*time.Second, "a result for every message", func() bool { return len(results.distinct()) >= len(sent) })
			got := results.distinct()
			if len(got) != len(sent) {
				t.Fatalf("%d distinct results for %d messages", len(got), len(sent))
			}
			for i, s := range sent {
				if got[s] == 0 {
					t.Fatalf("message %d (%d bytes) did not come back byte for byte", i, len(s))
				}
			}
		})
	}
}
