package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/scaffold"
	"github.com/sluicehq/sluice/testutil"
)

// makeTools are the tool variables of the templates' Makefiles: each is
// passed to make when the environment sets it (GO=/usr/local/go/bin/go).
var makeTools = []string{"GO", "CC", "CLANG", "WAT2WASM", "CARGO", "RUSTC", "NPM", "NODE"}

// langSetup adds, per language, what its build needs beyond makeTools:
// make variables and environment. Every template works without one.
var langSetup = map[string]func(t *testing.T) (vars, env []string){
	// offline: the SDK is in sluice-sdk/, nothing may be downloaded
	"go": func(t *testing.T) ([]string, []string) {
		return nil, []string{"GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off"}
	},
	// the first rustc and cargo in PATH may have no wasm32 WASI standard
	// library: the toolchain scripts/rust-wasm picks, as the Makefile does
	"rust": func(t *testing.T) ([]string, []string) {
		tc := testutil.RustWasm(t)
		return []string{"CARGO=" + tc.Cargo, "RUSTC=" + tc.Rustc}, []string{"CARGO_NET_OFFLINE=true"}
	},
}

// TestNewTemplates writes the project of every template `sluice new fn`
// has, with and without --http, in a directory outside this repository;
// builds it with make and runs its own test (make test); deploys the
// module to a daemon and checks the behaviour every template shares:
// "hello, " and the input, a log line "greeting N bytes", and an empty
// input failing with the code empty_input (behind an HTTP trigger: 200
// with a text/plain body, 400 to an empty body).
func TestNewTemplates(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	langs := scaffold.Languages()
	if len(langs) < 3 {
		t.Fatalf("templates found: %v", langs)
	}
	for _, lang := range langs {
		for _, web := range []bool{false, true} {
			name := "new-" + lang
			if web {
				name += "-http"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dir := filepath.Join(t.TempDir(), name)
				args := []string{"new", "fn", name, "--lang", lang, "--dir", dir}
				if web {
					args = append(args, "--http")
				}
				if out := p.mustSluice(t, "", args...); !strings.Contains(out, "sluice fn deploy "+name+" "+name+".wasm") {
					t.Fatalf("sluice new said:\n%s", out)
				}
				buildTemplate(t, lang, dir, "")
				buildTemplate(t, lang, dir, "test")
				wasm := filepath.Join(dir, name+".wasm")
				p.mustSluice(t, "", "fn", "deploy", name, wasm)
				if web {
					checkHTTPTemplate(t, p, name)
				} else {
					checkTemplate(t, p, name)
				}
				testutil.Eventually(t, 20*time.Second, "the log line", func() bool {
					return strings.Contains(p.mustSluice(t, "", "fn", "logs", name), "greeting 3 bytes")
				})
			})
		}
	}
}

// buildTemplate runs make target in a project, with the tool variables.
func buildTemplate(t *testing.T, lang, dir, target string) {
	t.Helper()
	var vars, env []string
	for _, tool := range makeTools {
		if v := os.Getenv(tool); v != "" {
			vars = append(vars, tool+"="+v)
		}
	}
	if setup := langSetup[lang]; setup != nil {
		v, e := setup(t)
		vars, env = append(vars, v...), e
	}
	args := append([]string{"-C", dir}, vars...)
	if target != "" {
		args = append(args, target)
	}
	cmd := exec.Command("make", args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s (%s): %v\n%s", target, strings.Join(vars, " "), err, out)
	}
}

