package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/catalog"
)

// DefaultLogTail is how many log records fn logs prints by default: a
// screenful or two of the most recent, never the whole log channel
// (hundreds of thousands of lines at its cap).
const DefaultLogTail = 100

func fnCommands(e *env) []*cobra.Command {
	return []*cobra.Command{fnDeploy(e), fnUpdate(e), fnList(e), fnGet(e), fnVersions(e), fnDelete(e), fnInvoke(e), fnLogs(e)}
}

const nameHelp = "1 to 63 lowercase letters, digits and '-'"

func fnDeploy(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "deploy NAME FILE.wasm",
		Short: "deploy a .wasm module as a function (a new version if it exists)",
		Long: `Deploy a .wasm module as a function. The daemon compiles and checks it first:
a module that cannot run is refused with the reason, and nothing changes.
Deploying again under the same name makes a new version; calls in flight
finish on the old one.`,
		Example: `  # a WASI command, with an environment variable
  sluice fn deploy hello build/wasm/hello-wasi.wasm --env GREETING=Bonjour

  # a reactor with tighter limits
  sluice fn deploy upper build/wasm/upper-go.wasm --memory 16MiB --timeout 5s --concurrency 8

  # a CGI (or WAGI) script: the HTTP request in CGI variables, a CGI response on stdout
  sluice fn deploy app build/wasm/app.wasm --cgi

  # an Extism plugin, unmodified: its export greet, with config for config_get
  sluice fn deploy greet plugin.wasm --export greet --config greeting=Bonjour`,
	}, arg("NAME", "the function's name: "+nameHelp), arg("FILE.wasm", "the module: a WASI command, or a reactor (sluice ABI or Extism)"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	abiKind := fs.String("abi", "auto", "module kind: auto, wasi (a WASI command), reactor (sluice ABI) or extism (an Extism plugin)")
	var d deploySettings
	addLimitFlags(fs, &d)
	fs.BoolVar(&d.cgi, "cgi", false, "run a WASI command as a CGI script: the HTTP request in CGI variables, a CGI response (Status:, Content-Type:, ...) on stdout")
	fs.BoolVar(&d.metaEnv, "meta-env", false, "give a WASI command the call's metadata as SLUICE_* environment variables (SLUICE_INVOCATION, SLUICE_HTTP_METHOD, ...); without it, only its --env")
	fs.StringVar(&d.export, "export", "", "an Extism plugin's function to call (default: its only one, or handle)")
	fs.StringArrayVar(&d.config, "config", nil, "an Extism plugin's config K=V, read with config_get (repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("abi", cobra.FixedCompletions([]cobra.Completion{"auto", "wasi", "reactor", "extism"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return completeNames(cmd, cf, functionNames, toComplete), cobra.ShellCompDirectiveNoFileComp
		}
		return completeFiles("wasm")(cmd, args, toComplete)
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := catalog.ValidateName("function", args[0]); err != nil {
			return usagef("%v", strings.TrimPrefix(err.Error(), "invalid: "))
		}
		d.abi = *abiKind
		q, err := deployQuery(d, flagNames)
		if err != nil {
			return err
		}
		wasm, err := os.ReadFile(args[1])
		if err != nil {
			return fmt.Errorf("read module: %w", err)
		}
		v, err := cf.client().Deploy(e.ctx, args[0], wasm, q)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, v)
		}
		fmt.Fprintf(e.stdout, "deployed %s version %d (%s, %s, module %s)\n", v.Name, v.Version, v.ABI, host.FormatBytes(uint64(v.Size)), short(v.Module))
		return nil
	}
	return cmd
}

// addLimitFlags defines the flags of a function's limits and environment,
// as fn deploy and fn update take them.
func addLimitFlags(fs *pflag.FlagSet, d *deploySettings) {
	fs.StringVar(&d.memory, "memory", "", "memory limit per instance, e.g. 64MiB (default 64MiB)")
	fs.DurationVar(&d.timeout, "timeout", 0, "time limit per call, e.g. 5s (default 30s)")
	fs.IntVar(&d.concurrency, "concurrency", 0, "calls that may run at once (default 32)")
	fs.StringVar(&d.maxInput, "max-input", "", "largest input, e.g. 1MiB (default 6MiB)")
	fs.StringVar(&d.maxOutput, "max-output", "", "largest output (default 6MiB)")
	fs.StringArrayVar(&d.env, "env", nil, "environment variable K=V for the guest (repeatable)")
}

