package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// The CLI shows a route conflict or a malformed route as the daemon says
// it, from `trigger create` and from `apply`, and serves what it created.
func TestCLIRoutes(t *testing.T) {
	t.Parallel()
	wasm := testutil.WasmPath(t, "echo-wat")
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "echo", wasm)
	p.mustSluice(t, "", "trigger", "create", "user", "--fn", "echo", "--http-path", "/users/{id}")
	p.mustSluice(t, "", "trigger", "create", "api", "--fn", "echo", "--http-path", "/api/*", "--method", "POST")
	if out := p.mustSluice(t, "", "trigger", "list"); !strings.Contains(out, "/fn/users/{id}") || !strings.Contains(out, "POST /fn/api/*") {
		t.Fatalf("trigger list:\n%s", out)
	}
	resp, err := http.Post(p.server+"/fn/api/v1/echo", "text/plain", strings.NewReader("routed"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "routed" {
		t.Fatalf("POST /fn/api/v1/echo: %d %q", resp.StatusCode, body)
	}

	r := p.sluice(t, "", "trigger", "create", "by-name", "--fn", "echo", "--http-path", "/users/{name}", "--method", "GET")
	if r.code != 1 || !strings.Contains(r.stderr, `route GET /users/{name} is taken by trigger "user" (its route ANY /users/{id} takes the same requests`) {
		t.Fatalf("trigger create of a conflicting route: %+v", r)
	}
	r = p.sluice(t, "", "trigger", "create", "bad", "--fn", "echo", "--http-path", "/users/{id")
	if r.code == 0 || !strings.Contains(r.stderr, `"{id" opens a parameter it does not close`) {
		t.Fatalf("trigger create of a malformed route: %+v", r)
	}

	spec := "apiVersion: sluice/v1\nkind: Trigger\nname: api-again\nfn: echo\nhttp_path: /api/*\n"
	r = p.sluice(t, spec, "apply", "-f", "-")
	if r.code != 1 || !strings.HasPrefix(r.stderr, `sluice: stdin: document 1 (Trigger "api-again"): `) || !strings.Contains(r.stderr, `route ANY /api/* is taken by trigger "api"`) {
		t.Fatalf("apply of a conflicting route: %+v", r)
	}
	spec = "apiVersion: sluice/v1\nkind: Trigger\nname: bad\nfn: echo\nhttp_path: /api/*/x\n"
	r = p.sluice(t, spec, "apply", "-f", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "must be the last segment") {
		t.Fatalf("apply of a malformed route: %+v", r)
	}
	spec = "apiVersion: sluice/v1\nkind: Trigger\nname: me\nfn: echo\nhttp_path: /users/me\n"
	if out := p.mustSluice(t, spec, "apply", "-f", "-"); out != "trigger me: created\n" {
		t.Fatalf("apply of an exact route beside a parameter's: %q", out)
	}
}
