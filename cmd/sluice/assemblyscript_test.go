package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// The AssemblyScript SDK (guests/assemblyscript) and its examples
// (examples/hello-as), built from source by make with the assemblyscript
// compiler pinned by the SDK's lockfile, deployed to a real daemon and
// called with the CLI and the HTTP API.

// TestAssemblyScriptHarness runs the SDK's own tests under node: the
// harness an author tests a handler with, on the SDK's test module and
// the examples.
func TestAssemblyScriptHarness(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"asguest", "hello-as", "http-as"} {
		testutil.WasmPath(t, name) // built, or a message saying how
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (scripts/deps installs nodejs, or run make test, which does): %v", err)
	}
	root := testutil.Root(t)
	cmd := exec.Command(node, "--test", filepath.Join(root, "guests", "assemblyscript", "test"))
	cmd.Env = append(os.Environ(), "SLUICE_AS_WASM="+filepath.Join(root, "build", "wasm"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node --test guests/assemblyscript/test: %v\n%s", err, out)
	}
}

func TestAssemblyScriptReactor(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	if out := p.mustSluice(t, "", "fn", "deploy", "hello-as", testutil.WasmPath(t, "hello-as")); !strings.HasPrefix(out, "deployed hello-as version 1 (reactor") {
		t.Fatalf("deploy said %q", out)
	}

	// bytes in, bytes out, exactly: not UTF-8 ones too
	in := "\xff\x00\xfe caf\xc3\xa9 \x80"
	if code, body := p.api(t, http.MethodPost, "/v1/functions/hello-as/invoke", in, nil); code != 200 || body != "hello, "+in {
		t.Fatalf("invoke: %d %q", code, body)
	}
	if out := p.mustSluice(t, "", "fn", "invoke", "hello-as", "--data", "Ada"); out != "hello, Ada" {
		t.Fatalf("fn invoke: %q", out)
	}
	// a failure with its message and its code
	r := p.sluice(t, "", "fn", "invoke", "hello-as", "--data", "")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, `function "hello-as" failed: empty input`) {
		t.Fatalf("empty input: %+v", r)
	}
	// its code is what a workflow's catch (and retry.on) sees
	p.mustSluice(t, asCodeWorkflow, "apply", "-f", "-")
	if out := p.mustSluice(t, "", "wf", "invoke", "as-code", "--wait"); out != `empty_input: function "hello-as" failed: empty input` {
		t.Fatalf("the failure's code in a workflow: %q", out)
	}
	// the log line
	testutil.Eventually(t, 10*time.Second, "the log line of a call of 3 bytes", func() bool {
		return strings.Contains(p.mustSluice(t, "", "fn", "logs", "hello-as"), " log    greeting 3 bytes\n")
	})

	p.mustSluice(t, "", "fn", "deploy", "asguest", testutil.WasmPath(t, "asguest"), "--timeout", "1s", "--memory", "16MiB")
	fails := []struct {
		input, code, message string
	}{
		// assert, throw and a bounds check go through the SDK's abort: the
		// call fails with the message, where it was, and exit code 2
		{"abort:the sky fell", "exit", `function "asguest" exited with code 2: it called proc_exit instead of returning (its instance is gone): panic: the sky fell at guests/assemblyscript/test/asguest.ts:`},
		{"throw:oops", "exit", "panic: oops at guests/assemblyscript/test/asguest.ts:"},
		{"oob", "exit", "panic: Index out of range at ~lib/array.ts:"},
		{"unreachable", "trap", `function "asguest" trapped: wasm error: unreachable`},
		{"loop", "timeout", `function "asguest" timed out after 1s and was stopped (raise --timeout if it needs longer)`},
		{"fail:card declined", "function_error", `function "asguest" failed: card declined`},
	}
	for _, f := range fails {
		code, body := p.api(t, http.MethodPost, "/v1/functions/asguest/invoke", f.input, nil)
		if e := decodeError(t, body); code == 200 || e.Code != f.code || !strings.Contains(e.Error, f.message) {
			t.Errorf("%s: %d %s, want code %s and %q", f.input, code, body, f.code, f.message)
		}
		// the next call runs, on a fresh instance after an abort, a trap or a timeout
		if out := p.mustSluice(t, "", "fn", "invoke", "asguest", "--data", "still here"); out != "still here" {
			t.Fatalf("after %s: %q", f.input, out)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the abort's line in the logs", func() bool {
		return strings.Contains(p.mustSluice(t, "", "fn", "logs", "asguest"), " stderr panic: the sky fell at ")
	})
	// metadata; and garbage collected in a pooled instance: 20 calls of
	// 16 MiB each under a 16 MiB limit
	if out := p.mustSluice(t, "", "fn", "invoke", "asguest", "--data", "meta:function"); out != "asguest" {
		t.Fatalf("meta: %q", out)
	}
	for range 20 {
		if out := p.mustSluice(t, "", "fn", "invoke", "asguest", "--data", "garbage:16"); out != "256" {
			t.Fatalf("garbage: %q", out)
		}
	}
}

