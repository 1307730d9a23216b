// Package cli is the sluice command line: the daemon and the client
// commands of the README's "The command line", built with cobra (help, usage with arguments
// and examples, flags anywhere on the line, shell completion).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/internal/app/client"
)

// Version is the sluice version, set at build time.
var Version = "dev"

func init() {
	// commands are listed in the order they are added: the usual ones
	// first, as the overview lists them
	cobra.EnableCommandSorting = false
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// env holds what a command runs with.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	ctx            context.Context
	// tty: stdout is a terminal, so data (a function's output, a topic's
	// payloads) is printed with its control characters made visible
	// rather than as the exact bytes a pipe gets.
	tty bool
}

// overview is the top-level help: every command at a glance.
const overview = `sluice runs WebAssembly functions, triggers and workflows.

Usage:
  sluice daemon [flags]                      run the daemon (embedded NATS Streaming by default)
  sluice new fn NAME --lang LANG [--http] [--dir D]
                                             write a function's project: handler, test, Makefile,
                                             SDK (the languages: sluice new fn --help)
  sluice fn deploy NAME FILE.wasm [flags]    deploy a function (a new version if it exists)
  sluice fn update NAME [--timeout D] [--memory S] [--concurrency N] [--env K=V] [--unset-env K]
                                             change a function's limits or env, without its module
  sluice fn list | get NAME [--show-env] | delete NAME [--force]
  sluice fn invoke NAME [--data S | --file F | stdin]
                                             call a function; its output goes to stdout
  sluice fn logs NAME [--tail 100] [--since D] [--follow]
                                             a function's recent logs, from every daemon
  sluice trigger create NAME --fn FN --http-path /p [--method M]
  sluice trigger create NAME --fn FN --topic T [--resp-topic R] [--error-topic E]
                 [--max-retries 3] [--max-inflight 16] [--ack-wait 30s]
  sluice trigger create NAME --fn FN --cron "*/5 * * * *" | "@every 10s" [--resp-topic R]
                 (--workflow WF instead of --fn FN invokes a workflow; with --http-path,
                 --http-request gives it the whole request and lets it set the response)
  sluice trigger list | get NAME | delete NAME
  sluice topic list                          topics with their message counts and last sequences
  sluice topic publish TOPIC [--data S | --file F | stdin]    prints the stored sequence
  sluice topic tail TOPIC [--tail N | --from-start] [--count N] [--timeout D]
  sluice graph [-o table|json|dot|mermaid]   what feeds what: routes, topics, timers, triggers,
                                             functions, workflows
  sluice wf create NAME -f WORKFLOW.yaml     create a workflow (a new version if it changed)
  sluice wf list | get NAME | delete NAME [--force]
  sluice wf invoke NAME [--data JSON | --file F | stdin] [--raw] [--wait] [--id KEY]
                                             start a workflow: prints the invocation id, or
                                             with --wait its output (exit 1 if it failed)
  sluice wf status ID | events ID | cancel ID
  sluice wf invocations [NAME] [--status S] [--limit 100]
                                             list invocations, newest first
  sluice apply -f SPEC.yaml [--dry-run] [--prune]
                                             make functions, workflows and triggers match a spec
  sluice migrate --from-nats-streaming URL [--cluster-id ID] (--to URL | --data DIR) [--dry-run]
                                             copy functions, triggers, workflows and unfinished
                                             invocations from NATS Streaming into JetStream
  sluice bench coldstart FILE.wasm... [--abi auto|wasi|reactor|extism] [--export NAME] [-n N] [--svg FILE]
                                             cold starts and warm calls vs bare wazero and a
                                             process per call, in this process (no daemon)
  sluice bench http --fn NAME [-c 32] [-d 10s] [--path /fn/P] [--floor FILE.wasm] [--svg FILE]
  sluice bench mq --fn NAME [--inflight 16] [-n 10000] [--nats URL] [--svg FILE]
  sluice bench workflow [--fn NAME] [--tasks 10] [-n 200] [--svg FILE]
                                             load a daemon: requests or messages/s, latency,
                                             the workflow engine's overhead per task
  sluice completion bash|zsh|fish            a shell completion script
  sluice version

Client commands take --server URL (env SLUICE_SERVER, default http://127.0.0.1:8080) and
--token-file F (env SLUICE_TOKEN_FILE) or --token T (env SLUICE_TOKEN), anywhere on the
line; commands that print something take -o table|json (json: one object per line for
streams). Exit status: 0 on success, 1 on failure, 2 for a mistake in the command line.

Run "sluice help COMMAND" (or "sluice COMMAND --help") for a command's arguments, flags
and examples.
`

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, ctx: ctx, tty: isTerminal(stdout)}
	root := newRoot(e)
	if args == nil {
		args = []string{} // nil makes cobra read os.Args
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		return 0
	}
	fmt.Fprintln(stderr, "sluice: "+visible(oneLine(err.Error())))
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// newRoot builds the command tree for one run.
func newRoot(e *env) *cobra.Command {
	var version bool
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "run WebAssembly functions, triggers and workflows",
		Args:          cobra.ArbitraryArgs, // RunE names an unknown command
		SilenceErrors: true,                // Main prints errors, on one line
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case version:
				fmt.Fprintln(e.stdout, "sluice", Version)
				return nil
			case len(args) == 0:
				fmt.Fprint(e.stderr, overview)
				return usagef("no command given")
			}
			return unknownCommand(cmd, args[0])
		},
	}
	root.Flags().BoolVar(&version, "version", false, "print the version")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if !cmd.HasParent() {
			return usagef("%v (run sluice --help)", err)
		}
		return usagef("%s: %v (run %s --help)", path(cmd), err, cmd.CommandPath())
	})
	root.SetHelpFunc(helpFunc)
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		_, err := io.WriteString(cmd.OutOrStderr(), usageText(cmd))
		return err
	})
	root.SetHelpCommand(helpCommand())
	root.AddCommand(
		daemonCommand(e),
		group("fn", "deploy, inspect, call and delete functions", fnCommands(e)...),
		group("new", "write a new function's project, in any language sluice has templates for", newCommands(e)...),
		group("trigger", "bind functions and workflows to HTTP routes, topics and schedules", triggerCommands(e)...),
		group("topic", "list, publish to and read topics", topicCommands(e)...),
		graphCommand(e),
		group("wf", "create, invoke and inspect workflows", wfCommands(e)...),
		applyCommand(e),
		migrateCommand(e),
		group("bench", "measure cold starts, throughput and latency", benchCommands(e)...),
		&cobra.Command{
			Use:     "version",
			Short:   "print the version",
			Example: "  sluice version",
			Args:    positional(),
			RunE: func(cmd *cobra.Command, args []string) error {
				fmt.Fprintln(e.stdout, "sluice", Version)
				return nil
			},
		},
	)
	// help lists flags in the order they are defined: the usual first
	var unsorted func(*cobra.Command)
	unsorted = func(c *cobra.Command) {
		c.Flags().SortFlags = false
		for _, sub := range c.Commands() {
			unsorted(sub)
		}
	}
	unsorted(root)
	return root
}

