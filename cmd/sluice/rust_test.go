package main

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// The Rust SDK (guests/rust) in a real daemon, through the CLI: the
// examples hello-rust and http-rust, built from source by make, and a
// plain Rust WASI command.

// TestRustReactor: bytes in and out exactly, an error with its code, a
// log line, a panic and an endless loop, each failing the call as a user
// expects, and the function still answering after them.
func TestRustReactor(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	out := p.mustSluice(t, "", "fn", "deploy", "hello", testutil.WasmPath(t, "hello-rust"), "--timeout", "2s")
	if !strings.HasPrefix(out, "deployed hello version 1 (reactor") {
		t.Fatalf("deploy said %q", out)
	}

	in := "\xff\x00 wörld\n\x80"
	if out := p.mustSluice(t, in, "fn", "invoke", "hello"); out != "hello, "+in {
		t.Fatalf("invoke: %q, want %q", out, "hello, "+in)
	}
	testutil.Eventually(t, 10*time.Second, "the handler's log line", func() bool {
		return strings.Contains(p.mustSluice(t, "", "fn", "logs", "hello"), fmt.Sprintf(" log    greeting %d bytes\n", len(in)))
	})

	// an error: its message, and its code where a workflow sees it
	if r := p.sluice(t, "", "fn", "invoke", "hello"); r.code != 1 || r.stderr != "sluice: function \"hello\" failed: empty input (code empty_input)\n" {
		t.Fatalf("empty input: %+v", r)
	}
	spec := writeFile(t, "greet.yaml", `apiVersion: sluice/v1
kind: Workflow
name: greet
tasks:
  hi:
    run: hello
    inputs: ${ fromBase64("") }
    catch:
      run: hello
      inputs: ${ error.code }
output: ${ tasks.hi.output }
`)
	p.mustSluice(t, "", "apply", "-f", spec)
	if out := p.mustSluice(t, "", "wf", "invoke", "greet", "--wait"); out != "hello, empty_input" {
		t.Fatalf("the catch saw the code as %q, want hello, empty_input", out)
	}

	// a panic fails the call with its message and where it happened;
	// the instance is thrown away and the next call runs on a fresh one
	r := p.sluice(t, "", "fn", "invoke", "hello", "--data", "panic oh no")
	if r.code != 1 || !regexp.MustCompile(`function "hello" exited with code 101: .*panic: oh no at src/lib\.rs:\d+:\d+\n$`).MatchString(r.stderr) {
		t.Fatalf("panic: %+v", r)
	}
	if out := p.mustSluice(t, "", "fn", "invoke", "hello", "--data", "again"); out != "hello, again" {
		t.Fatalf("after a panic: %q", out)
	}
	testutil.Eventually(t, 10*time.Second, "the panic in the logs", func() bool {
		return strings.Contains(p.mustSluice(t, "", "fn", "logs", "hello"), " stderr panic: oh no at src/lib.rs:")
	})

	// an endless loop is stopped by the timeout
	if r := p.sluice(t, "", "fn", "invoke", "hello", "--data", "spin"); r.code != 1 || !strings.Contains(r.stderr, `function "hello" timed out after 2s and was stopped`) {
		t.Fatalf("spin: %+v", r)
	}
	if out := p.mustSluice(t, "", "fn", "invoke", "hello", "--data", "after"); out != "hello, after" {
		t.Fatalf("after a timeout: %q", out)
	}
}

// TestRustHTTP: an HTTP handler behind a trigger gets the method, path,
// query, route parameter, headers and body, and answers with its status,
// headers and body.
func TestRustHTTP(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "items", testutil.WasmPath(t, "http-rust"))
	p.mustSluice(t, "", "trigger", "create", "items", "--fn", "items", "--http-path", "/items/{id}")

	req, err := http.NewRequest(http.MethodPut, p.server+"/fn/items/7?name=a%20b", strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer x")
	status, header, body := do(t, req)
	if status != 201 || body != "PUT /items/7 name=a b auth=Bearer x body=data" ||
		header.Get("Location") != "/items/7" || header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		strings.Join(header.Values("Set-Cookie"), ",") != "a=1,b=2" {
		t.Fatalf("PUT: %d %v %q", status, header, body)
	}

	req, _ = http.NewRequest(http.MethodPost, p.server+"/fn/items/8", nil)
	if status, _, body := do(t, req); status != 400 || body != "empty input" {
		t.Fatalf("an empty body: %d %q", status, body)
	}
	// without a trigger, the request is a POST of the input to /
	if out := p.mustSluice(t, "zz", "fn", "invoke", "items"); out != "POST / name= auth=- body=zz" {
		t.Fatalf("invoke: %q", out)
	}
}

func do(t *testing.T, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b.String()
}

// TestRustCommandAsUnderWazero: a plain WASI command built by Rust's
// standard library behaves under sluice exactly as under a plain WASI
// runtime (wazero) given the same stdin and environment: the same stdout
// (its arguments, the environment it sees, what it read) and the same
// exit code.
func TestRustCommandAsUnderWazero(t *testing.T) {
	t.Parallel()
	wasm := testutil.Wasm(t, "command-rust")
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "env", testutil.WasmPath(t, "command-rust"), "--env", "A=1", "--env", "B=two words")
	env := map[string]string{"A": "1", "B": "two words"}
	for _, input := range []string{"hi", "exit 3", ""} {
		plain := testutil.RunPlainWASI(t, wasm, "env", env, input)
		wantOut, wantCode := plain.Stdout, plain.Exit
		r := p.sluice(t, input, "fn", "invoke", "env")
		if wantCode == 0 {
			if r.code != 0 || r.stdout != wantOut {
				t.Fatalf("input %q: sluice printed %q (exit %d, %s), plain wazero %q", input, r.stdout, r.code, r.stderr, wantOut)
			}
			continue
		}
		if want := "exited with code 3: command-rust read 6 bytes"; r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("input %q: sluice said %+v, want a failure saying %q (plain wazero: exit %d)", input, r, want, wantCode)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the command's stderr in the logs", func() bool {
		return strings.Contains(p.mustSluice(t, "", "fn", "logs", "env"), " stderr command-rust read 2 bytes\n")
	})
}