// deploySettings are a function's settings as fn deploy and apply take
// them.
type deploySettings struct {
	abi, memory         string
	timeout             time.Duration
	concurrency         int
	maxInput, maxOutput string
	env                 []string // K=V
	cgi                 bool
	export              string   // an Extism plugin's entry point
	config              []string // an Extism plugin's config, K=V
	metaEnv             bool
}

// deployQuery checks the settings and turns them into the query of a
// deploy (see api.ParseConfig); mistakes name settings with name.
func deployQuery(d deploySettings, name namer) (url.Values, error) {
	abiKind := d.abi
	if abiKind == "" {
		abiKind = "auto"
	}
	q := url.Values{"abi": {abiKind}}
	if d.cgi {
		q.Set("cgi", "true")
	}
	if d.metaEnv {
		q.Set("meta-env", "true")
	}
	if d.export != "" {
		q.Set("export", d.export)
	}
	for _, kv := range d.config {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, usagef("%s %q: want KEY=VALUE", name("config"), kv)
		}
		q.Add("config", kv)
	}
	if d.memory != "" {
		if _, err := host.ParseBytes(d.memory); err != nil {
			return nil, usagef("%s: %v", name("memory"), err)
		}
		q.Set("memory", d.memory)
	}
	if d.timeout != 0 {
		if d.timeout < 0 {
			return nil, usagef("%s must be positive", name("timeout"))
		}
		q.Set("timeout", d.timeout.String())
	}
	if d.concurrency != 0 {
		if d.concurrency < 0 {
			return nil, usagef("%s must be positive", name("concurrency"))
		}
		q.Set("concurrency", strconv.Itoa(d.concurrency))
	}
	for _, s := range []struct{ setting, v string }{{"max-input", d.maxInput}, {"max-output", d.maxOutput}} {
		if s.v == "" {
			continue
		}
		if _, err := host.ParseBytes(s.v); err != nil {
			return nil, usagef("%s: %v", name(s.setting), err)
		}
		q.Set(s.setting, s.v)
	}
	for _, kv := range d.env {
		k, v, ok := strings.Cut(kv, "=")
		if err := checkEnv(k, v, ok); err != nil {
			return nil, usagef("%s %q: %v", name("env"), kv, err)
		}
		q.Add("env", kv)
	}
	return q, nil
}

// checkEnv checks an environment variable before it is sent: the guest
// gets it through WASI, where a NUL ends a string.
func checkEnv(k, v string, hasValue bool) error {
	switch {
	case !hasValue || k == "":
		return errors.New("want KEY=VALUE")
	case strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0):
		return errors.New("a NUL byte cannot be passed to a guest")
	}
	return nil
}

func fnUpdate(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "update NAME",
		Short: "change a function's limits or environment, without its module",
		Long: `Change a function's limits or environment variables without sending its module
again: the daemon makes a new version with the same module. Settings not
given keep their value; --env sets a variable and keeps the others,
--unset-env removes one.`,
		Example: `  # more time per call
  sluice fn update resize --timeout 5s

  # set one variable, remove another, allow more calls at once
  sluice fn update hello --env GREETING=Salut --unset-env DEBUG --concurrency 64`,
	}, arg("NAME", "the function"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	var d deploySettings
	addLimitFlags(fs, &d)
	unset := fs.StringArray("unset-env", nil, "remove this environment variable (repeatable)")
	fs.BoolVar(&d.cgi, "cgi", false, "run the function (a WASI command) as a CGI script; --cgi=false: as a plain command")
	fs.BoolVar(&d.metaEnv, "meta-env", false, "give the function (a WASI command) the call's metadata as SLUICE_* environment variables; --meta-env=false: only its --env")
	fs.StringVar(&d.export, "export", "", "call another of the function's (an Extism plugin's) exported functions")
	cmd.ValidArgsFunction = completeFirst(cf, functionNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		q, changes, err := updateQuery(fs, d, *unset)
		if err != nil {
			return err
		}
		v, changed, err := cf.client().UpdateFunction(e.ctx, args[0], q)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, v)
		}
		if !changed {
			fmt.Fprintf(e.stdout, "%s unchanged at version %d: %s already\n", v.Name, v.Version, strings.Join(changes(v), ", "))
			return nil
		}
		fmt.Fprintf(e.stdout, "updated %s to version %d: %s\n", v.Name, v.Version, strings.Join(changes(v), ", "))
		return nil
	}
	return cmd
}

