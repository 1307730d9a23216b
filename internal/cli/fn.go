package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/catalog"
)

var fnCommands = []command{
	{"deploy", "deploy a .wasm module as a function", fnDeploy},
	{"list", "list functions", fnList},
	{"get", "show a function", fnGet},
	{"delete", "delete a function", fnDelete},
	{"invoke", "call a function; its output goes to stdout", fnInvoke},
	{"logs", "show a function's recent logs", fnLogs},
}

func fnDeploy(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("fn deploy", &cf, e)
	abiKind := fs.String("abi", "auto", "module kind: auto, wasi (a WASI command) or reactor (sluice ABI)")
	memory := fs.String("memory", "", "memory limit per instance, e.g. 64MiB (default 64MiB)")
	timeout := fs.Duration("timeout", 0, "time limit per call, e.g. 5s (default 30s)")
	concurrency := fs.Int("concurrency", 0, "calls that may run at once (default 32)")
	maxInput := fs.String("max-input", "", "largest input, e.g. 1MiB (default 6MiB)")
	maxOutput := fs.String("max-output", "", "largest output (default 6MiB)")
	envs := fs.StringArray("env", nil, "environment variable K=V for the guest (repeatable)")
	rest, err := parse(fs, args, "NAME", "FILE.wasm")
	if err != nil {
		return err
	}
	if err := catalog.ValidateName("function", rest[0]); err != nil {
		return usagef("%v", strings.TrimPrefix(err.Error(), "invalid: "))
	}
	wasm, err := os.ReadFile(rest[1])
	if err != nil {
		return fmt.Errorf("read module: %w", err)
	}
	q, err := deployQuery(deploySettings{
		abi: *abiKind, memory: *memory, timeout: *timeout, concurrency: *concurrency,
		maxInput: *maxInput, maxOutput: *maxOutput, env: *envs,
	}, flagNames)
	if err != nil {
		return err
	}
	v, err := cf.client().Deploy(e.ctx, rest[0], wasm, q)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, v)
	}
	fmt.Fprintf(e.stdout, "deployed %s version %d (%s, %s, module %s)\n", v.Name, v.Version, v.ABI, host.FormatBytes(uint64(v.Size)), v.Module[:12])
	return nil
}

// deploySettings are a function's settings as fn deploy and apply take
// them.
type deploySettings struct {
	abi, memory         string
	timeout             time.Duration
	concurrency         int
	maxInput, maxOutput string
	env                 []string // K=V
}

// deployQuery checks the settings and turns them into the query of a
// deploy (see api.ParseConfig); mistakes name settings with name.
func deployQuery(d deploySettings, name namer) (url.Values, error) {
	abiKind := d.abi
	if abiKind == "" {
		abiKind = "auto"
	}
	q := url.Values{"abi": {abiKind}}
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
		q.Set("concurrency", strconv.Itoa(d.concurrency))
	}
	if d.maxInput != "" {
		q.Set("max-input", d.maxInput)
	}
	if d.maxOutput != "" {
		q.Set("max-output", d.maxOutput)
	}
	for _, kv := range d.env {
		if !strings.Contains(kv, "=") {
			return nil, usagef("%s %q: want KEY=VALUE", name("env"), kv)
		}
		q.Add("env", kv)
	}
	return q, nil
}

func fnList(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("fn list", &cf, e)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	fns, err := cf.client().Functions(e.ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
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

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fnGet(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("fn get", &cf, e)
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	f, err := cf.client().Function(e.ctx, rest[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, f)
	}
	printFunction(e.stdout, f)
	return nil
}

func printFunction(w io.Writer, f api.FunctionView) {
	rows := [][]string{
		{"name:", f.Name},
		{"version:", strconv.Itoa(f.Version)},
		{"abi:", f.ABI},
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
		rows = append(rows, []string{"env:", k + "=" + f.Env[k]})
	}
	if s := f.Stats; s != nil {
		rows = append(rows, []string{"calls here:", fmt.Sprintf("%d (%d errors, %d cold starts, %d running, %d idle instances)", s.Calls, s.Errors, s.ColdStarts, s.Active, s.Idle)})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-13s %s\n", r[0], r[1])
	}
}

func fnDelete(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("fn delete", &cf, e)
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if err := cf.client().DeleteFunction(e.ctx, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted %s\n", rest[0])
	return nil
}

// readInput reads a command's input from --data, --file or stdin (when
// stdin is not a terminal).
func readInput(e *env, data *string, dataSet bool, file string) ([]byte, error) {
	switch {
	case dataSet && file != "":
		return nil, usagef("give --data or --file, not both")
	case dataSet:
		return []byte(*data), nil
	case file == "-":
		return io.ReadAll(e.stdin)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read input: %w", err)
		}
		return b, nil
	}
	if f, ok := e.stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return nil, nil // a terminal: no input
		}
	}
	if e.stdin == nil {
		return nil, nil
	}
	return io.ReadAll(e.stdin)
}

func fnInvoke(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("fn invoke", &cf, e)
	data := fs.StringP("data", "d", "", "the input, as a string")
	file := fs.StringP("file", "f", "", "read the input from a file (- for stdin)")
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	in, err := readInput(e, data, fs.Changed("data"), *file)
	if err != nil {
		return err
	}
	out, err := cf.client().Invoke(e.ctx, rest[0], in)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(out)
	return err
}

func fnLogs(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("fn logs", &cf, e)
	follow := fs.BoolP("follow", "F", false, "keep printing new logs")
	since := fs.Duration("since", time.Hour, "show logs of this recent past")
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	err = cf.client().Logs(e.ctx, rest[0], *since, *follow, func(r host.Record) {
		if cf.output == "json" {
			_ = printJSON(e.stdout, r)
			return
		}
		fmt.Fprintf(e.stdout, "%s v%d %s %s%-6s %s\n", r.Time.Local().Format("2006-01-02T15:04:05.000"), r.Version, r.Invocation, origin(r), r.Stream, r.Message)
	})
	if err != nil && !(errors.Is(err, e.ctx.Err()) && *follow) {
		return err
	}
	return nil
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
