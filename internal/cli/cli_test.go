package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/api"
)

// walk calls fn for every command of the tree a user can run: not the
// hidden ones, not cobra's own (help, completion).
func walk(fn func(path string, cmd *cobra.Command)) {
	root := newRoot(&env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if sub.HasSubCommands() {
				visit(sub)
				continue
			}
			fn(path(sub), sub)
		}
	}
	visit(root)
}

// Global flags work before the command, between its words and after it.
func TestGlobalFlagsAnywhere(t *testing.T) {
	f := newFakeAPI(t)
	for _, args := range [][]string{
		{"--server", f.srv.URL, "fn", "list"},
		{"fn", "--server", f.srv.URL, "list"},
		{"fn", "list", "--server", f.srv.URL},
		{"--server=" + f.srv.URL, "-o", "json", "fn", "list"},
		{"-o", "json", "--token", "s3cret", "--server", f.srv.URL, "fn", "list"},
		{"--token", "s3cret", "fn", "list", "--server", f.srv.URL, "-o", "json"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runCLI("", args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if slices.Contains(args, "json") != json.Valid([]byte(r.stdout)) {
				t.Fatalf("-o json given %v, output:\n%s", slices.Contains(args, "json"), r.stdout)
			}
			if got, want := f.last().header.Get("Authorization"), map[bool]string{true: "Bearer s3cret"}[slices.Contains(args, "s3cret")]; got != want {
				t.Fatalf("Authorization %q, want %q", got, want)
			}
		})
	}
	// an unknown flag before the command is still a usage error
	if r := runCLI("", "--no-such-flag", "x", "fn", "list"); r.code != 2 {
		t.Fatalf("unknown flag: %+v", r)
	}
}

