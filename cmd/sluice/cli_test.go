package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// The command line as its users meet it, on the real binary and a real
// daemon: flags anywhere, the token, help, completion, JSON, fn update,
// deletes that protect, environment values masked, topic sequences,
// bounded reads, input checks, apply, and guest text kept off the
// terminal. What the command line decides before it sends a request is
// tested in internal/app/cli.

// run runs the binary with exactly this environment added to a clean
// one (PATH and HOME only): no SLUICE_SERVER unless given.
func run(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	return runCmd(t, cmd, stdin)
}

// api makes a request to the daemon's API, with its token, and returns
// the status and the body.
func (p *daemonProc) api(t *testing.T, method, path, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.server+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lines returns n lines "prefix 0" to "prefix n-1".
func lines(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	return b.String()
}

// sayWAT is a WASI command that copies its input to stderr: each line is
// one log record.
const sayWAT = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $n i32)
    (loop $more
      ;; one iovec at 0: a buffer at 1024
      (i32.store (i32.const 0) (i32.const 1024))
      (i32.store (i32.const 4) (i32.const 60000))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.load (i32.const 8)))
      (if (i32.gt_u (local.get $n) (i32.const 0))
        (then
          (i32.store (i32.const 4) (local.get $n))
          (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 12)))
          (br $more))))))`

// help and completion scripts, without a daemon.
func TestCLIHelp(t *testing.T) {
	t.Parallel()
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
	// without a daemon: a message that says what to do
	if r := run(t, []string{"SLUICE_SERVER=http://127.0.0.1:1"}, "", "fn", "list"); r.code != 1 || !strings.Contains(r.stderr, "set --server or SLUICE_SERVER") {
		t.Fatalf("no daemon: %+v", r)
	}

	// bash: the script sources cleanly and completes commands
	if got := bashComplete(t, nil, "sluice f"); strings.Join(got, ",") != "fn" {
		t.Fatalf("completing `sluice f`: %q", got)
	}
	if got := bashComplete(t, nil, "sluice fn "); !strings.Contains(strings.Join(got, ","), "deploy") || !strings.Contains(strings.Join(got, ","), "update") {
		t.Fatalf("completing `sluice fn `: %q", got)
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

// TestCLICommands runs the client commands against one daemon. The
// daemon requires a token (read from a file), so every command is seen to
// send it. Each subtest uses names of its own.
func TestCLICommands(t *testing.T) {
	t.Parallel()
	testutil.WasmPath(t, "echo-wat")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	const token = "c0ffee-7a1b-token"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDaemon(t, t.TempDir(), "--token-file", tokenFile)
	p.token = token

	t.Run("token", func(t *testing.T) { cliToken(t, p, tokenFile) })
	t.Run("global flags anywhere", func(t *testing.T) { cliFlagsAnywhere(t, p) })
	t.Run("completion", func(t *testing.T) { cliCompletion(t, p, tokenFile) })
	t.Run("fn update", func(t *testing.T) { cliFnUpdate(t, p) })
	t.Run("env masked", func(t *testing.T) { cliEnvMasked(t, p) })
	t.Run("meta env", func(t *testing.T) { cliMetaEnv(t, p) })
	t.Run("delete dependents", func(t *testing.T) { cliDeleteDependents(t, p) })
	t.Run("topic publish sequence", func(t *testing.T) { cliPublishSequence(t, p) })
	t.Run("bounded reads", func(t *testing.T) { cliBoundedReads(t, p) })
	t.Run("wf invoke input", func(t *testing.T) { cliWfInvokeInput(t, p) })
	t.Run("apply env", func(t *testing.T) { cliApplyEnv(t, p) })
	t.Run("guest text", func(t *testing.T) { cliGuestText(t, p) })
	t.Run("json everywhere", func(t *testing.T) { cliJSONEverywhere(t, p) })
}

// The token comes from --token, --token-file, SLUICE_TOKEN or
// SLUICE_TOKEN_FILE, a flag before a variable; the daemon reads its own
// from a file, never from its command line.
func cliToken(t *testing.T, p *daemonProc, tokenFile string) {
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/cmdline")
	if bytes.Contains(cmdline, []byte(p.token)) {
		t.Fatalf("the token is on the daemon's command line")
	}
	wrongFile := writeFile(t, "wrong", "wrong-token\n")
	server := "SLUICE_SERVER=" + p.server
	for _, tc := range []struct {
		name   string
		env    []string
		before []string // flags before the command
		after  []string // flags after it
		ok     bool
	}{
		{name: "none"},
		{name: "--token", after: []string{"--token", p.token}, ok: true},
		{name: "--token-file", after: []string{"--token-file", tokenFile}, ok: true},
		{name: "--token-file before the command", before: []string{"--token-file", tokenFile}, ok: true},
		{name: "SLUICE_TOKEN", env: []string{"SLUICE_TOKEN=" + p.token}, ok: true},
		{name: "SLUICE_TOKEN_FILE", env: []string{"SLUICE_TOKEN_FILE=" + tokenFile}, ok: true},
		{name: "--token-file over SLUICE_TOKEN", env: []string{"SLUICE_TOKEN=wrong"}, after: []string{"--token-file", tokenFile}, ok: true},
		{name: "--token over SLUICE_TOKEN_FILE", env: []string{"SLUICE_TOKEN_FILE=" + wrongFile}, before: []string{"--token", p.token}, ok: true},
		{name: "a wrong token", env: []string{"SLUICE_TOKEN=wrong"}},
		{name: "a wrong token file", after: []string{"--token-file", wrongFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append(append([]string{}, tc.before...), "fn", "list"), tc.after...)
			r := run(t, append(tc.env, server), "", args...)
			switch {
			case tc.ok && (r.code != 0 || !strings.HasPrefix(r.stdout, "NAME ")):
				t.Fatalf("sluice %s: %+v", strings.Join(args, " "), r)
			case !tc.ok && (r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "sluice: missing or wrong bearer token") || strings.Count(r.stderr, "\n") != 1):
				t.Fatalf("sluice %s: %+v, want the daemon's refusal", strings.Join(args, " "), r)
			}
		})
	}
}

// --server, --token and -o work before the command, between its words
// and after it.
func cliFlagsAnywhere(t *testing.T, p *daemonProc) {
	p.mustSluice(t, "", "fn", "deploy", "anywhere", testutil.WasmPath(t, "echo-wat"))
	for _, args := range [][]string{
		{"--server", p.server, "--token", p.token, "fn", "list"},
		{"fn", "--server", p.server, "list", "--token", p.token},
		{"fn", "list", "--server", p.server, "--token", p.token},
		{"--server=" + p.server, "-o", "json", "--token=" + p.token, "fn", "list"},
		{"-o", "json", "--token", p.token, "--server", p.server, "fn", "list"},
		{"--token", p.token, "fn", "list", "--server", p.server, "-o", "json"},
		{"fn", "-o", "json", "get", "--server=" + p.server, "anywhere", "--token", p.token},
	} {
		// a clean environment: the server and the token come from the line
		r := run(t, nil, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "anywhere") {
			t.Fatalf("sluice %s: %+v", strings.Join(args, " "), r)
		}
		if slices.Contains(args, "json") != json.Valid([]byte(r.stdout)) {
			t.Fatalf("sluice %s: JSON or not:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
}

// Completion of names asks the daemon, with the server and token of the
// environment or of the line.
func cliCompletion(t *testing.T, p *daemonProc, tokenFile string) {
	p.mustSluice(t, "", "fn", "deploy", "cmp-hello", testutil.WasmPath(t, "echo-wat"))
	p.mustSluice(t, "", "fn", "deploy", "cmp-echo", testutil.WasmPath(t, "echo-wat"))
	env := []string{"SLUICE_SERVER=" + p.server, "SLUICE_TOKEN=" + p.token}
	if got := bashComplete(t, env, "sluice fn invoke cmp-h"); strings.Join(got, ",") != "cmp-hello" {
		t.Fatalf("completing `sluice fn invoke cmp-h`: %q", got)
	}
	if got := bashComplete(t, nil, "sluice --server "+p.server+" --token-file "+tokenFile+" trigger create t --fn cmp-e"); strings.Join(got, ",") != "cmp-echo" {
		t.Fatalf("completing --fn with --server and --token-file on the line: %q", got)
	}
	// a wrong token: nothing
	if got := bashComplete(t, []string{"SLUICE_SERVER=" + p.server, "SLUICE_TOKEN=wrong"}, "sluice fn invoke cmp-h"); len(got) != 0 {
		t.Fatalf("completing with a wrong token: %q", got)
	}
}

// functionView is what the tests read of `fn get -o json`.
type functionView struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	ABI     string `json:"abi"`
	Module  string `json:"module"`
	Size    int    `json:"size"`
	Limits  struct {
		Memory      uint64 `json:"memory"`
		Timeout     string `json:"timeout"`
		Concurrency int    `json:"concurrency"`
		MaxInput    int    `json:"max_input"`
		MaxOutput   int    `json:"max_output"`
	} `json:"limits"`
	Env map[string]string `json:"env"`
}

// function reads a function with `fn get --show-env -o json`.
func (p *daemonProc) function(t *testing.T, name string) functionView {
	t.Helper()
	var v functionView
	out := p.mustSluice(t, "", "fn", "get", name, "--show-env", "-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("fn get -o json: %v\n%s", err, out)
	}
	return v
}

// fn update changes limits and environment without the module: a new
// version with the same module, settings not given kept; the same
// settings again make no version.
func cliFnUpdate(t *testing.T, p *daemonProc) {
	p.mustSluice(t, "", "fn", "deploy", "upd", testutil.WasmPath(t, "echo-wat"), "--env", "GREETING=Hi", "--env", "DEBUG=1")
	v1 := p.function(t, "upd")
	out := p.mustSluice(t, "", "fn", "update", "upd", "--timeout", "5s", "--memory", "16MiB", "--env", "GREETING=Salut", "--unset-env", "DEBUG")
	if out != "updated upd to version 2: memory 16 MiB, timeout 5s, env GREETING set, env DEBUG unset\n" {
		t.Fatalf("fn update said %q", out)
	}
	v2 := p.function(t, "upd")
	if v2.Version != 2 || v2.Module != v1.Module || v2.Size != v1.Size || v2.ABI != v1.ABI ||
		v2.Limits.Memory != 16<<20 || v2.Limits.Timeout != "5s" || v2.Limits.Concurrency != v1.Limits.Concurrency ||
		len(v2.Env) != 1 || v2.Env["GREETING"] != "Salut" {
		t.Fatalf("after fn update: %+v\nbefore: %+v", v2, v1)
	}
	if out := p.mustSluice(t, "", "fn", "update", "upd", "--concurrency", "8"); out != "updated upd to version 3: concurrency 8\n" {
		t.Fatalf("fn update --concurrency said %q", out)
	}
	v3 := p.function(t, "upd")
	if v3.Version != 3 || v3.Module != v1.Module || v3.Limits.Concurrency != 8 || v3.Limits.Memory != 16<<20 || v3.Limits.Timeout != "5s" || v3.Env["GREETING"] != "Salut" {
		t.Fatalf("settings not given were not kept: %+v", v3)
	}
	// the same settings again: no new version, and it says so
	if out := p.mustSluice(t, "", "fn", "update", "upd", "--concurrency", "8", "--timeout", "5s"); out != "upd unchanged at version 3: timeout 5s, concurrency 8 already\n" {
		t.Fatalf("fn update with the settings it has said %q", out)
	}
	if v := p.function(t, "upd"); v.Version != 3 {
		t.Fatalf("an update that changes nothing made version %d", v.Version)
	}
	// the new version runs
	if out := p.mustSluice(t, "", "fn", "invoke", "upd", "--data", "still here"); out != "still here" {
		t.Fatalf("fn invoke after fn update: %q", out)
	}
	// what the daemon refuses: exit 1, one line, nothing changed
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuch", "--timeout", "5s"}, `no function "nosuch"`},
		{[]string{"upd", "--memory", "8GiB"}, "memory limit 8 GiB is over the maximum of 4 GiB"},
	} {
		r := p.sluice(t, "", append([]string{"fn", "update"}, tc.args...)...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("fn update %v: %+v, want exit 1 with %q", tc.args, r, tc.want)
		}
	}
	if v := p.function(t, "upd"); v.Version != 3 || v.Limits.Concurrency != 8 {
		t.Fatalf("a refused update changed the function: %+v", v)
	}
	// --cgi turns a WASI command into a CGI script and back, the module kept
	p.mustSluice(t, "", "fn", "deploy", "updcgi", testutil.WasmPath(t, "cgi-c"))
	if out := p.mustSluice(t, "", "fn", "update", "updcgi", "--cgi"); out != "updated updcgi to version 2: cgi on\n" {
		t.Fatalf("fn update --cgi said %q", out)
	}
	if out := p.mustSluice(t, "", "fn", "get", "updcgi"); !strings.Contains(out, "\nabi:          wasi (CGI)\n") {
		t.Fatalf("fn get of a CGI function:\n%s", out)
	}
	if out := p.mustSluice(t, "", "fn", "update", "updcgi", "--cgi=false", "--timeout", "4s"); out != "updated updcgi to version 3: timeout 4s, cgi off\n" {
		t.Fatalf("fn update --cgi=false said %q", out)
	}
	if r := p.sluice(t, "", "fn", "update", "upd", "--cgi"); r.code != 1 || !strings.Contains(r.stderr, "--cgi is for WASI commands") {
		t.Fatalf("fn update --cgi of a reactor: %+v", r)
	}
}

// Environment values are masked in every listing; --show-env shows
// them.
func cliEnvMasked(t *testing.T, p *daemonProc) {
	const secret = "hunter2-b4f1"
	p.mustSluice(t, "", "fn", "deploy", "secret", testutil.WasmPath(t, "echo-wat"), "--env", "API_KEY="+secret, "--env", "MODE=staging-x9")
	out := p.mustSluice(t, "", "fn", "get", "secret")
	if !strings.Contains(out, "\nenv:          API_KEY=********\nenv:          MODE=********\n") {
		t.Fatalf("fn get:\n%s", out)
	}
	if out := p.mustSluice(t, "", "fn", "get", "secret", "--show-env"); !strings.Contains(out, "\nenv:          API_KEY="+secret+"\nenv:          MODE=staging-x9\n") {
		t.Fatalf("fn get --show-env:\n%s", out)
	}
	if out := p.mustSluice(t, "", "fn", "get", "secret", "--show-env", "-o", "json"); !strings.Contains(out, `"API_KEY": "`+secret+`"`) {
		t.Fatalf("fn get --show-env -o json:\n%s", out)
	}
	for _, args := range [][]string{{"fn", "get", "secret", "-o", "json"}, {"fn", "list"}, {"fn", "list", "-o", "json"}, {"fn", "update", "secret", "--timeout", "3s", "-o", "json"}} {
		if out := p.mustSluice(t, "", args...); strings.Contains(out, secret) || strings.Contains(out, "staging-x9") {
			t.Fatalf("sluice %v shows an environment value:\n%s", args, out)
		}
	}
}

// Deleting what a workflow or trigger uses is refused, naming them;
// --force deletes it all the same, and what used it stays and fails
// visibly when run.
func cliDeleteDependents(t *testing.T, p *daemonProc) {
	p.mustSluice(t, "", "fn", "deploy", "dep-fn", testutil.WasmPath(t, "echo-wat"))
	p.mustSluice(t, "", "wf", "create", "dep-inner", "-f", writeFile(t, "inner.yaml",
		"apiVersion: sluice/v1\nkind: Workflow\nname: dep-inner\noutput: ${ tasks.a.output }\ntasks:\n  a: {run: dep-fn, inputs: \"${ input }\"}\n"))
	p.mustSluice(t, "", "wf", "create", "dep-outer", "-f", writeFile(t, "outer.yaml",
		"apiVersion: sluice/v1\nkind: Workflow\nname: dep-outer\ntasks:\n  sub: {run: workflow, inputs: {workflow: dep-inner, input: 1}}\n"))
	p.mustSluice(t, "", "trigger", "create", "dep-cron", "--workflow", "dep-inner", "--cron", "@every 24h")
	defer p.sluice(t, "", "trigger", "delete", "dep-cron")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fn", "delete", "dep-fn"}, `sluice: function "dep-fn" is used by workflow "dep-inner": delete it first, or delete with --force` + "\n"},
		{[]string{"wf", "delete", "dep-inner"}, `sluice: workflow "dep-inner" is used by workflow "dep-outer" and trigger "dep-cron": delete them first, or delete with --force` + "\n"},
	} {
		if r := p.sluice(t, "", tc.args...); r.code != 1 || r.stdout != "" || r.stderr != tc.want {
			t.Fatalf("sluice %v: %+v\nwant stderr %q", tc.args, r, tc.want)
		}
	}
	p.mustSluice(t, "", "fn", "get", "dep-fn")
	if out := p.mustSluice(t, "", "wf", "invoke", "dep-outer", "--wait"); out != "1" {
		t.Fatalf("the workflows after refused deletes: %q", out)
	}

	// --force: gone, and the workflow that ran it fails visibly
	if out := p.mustSluice(t, "", "fn", "delete", "dep-fn", "--force"); out != "deleted dep-fn\n" {
		t.Fatalf("fn delete --force: %q", out)
	}
	if r := p.sluice(t, "", "fn", "get", "dep-fn"); r.code != 1 || !strings.Contains(r.stderr, `no function "dep-fn"`) {
		t.Fatalf("fn get after fn delete --force: %+v", r)
	}
	if out := p.mustSluice(t, "", "wf", "get", "dep-inner"); !strings.Contains(out, "run: dep-fn") {
		t.Fatalf("the workflow that used the function:\n%s", out)
	}
	r := p.sluice(t, "", "wf", "invoke", "dep-inner", "--data", `{"n": 1}`, "--wait")
	if r.code != 1 || r.stdout != "" || !regexp.MustCompile(`^sluice: invocation \S+ failed: task a: run: "dep-fn" is neither a deployed function nor a workflow`).MatchString(r.stderr) {
		t.Fatalf("a workflow whose function was deleted: %+v", r)
	}
	if out := p.mustSluice(t, "", "wf", "delete", "dep-inner", "--force"); out != "deleted workflow dep-inner\n" {
		t.Fatalf("wf delete --force: %q", out)
	}
	if out := p.mustSluice(t, "", "trigger", "get", "dep-cron"); !strings.Contains(out, "workflow:  dep-inner\n") {
		t.Fatalf("the trigger that used the workflow:\n%s", out)
	}
	r = p.sluice(t, "", "wf", "invoke", "dep-outer", "--wait")
	if r.code != 1 || r.stdout != "" || !regexp.MustCompile(`^sluice: invocation \S+ failed: task sub: .*no workflow "dep-inner"`).MatchString(r.stderr) {
		t.Fatalf("a workflow whose child workflow was deleted: %+v", r)
	}
}

// topic publish prints the sequence the message was stored at, where
// topic tail shows it.
func cliPublishSequence(t *testing.T, p *daemonProc) {
	payloads := []string{"Ada", "Grace", "Linus"}
	for i, m := range payloads {
		if out := p.mustSluice(t, "", "topic", "publish", "seq-names", "--data", m); out != strconv.Itoa(i+1)+"\n" {
			t.Fatalf("topic publish of message %d on a new topic printed %q", i+1, out)
		}
	}
	payloads = append(payloads, "Ken")
	if out := p.mustSluice(t, "Ken", "topic", "publish", "seq-names", "-o", "json"); out != "{\n  \"topic\": \"seq-names\",\n  \"sequence\": 4\n}\n" {
		t.Fatalf("topic publish -o json printed %q", out)
	}
	msgs := ndjson(t, p.mustSluice(t, "", "topic", "tail", "seq-names", "--from-start", "--count", "4", "--timeout", "20s", "-o", "json"))
	for i, m := range msgs {
		data, _ := base64.StdEncoding.DecodeString(m["data"].(string))
		if m["sequence"] != float64(i+1) || string(data) != payloads[i] {
			t.Fatalf("topic tail -o json, message %d: %v (data %q)", i, m, data)
		}
	}
}

// Reads are bounded: fn logs prints the last --tail records (100 by
// default), topic tail --tail starts with the last N messages, wf
// invocations lists the newest --limit (100 by default).
func cliBoundedReads(t *testing.T, p *daemonProc) {
	p.mustSluice(t, "", "fn", "deploy", "say", testutil.WATFile(t, sayWAT))
	logCount := func() int { return strings.Count(p.mustSluice(t, "", "fn", "logs", "say", "--tail", "1000"), "\n") }
	// five records, of a call made with a request id of our own
	if code, body := p.api(t, http.MethodPost, "/v1/functions/say/invoke", lines("line", 5), http.Header{"X-Request-Id": {"logs-five"}}); code != 200 {
		t.Fatalf("invoke: %d %s", code, body)
	}
	testutil.Eventually(t, 10*time.Second, "the five records", func() bool { return logCount() == 5 })
	out := p.mustSluice(t, "", "fn", "logs", "say", "--tail", "2")
	if !regexp.MustCompile(`^\S+ v1 \S+ request_id=logs-five span_id=[0-9a-f]{16} trace_id=[0-9a-f]{32} stderr line 3\n\S+ v1 \S+ request_id=logs-five span_id=[0-9a-f]{16} trace_id=[0-9a-f]{32} stderr line 4\n$`).MatchString(out) {
		t.Fatalf("fn logs --tail 2:\n%s", out)
	}
	// 150 more in one call: by default, the last 100
	p.mustSluice(t, lines("more", 150), "fn", "invoke", "say")
	testutil.Eventually(t, 10*time.Second, "the 150 records", func() bool { return logCount() == 155 })
	out = p.mustSluice(t, "", "fn", "logs", "say")
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(got) != 100 || !strings.HasSuffix(got[0], " stderr more 50") || !strings.HasSuffix(got[99], " stderr more 149") {
		t.Fatalf("fn logs: %d lines, from %q to %q", len(got), got[0], got[len(got)-1])
	}
	recs := ndjson(t, p.mustSluice(t, "", "fn", "logs", "say", "--tail", "2", "-o", "json"))
	if len(recs) != 2 || recs[0]["message"] != "more 148" || recs[1]["message"] != "more 149" {
		t.Fatalf("fn logs --tail 2 -o json: %v", recs)
	}
	if out := p.mustSluice(t, "", "fn", "logs", "say", "--since", "10m", "--tail", "3"); strings.Count(out, "\n") != 3 || !strings.HasSuffix(out, " stderr more 149\n") {
		t.Fatalf("fn logs --since 10m --tail 3:\n%s", out)
	}

	// topic tail --tail: the last N stored messages first
	for _, m := range []string{"a", "b", "c", "d", "e"} {
		p.mustSluice(t, "", "topic", "publish", "bounded", "--data", m)
	}
	if out := p.mustSluice(t, "", "topic", "tail", "bounded", "--tail", "2", "--count", "2", "--timeout", "20s"); out != "d\ne\n" {
		t.Fatalf("topic tail --tail 2: %q", out)
	}

	// wf invocations: the newest 100, unless --limit says otherwise
	p.mustSluice(t, "", "wf", "create", "many", "-f", writeFile(t, "many.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: many\ntasks:\n  a: {run: noop}\n"))
	var ids []string
	for range 101 {
		code, body := p.api(t, http.MethodPost, "/v1/workflows/many/invoke", "", nil)
		var inv invocation
		if code != 202 || json.Unmarshal([]byte(body), &inv) != nil {
			t.Fatalf("invoke: %d %s", code, body)
		}
		ids = append(ids, inv.ID)
	}
	rows := func(out string) []string { return strings.Split(strings.TrimSuffix(out, "\n"), "\n")[1:] }
	listed := rows(p.mustSluice(t, "", "wf", "invocations", "many"))
	if len(listed) != 100 || !strings.HasPrefix(listed[0], ids[100]+" ") || !strings.HasPrefix(listed[99], ids[1]+" ") {
		t.Fatalf("wf invocations: %d rows, from %q to %q", len(listed), listed[0], listed[len(listed)-1])
	}
	if listed := rows(p.mustSluice(t, "", "wf", "invocations", "many", "--limit", "101")); len(listed) != 101 || !strings.HasPrefix(listed[100], ids[0]+" ") {
		t.Fatalf("wf invocations --limit 101: %d rows", len(listed))
	}
	if listed := rows(p.mustSluice(t, "", "wf", "invocations", "many", "--status", "failed")); len(listed) != 0 {
		t.Fatalf("wf invocations --status failed: %q", listed)
	}

	// a page at a time: after the table, on stderr, the counts and the
	// command for the next page; --all lists every page
	r := p.sluice(t, "", "wf", "invocations", "many", "--limit", "60")
	more := regexp.MustCompile(`(?m)^more: sluice (wf invocations many --limit 60 --cursor \S+) `).FindStringSubmatch(r.stderr)
	if r.code != 0 || len(rows(r.stdout)) != 60 || more == nil || !strings.Contains(r.stderr, "in all: ") {
		t.Fatalf("wf invocations --limit 60: %+v", r)
	}
	next := rows(p.mustSluice(t, "", strings.Fields(more[1])...))
	if len(next) != 41 || !strings.HasPrefix(next[0], ids[40]+" ") || !strings.HasPrefix(next[40], ids[0]+" ") {
		t.Fatalf("the next page: %d rows, from %q", len(next), next[0])
	}
	if listed := rows(p.mustSluice(t, "", "wf", "invocations", "many", "--all")); len(listed) != 101 {
		t.Fatalf("wf invocations --all: %d rows", len(listed))
	}
	var page []invocation
	r = p.sluice(t, "", "wf", "invocations", "many", "--limit", "1", "--status", "running,succeeded", "-o", "json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page) != 1 || page[0].ID != ids[len(ids)-1] ||
		!strings.Contains(r.stderr, "in all: ") || !strings.Contains(r.stderr, "more: sluice wf invocations many") {
		t.Fatalf("wf invocations -o json: %+v", r)
	}
}

// A workflow's input: malformed JSON never reaches the daemon; --raw
// sends text as a string; JSON comes from --data, --file or stdin, and
// reaches a function as it was sent.
func cliWfInvokeInput(t *testing.T, p *daemonProc) {
	p.mustSluice(t, "", "fn", "deploy", "in-echo", testutil.WasmPath(t, "echo-wat"))
	p.mustSluice(t, "", "wf", "create", "in-id", "-f", writeFile(t, "id.yaml",
		"apiVersion: sluice/v1\nkind: Workflow\nname: in-id\noutput: ${ tasks.a.output }\ntasks:\n  a: {run: in-echo, inputs: \"${ input }\"}\n"))
	r := p.sluice(t, "", "wf", "invoke", "in-id", "--data", `{"name": "Ada"`, "--wait")
	if r.code != 2 || r.stderr != "sluice: --data is not JSON: unexpected end of JSON input at byte 14; use --raw to send it as a string\n" {
		t.Fatalf("malformed --data: %+v", r)
	}
	if r := p.sluice(t, "{oops", "wf", "invoke", "in-id"); r.code != 2 || !strings.HasPrefix(r.stderr, "sluice: stdin is not JSON: ") {
		t.Fatalf("malformed stdin: %+v", r)
	}
	if out := p.mustSluice(t, "", "wf", "invocations", "in-id"); strings.Count(out, "\n") != 1 {
		t.Fatalf("malformed input started invocations:\n%s", out)
	}
	good := writeFile(t, "good.json", `{"name": "Ada"}`)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"--data", "", []string{"--data", `{"name": "Ada"}`}, `{"name": "Ada"}`},
		{"--file", "", []string{"--file", good}, `{"name": "Ada"}`},
		{"stdin", `{"name": "Ada"}`, nil, `{"name": "Ada"}`},
		{"--raw --data", "", []string{"--raw", "--data", `{"name": "Ada"`}, `{"name": "Ada"`},
		{"--raw stdin", "Ada Lovelace", []string{"--raw"}, `Ada Lovelace`},
		{"no input", "", nil, ""},
	} {
		if out := p.mustSluice(t, tc.stdin, append([]string{"wf", "invoke", "in-id", "--wait"}, tc.args...)...); out != tc.want {
			t.Fatalf("%s: %q, want %q", tc.name, out, tc.want)
		}
	}
	// the filter of wf invocations
	p.mustSluice(t, "", "wf", "create", "in-no", "-f", writeFile(t, "no.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: in-no\ntasks:\n  a: {run: fail, inputs: nope}\n"))
	p.sluice(t, "", "wf", "invoke", "in-no", "--wait")
	p.sluice(t, "", "wf", "invoke", "in-no", "--wait")
	if out := p.mustSluice(t, "", "wf", "invocations", "in-no", "--status", "failed"); strings.Count(out, "\n") != 3 {
		t.Fatalf("wf invocations --status failed:\n%s", out)
	}
	out := p.mustSluice(t, "", "wf", "invocations", "in-no", "--status", "failed", "--limit", "1")
	if strings.Count(out, "\n") != 2 || !regexp.MustCompile(`(?m)^\S+\s+in-no\s+failed\s`).MatchString(out) {
		t.Fatalf("wf invocations --status failed --limit 1:\n%s", out)
	}
}

// apply reads the functions' environment values to compare them (the
// daemon masks them otherwise): a spec applied again changes nothing,
// and a changed value is named, never shown.
func cliApplyEnv(t *testing.T, p *daemonProc) {
	spec := func(key string) string {
		return "apiVersion: sluice/v1\nkind: Function\nname: app-fn\npath: " + testutil.WasmPath(t, "echo-wat") +
			"\nenv:\n  GREETING: Hi\n  API_KEY: " + key + "\n"
	}
	const unchanged = "function app-fn: unchanged\n"
	if out := p.mustSluice(t, spec("key-one-7f3e"), "apply", "-f", "-"); out != "function app-fn: deployed version 1\n" {
		t.Fatalf("apply:\n%s", out)
	}
	if out := p.mustSluice(t, spec("key-one-7f3e"), "apply", "-f", "-"); out != unchanged {
		t.Fatalf("apply again:\n%s", out)
	}
	if out := p.mustSluice(t, spec("key-one-7f3e"), "apply", "-f", "-", "--dry-run"); out != unchanged+"dry run: 0 to create, 0 to change, 0 to delete, 1 unchanged; nothing was changed\n" {
		t.Fatalf("apply --dry-run:\n%s", out)
	}
	if v := p.function(t, "app-fn"); v.Version != 1 {
		t.Fatalf("applying an unchanged spec made version %d", v.Version)
	}
	want := "function app-fn: would change: env API_KEY changed\ndry run: 0 to create, 1 to change, 0 to delete, 0 unchanged; nothing was changed\n"
	if out := p.mustSluice(t, spec("key-two-9c1d"), "apply", "-f", "-", "--dry-run"); out != want {
		t.Fatalf("apply --dry-run of a changed value:\n%s", out)
	}
	if out := p.mustSluice(t, spec("key-two-9c1d"), "apply", "-f", "-"); out != "function app-fn: deployed version 2 (env API_KEY changed)\n" {
		t.Fatalf("apply of a changed value:\n%s", out)
	}
	if out := p.mustSluice(t, spec("key-two-9c1d"), "apply", "-f", "-"); out != unchanged {
		t.Fatalf("apply of the changed spec again:\n%s", out)
	}
	if v := p.function(t, "app-fn"); v.Version != 2 || v.Env["API_KEY"] != "key-two-9c1d" || v.Env["GREETING"] != "Hi" {
		t.Fatalf("after apply: %+v", v)
	}
}

// A guest's text reaches the operator's terminal with its control
// characters made visible: in errors (on one line) and in logs; fn
// invoke's output to a pipe is its exact bytes.
func cliGuestText(t *testing.T, p *daemonProc) {
	// a reactor that logs its input and fails with it as the message
	wasm := testutil.WATFile(t, `(module
  (import "sluice" "fail" (func $fail (param i32 i32)))
  (import "sluice" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (call $log (i32.const 2) (local.get $ptr) (local.get $len))
    (call $fail (local.get $ptr) (local.get $len))
    (i32.const 1)))`)
	p.mustSluice(t, "", "fn", "deploy", "liar", wasm)
	p.mustSluice(t, "", "fn", "deploy", "gt-echo", testutil.WasmPath(t, "echo-wat"))
	const evil = "\x1b]0;owned\a\x1b[2Jgone\u202e"
	const shown = `\x1b]0;owned\a\x1b[2Jgone\u202e`

	r := p.sluice(t, "", "fn", "invoke", "liar", "--data", evil+"\nsecond line")
	if r.code != 1 || strings.ContainsAny(r.stderr, "\x1b\a\u202e") || !strings.Contains(r.stderr, shown+" second line\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("the error of a guest: %q", r.stderr)
	}
	var logs string
	testutil.Eventually(t, 10*time.Second, "the guest's log line", func() bool {
		logs = p.mustSluice(t, "", "fn", "logs", "liar")
		return strings.Contains(logs, "log ")
	})
	if strings.ContainsAny(logs, "\x1b\a\u202e") || !strings.Contains(logs, " log    "+shown+`\nsecond line`+"\n") {
		t.Fatalf("fn logs: %q", logs)
	}
	if out := p.mustSluice(t, "", "fn", "logs", "liar", "-o", "json"); strings.ContainsAny(out, "\x1b\a\u202e") || !strings.Contains(out, `\u001b]0;owned\u0007`) {
		t.Fatalf("fn logs -o json: %q", out)
	}
	// data to a pipe: the exact bytes
	if out := p.mustSluice(t, evil+"\x00\xff", "fn", "invoke", "gt-echo"); out != evil+"\x00\xff" {
		t.Fatalf("fn invoke to a pipe: %q", out)
	}
}

// commandsWithOutput walks the command tree as a user reads it (the
// commands, then each group's help) and returns the commands whose help
// lists -o.
func commandsWithOutput(t *testing.T) []string {
	t.Helper()
	top := run(t, nil, "", "__complete", "")
	var out []string
	var visit func(path string)
	visit = func(path string) {
		help := run(t, nil, "", append([]string{"help"}, strings.Fields(path)...)...)
		if help.code != 0 {
			t.Fatalf("help %s: %+v", path, help)
		}
		if _, list, group := strings.Cut(help.stdout, "\nCommands:\n"); group {
			list, _, _ = strings.Cut(list, "\n\n")
			for _, l := range strings.Split(list, "\n") {
				visit(path + " " + strings.Fields(l)[0])
			}
			return
		}
		if strings.Contains(help.stdout, "-o, --output") {
			out = append(out, path)
		}
	}
	for _, l := range strings.Split(top.stdout, "\n") {
		name, _, _ := strings.Cut(l, "\t")
		if name == "" || strings.HasPrefix(name, ":") || name == "help" || name == "completion" {
			continue
		}
		visit(name)
	}
	if len(out) < 10 {
		t.Fatalf("found only %v: is the walk broken?", out)
	}
	return out
}

// Every command that takes -o prints JSON with it: an object, or an
// array for listings, or one compact object per line for streams.
func cliJSONEverywhere(t *testing.T, p *daemonProc) {
	echo := testutil.WasmPath(t, "echo-wat")
	p.mustSluice(t, "", "fn", "deploy", "js-fn", echo)
	p.mustSluice(t, "", "fn", "deploy", "js-say", testutil.WATFile(t, sayWAT))
	p.mustSluice(t, "one\ntwo\n", "fn", "invoke", "js-say")
	p.mustSluice(t, "", "trigger", "create", "js-t", "--fn", "js-fn", "--topic", "js-in")
	p.mustSluice(t, "", "wf", "create", "js-wf", "-f", writeFile(t, "js-wf.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: js-wf\ntasks:\n  a: {run: js-fn, inputs: \"${ input }\"}\n"))
	p.mustSluice(t, "", "wf", "create", "js-nap", "-f", writeFile(t, "js-nap.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: js-nap\ntasks:\n  zz: {run: sleep, inputs: 10m}\n"))
	inv := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "js-wf", "--data", "{}"))
	p.waitStatus(t, inv, "succeeded")
	nap := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "js-nap"))
	p.waitStatus(t, nap, "running")
	p.mustSluice(t, "", "wf", "create", "js-gate", "-f", writeFile(t, "js-gate.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: js-gate\ntasks:\n  g: {run: wait, inputs: {signal: go}}\n"))
	gate := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "js-gate"))
	p.mustSluice(t, "", "wf", "create", "js-bad", "-f", writeFile(t, "js-bad.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: js-bad\ntasks:\n  a: {run: fail, inputs: broken}\n"))
	bad := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "js-bad"))
	p.waitStatus(t, bad, "failed")
	p.mustSluice(t, "", "topic", "publish", "js-topic", "--data", "a")
	p.mustSluice(t, "", "topic", "publish", "js-topic", "--data", "b")
	testutil.Eventually(t, 10*time.Second, "the log records", func() bool {
		return strings.Count(p.mustSluice(t, "", "fn", "logs", "js-say"), "\n") == 2
	})
	spec := writeFile(t, "spec.yaml", "apiVersion: sluice/v1\nkind: Function\nname: js-fn\npath: "+echo+"\n")

	// how to run each command that takes -o; nil: its -o json is checked
	// in bench_test.go
	args := map[string][]string{
		"fn deploy":          {"js-fn2", echo},
		"fn update":          {"js-fn2", "--timeout", "5s"},
		"fn list":            {},
		"fn get":             {"js-fn"},
		"fn versions":        {"js-fn"},
		"fn logs":            {"js-say"},
		"trigger create":     {"js-t2", "--fn", "js-fn", "--http-path", "/js-t2"},
		"trigger list":       {},
		"trigger get":        {"js-t"},
		"topic list":         {},
		"topic publish":      {"js-topic", "--data", "c"},
		"topic tail":         {"js-topic", "--from-start", "--count", "2", "--timeout", "20s"},
		"topic dead-letters": {"js-topic.dead"},
		"topic redrive":      {"js-topic.dead", "--all"},
		"wf create":          {"js-wf2", "-f", writeFile(t, "js-wf2.yaml", "apiVersion: sluice/v1\nkind: Workflow\nname: js-wf2\ntasks: {a: {run: js-fn}}\n")},
		"wf list":            {},
		"wf get":             {"js-wf"},
		"wf revisions":       {"js-wf"},
		"wf invoke":          {"js-wf", "--data", "{}", "--wait"},
		"wf status":          {inv},
		"wf events":          {inv},
		"wf cancel":          {nap},
		"wf signal":          {gate, "go", "--data", `"x"`},
		"wf redrive":         {bad},
		"wf invocations":     {"js-wf"},
		"apply":              {"-f", spec, "--dry-run"},
		"graph":              {},
		"bench coldstart":    nil,
		"bench http":         nil,
		"bench mq":           nil,
		"bench workflow":     nil,
	}
	// migrate copies from NATS Streaming: a dry run from this daemon's
	// into a new data dir, where the daemon runs on NATS Streaming (the
	// first pass of make test); on JetStream there is nothing to copy from
	if testBroker() == "nats-streaming" {
		args["migrate"] = []string{"--from-nats-streaming", p.nats, "--cluster-id", "sluice", "--data", t.TempDir(), "--dry-run"}
	} else {
		args["migrate"] = nil
	}
	listings := []string{"fn list", "fn versions", "trigger list", "topic list", "wf list", "wf revisions", "wf events", "wf invocations"}
	streams := []string{"fn logs", "topic tail"}
	found := commandsWithOutput(t)
	for _, c := range found {
		t.Run(c, func(t *testing.T) {
			a, listed := args[c]
			if !listed {
				t.Fatalf("%s takes -o: say here how to run it with -o json, or nil if another test does", c)
			}
			if a == nil {
				return
			}
			out := p.mustSluice(t, "", append(append(strings.Fields(c), a...), "-o", "json")...)
			switch {
			case slices.Contains(streams, c):
				if recs := ndjson(t, out); len(recs) != 2 {
					t.Fatalf("want 2 lines, one object each:\n%s", out)
				}
			case slices.Contains(listings, c):
				var v []map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) == 0 {
					t.Fatalf("not a JSON array of objects: %v\n%s", err, out)
				}
			default:
				var v map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatalf("not a JSON object: %v\n%s", err, out)
				}
			}
		})
	}
	for c := range args {
		if !slices.Contains(found, c) {
			t.Errorf("%s is listed here but takes no -o", c)
		}
	}
	// commands with nothing to print as JSON refuse -o
	if r := p.sluice(t, "", "fn", "invoke", "js-fn", "--data", "x", "-o", "json"); r.code != 2 {
		t.Fatalf("fn invoke -o json: %+v", r)
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