// updateQuery checks fn update's flags and returns the query of the
// update, and what to say of each change once the daemon has answered.
func updateQuery(fs *pflag.FlagSet, d deploySettings, unset []string) (url.Values, func(api.FunctionView) []string, error) {
	for _, f := range []string{"timeout", "concurrency"} {
		if fs.Changed(f) && ((f == "timeout" && d.timeout <= 0) || (f == "concurrency" && d.concurrency <= 0)) {
			return nil, nil, usagef("--%s must be positive", f)
		}
	}
	for _, f := range []string{"memory", "max-input", "max-output"} {
		if v := fs.Lookup(f).Value.String(); fs.Changed(f) && v == "" {
			return nil, nil, usagef("--%s: give a size, like 64MiB", f)
		}
	}
	q, err := deployQuery(d, flagNames)
	if err != nil {
		return nil, nil, err
	}
	q.Del("abi") // the module, and so its kind, stays
	q.Del("cgi") // only what is given changes: --cgi=false turns it off
	if fs.Changed("cgi") {
		q.Set("cgi", strconv.FormatBool(d.cgi))
	}
	q.Del("meta-env")
	if fs.Changed("meta-env") {
		q.Set("meta-env", strconv.FormatBool(d.metaEnv))
	}
	set := map[string]bool{}
	for _, kv := range d.env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	for _, k := range unset {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			return nil, nil, usagef("--unset-env %q: want a variable's name", k)
		case set[k]:
			return nil, nil, usagef("--env and --unset-env both name %s: give one", k)
		}
		q.Add("unset-env", k)
	}
	if fs.Changed("export") && d.export == "" {
		return nil, nil, usagef("--export: give the name of an exported function")
	}
	if len(q) == 0 {
		return nil, nil, usagef("fn update: nothing to change: give --timeout, --memory, --concurrency, --max-input, --max-output, --cgi, --meta-env, --export, --env or --unset-env")
	}
	changes := func(v api.FunctionView) []string {
		var out []string
		l := v.Limits
		for _, c := range []struct {
			flag, now string
		}{
			{"memory", "memory " + host.FormatBytes(l.Memory)},
			{"timeout", "timeout " + l.Timeout},
			{"concurrency", "concurrency " + strconv.Itoa(l.Concurrency)},
			{"max-input", "max input " + host.FormatBytes(uint64(l.MaxInput))},
			{"max-output", "max output " + host.FormatBytes(uint64(l.MaxOutput))},
			{"cgi", "cgi " + onOff(v.CGI)},
			{"meta-env", "meta-env " + onOff(v.MetaEnv)},
			{"export", "export " + v.Export},
		} {
			if q.Has(c.flag) {
				out = append(out, c.now)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(set)) {
			out = append(out, "env "+k+" set")
		}
		for _, k := range unset {
			out = append(out, "env "+k+" unset")
		}
		return out
	}
	return q, changes, nil
}

func fnList(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "list",
		Short: "list functions",
		Example: `  sluice fn list
  sluice fn list -o json    # environment values masked`,
	})
	cf := addClientFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		fns, err := cf.client().Functions(e.ctx)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, fns)
		}
		rows := make([][]string, 0, len(fns))
		for _, f := range fns {
			rows = append(rows, []string{
				f.Name, strconv.Itoa(f.Version), f.ABI, host.FormatBytes(uint64(f.Size)),
				host.FormatBytes(f.Limits.Memory), f.Limits.Timeout, dash(strings.Join(f.Triggers, ",")), ago(f.Deployed),
			})
		}
		return table(e.stdout, []string{"NAME", "VERSION", "ABI", "SIZE", "MEMORY", "TIMEOUT", "TRIGGERS", "DEPLOYED"}, rows)
	}
	return cmd
}

