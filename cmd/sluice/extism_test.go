package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// An Extism plugin built with Extism's Go PDK, unmodified, deployed
// through the CLI with --export and --config to a real daemon: its
// config reaches config_get, its vars live on a warm instance, fn get
// shows its export and config keys (not their values), and its
// http_request goes through the daemon's allow-list (--allow-http).
func TestExtismPluginEndToEnd(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pong")
	}))
	defer srv.Close()
	allowed := strings.TrimPrefix(srv.URL, "http://")
	p := startDaemon(t, t.TempDir(), "--allow-http", allowed)
	plugin := testutil.WasmPath(t, "extism-go")

	out := p.mustSluice(t, "", "fn", "deploy", "greet", plugin, "--export", "greet", "--config", "greeting=Bonjour", "--concurrency", "1")
	if !strings.HasPrefix(out, "deployed greet version 1 (extism,") {
		t.Fatalf("deploy said %q", out)
	}
	for _, want := range []string{"Bonjour, Ada #1", "Bonjour, Ada #2"} {
		if r := p.sluice(t, "", "fn", "invoke", "greet", "--data", "Ada"); r.stdout != want || r.code != 0 {
			t.Fatalf("invoke: %+v, want %q", r, want)
		}
	}
	info := p.mustSluice(t, "", "fn", "get", "greet")
	for _, want := range []string{"extism, export greet", "config:", "greeting"} {
		if !strings.Contains(info, want) {
			t.Fatalf("fn get does not show %q:\n%s", want, info)
		}
	}
	if strings.Contains(info, "Bonjour") {
		t.Fatalf("fn get shows a config value:\n%s", info)
	}

	// fn update --export calls another function of the same plugin; sluice
	// apply deploys a plugin with its export and config, and a second
	// apply with the same spec changes nothing.
	if out := p.mustSluice(t, "", "fn", "update", "greet", "--export", "upper"); !strings.Contains(out, "version 2: export upper") {
		t.Fatalf("fn update --export said %q", out)
	}
	if r := p.sluice(t, "", "fn", "invoke", "greet", "--data", "Ada"); r.stdout != "ADA" {
		t.Fatalf("after fn update --export: %+v", r)
	}
	spec := writeFile(t, "plugins.yaml", "apiVersion: sluice/v1\nkind: Function\nname: hola\npath: "+plugin+
		"\nexport: greet\nconfig: {greeting: Hola}\n")
	p.mustSluice(t, "", "apply", "-f", spec)
	if r := p.sluice(t, "", "fn", "invoke", "hola", "--data", "Ada"); r.stdout != "Hola, Ada #1" {
		t.Fatalf("applied plugin: %+v", r)
	}
	if out := p.mustSluice(t, "", "apply", "-f", spec, "--dry-run"); !strings.Contains(out, "0 to change") {
		t.Fatalf("a second apply of the same spec: %s", out)
	}
	changed := writeFile(t, "plugins2.yaml", "apiVersion: sluice/v1\nkind: Function\nname: hola\npath: "+plugin+
		"\nexport: greet\nconfig: {greeting: Hej}\n")
	if out := p.mustSluice(t, "", "apply", "-f", changed, "--dry-run"); !strings.Contains(out, "config greeting changed") || strings.Contains(out, "Hej") {
		t.Fatalf("a changed config: %s", out)
	}

	// An error the plugin sets, as the CLI reports it.
	p.mustSluice(t, "", "fn", "deploy", "fail", plugin, "--abi", "extism", "--export", "fail")
	if r := p.sluice(t, "", "fn", "invoke", "fail", "--data", "42"); r.code != 1 || !strings.Contains(r.stderr, `function "fail" failed: no such order: 42`) {
		t.Fatalf("failing plugin: %+v", r)
	}

	// http_request: the allowed host answers, another is refused naming the flag.
	p.mustSluice(t, "", "fn", "deploy", "fetch", plugin, "--export", "fetch")
	if r := p.sluice(t, "", "fn", "invoke", "fetch", "--data", srv.URL+"/ping"); r.stdout != "200 pong" {
		t.Fatalf("allowed request: %+v", r)
	}
	r := p.sluice(t, "", "fn", "invoke", "fetch", "--data", "http://forbidden.example/")
	if r.code != 1 || !strings.Contains(r.stderr, "http_request: GET forbidden.example") || !strings.Contains(r.stderr, "--allow-http") {
		t.Fatalf("forbidden request: %+v", r)
	}

	// Without --export, a plugin of several functions names them.
	r = p.sluice(t, "", "fn", "deploy", "which", plugin)
	if r.code == 0 || !strings.Contains(r.stderr, "choose one with --export (one of: boom, fail, fetch, greet, logs, spin, status, upper)") {
		t.Fatalf("deploy without --export: %+v", r)
	}
}