// group returns a command that holds subcommands. Alone, or with an
// unknown subcommand, it is a usage error.
func group(name, short string, cmds ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:   name + " COMMAND",
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				fmt.Fprint(cmd.ErrOrStderr(), usageText(cmd))
				return usagef("%s: no command given (one of: %s)", path(cmd), strings.Join(names(cmd), ", "))
			}
			return unknownCommand(cmd, args[0])
		},
	}
	g.AddCommand(cmds...)
	return g
}

func names(cmd *cobra.Command) []string {
	var out []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			out = append(out, c.Name())
		}
	}
	return out
}

// unknownCommand is the usage error for a command that cmd does not have,
// with a suggestion when one is close.
func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q", strings.TrimSpace(path(cmd)+" "+name))
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(": did you mean %q?", strings.TrimSpace(path(cmd)+" "+s[0]))
	} else if cmd.HasAvailableSubCommands() {
		msg += " (one of: " + strings.Join(names(cmd), ", ") + ")"
	}
	return usagef("%s (run %s --help)", msg, cmd.CommandPath())
}

// path is a command's path without the program's name: "fn deploy".
func path(cmd *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()), " ")
}

// helpCommand is `sluice help [COMMAND...]`: that command's help.
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND...]",
		Short: "print a command's help: what it does, its arguments, flags and examples",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("no help for %q: no such command (run sluice help)", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		},
	}
}