func fnGet(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "get NAME",
		Short: "show a function: its version, module, limits, environment and counters",
		Long: `Show a function: its version, module, limits, environment, triggers and this
daemon's counters. Environment values are masked unless --show-env is given
(they often hold secrets).`,
		Example: `  sluice fn get hello
  sluice fn get hello --show-env -o json`,
	}, arg("NAME", "the function"))
	cf := addClientFlags(cmd, true)
	showEnv := cmd.Flags().Bool("show-env", false, "show the environment's values, unmasked")
	cmd.ValidArgsFunction = completeFirst(cf, functionNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		f, err := cf.client().Function(e.ctx, args[0], client.RevealEnv(*showEnv))
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, f)
		}
		printFunction(e.stdout, f)
		return nil
	}
	return cmd
}

func fnVersions(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "versions NAME",
		Short: "list the versions of a function the daemon keeps, newest first",
		Long: fmt.Sprintf(`List the versions of a function the daemon keeps, newest first: the last
%d of its name, deleted ones too (a workflow invocation calls the versions
current when it started). Environment values are masked unless --show-env.`, catalog.KeepVersions),
		Example: `  sluice fn versions hello
  sluice fn versions hello -o json`,
	}, arg("NAME", "the function"))
	cf := addClientFlags(cmd, true)
	showEnv := cmd.Flags().Bool("show-env", false, "show the environment's values, unmasked")
	cmd.ValidArgsFunction = completeFirst(cf, functionNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		vs, err := cf.client().FunctionVersions(e.ctx, args[0], client.RevealEnv(*showEnv))
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, vs)
		}
		rows := make([][]string, 0, len(vs))
		for _, f := range vs {
			rows = append(rows, []string{strconv.Itoa(f.Version), f.ABI, f.Module[:min(12, len(f.Module))], host.FormatBytes(uint64(f.Size)),
				host.FormatBytes(f.Limits.Memory), f.Limits.Timeout, ago(f.Deployed)})
		}
		return table(e.stdout, []string{"VERSION", "ABI", "MODULE", "SIZE", "MEMORY", "TIMEOUT", "DEPLOYED"}, rows)
	}
	return cmd
}

func printFunction(w io.Writer, f api.FunctionView) {
	rows := [][2]string{
		{"name:", f.Name},
		{"version:", strconv.Itoa(f.Version)},
		{"abi:", f.ABI + map[bool]string{true: " (CGI)"}[f.CGI] + map[bool]string{true: ", export " + f.Export}[f.Export != ""]},
		{"meta env:", metaEnvRow(f)},
		{"module:", fmt.Sprintf("sha256:%s (%s)", f.Module, host.FormatBytes(uint64(f.Size)))},
		{"memory:", host.FormatBytes(f.Limits.Memory)},
		{"timeout:", f.Limits.Timeout},
		{"concurrency:", strconv.Itoa(f.Limits.Concurrency)},
		{"max input:", host.FormatBytes(uint64(f.Limits.MaxInput))},
		{"max output:", host.FormatBytes(uint64(f.Limits.MaxOutput))},
		{"deployed:", f.Deployed.Local().Format(time.RFC3339)},
		{"triggers:", dash(strings.Join(f.Triggers, ", "))},
	}
	for _, k := range sortedKeys(f.Env) {
		rows = append(rows, [2]string{"env:", k + "=" + f.Env[k]})
	}
	if len(f.ConfigKeys) > 0 {
		rows = append(rows, [2]string{"config:", strings.Join(f.ConfigKeys, ", ")})
	}
	if s := f.Stats; s != nil {
		rows = append(rows, [2]string{"calls here:", fmt.Sprintf("%d (%d errors, %d cold starts, %d running, %d idle instances)", s.Calls, s.Errors, s.ColdStarts, s.Active, s.Idle)})
	}
	fields(w, 13, rows)
}