// asCodeWorkflow calls hello-as with an empty input, and catches its
// failure.
const asCodeWorkflow = `apiVersion: sluice/v1
kind: Workflow
name: as-code
tasks:
  greet:
    run: hello-as
    inputs: ""
    catch: { run: noop, inputs: "${ error.code }: ${ error.message }" }
`

func TestAssemblyScriptHTTP(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "http-as", testutil.WasmPath(t, "http-as"))
	p.mustSluice(t, "", "trigger", "create", "hi-as", "--fn", "http-as", "--http-path", "/hi-as", "--method", "post")
	post := func(body string) (int, string, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, p.server+"/fn/hi-as", strings.NewReader(body))
		req.Header.Set("Accept-Language", "fr")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String(), resp.Header
	}
	code, body, h := post("Ada")
	if code != 200 || body != "hello, Ada" || h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("Content-Language") != "fr" || h.Get("X-Method") != "POST" {
		t.Fatalf("POST /fn/hi-as: %d %q %v", code, body, h)
	}
	if code, body, _ := post(""); code != 400 || body != "empty input" {
		t.Fatalf("empty body: %d %q", code, body)
	}
}

// TestAssemblyScriptCommand runs a WASI command written in AssemblyScript
// under sluice and under plain wazero with the same stdin and
// environment: the same stdout, stderr and exit code.
func TestAssemblyScriptCommand(t *testing.T) {
	t.Parallel()
	wasm := testutil.Wasm(t, "greet-as")
	p := startDaemon(t, t.TempDir())
	if out := p.mustSluice(t, "", "fn", "deploy", "greet-as", testutil.WasmPath(t, "greet-as"), "--env", "GREETING=Hi", "--env", "COLOR=blue"); !strings.HasPrefix(out, "deployed greet-as version 1 (wasi") {
		t.Fatalf("deploy said %q", out)
	}
	env := map[string]string{"COLOR": "blue", "GREETING": "Hi"}
	for _, in := range []string{"Ada", "\xff\x00bytes\x80", ""} {
		plain := testutil.RunPlainWASI(t, wasm, "greet-as", env, in)
		stdout, stderr, exit := plain.Stdout, plain.Stderr, plain.Exit
		code, body := p.api(t, http.MethodPost, "/v1/functions/greet-as/invoke", in, nil)
		if exit == 0 {
			if code != 200 || body != stdout {
				t.Fatalf("input %q: sluice %d %q, wazero %q", in, code, body, stdout)
			}
			if !strings.HasPrefix(stdout, "Hi, "+in+"\n") || !strings.Contains(stdout, "env COLOR=blue\n") {
				t.Fatalf("input %q: stdout %q", in, stdout)
			}
			continue
		}
		e := decodeError(t, body)
		want := `function "greet-as" exited with code 3: ` + strings.TrimSpace(stderr)
		if exit != 3 || e.Code != "exit" || e.Error != want {
			t.Fatalf("input %q: sluice %d %s, wazero exit %d stderr %q", in, code, body, exit, stderr)
		}
	}
}