// The token comes from --token, --token-file, SLUICE_TOKEN or
// SLUICE_TOKEN_FILE; two of one rank are a mistake.
func TestTokenSources(t *testing.T) {
	f := newFakeAPI(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	twoLines := filepath.Join(dir, "two")
	os.WriteFile(twoLines, []byte("a\nb\n"), 0o600)
	for _, tc := range []struct {
		name      string
		env       map[string]string
		args      []string
		code      int
		bearer    string
		errSubstr string
	}{
		{name: "none", bearer: ""},
		{name: "flag", args: []string{"--token", "from-flag"}, bearer: "from-flag"},
		{name: "file flag", args: []string{"--token-file", file}, bearer: "from-file"},
		{name: "env", env: map[string]string{"SLUICE_TOKEN": "from-env"}, bearer: "from-env"},
		{name: "file env", env: map[string]string{"SLUICE_TOKEN_FILE": file}, bearer: "from-file"},
		{name: "flag over env", env: map[string]string{"SLUICE_TOKEN": "from-env"}, args: []string{"--token-file", file}, bearer: "from-file"},
		{name: "both flags", args: []string{"--token", "a", "--token-file", file}, code: 2, errSubstr: "give --token or --token-file, not both"},
		{name: "both variables", env: map[string]string{"SLUICE_TOKEN": "a", "SLUICE_TOKEN_FILE": file}, code: 2, errSubstr: "SLUICE_TOKEN and SLUICE_TOKEN_FILE are both set"},
		{name: "missing file", args: []string{"--token-file", filepath.Join(dir, "nope")}, code: 1, errSubstr: "--token-file: open "},
		{name: "empty file", args: []string{"--token-file", empty}, code: 1, errSubstr: "is empty: write the token into it"},
		{name: "not a token", env: map[string]string{"SLUICE_TOKEN_FILE": twoLines}, code: 1, errSubstr: "SLUICE_TOKEN_FILE: " + twoLines + " holds more than a token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SLUICE_TOKEN", "")
			t.Setenv("SLUICE_TOKEN_FILE", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			before := f.count()
			r := f.run(t, "", append([]string{"fn", "list"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.errSubstr) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", r.code, r.stderr, tc.code, tc.errSubstr)
			}
			if tc.code != 0 {
				if f.count() != before {
					t.Fatal("a request was sent with a token that is wrong")
				}
				return
			}
			want := ""
			if tc.bearer != "" {
				want = "Bearer " + tc.bearer
			}
			if got := f.last().header.Get("Authorization"); got != want {
				t.Fatalf("Authorization %q, want %q", got, want)
			}
		})
	}
	// help shows where the token comes from, never the token
	t.Setenv("SLUICE_TOKEN", "do-not-show-me")
	for _, cmd := range [][]string{{"fn", "list"}, {"daemon"}} {
		out := runCLI("", append(cmd, "--help")...).stdout
		if strings.Contains(out, "do-not-show-me") || !strings.Contains(out, `(default "$SLUICE_TOKEN")`) {
			t.Fatalf("%v --help:\n%s", cmd, out)
		}
	}
	if out := runCLI("", "daemon", "--help").stdout; !strings.Contains(out, "ps") || !strings.Contains(out, "--token-file") {
		t.Fatalf("daemon --help does not warn that --token shows in ps:\n%s", out)
	}
}

// help CMD prints that command's help, as CMD --help does: what it does,
// its arguments, examples and flags.
func TestHelp(t *testing.T) {
	fn := runCLI("", "help", "fn")
	if fn.code != 0 || !strings.Contains(fn.stdout, "Commands:\n  deploy ") || !strings.Contains(fn.stdout, "\n  update ") ||
		strings.Contains(fn.stdout, "sluice runs WebAssembly") {
		t.Fatalf("help fn: %+v", fn)
	}
	deploy := runCLI("", "help", "fn", "deploy")
	if deploy.code != 0 || deploy.stdout != runCLI("", "fn", "deploy", "--help").stdout {
		t.Fatalf("help fn deploy differs from fn deploy --help:\n%s", deploy.stdout)
	}
	for _, want := range []string{"Usage:\n  sluice fn deploy NAME FILE.wasm [flags]", "Arguments:\n  NAME ", "  FILE.wasm ",
		"Examples:\n  # a WASI command", "Flags:\n", "--memory string", "Client flags (anywhere on the line):\n", "--server URL"} {
		if !strings.Contains(deploy.stdout, want) {
			t.Fatalf("help fn deploy has no %q:\n%s", want, deploy.stdout)
		}
	}
	if r := runCLI("", "help", "fn", "nope"); r.code != 2 || !strings.Contains(r.stderr, `no help for "fn nope"`) {
		t.Fatalf("help of an unknown command: %+v", r)
	}
	if r := runCLI("", "help"); r.code != 0 || !strings.HasPrefix(r.stdout, "sluice runs WebAssembly") {
		t.Fatalf("help: %+v", r)
	}

	// every command: usage, examples, flags; its positional arguments
	placeholder := regexp.MustCompile(`^\[?([A-Z][A-Za-z0-9.]*?)(\.\.\.)?\]?$`)
	walk(func(p string, cmd *cobra.Command) {
		t.Run(p, func(t *testing.T) {
			r := runCLI("", append(strings.Fields(p), "--help")...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, want := range []string{"Usage:\n  sluice " + p, "\nExamples:\n  ", "\nFlags:\n"} {
				if !strings.Contains(r.stdout, want) {
					t.Fatalf("no %q in:\n%s", want, r.stdout)
				}
			}
			// the words of Use before its first flag are its arguments
			for _, w := range strings.Fields(cmd.Use)[1:] {
				if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "(") {
					break
				}
				m := placeholder.FindStringSubmatch(w)
				if m == nil {
					t.Fatalf("Use %q: %q is not an argument's placeholder", cmd.Use, w)
				}
				if !regexp.MustCompile(`(?m)^Arguments:\n(  .*\n)*  ` + regexp.QuoteMeta(m[1]) + ` `).MatchString(r.stdout) {
					t.Fatalf("argument %s is not explained:\n%s", m[1], r.stdout)
				}
			}
		})
	})
}

// Mistakes in the command line exit 2 with one line on stderr.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "sluice: no command given\n"},
		{[]string{"nonsense"}, `sluice: unknown command "nonsense"`},
		{[]string{"fn", "lsit"}, `sluice: unknown command "fn lsit": did you mean "fn list"?`},
		{[]string{"fn"}, "sluice: fn: no command given (one of: deploy, update, list, get, delete, invoke, logs)\n"},
		{[]string{"fn", "invoke"}, "sluice: fn invoke: missing NAME (usage: sluice fn invoke NAME [flags])\n"},
		{[]string{"fn", "get", "a", "b"}, `sluice: fn get: unexpected argument "b"`},
		{[]string{"fn", "list", "--frob"}, "sluice: fn list: unknown flag: --frob"},
		{[]string{"--frob"}, "sluice: unknown flag: --frob (run sluice --help)\n"},
		{[]string{"fn", "list", "-o", "yaml"}, `sluice: -o "yaml": use table or json`},
		{[]string{"wf", "invocations", "--status", "broken"}, `sluice: --status "broken": use running, succeeded, failed, canceled`},
		{[]string{"wf", "invocations", "--limit", "0"}, "sluice: --limit 0: want a positive number"},
		{[]string{"fn", "logs", "f", "--tail", "0"}, "sluice: --tail 0: want a positive number of records"},
		{[]string{"topic", "tail", "t", "--tail", "3", "--from-start"}, "sluice: give --tail or --from-start, not both"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI("", tc.args...)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if r.code != 2 || r.stdout != "" || !strings.HasPrefix(lines[len(lines)-1]+"\n", tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", r.code, r.stdout, r.stderr, tc.want)
			}
		})
	}
}