// metaEnvRow says whether a function gets the call's metadata in its
// environment: a WASI command's setting (--meta-env); a reactor reads it
// with sluice.meta_get.
func metaEnvRow(f api.FunctionView) string {
	switch {
	case f.MetaEnv:
		return "on: the call's metadata in SLUICE_* variables besides its env"
	case f.ABI == "wasi":
		return "off: only its env (--meta-env adds the call's metadata)"
	}
	return "-"
}

// onOff says a boolean setting as fn update reports it.
func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// forceHelp is the help of delete's --force.
const forceHelp = "delete it even if workflows or triggers use it (they then fail until changed)"

func fnDelete(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "delete NAME",
		Short: "delete a function",
		Long: `Delete a function. A function that a workflow or a trigger uses is not deleted:
the error names them. Delete or change them first, or give --force.`,
		Example: `  sluice fn delete hello
  sluice fn delete hello --force    # even though workflow "greet" runs it`,
	}, arg("NAME", "the function"))
	cf := addClientFlags(cmd, false)
	force := cmd.Flags().Bool("force", false, forceHelp)
	cmd.ValidArgsFunction = completeFirst(cf, functionNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := cf.client().DeleteFunction(e.ctx, args[0], client.Force(*force)); err != nil {
			return deleteError(err)
		}
		fmt.Fprintf(e.stdout, "deleted %s\n", args[0])
		return nil
	}
	return cmd
}

// deleteError explains a refused delete: what uses the thing (the
// daemon's message names it; the list is added if it does not), and how
// to delete it anyway.
func deleteError(err error) error {
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusConflict || len(ce.Dependents) == 0 {
		return err
	}
	msg := ce.Message
	var missing []string
	for _, d := range ce.Dependents {
		if !strings.Contains(msg, d.Name) {
			missing = append(missing, d.Kind+" "+d.Name)
		}
	}
	if len(missing) > 0 {
		msg += " (used by " + strings.Join(missing, ", ") + ")"
	}
	if !strings.Contains(msg, "--force") {
		msg += "; delete or change them first, or give --force"
	}
	return errors.New(msg)
}

// inputFlags are the flags of a command's input: --data, --file, or
// stdin.
type inputFlags struct {
	data, file string
}

func addInputFlags(fs *pflag.FlagSet, what string) *inputFlags {
	var in inputFlags
	fs.StringVarP(&in.data, "data", "d", "", what)
	fs.StringVarP(&in.file, "file", "f", "", "read the input from this `file` (- for stdin)")
	return &in
}

// read reads the input from --data, --file or stdin (when stdin is not a
// terminal), and names where it came from for messages.
func (in *inputFlags) read(e *env, fs *pflag.FlagSet) (b []byte, source string, err error) {
	switch {
	case fs.Changed("data") && in.file != "":
		return nil, "", usagef("give --data or --file, not both")
	case fs.Changed("data"):
		return []byte(in.data), "--data", nil
	case in.file == "-":
		b, err := io.ReadAll(e.stdin)
		return b, "stdin", err
	case in.file != "":
		b, err := os.ReadFile(in.file)
		if err != nil {
			return nil, "", fmt.Errorf("read input: %w", err)
		}
		return b, "--file " + in.file, nil
	}
	if e.stdin == nil || isTerminal(e.stdin) {
		return nil, "", nil // a terminal: no input
	}
	b, err = io.ReadAll(e.stdin)
	return b, "stdin", err
}