// clientFlags are the flags every client command takes.
type clientFlags struct {
	server, token, tokenFile string
	// output is -o: "table" or "json"; "" for a command that has nothing
	// to print as JSON (it then has no -o).
	output string
	// resolved is the bearer token, from --token, --token-file or the
	// environment, once the flags are parsed.
	resolved string
}

// defaultServer is where a client finds the daemon: its default --listen.
const defaultServer = "http://127.0.0.1:8080"

// maxTokenFile bounds a token file: a bearer token is short, and reading
// the wrong file (a device, a log) must not take the memory it holds.
const maxTokenFile = 64 << 10

// flagGroupAnnotation marks the flags that help lists as client flags.
const flagGroupAnnotation = "sluice_group"

// addClientFlags gives a command the client flags, and -o if output; they
// are checked before it runs.
func addClientFlags(cmd *cobra.Command, output bool) *clientFlags {
	cf := &clientFlags{}
	fs := cmd.Flags()
	fs.StringVar(&cf.server, "server", envOr("SLUICE_SERVER", defaultServer), "the daemon's API `URL` (env SLUICE_SERVER)")
	fs.StringVar(&cf.token, "token", "", "the API's bearer token (env SLUICE_TOKEN); a command line shows in ps: prefer the variable or --token-file")
	showEnvDefault(fs, "token", "SLUICE_TOKEN")
	fs.StringVar(&cf.tokenFile, "token-file", os.Getenv("SLUICE_TOKEN_FILE"), "read the API's bearer token from this `file` (env SLUICE_TOKEN_FILE)")
	for _, name := range []string{"server", "token", "token-file"} {
		_ = fs.SetAnnotation(name, flagGroupAnnotation, []string{"client"})
	}
	if output {
		fs.StringVarP(&cf.output, "output", "o", "table", "output format: table or json")
		_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	}
	_ = cmd.MarkFlagFilename("token-file")
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if output && cf.output != "table" && cf.output != "json" {
			return usagef("-o %q: use table or json", cf.output)
		}
		tok, err := resolveToken(cmd.Flags(), cf.token, cf.tokenFile)
		if err != nil {
			return err
		}
		cf.resolved = tok
		return nil
	}
	return cf
}

// streamOutput says in a stream's help what -o json prints.
func streamOutput(cmd *cobra.Command) {
	cmd.Flags().Lookup("output").Usage = "output format: table (text lines) or json (one JSON object per line)"
}

func (cf *clientFlags) client() *client.Client { return client.New(cf.server, cf.resolved) }

func (cf *clientFlags) json() bool { return cf.output == "json" }

// showEnvDefault makes help show where a secret flag's default comes
// from, never the secret: (default "$SLUICE_TOKEN") when it is set.
func showEnvDefault(fs *pflag.FlagSet, name, key string) {
	if os.Getenv(key) != "" {
		fs.Lookup(name).DefValue = "$" + key
	}
}

// resolveToken picks the bearer token: --token, else --token-file, else
// SLUICE_TOKEN, else SLUICE_TOKEN_FILE. Two sources of one rank are a
// mistake rather than a silent choice.
func resolveToken(fs *pflag.FlagSet, token, file string) (string, error) {
	switch {
	case fs.Changed("token") && fs.Changed("token-file"):
		return "", usagef("give --token or --token-file, not both")
	case fs.Changed("token"):
		return token, nil
	case fs.Changed("token-file"):
		return readTokenFile("--token-file", file)
	}
	envToken, envFile := os.Getenv("SLUICE_TOKEN"), os.Getenv("SLUICE_TOKEN_FILE")
	switch {
	case envToken != "" && envFile != "":
		return "", usagef("SLUICE_TOKEN and SLUICE_TOKEN_FILE are both set: unset one")
	case envToken != "":
		return envToken, nil
	case envFile != "":
		return readTokenFile("SLUICE_TOKEN_FILE", envFile)
	}
	return "", nil
}

// readTokenFile reads a bearer token from a file: one line, without
// spaces; the newline that ends it is not part of it.
func readTokenFile(what, file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: read %s: %w", what, file, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("%s: %s is over %d KiB: is it the token file?", what, file, maxTokenFile>>10)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("%s: %s is empty: write the token into it", what, file)
	case strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return "", fmt.Errorf("%s: %s holds more than a token: want one line without spaces", what, file)
	}
	return tok, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

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

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
