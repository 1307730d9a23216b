package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/client"
)

// The tests here check what the command line does before it sends any
// request, and how it formats what it prints: pure logic. What a command
// does against the daemon is tested on the real binary and a real daemon,
// in cmd/sluice.

// result is what a run of the command line printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the command line in this process.
func runCLI(stdin string, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{stdout.String(), stderr.String(), code}
}

// noRequest returns the URL of a server that fails the test if anything
// reaches it: for the mistakes that the command line must catch before it
// sends a request.
func noRequest(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the command sent %s %s: it should have stopped before any request", r.Method, r.URL)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

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

// The token comes from --token, --token-file, SLUICE_TOKEN or
// SLUICE_TOKEN_FILE; two of one rank, or a file that holds no token, are
// mistakes found before any request. (That each source reaches the
// daemon is tested against a daemon that requires a token, in cmd/sluice.)
func TestTokenSources(t *testing.T) {
	server := noRequest(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	twoLines := filepath.Join(dir, "two")
	os.WriteFile(twoLines, []byte("a\nb\n"), 0o600)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"both flags", nil, []string{"--token", "a", "--token-file", file}, 2, "sluice: give --token or --token-file, not both\n"},
		{"both variables", map[string]string{"SLUICE_TOKEN": "a", "SLUICE_TOKEN_FILE": file}, nil, 2, "sluice: SLUICE_TOKEN and SLUICE_TOKEN_FILE are both set: unset one\n"},
		{"missing file", nil, []string{"--token-file", filepath.Join(dir, "nope")}, 1, "sluice: --token-file: open " + filepath.Join(dir, "nope") + ": no such file or directory\n"},
		{"empty file", nil, []string{"--token-file", empty}, 1, "sluice: --token-file: " + empty + " is empty: write the token into it\n"},
		{"not a token", map[string]string{"SLUICE_TOKEN_FILE": twoLines}, nil, 1, "sluice: SLUICE_TOKEN_FILE: " + twoLines + " holds more than a token: want one line without spaces\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SLUICE_TOKEN", "")
			t.Setenv("SLUICE_TOKEN_FILE", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			r := runCLI("", append([]string{"fn", "list", "--server", server}, tc.args...)...)
			if r.code != tc.code || r.stderr != tc.want || r.stdout != "" {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", r.code, r.stderr, tc.code, tc.want)
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
	placeholder := regexp.MustCompile(`^\[?([A-Z][A-Za-z0-9._]*?)(\.\.\.)?\]?$`)
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
		{[]string{"fn"}, "sluice: fn: no command given (one of: deploy, update, list, get, versions, delete, invoke, logs)\n"},
		{[]string{"fn", "invoke"}, "sluice: fn invoke: missing NAME (usage: sluice fn invoke NAME [flags])\n"},
		{[]string{"fn", "get", "a", "b"}, `sluice: fn get: unexpected argument "b"`},
		{[]string{"fn", "list", "--frob"}, "sluice: fn list: unknown flag: --frob"},
		{[]string{"--frob"}, "sluice: unknown flag: --frob (run sluice --help)\n"},
		{[]string{"--frob", "x", "fn", "list"}, "sluice: fn list: unknown flag: --frob (run sluice fn list --help)\n"},
		{[]string{"fn", "list", "-o", "yaml"}, `sluice: -o "yaml": use table or json`},
		{[]string{"wf", "invocations", "--status", "broken"}, `sluice: --status "broken": use running, succeeded, failed, canceled, compensating, compensated, catching`},
		{[]string{"wf", "invocations", "--status", "failed,done"}, `sluice: --status "done": use running`},
		{[]string{"wf", "invocations", "--all", "--limit", "5"}, "sluice: --all lists every page: give --limit or --all, not both"},
		{[]string{"wf", "invocations", "--limit", "1001"}, "sluice: --limit 1001: want a number from 1 to 1000"},
		{[]string{"wf", "invocations", "--limit", "0"}, "sluice: --limit 0: want a number from 1 to 1000"},
		{[]string{"topic", "redrive", "jobs.dead"}, "sluice: give --seq N (one or more) or --all\n"},
		{[]string{"topic", "dead-letters", "jobs.dead", "--limit", "0"}, "sluice: --limit must be from 1 to 1000\n"},
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

// streams print one compact JSON object per line.
var streams = []string{"fn logs", "topic tail"}

// Commands with nothing to print as JSON refuse -o, before any request;
// the streams' help says what their -o json prints. (That every command
// that takes -o prints JSON is tested against a daemon, in cmd/sluice.)
func TestOutputFlag(t *testing.T) {
	server := noRequest(t)
	walk(func(p string, cmd *cobra.Command) {
		t.Run(p, func(t *testing.T) {
			o := cmd.Flags().Lookup("output")
			if o == nil {
				r := runCLI("", append(strings.Fields(p), "x", "-o", "json", "--server", server)...)
				if r.code != 2 || !strings.Contains(r.stderr, "unknown shorthand flag: 'o'") {
					t.Fatalf("%s takes no -o, yet: %+v", p, r)
				}
				return
			}
			if stream := strings.Contains(o.Usage, "one JSON object per line"); stream != slices.Contains(streams, p) {
				t.Fatalf("%s: -o says %q", p, o.Usage)
			}
		})
	})
}

// fn update's mistakes are found before any request.
func TestFnUpdateMistakes(t *testing.T) {
	server := noRequest(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "fn update: nothing to change: give --timeout, --memory, --concurrency, --max-input, --max-output, --cgi, --meta-env, --export, --env or --unset-env"},
		{[]string{"--env", "A=1", "--unset-env", "A"}, "--env and --unset-env both name A: give one"},
		{[]string{"--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"--concurrency", "-1"}, "--concurrency must be positive"},
		{[]string{"--memory", "lots"}, "--memory: "},
		{[]string{"--memory", ""}, "--memory: give a size, like 64MiB"},
		{[]string{"--env", "NOVALUE"}, `--env "NOVALUE": want KEY=VALUE`},
		{[]string{"--env", "A=x\x00y"}, `--env "A=x\x00y": a NUL byte cannot be passed to a guest`},
		{[]string{"--unset-env", "A=1"}, `--unset-env "A=1": want a variable's name`},
	} {
		r := runCLI("", append([]string{"fn", "update", "hello", "--server", server}, tc.args...)...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "sluice: "+tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("fn update %q: %+v, want exit 2 with %q", tc.args, r, tc.want)
		}
	}
}

// A refused delete names what uses the thing, and says how to delete it
// anyway, whether or not the daemon's message does.
func TestDeleteError(t *testing.T) {
	deps := []client.Dependent{{Kind: "workflow", Name: "order"}, {Kind: "trigger", Name: "nightly"}}
	said := `function "f" is used by workflow "order" and trigger "nightly": delete them first, or delete with --force`
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"the daemon says it all", &client.Error{Status: 409, Code: "conflict", Message: said, Dependents: deps}, said},
		{"the daemon names none", &client.Error{Status: 409, Code: "conflict", Message: "f is in use", Dependents: deps},
			"f is in use (used by workflow order, trigger nightly); delete or change them first, or give --force"},
		{"the daemon names one", &client.Error{Status: 409, Code: "conflict", Message: `f is used by "order"`, Dependents: deps},
			`f is used by "order" (used by trigger nightly); delete or change them first, or give --force`},
		{"another conflict", &client.Error{Status: 409, Code: "conflict", Message: "busy"}, "busy"},
		{"not a conflict", &client.Error{Status: 404, Code: "not_found", Message: `no function "f"`}, `no function "f"`},
		{"no answer", errors.New("cannot reach the sluice daemon"), "cannot reach the sluice daemon"},
	} {
		if got := deleteError(tc.err).Error(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A workflow's input is JSON: malformed JSON is refused before anything
// is sent, saying where. (That --raw sends any text as a string is tested
// against a daemon, in cmd/sluice.)
func TestWfInvokeMalformedInput(t *testing.T) {
	server := noRequest(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("{\n  \"name\": \"Ada\",\n  \"age\": 36,,\n}\n"), 0o644)
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
			r := runCLI(tc.stdin, append([]string{"wf", "invoke", "w", "--server", server}, tc.args...)...)
			if r.code != 2 || r.stderr != tc.want || r.stdout != "" {
				t.Fatalf("exit %d, stderr:\n%q\nwant:\n%q", r.code, r.stderr, tc.want)
			}
		})
	}
}

// What may come from a guest never drives the terminal: log lines, errors
// and tables show control characters as escapes; JSON escapes them; data
// on a terminal is made visible with its lines kept.
func TestGuestTextIsMadeVisible(t *testing.T) {
	const evil = "\x1b]0;owned\a\x1b[2J\rfine\u202e"
	rec := host.Record{Time: time.Now(), Version: 1, Invocation: "c-1", Stream: "stderr", Message: evil}
	if line := logLine(rec); !strings.HasSuffix(line, ` stderr \x1b]0;owned\a\x1b[2J\rfine\u202e`) {
		t.Fatalf("fn logs: %q", line)
	}
	var b bytes.Buffer
	printNDJSON(&b, rec)
	if out := b.String(); strings.ContainsAny(out, "\x1b\a\r\u202e") || !strings.Contains(out, `"message":"\u001b]0;owned\u0007\u001b[2J\rfine\u202e"`) {
		t.Fatalf("fn logs -o json: %q", out)
	}
	// an error is one line, made visible (a carriage return is white
	// space: the line's spaces are one)
	r := runCLI("", "fn", "invoke", "f", "--server", noRequest(t), "--file", "/nonexistent/boom "+evil+"\nsecond line")
	if r.code != 1 || r.stderr != `sluice: read input: open /nonexistent/boom \x1b]0;owned\a\x1b[2J fine\u202e second line: no such file or directory`+"\n" {
		t.Fatalf("an error: %q", r.stderr)
	}
	// a terminal: visible, lines kept; a pipe: the exact bytes
	data := []byte(evil + "\nnext\tline\n\x9b\xff")
	b.Reset()
	(&env{stdout: &b, tty: true}).writeData(data)
	if want := `\x1b]0;owned\a\x1b[2J\rfine\u202e` + "\nnext\tline\n" + `\x9b\xff`; b.String() != want {
		t.Fatalf("data on a terminal: %q, want %q", b.String(), want)
	}
	b.Reset()
	(&env{stdout: &b}).writeData(data)
	if !bytes.Equal(b.Bytes(), data) {
		t.Fatalf("data to a pipe: %q", b.String())
	}
	// a table cell cannot break its row
	b.Reset()
	table(&b, []string{"A", "B"}, [][]string{{"x\ny", "z\tw"}})
	if b.String() != "A     B\n"+`x\ny  z\tw`+"\n" {
		t.Fatalf("table: %q", b.String())
	}
}

// fn logs keeps the last --tail records itself, holding few at a time,
// in case a daemon sends more.
func TestLastN(t *testing.T) {
	for _, tc := range []struct{ n, add int }{{1, 0}, {1, 1}, {1, 5}, {2, 5}, {3, 3}, {3, 7}, {100, 1000}} {
		l := lastN[int]{n: tc.n}
		for i := range tc.add {
			l.add(i)
			if len(l.vals) >= 2*tc.n {
				t.Fatalf("n %d: holds %d values", tc.n, len(l.vals))
			}
		}
		var want []int
		for i := max(tc.add-tc.n, 0); i < tc.add; i++ {
			want = append(want, i)
		}
		if got := l.values(); !slices.Equal(got, want) {
			t.Errorf("n %d after %d: %v, want %v", tc.n, tc.add, got, want)
		}
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
	printInvocation(&b, &engine.Invocation{ID: "i", Workflow: "w", Status: "failed", Error: "task a: \x1b[2Jgone", Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Tasks: map[string]*engine.Task{"a": {Status: "failed", Run: "f", Attempts: 1, Error: "\x1b[2Jgone"}}})
	if strings.Contains(b.String(), "\x1b") || !strings.Contains(b.String(), `task a: \x1b[2Jgone`) {
		t.Fatalf("wf status:\n%q", b.String())
	}
}
