// Package cli is the sluice command line: the daemon and the client
// commands of DESIGN.md §3, with pflag.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/internal/client"
)

// Version is the sluice version, set at build time.
var Version = "dev"

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// env holds what a command runs with.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	ctx            context.Context
}

type command struct {
	name    string
	summary string
	run     func(e *env, args []string) error
}

var groups = map[string][]command{}

func init() {
	groups["fn"] = fnCommands
	groups["trigger"] = triggerCommands
	groups["topic"] = topicCommands
	groups["wf"] = wfCommands
	groups["bench"] = benchCommands
}

const usage = `sluice runs WebAssembly functions, triggers and workflows.

Usage:
  sluice daemon [flags]                      run the daemon (embedded NATS Streaming by default)
  sluice fn deploy NAME FILE.wasm [flags]    deploy a function (a new version if it exists)
  sluice fn list | get NAME | delete NAME    inspect and delete functions
  sluice fn invoke NAME [--data S | --file F | stdin]
                                             call a function; its output goes to stdout
  sluice fn logs NAME [--follow] [--since D] a function's recent logs, from every daemon
  sluice trigger create NAME --fn FN --http-path /p [--method M]
  sluice trigger create NAME --fn FN --topic T [--resp-topic R] [--error-topic E]
                 [--max-retries 3] [--max-inflight 16] [--ack-wait 30s]
  sluice trigger create NAME --fn FN --cron "*/5 * * * *" | "@every 10s" [--resp-topic R]
                 (--workflow WF instead of --fn FN invokes a workflow)
  sluice trigger list | get NAME | delete NAME
  sluice topic publish TOPIC [--data S | --file F | stdin]
  sluice topic tail TOPIC [--from-start] [--count N] [--timeout D]
  sluice wf create NAME -f WORKFLOW.yaml     create a workflow (a new version if it changed)
  sluice wf list | get NAME | delete NAME    inspect and delete workflows
  sluice wf invoke NAME [--data JSON | --file F | stdin] [--wait] [--id KEY]
                                             start a workflow: prints the invocation id, or
                                             with --wait its output (exit 1 if it failed)
  sluice wf status ID | events ID | cancel ID
  sluice wf invocations [NAME]               list invocations, newest first
  sluice apply -f SPEC.yaml                  make functions, workflows and triggers match a spec
  sluice bench coldstart FILE.wasm... [--abi auto|wasi|reactor] [-n N] [-o table|json] [--svg FILE]
                                             cold starts and warm calls vs bare wazero and a
                                             process per call, in this process (no daemon)
  sluice bench http --fn NAME [-c 32] [-d 10s] [--path /fn/P] [--floor FILE.wasm] [--svg FILE]
  sluice bench mq --fn NAME [--inflight 16] [-n 10000] [--nats URL] [--svg FILE]
  sluice bench workflow [--fn NAME] [--tasks 10] [-n 200] [--svg FILE]
                                             load a daemon: requests or messages/s, latency,
                                             the workflow engine's overhead per task
  sluice version

Client commands take --server URL (env SLUICE_SERVER, default http://127.0.0.1:8080),
--token T (env SLUICE_TOKEN) and, for listings, -o table|json.
Run "sluice COMMAND --help" for a command's flags.
`

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, ctx: ctx}
	err := dispatch(e, args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		return 0
	}
	fmt.Fprintln(stderr, "sluice: "+oneLine(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func dispatch(e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return usagef("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, usage)
		return nil
	case "version", "--version":
		fmt.Fprintln(e.stdout, "sluice", Version)
		return nil
	case "daemon":
		return runDaemon(e, args[1:])
	case "apply":
		return runApply(e, args[1:])
	}
	if len(args) > 1 && args[0] == "bench" && args[1] == "floor-server" {
		return benchFloorServer(e, args[2:]) // hidden: bench http --floor runs it
	}
	cmds, ok := groups[args[0]]
	if !ok {
		return usagef("unknown command %q (run sluice --help)", args[0])
	}
	if len(args) < 2 || args[1] == "-h" || args[1] == "--help" {
		fmt.Fprintf(e.stdout, "sluice %s commands:\n", args[0])
		for _, c := range cmds {
			fmt.Fprintf(e.stdout, "  %-11s %s\n", c.name, c.summary)
		}
		if len(args) < 2 {
			return usagef("%s: no subcommand given", args[0])
		}
		return nil
	}
	for _, c := range cmds {
		if c.name == args[1] {
			return c.run(e, args[2:])
		}
	}
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.name
	}
	return usagef("unknown command %q %q (one of: %s)", args[0], args[1], strings.Join(names, ", "))
}

// clientFlags are the flags every client command takes.
type clientFlags struct {
	server, token, output string
}

func newFlags(name string, cf *clientFlags, e *env) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sluice "+name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.SortFlags = false
	if cf != nil {
		fs.StringVar(&cf.server, "server", envOr("SLUICE_SERVER", "http://127.0.0.1:8080"), "the daemon's API `URL` (env SLUICE_SERVER)")
		fs.StringVar(&cf.token, "token", os.Getenv("SLUICE_TOKEN"), "bearer token for the API (env SLUICE_TOKEN)")
		fs.StringVarP(&cf.output, "output", "o", "table", "output format of listings: table or json")
	}
	return fs
}

func (cf *clientFlags) client() *client.Client { return client.New(cf.server, cf.token) }

func (cf *clientFlags) check() error {
	if cf.output != "table" && cf.output != "json" {
		return usagef("-o %q: use table or json", cf.output)
	}
	return nil
}

// parse parses flags and checks the number of positional arguments.
func parse(fs *pflag.FlagSet, args []string, names ...string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%v", err)
	}
	rest := fs.Args()
	if len(rest) != len(names) {
		want := strings.Join(names, " ")
		if len(rest) < len(names) {
			return nil, usagef("%s: missing %s (usage: %s %s [flags])", fs.Name(), strings.Join(names[len(rest):], " "), fs.Name(), want)
		}
		return nil, usagef("%s: unexpected argument %q (usage: %s %s [flags])", fs.Name(), rest[len(names)], fs.Name(), want)
	}
	return rest, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
