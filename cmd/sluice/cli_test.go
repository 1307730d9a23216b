package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testutil"
)

// The command line as its users meet it, on the real binary and a real
// daemon: flags anywhere, help, completion, JSON, the token from a file,
// bounded reads, input checks, and guest text kept off the terminal.

// run runs the binary with exactly this environment added to a clean
// one (PATH and HOME only): no SLUICE_SERVER unless given.
func run(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func TestCLIFlagsAnywhereAndHelp(t *testing.T) {
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))

	// --server and -o before the command, between its words, after it
	for _, args := range [][]string{
		{"--server", p.server, "fn", "list"},
		{"-o", "json", "--server", p.server, "fn", "list"},
		{"fn", "--server=" + p.server, "list", "-o", "json"},
	} {
		r := run(t, nil, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "echo") {
			t.Fatalf("sluice %s: %+v", strings.Join(args, " "), r)
		}
		if strings.Contains(strings.Join(args, " "), "json") != json.Valid([]byte(r.stdout)) {
			t.Fatalf("sluice %s: JSON or not:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
	// without --server: the default, and a message that says what to do
	if r := run(t, []string{"SLUICE_SERVER=http://127.0.0.1:1"}, "", "fn", "list"); r.code != 1 || !strings.Contains(r.stderr, "set --server or SLUICE_SERVER") {
		t.Fatalf("no daemon: %+v", r)
	}

	// help CMD is CMD --help: arguments, examples, flags
	help := run(t, nil, "", "help", "fn", "deploy")
	if help.code != 0 || help.stdout != run(t, nil, "", "fn", "deploy", "--help").stdout {
		t.Fatalf("help fn deploy: %+v", help)
	}
	for _, want := range []string{"Arguments:\n  NAME ", "Examples:\n", "--memory", "Client flags (anywhere on the line):\n"} {
		if !strings.Contains(help.stdout, want) {
			t.Fatalf("help fn deploy has no %q:\n%s", want, help.stdout)
		}
	}
	if r := run(t, nil, "", "help", "fn"); r.code != 0 || !strings.Contains(r.stdout, "\n  update ") || strings.HasPrefix(r.stdout, "sluice runs") {
		t.Fatalf("help fn: %+v", r)
	}
	if r := run(t, nil, "", "help", "frobnicate"); r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("help of an unknown command: %+v", r)
	}
}

// bashComplete runs bash's completion of a command line, as a shell does
// on TAB, with the script `sluice completion bash` prints; it returns the
// candidates.
func bashComplete(t *testing.T, env []string, line string) []string {
	t.Helper()
	// cobra's script needs bash-completion's _get_comp_words_by_ref; a
	// shell without the package gets the few lines it needs here
	const shim = `_get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }`
	script := `if [ -r /usr/share/bash-completion/bash_completion ]; then . /usr/share/bash-completion/bash_completion; else ` + shim + `; fi
source <(sluice completion bash) || exit 3
read -ra COMP_WORDS <<< "$LINE"
[[ "$LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE=$LINE
COMP_POINT=${#LINE}
__start_sluice 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append([]string{"PATH=" + filepath.Dir(binary) + ":" + os.Getenv("PATH"), "LINE=" + line}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("bash completion of %q: %v\n%s", line, err, errb.String())
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l != "" {
			got = append(got, strings.TrimSpace(l))
		}
	}
	return got
}

func TestCompletion(t *testing.T) {
	// bash: the script sources cleanly and completes commands
	if got := bashComplete(t, nil, "sluice f"); strings.Join(got, ",") != "fn" {
		t.Fatalf("completing `sluice f`: %q", got)
	}
	if got := bashComplete(t, nil, "sluice fn "); !strings.Contains(strings.Join(got, ","), "deploy") || !strings.Contains(strings.Join(got, ","), "update") {
		t.Fatalf("completing `sluice fn `: %q", got)
	}
	// with a daemon: function names
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "hello", testutil.WasmPath(t, "hello-wasi"))
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	env := []string{"SLUICE_SERVER=" + p.server}
	if got := bashComplete(t, env, "sluice fn invoke h"); strings.Join(got, ",") != "hello" {
		t.Fatalf("completing `sluice fn invoke h`: %q", got)
	}
	if got := bashComplete(t, nil, "sluice --server "+p.server+" trigger create t --fn e"); strings.Join(got, ",") != "echo" {
		t.Fatalf("completing --fn with --server on the line: %q", got)
	}
	// no daemon: nothing, quickly
	if got := bashComplete(t, []string{"SLUICE_SERVER=http://127.0.0.1:1"}, "sluice fn invoke h"); len(got) != 0 {
		t.Fatalf("completing without a daemon: %q", got)
	}
	// zsh and fish get their scripts
	for shell, want := range map[string]string{"zsh": "#compdef sluice", "fish": "complete -c sluice"} {
		if r := run(t, nil, "", "completion", shell); r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("completion %s: exit %d, no %q", shell, r.code, want)
		}
	}
}

// -o json on a real daemon: objects and lists as JSON, streams as one
// compact object per line.
func TestCLIJSON(t *testing.T) {
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "hello", testutil.WasmPath(t, "hello-wasi"))
	p.mustSluice(t, "", "trigger", "create", "greet", "--fn", "hello", "--topic", "names", "--resp-topic", "greetings")
	p.mustSluice(t, "", "fn", "invoke", "hello", "--data", "Ada")
	p.mustSluice(t, "", "fn", "invoke", "hello", "--data", "Grace")
	var recs []map[string]any
	testutil.Eventually(t, 10*time.Second, "the logs", func() bool {
		recs = ndjson(t, p.mustSluice(t, "", "fn", "logs", "hello", "-o", "json"))
		return len(recs) == 2
	})
	if !strings.HasPrefix(recs[0]["message"].(string), "greeting Ada") {
		t.Fatalf("fn logs -o json: %v", recs)
	}
	pub := p.mustSluice(t, "", "topic", "publish", "names", "--data", "Linus", "-o", "json")
	var seq struct {
		Topic    string `json:"topic"`
		Sequence *int   `json:"sequence"`
	}
	if err := json.Unmarshal([]byte(pub), &seq); err != nil || seq.Topic != "names" || seq.Sequence == nil {
		t.Fatalf("topic publish -o json: %q %v", pub, err)
	}
	msgs := ndjson(t, p.mustSluice(t, "", "topic", "tail", "greetings", "--from-start", "--count", "1", "--timeout", "20s", "-o", "json"))
	if len(msgs) != 1 || msgs[0]["data"] != "SGVsbG8sIExpbnVzIQo=" { // "Hello, Linus!\n"
		t.Fatalf("topic tail -o json: %v", msgs)
	}
	for _, args := range [][]string{{"fn", "list"}, {"fn", "get", "hello"}, {"trigger", "list"}, {"trigger", "get", "greet"}, {"wf", "list"}, {"wf", "invocations"}} {
		if out := p.mustSluice(t, "", append(args, "-o", "json")...); !json.Valid([]byte(out)) {
			t.Fatalf("sluice %v -o json:\n%s", args, out)
		}
	}
	// commands with nothing to print as JSON refuse -o
	if r := p.sluice(t, "", "fn", "invoke", "hello", "--data", "x", "-o", "json"); r.code != 2 {
		t.Fatalf("fn invoke -o json: %+v", r)
	}
	// fn logs --tail: the last N
	for _, n := range []string{"Linus", "Ken"} {
		p.mustSluice(t, "", "fn", "invoke", "hello", "--data", n)
	}
	testutil.Eventually(t, 10*time.Second, "the logs of the new calls", func() bool {
		return strings.Count(p.mustSluice(t, "", "fn", "logs", "hello"), "greeting") == 5
	})
	if out := p.mustSluice(t, "", "fn", "logs", "hello", "--tail", "2"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "greeting Ken") {
		t.Fatalf("fn logs --tail 2:\n%s", out)
	}
}

func ndjson(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || strings.HasPrefix(l, " ") {
			t.Fatalf("not one JSON object per line: %q: %v\n%s", l, err, out)
		}
		recs = append(recs, m)
	}
	return recs
}

// The token read from a file, by the daemon and the client, never on a
// command line.
func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	const token = "c0ffee-7a1b-token"
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	p := startDaemon(t, t.TempDir(), "--token-file", tokenFile)
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/cmdline")
	if bytes.Contains(cmdline, []byte(token)) {
		t.Fatalf("the token is on the daemon's command line")
	}
	server := "SLUICE_SERVER=" + p.server
	if r := run(t, []string{server}, "", "fn", "list"); r.code != 1 || !strings.Contains(r.stderr, "token") {
		t.Fatalf("no token: %+v", r)
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"--token-file", nil, []string{"--token-file", tokenFile}},
		{"--token-file before the command", nil, []string{"--token-file", tokenFile}},
		{"SLUICE_TOKEN_FILE", []string{"SLUICE_TOKEN_FILE=" + tokenFile}, nil},
		{"SLUICE_TOKEN", []string{"SLUICE_TOKEN=" + token}, nil},
	} {
		args := append([]string{"fn", "list"}, tc.args...)
		if tc.name == "--token-file before the command" {
			args = append(tc.args, "fn", "list")
		}
		if r := run(t, append(tc.env, server), "", args...); r.code != 0 {
			t.Fatalf("%s: %+v", tc.name, r)
		}
	}
	if r := run(t, []string{server, "SLUICE_TOKEN=wrong"}, "", "fn", "list"); r.code != 1 {
		t.Fatalf("a wrong token: %+v", r)
	}
}

// A guest's text reaches the operator's terminal with its control
// characters made visible: in errors and in logs; fn invoke's output to a
// pipe is its exact bytes.
func TestGuestTextKeptOffTheTerminal(t *testing.T) {
	p := startDaemon(t, t.TempDir())
	// a reactor that logs its input and fails with it as the message
	wasm := wat2wasm(t, `(module
  (import "sluice" "fail" (func $fail (param i32 i32)))
  (import "sluice" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (call $log (i32.const 2) (local.get $ptr) (local.get $len))
    (call $fail (local.get $ptr) (local.get $len))
    (i32.const 1)))`)
	p.mustSluice(t, "", "fn", "deploy", "liar", wasm)
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	const evil = "\x1b]0;owned\a\x1b[2Jgone\u202e"
	const shown = `\x1b]0;owned\a\x1b[2Jgone\u202e`

	r := p.sluice(t, "", "fn", "invoke", "liar", "--data", evil)
	if r.code != 1 || strings.ContainsAny(r.stderr, "\x1b\a\u202e") || !strings.Contains(r.stderr, shown) {
		t.Fatalf("the error of a guest: %q", r.stderr)
	}
	var logs string
	testutil.Eventually(t, 10*time.Second, "the guest's log line", func() bool {
		logs = p.mustSluice(t, "", "fn", "logs", "liar")
		return strings.Contains(logs, "log ")
	})
	if strings.ContainsAny(logs, "\x1b\a\u202e") || !strings.Contains(logs, " log    "+shown+"\n") {
		t.Fatalf("fn logs: %q", logs)
	}
	if out := p.mustSluice(t, "", "fn", "logs", "liar", "-o", "json"); strings.ContainsAny(out, "\x1b\a\u202e") || !strings.Contains(out, `\u001b]0;owned\u0007`) {
		t.Fatalf("fn logs -o json: %q", out)
	}
	// data to a pipe: the exact bytes
	if out := p.mustSluice(t, evil+"\x00\xff", "fn", "invoke", "echo"); out != evil+"\x00\xff" {
		t.Fatalf("fn invoke to a pipe: %q", out)
	}
}

// wat2wasm assembles a WAT module into a file.
func wat2wasm(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("wat2wasm", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm (install wabt, or run make test, which does): %v\n%s", err, msg)
	}
	return out
}

// A workflow's input: malformed JSON never reaches the daemon; --raw
// sends text as a string.
func TestWfInvokeInputChecked(t *testing.T) {
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	p.mustSluice(t, "", "wf", "create", "id", "-f", writeFile(t, "id.yaml",
		"apiVersion: sluice/v1\nkind: Workflow\nname: id\noutput: ${ tasks.a.output }\ntasks:\n  a: {run: echo, inputs: \"${ input }\"}\n"))
	r := p.sluice(t, "", "wf", "invoke", "id", "--data", `{"name": "Ada"`, "--wait")
	if r.code != 2 || r.stderr != "sluice: --data is not JSON: unexpected end of JSON input at byte 14; use --raw to send it as a string\n" {
		t.Fatalf("malformed --data: %+v", r)
	}
	if r := p.sluice(t, "{oops", "wf", "invoke", "id"); r.code != 2 || !strings.HasPrefix(r.stderr, "sluice: stdin is not JSON: ") {
		t.Fatalf("malformed stdin: %+v", r)
	}
	if out := p.mustSluice(t, "", "wf", "invocations", "id"); strings.Count(out, "\n") != 1 {
		t.Fatalf("malformed input started invocations:\n%s", out)
	}
	if out := p.mustSluice(t, "", "wf", "invoke", "id", "--raw", "--data", `{"name": "Ada"`, "--wait"); out != `"{\"name\": \"Ada\""`+"\n" {
		t.Fatalf("--raw: %q", out)
	}
	if out := p.mustSluice(t, `{"name": "Ada"}`, "wf", "invoke", "id", "--wait"); out != `{"name":"Ada"}`+"\n" {
		t.Fatalf("JSON from stdin: %q", out)
	}
	// the filter of wf invocations
	p.mustSluice(t, "", "wf", "create", "no", "-f", writeFile(t, "no.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: no\ntasks:\n  a: {run: fail, inputs: nope}\n"))
	p.sluice(t, "", "wf", "invoke", "no", "--wait")
	p.sluice(t, "", "wf", "invoke", "no", "--wait")
	out := p.mustSluice(t, "", "wf", "invocations", "--status", "failed", "--limit", "1")
	if strings.Count(out, "\n") != 2 || !regexp.MustCompile(`(?m)^\S+\s+no\s+failed\s`).MatchString(out) {
		t.Fatalf("wf invocations --status failed --limit 1:\n%s", out)
	}
}