// checkTemplate checks a function deployed from a template without --http.
func checkTemplate(t *testing.T, p *daemonProc, name string) {
	t.Helper()
	if r := p.sluice(t, "", "fn", "invoke", name, "--data", "Ada"); r.code != 0 || r.stdout != "hello, Ada" {
		t.Fatalf("invoke with Ada: %+v", r)
	}
	if r := p.sluice(t, "", "fn", "invoke", name, "--data", ""); r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "empty input") || !strings.Contains(r.stderr, "(code empty_input)") {
		t.Fatalf("invoke with an empty input: %+v", r)
	}
	// the code of the failure, as a workflow sees it
	wf := writeFile(t, "try.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: try-"+name+"\ntasks:\n  greet: {run: "+name+", inputs: \"${ input }\"}\n")
	p.mustSluice(t, "", "wf", "create", "try-"+name, "-f", wf)
	r := p.sluice(t, "", "wf", "invoke", "try-"+name, "--raw", "--data", "", "--wait", "-o", "json")
	var inv struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorCode string `json:"error_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &inv); err != nil || inv.Status != "failed" || inv.ErrorCode != "empty_input" || !strings.Contains(inv.Error, "empty input") {
		t.Fatalf("a workflow task with an empty input: %+v (%v)", r, err)
	}
}

// checkHTTPTemplate checks a function deployed from a template with
// --http, through an HTTP trigger.
func checkHTTPTemplate(t *testing.T, p *daemonProc, name string) {
	t.Helper()
	p.mustSluice(t, "", "trigger", "create", name, "--fn", name, "--http-path", "/"+name, "--method", "POST")
	for _, tc := range []struct {
		body, want string
		status     int
	}{
		{"Ada", "hello, Ada", http.StatusOK},
		{"", "empty input", http.StatusBadRequest},
	} {
		resp, err := http.Post(p.server+"/fn/"+name, "text/plain", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.want {
			t.Fatalf("POST %q: %d %q, want %d %q", tc.body, resp.StatusCode, b, tc.status, tc.want)
		}
		if ct := resp.Header.Get("Content-Type"); tc.status == http.StatusOK && ct != "text/plain; charset=utf-8" {
			t.Fatalf("POST %q: Content-Type %q", tc.body, ct)
		}
	}
}

// sluice new's mistakes: a bad name or language is a usage error (exit 2)
// that lists what is accepted, a directory with files is refused (exit 1)
// without --force, and nothing is written.
func TestNewMistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"new", "fn"}, args...)...)
		cmd.Dir = dir
		return runCmd(t, cmd, "")
	}
	langs := strings.Join(scaffold.Languages(), ", ")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"Hello", "--lang", "go"}, 2, `sluice: invalid function name "Hello": use 1 to 63 lowercase letters, digits and '-'`},
		{[]string{"hello", "--lang", "cobol"}, 2, `sluice: --lang: no template for language "cobol": use one of ` + langs + "\n"},
		{[]string{"hello"}, 2, "sluice: --lang: no language given: use one of " + langs + "\n"},
		{[]string{"--lang", "go"}, 2, "sluice: new fn: missing NAME"},
	} {
		if r := run(tc.args...); r.code != tc.code || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.want) {
			t.Fatalf("sluice new fn %v: %+v, want exit %d and %q", tc.args, r, tc.code, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the mistakes wrote %v", entries)
	}
	// ./NAME by default; again, refused; with --force, written over
	if r := run("hello", "--lang", "c"); r.code != 0 || !strings.Contains(r.stdout, filepath.Join("hello", "handler.c")) {
		t.Fatalf("sluice new fn hello: %+v", r)
	}
	os.WriteFile(filepath.Join(dir, "hello", "handler.c"), []byte("mine"), 0o644)
	if r := run("hello", "--lang", "c"); r.code != 1 || !strings.Contains(r.stderr, "hello: directory is not empty") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("sluice new fn into a directory with files: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hello", "handler.c")); string(b) != "mine" {
		t.Fatalf("the refused project changed handler.c: %q", b)
	}
	if r := run("hello", "--lang", "c", "--force"); r.code != 0 {
		t.Fatalf("sluice new fn --force: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hello", "handler.c")); !strings.Contains(string(b), "SLUICE_HANDLER(handle)") {
		t.Fatalf("--force kept the old handler.c: %q", b)
	}
}
