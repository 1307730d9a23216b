package main

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// A WASI command deployed with --env sees those variables and no others,
// as under a plain WASI runtime; --meta-env adds the call's metadata as
// SLUICE_* variables, and fn update turns it on and off; a reactor cannot
// ask for it.
func cliMetaEnv(t *testing.T, p *daemonProc) {
	cmd := testutil.WasmPath(t, "wasicmd-c")
	// envOf invokes the command and returns what it printed of its
	// environment: "envc=N env=NAME ..."
	envOf := func(name string) string {
		t.Helper()
		out := p.mustSluice(t, "", "fn", "invoke", name, "--data", "exit=0")
		var names []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "envc=") || strings.HasPrefix(l, "env=") {
				names = append(names, l)
			}
		}
		if !strings.Contains(out, "argv[0]="+name+"\n") || !strings.Contains(out, "stdin=6:exit=0\n") {
			t.Fatalf("fn invoke %s printed:\n%s", name, out)
		}
		return strings.Join(names, " ")
	}
	p.mustSluice(t, "", "fn", "deploy", "plaincmd", cmd, "--env", "REGION=eu-west", "--env", "MODE=test")
	if got, want := envOf("plaincmd"), "envc=2 env=MODE env=REGION"; got != want {
		t.Fatalf("a command deployed with --env sees %s, want %s", got, want)
	}
	if out := p.mustSluice(t, "", "fn", "get", "plaincmd"); !strings.Contains(out, "\nmeta env:     off: only its env") {
		t.Fatalf("fn get of a plain command:\n%s", out)
	}

	p.mustSluice(t, "", "fn", "deploy", "metacmd", cmd, "--env", "REGION=eu-west", "--meta-env")
	want := "envc=5 env=REGION env=SLUICE_FUNCTION env=SLUICE_VERSION env=SLUICE_INVOCATION env=SLUICE_TRACEPARENT"
	if got := envOf("metacmd"); got != want {
		t.Fatalf("a command deployed with --meta-env sees %s, want %s", got, want)
	}
	if out := p.mustSluice(t, "", "fn", "get", "metacmd", "-o", "json"); !strings.Contains(out, `"meta_env": true`) {
		t.Fatalf("fn get -o json of a command with --meta-env:\n%s", out)
	}

	// fn update turns it off and on, the module kept
	if out := p.mustSluice(t, "", "fn", "update", "metacmd", "--meta-env=false"); out != "updated metacmd to version 2: meta-env off\n" {
		t.Fatalf("fn update --meta-env=false said %q", out)
	}
	if got := envOf("metacmd"); got != "envc=1 env=REGION" {
		t.Fatalf("after --meta-env=false: %s", got)
	}
	if out := p.mustSluice(t, "", "fn", "update", "plaincmd", "--meta-env"); out != "updated plaincmd to version 2: meta-env on\n" {
		t.Fatalf("fn update --meta-env said %q", out)
	}
	if got := envOf("plaincmd"); got != "envc=6 env=MODE env=REGION env=SLUICE_FUNCTION env=SLUICE_VERSION env=SLUICE_INVOCATION env=SLUICE_TRACEPARENT" {
		t.Fatalf("after fn update --meta-env: %s", got)
	}

	r := p.sluice(t, "", "fn", "deploy", "metareactor", testutil.WasmPath(t, "echo-wat"), "--meta-env")
	if r.code != 1 || !strings.Contains(r.stderr, "--meta-env is for WASI commands") || !strings.Contains(r.stderr, "sluice.meta_get") {
		t.Fatalf("fn deploy --meta-env of a reactor: %+v", r)
	}
}