// jsonArgs are the arguments every command that takes -o is run with in
// TestJSONEverywhere. The bench commands load a real daemon: their -o
// json is checked in cmd/sluice's bench tests.
func jsonArgs(t *testing.T) map[string][]string {
	wasm := filepath.Join(t.TempDir(), "f.wasm")
	os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	spec := filepath.Join(t.TempDir(), "spec.yaml")
	os.WriteFile(spec, []byte("apiVersion: sluice/v1\nkind: Trigger\nname: t\nfn: f\nhttp_path: /t\nmethod: POST\n"), 0o644)
	wf := filepath.Join(t.TempDir(), "w.yaml")
	os.WriteFile(wf, []byte("apiVersion: sluice/v1\nkind: Workflow\nname: w\ntasks: {a: {run: f}}\n"), 0o644)
	return map[string][]string{
		"fn deploy":       {"f", wasm},
		"fn update":       {"f", "--timeout", "5s"},
		"fn list":         {},
		"fn get":          {"f"},
		"fn logs":         {"f"},
		"trigger create":  {"t", "--fn", "f", "--http-path", "/t"},
		"trigger list":    {},
		"trigger get":     {"t"},
		"topic publish":   {"t", "--data", "x"},
		"topic tail":      {"t", "--count", "2"},
		"wf create":       {"w", "-f", wf},
		"wf list":         {},
		"wf get":          {"w"},
		"wf invoke":       {"w", "--data", "{}"},
		"wf status":       {"inv-1"},
		"wf events":       {"inv-1"},
		"wf cancel":       {"inv-1"},
		"wf invocations":  {},
		"apply":           {"-f", spec, "--dry-run"},
		"bench coldstart": nil,
		"bench http":      nil,
		"bench mq":        nil,
		"bench workflow":  nil,
		"fn delete":       nil, // no -o: below
		"fn invoke":       nil,
		"trigger delete":  nil,
		"wf delete":       nil,
		"daemon":          nil,
		"version":         nil,
	}
}

// streams print one compact JSON object per line.
var streams = []string{"fn logs", "topic tail"}