func fnInvoke(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "invoke NAME",
		Short: "call a function; its output goes to stdout",
		Long: `Call a function with an input from --data, --file or stdin. Its output, and only
it, goes to stdout: the exact bytes when stdout is a pipe or a file; on a
terminal, control characters are shown as escapes (\x1b) so that an output
cannot drive the terminal. A failed call exits 1 with the error on stderr.`,
		Example: `  sluice fn invoke hello --data Ada
  echo Grace | sluice fn invoke hello
  sluice fn invoke resize --file photo.jpg > small.jpg`,
	}, arg("NAME", "the function"))
	cf := addClientFlags(cmd, false)
	in := addInputFlags(cmd.Flags(), "the input, as a string")
	cmd.ValidArgsFunction = completeFirst(cf, functionNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		input, _, err := in.read(e, cmd.Flags())
		if err != nil {
			return err
		}
		out, err := cf.client().Invoke(e.ctx, args[0], input)
		var ce *client.Error
		if errors.As(err, &ce) && ce.FunctionCode != "" {
			// the function's own code says what failed; the message may not
			return fmt.Errorf("%w (code %s)", err, ce.FunctionCode)
		}
		if err != nil {
			return err
		}
		return e.writeData(out)
	}
	return cmd
}

func fnLogs(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "logs NAME",
		Short: "print a function's recent logs, from every daemon",
		Long: `Print a function's most recent log records (its stderr lines, sluice.log calls
and failed calls), from every daemon, oldest first: the last --tail records
(of the last --since, if given). With -o json, one JSON object per line.`,
		Example: `  sluice fn logs hello
  sluice fn logs hello --tail 20 --follow
  sluice fn logs hello --since 10m -o json | jq -r .message`,
	}, arg("NAME", "the function"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	streamOutput(cmd)
	follow := fs.BoolP("follow", "F", false, "keep printing new records until interrupted")
	since := fs.Duration("since", 0, "show only records of this recent past, like 10m (default: any age)")
	tail := fs.Int("tail", DefaultLogTail, "show at most this many of the most recent records")
	cmd.ValidArgsFunction = completeFirst(cf, functionNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case *tail <= 0:
			return usagef("--tail %d: want a positive number of records", *tail)
		case *since < 0:
			return usagef("--since %s: want a positive duration, like 10m", *since)
		}
		// Without --follow the last --tail records are kept here too, so
		// that a daemon that does not know the parameter is bounded all
		// the same.
		kept := lastN[host.Record]{n: *tail}
		var werr error
		err := cf.client().ReadLogs(e.ctx, args[0], client.LogsOptions{Since: *since, Tail: *tail, Follow: *follow}, func(r host.Record) {
			if !*follow {
				kept.add(r)
				return
			}
			if werr == nil {
				werr = printRecord(e, cf, r)
			}
		})
		for _, r := range kept.values() {
			if werr == nil {
				werr = printRecord(e, cf, r)
			}
		}
		if err == nil {
			err = werr
		}
		if err != nil && !(errors.Is(err, e.ctx.Err()) && *follow) {
			return err
		}
		return nil
	}
	return cmd
}

// lastN keeps the last n values added to it, holding at most 2n of them
// at a time however many are added.
type lastN[T any] struct {
	n    int
	vals []T
}

func (l *lastN[T]) add(v T) {
	if l.vals = append(l.vals, v); len(l.vals) >= 2*l.n {
		l.vals = append(l.vals[:0], l.vals[len(l.vals)-l.n:]...)
	}
}

// values returns the last n values added, oldest first.
func (l *lastN[T]) values() []T { return l.vals[max(len(l.vals)-l.n, 0):] }

// printRecord prints a log record: a line, or with -o json a line of
// JSON.
func printRecord(e *env, cf *clientFlags, r host.Record) error {
	if cf.json() {
		return printNDJSON(e.stdout, r)
	}
	_, err := fmt.Fprintln(e.stdout, logLine(r))
	return err
}

// logLine is a log record on one line, made visible: a guest's text must
// not drive the terminal.
func logLine(r host.Record) string {
	return visible(fmt.Sprintf("%s v%d %s %s%-6s %s", r.Time.Local().Format("2006-01-02T15:04:05.000"), r.Version, r.Invocation, origin(r), r.Stream, r.Message))
}

// origin shows what made a record's call, "request_id=ID " for an HTTP
// request, or "" if the record does not say.
func origin(r host.Record) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(r.Origin)) {
		fmt.Fprintf(&b, "%s=%s ", k, r.Origin[k])
	}
	return b.String()
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