// Every command that takes -o prints JSON with it (one object per line for
// streams); every other command refuses -o.
func TestJSONEverywhere(t *testing.T) {
	f := newFakeAPI(t)
	f.logs = []host.Record{{Time: fakeTime, Function: "f", Version: 1, Invocation: "c-1", Stream: "stderr", Message: "one"},
		{Time: fakeTime, Function: "f", Version: 1, Invocation: "c-2", Stream: "log", Message: "two"}}
	f.messages = []api.TopicMessage{{Sequence: 1, Time: fakeTime, Data: []byte("a")}, {Sequence: 2, Time: fakeTime, Data: []byte("b")}}
	args := jsonArgs(t)
	walk(func(p string, cmd *cobra.Command) {
		t.Run(p, func(t *testing.T) {
			a, listed := args[p]
			if !listed {
				t.Fatalf("%s is not in jsonArgs: say how to run it with -o json, or nil if it takes no -o", p)
			}
			if cmd.Flags().Lookup("output") == nil {
				r := f.run(t, "", append(append(strings.Fields(p), "x"), "-o", "json")...)
				if r.code != 2 || !strings.Contains(r.stderr, "unknown shorthand flag: 'o'") {
					t.Fatalf("%s takes no -o, yet: %+v", p, r)
				}
				return
			}
			if a == nil {
				return // bench: cmd/sluice
			}
			out := f.mustRun(t, "", append(append(strings.Fields(p), a...), "-o", "json")...)
			if slices.Contains(streams, p) {
				lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				if len(lines) != 2 {
					t.Fatalf("want 2 lines, one object each:\n%s", out)
				}
				for _, l := range lines {
					var v map[string]any
					if err := json.Unmarshal([]byte(l), &v); err != nil || !strings.HasPrefix(l, "{") {
						t.Fatalf("line %q: not one JSON object: %v", l, err)
					}
				}
				return
			}
			var v any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
		})
	})
}

// fn update sends only what changes, with PATCH, and says what it changed.
func TestFnUpdate(t *testing.T) {
	f := newFakeAPI(t)
	out := f.mustRun(t, "", "fn", "update", "hello", "--timeout", "5s", "--memory", "16MiB", "--env", "GREETING=Salut", "--unset-env", "DEBUG")
	if out != "updated hello to version 3: memory 16 MiB, timeout 5s, env GREETING set, env DEBUG unset\n" {
		t.Fatalf("fn update said %q", out)
	}
	req := f.last()
	if req.method != "PATCH" || req.path != "/v1/functions/hello" || req.body != "" ||
		req.query.Encode() != "env=GREETING%3DSalut&memory=16MiB&timeout=5s&unset-env=DEBUG" {
		t.Fatalf("request %s %s?%s body %q", req.method, req.path, req.query.Encode(), req.body)
	}
	if out := f.mustRun(t, "", "fn", "update", "hello", "--concurrency", "8"); out != "updated hello to version 3: concurrency 8\n" {
		t.Fatalf("fn update --concurrency said %q", out)
	}
	before := f.count()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to change"},
		{[]string{"--env", "A=1", "--unset-env", "A"}, "--env and --unset-env both name A"},
		{[]string{"--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"--concurrency", "-1"}, "--concurrency must be positive"},
		{[]string{"--memory", "lots"}, "--memory: "},
		{[]string{"--env", "NOVALUE"}, `--env "NOVALUE": want KEY=VALUE`},
		{[]string{"--env", "A=x\x00y"}, `a NUL byte cannot be passed to a guest`},
		{[]string{"--unset-env", "A=1"}, `--unset-env "A=1": want a variable's name`},
	} {
		r := f.run(t, "", append([]string{"fn", "update", "hello"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("fn update %v: %+v, want exit 2 with %q", tc.args, r, tc.want)
		}
	}
	if f.count() != before {
		t.Fatal("a mistaken fn update sent a request")
	}
}

// A delete that something depends on names the dependents and says how
// to delete anyway; --force does.
func TestDeleteDependents(t *testing.T) {
	f := newFakeAPI(t)
	for _, kind := range []string{"fn", "wf"} {
		r := f.run(t, "", kind, "delete", "x")
		want := "sluice: x is used by workflow order (used by trigger nightly); delete or change them first, or give --force\n"
		if r.code != 1 || r.stderr != want {
			t.Fatalf("%s delete of a used one: %+v\nwant %q", kind, r, want)
		}
		if q := f.last().query; q.Has("force") {
			t.Fatalf("%s delete sent force without --force: %v", kind, q)
		}
		if out := f.mustRun(t, "", kind, "delete", "x", "--force"); !strings.HasPrefix(out, "deleted ") {
			t.Fatalf("%s delete --force: %q", kind, out)
		}
		if q := f.last().query; q.Get("force") != "true" {
			t.Fatalf("%s delete --force sent %v", kind, q)
		}
	}
}

// Environment values are masked unless --show-env asks for them.
func TestFnGetShowEnv(t *testing.T) {
	f := newFakeAPI(t)
	if out := f.mustRun(t, "", "fn", "get", "f"); !strings.Contains(out, "env:          GREETING=***\n") || f.last().query.Has("reveal") {
		t.Fatalf("fn get:\n%s(query %v)", out, f.last().query)
	}
	if out := f.mustRun(t, "", "fn", "get", "f", "--show-env"); !strings.Contains(out, "env:          GREETING=Hi\n") || f.last().query.Get("reveal") != "env" {
		t.Fatalf("fn get --show-env:\n%s(query %v)", out, f.last().query)
	}
}

// topic publish prints the sequence the message was stored at.
func TestTopicPublishSequence(t *testing.T) {
	f := newFakeAPI(t)
	if out := f.mustRun(t, "", "topic", "publish", "names", "--data", "Ada"); out != "42\n" {
		t.Fatalf("topic publish printed %q", out)
	}
	if req := f.last(); req.body != "Ada" || req.path != "/v1/topics/names/publish" {
		t.Fatalf("request %+v", req)
	}
	if out := f.mustRun(t, "", "topic", "publish", "names", "--data", "Ada", "-o", "json"); out != "{\n  \"topic\": \"names\",\n  \"sequence\": 42\n}\n" {
		t.Fatalf("topic publish -o json printed %q", out)
	}
}

// Reads are bounded: fn logs --tail (100 by default), topic tail --tail,
// wf invocations --status --limit (100 by default).
func TestBoundedReads(t *testing.T) {
	f := newFakeAPI(t)
	for i := range 5 {
		f.logs = append(f.logs, host.Record{Time: fakeTime, Version: 1, Invocation: "c-" + itoa(i), Stream: "stderr", Message: "line " + itoa(i)})
	}
	f.mustRun(t, "", "fn", "logs", "f")
	if q := f.last().query; q.Get("tail") != "100" || q.Has("since") || q.Has("follow") {
		t.Fatalf("fn logs sent %v", q)
	}
	f.mustRun(t, "", "fn", "logs", "f", "--since", "10m")
	if q := f.last().query; q.Get("since") != "10m0s" {
		t.Fatalf("fn logs --since 10m sent %v", q)
	}
	// a daemon that does not know tail sends them all: the CLI keeps to it
	out := f.mustRun(t, "", "fn", "logs", "f", "--tail", "2")
	if f.last().query.Get("tail") != "2" || strings.Count(out, "\n") != 2 || !strings.Contains(out, "line 3\n") || !strings.Contains(out, "line 4\n") {
		t.Fatalf("fn logs --tail 2 (query %v):\n%s", f.last().query, out)
	}

	f.messages = []api.TopicMessage{{Sequence: 7, Time: fakeTime, Data: []byte("m")}}
	f.mustRun(t, "", "topic", "tail", "orders", "--tail", "10", "--count", "1", "--timeout", "5s")
	if q := f.last().query; q.Encode() != "count=1&tail=10&timeout=5s" {
		t.Fatalf("topic tail sent %v", q.Encode())
	}

	f.mustRun(t, "", "wf", "invocations")
	if q := f.last().query; q.Encode() != "limit=100" {
		t.Fatalf("wf invocations sent %v", q.Encode())
	}
	// the fake knows no filter: the CLI applies it too
	out = f.mustRun(t, "", "wf", "invocations", "order", "--status", "failed", "--limit", "20")
	if q := f.last().query; q.Encode() != "limit=20&status=failed&workflow=order" {
		t.Fatalf("wf invocations sent %v", q.Encode())
	}
	if strings.Contains(out, "inv-1") || !strings.Contains(out, "inv-0") {
		t.Fatalf("wf invocations --status failed:\n%s", out)
	}
	if out := f.mustRun(t, "", "wf", "invocations", "--limit", "1"); strings.Count(out, "\n") != 2 {
		t.Fatalf("wf invocations --limit 1:\n%s", out)
	}
}

// A workflow's input is JSON: malformed JSON is refused before anything
// is sent, saying where; --raw sends any text as a string.
func TestWfInvokeInput(t *testing.T) {
	f := newFakeAPI(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{\n  \"name\": \"Ada\",\n  \"age\": 36,,\n}\n"), 0o644)
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"name": "Ada"}`), 0o644)
	before := f.count()
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"data", "", []string{"--data", `{"name": "Ada"`},
			"sluice: --data is not JSON: unexpected end of JSON input at byte 14; use --raw to send it as a string\n"},
		{"file", "", []string{"--file", bad},
			"sluice: --file " + bad + " is not JSON: invalid character ',' looking for beginning of object key string at byte 32 (line 3, column 13); use --raw to send it as a string\n"},
		{"stdin", "Ada Lovelace", nil,
			"sluice: stdin is not JSON: invalid character 'A' looking for beginning of value at byte 1; use --raw to send it as a string\n"},
		{"two values", "", []string{"--data", `{} {}`},
			"sluice: --data is not JSON: invalid character '{' after top-level value at byte 4; use --raw to send it as a string\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.run(t, tc.stdin, append([]string{"wf", "invoke", "w"}, tc.args...)...)
			if r.code != 2 || r.stderr != tc.want || r.stdout != "" {
				t.Fatalf("exit %d, stderr:\n%q\nwant:\n%q", r.code, r.stderr, tc.want)
			}
		})
	}
	if f.count() != before {
		t.Fatal("malformed input was sent")
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
		ct, body    string
	}{
		{"json", "", []string{"--data", `{"name": "Ada"}`}, "application/json", `{"name": "Ada"}`},
		{"json file", "", []string{"--file", good}, "application/json", `{"name": "Ada"}`},
		{"no input", "", nil, "application/json", ""},
		{"raw", "", []string{"--raw", "--data", `{"name": "Ada"`}, "text/plain; charset=utf-8", `{"name": "Ada"`},
		{"raw stdin", "Ada Lovelace", []string{"--raw"}, "text/plain; charset=utf-8", "Ada Lovelace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mustRun(t, tc.stdin, append([]string{"wf", "invoke", "w"}, tc.args...)...)
			req := f.last()
			if req.header.Get("Content-Type") != tc.ct || req.body != tc.body {
				t.Fatalf("sent %q as %q, want %q as %q", req.body, req.header.Get("Content-Type"), tc.body, tc.ct)
			}
		})
	}
}

// What came from a guest never drives the terminal: log lines, errors and
// tables show control characters as escapes; JSON escapes them; data to a
// pipe stays the exact bytes.
func TestGuestTextIsMadeVisible(t *testing.T) {
	f := newFakeAPI(t)
	const evil = "\x1b]0;owned\a\x1b[2J\rfine\u202e"
	f.logs = []host.Record{{Time: fakeTime, Version: 1, Invocation: "c-1", Stream: "stderr", Message: evil}}
	out := f.mustRun(t, "", "fn", "logs", "f")
	if !strings.HasSuffix(out, ` stderr \x1b]0;owned\a\x1b[2J\rfine\u202e`+"\n") {
		t.Fatalf("fn logs: %q", out)
	}
	out = f.mustRun(t, "", "fn", "logs", "f", "-o", "json")
	if strings.ContainsAny(out, "\x1b\a\r\u202e") || !strings.Contains(out, `"message":"\u001b]0;owned\u0007\u001b[2J\rfine\u202e"`) {
		t.Fatalf("fn logs -o json: %q", out)
	}
	f.fail = "boom " + evil + "\nsecond line"
	r := f.run(t, "", "fn", "invoke", "f", "--data", "x")
	// (a carriage return is white space: the line's spaces are one)
	if r.code != 1 || r.stderr != `sluice: boom \x1b]0;owned\a\x1b[2J fine\u202e second line`+"\n" {
		t.Fatalf("an error: %q", r.stderr)
	}
	f.fail = ""
	// not a terminal: the exact bytes
	if out := f.mustRun(t, "", "fn", "invoke", "f", "--data", evil); out != evil {
		t.Fatalf("fn invoke to a pipe: %q", out)
	}
	// a terminal: visible, lines kept
	var b bytes.Buffer
	e := &env{stdout: &b, tty: true}
	e.writeData([]byte(evil + "\nnext\tline\n\x9b\xff"))
	if want := `\x1b]0;owned\a\x1b[2J\rfine\u202e` + "\nnext\tline\n" + `\x9b\xff`; b.String() != want {
		t.Fatalf("data on a terminal: %q, want %q", b.String(), want)
	}
	// a table cell cannot break its row
	b.Reset()
	table(&b, []string{"A", "B"}, [][]string{{"x\ny", "z\tw"}})
	if b.String() != "A     B\n"+`x\ny  z\tw`+"\n" {
		t.Fatalf("table: %q", b.String())
	}
}

func TestVisible(t *testing.T) {
	for _, tc := range []struct{ in, one, text string }{
		{"plain text, é and 日本", "plain text, é and 日本", "plain text, é and 日本"},
		{"a\x1b[31mred", `a\x1b[31mred`, `a\x1b[31mred`},
		{"l1\nl2\tx\r", `l1\nl2\tx\r`, "l1\nl2\tx" + `\r`},
		{"\x00\x7f\u0085\u009b", `\x00\x7f\u0085\u009b`, `\x00\x7f\u0085\u009b`},
		{"bad \xff\xfe utf-8", `bad \xff\xfe utf-8`, `bad \xff\xfe utf-8`},
		{"rtl \u202eevil\u2066", `rtl \u202eevil\u2066`, `rtl \u202eevil\u2066`},
	} {
		if got := visible(tc.in); got != tc.one {
			t.Errorf("visible(%q) = %q, want %q", tc.in, got, tc.one)
		}
		if got := visibleText(tc.in); got != tc.text {
			t.Errorf("visibleText(%q) = %q, want %q", tc.in, got, tc.text)
		}
	}
	in := map[string]string{"m": "\x1b\u009b\u202e\x7f ok é"}
	var b bytes.Buffer
	printNDJSON(&b, in)
	var back map[string]string
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back["m"] != in["m"] {
		t.Fatalf("jsonSafe changed the value: %q -> %v %v", b.String(), back, err)
	}
	if b.String() != `{"m":"\u001b\u009b\u202e\u007f ok é"}`+"\n" {
		t.Fatalf("jsonSafe: %q", b.String())
	}
}

// An invocation's status table is made visible too.
func TestPrintInvocationVisible(t *testing.T) {
	var b bytes.Buffer
	printInvocation(&b, &engine.Invocation{ID: "i", Workflow: "w", Status: "failed", Error: "task a: \x1b[2Jgone", Created: fakeTime,
		Tasks: map[string]*engine.Task{"a": {Status: "failed", Run: "f", Attempts: 1, Error: "\x1b[2Jgone"}}})
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), `task a: \x1b[2Jgone`) {
		t.Fatalf("wf status:\n%q", b.String())
	}
}
