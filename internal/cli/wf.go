package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/client"
)

var wfCommands = []command{
	{"create", "create a workflow from its YAML definition (a new version if it exists)", wfCreate},
	{"list", "list workflows", wfList},
	{"get", "print a workflow's definition", wfGet},
	{"delete", "delete a workflow", wfDelete},
	{"invoke", "start a workflow; prints the invocation id, or with --wait the output", wfInvoke},
	{"status", "show an invocation and its tasks", wfStatus},
	{"events", "print an invocation's events, one per line", wfEvents},
	{"cancel", "cancel a running invocation", wfCancel},
	{"invocations", "list invocations, newest first", wfInvocations},
}

// readFile reads a file named on the command line, "-" being stdin.
func readFile(e *env, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(file)
}

func wfCreate(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf create", &cf, e)
	file := fs.StringP("file", "f", "", "the workflow definition, YAML (- for stdin)")
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if *file == "" {
		return usagef("wf create: -f WORKFLOW.yaml is required")
	}
	if err := catalog.ValidateName("workflow", rest[0]); err != nil {
		return usagef("%v", strings.TrimPrefix(err.Error(), "invalid: "))
	}
	src, err := readFile(e, *file)
	if err != nil {
		return fmt.Errorf("read workflow: %w", err)
	}
	v, changed, err := cf.client().CreateWorkflow(e.ctx, rest[0], src)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, v)
	}
	if changed {
		fmt.Fprintf(e.stdout, "created workflow %s version %d (revision %s)\n", v.Name, v.Version, short(v.Revision))
	} else {
		fmt.Fprintf(e.stdout, "workflow %s unchanged (version %d)\n", v.Name, v.Version)
	}
	return nil
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

func wfList(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf list", &cf, e)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	wfs, err := cf.client().Workflows(e.ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, wfs)
	}
	rows := make([][]string, 0, len(wfs))
	for _, w := range wfs {
		rows = append(rows, []string{w.Name, strconv.Itoa(w.Version), short(w.Revision), dash(strings.Join(w.Triggers, ",")), ago(w.Created)})
	}
	return table(e.stdout, []string{"NAME", "VERSION", "REVISION", "TRIGGERS", "CREATED"}, rows)
}

func wfGet(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf get", &cf, e)
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	w, err := cf.client().Workflow(e.ctx, rest[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, w)
	}
	src := w.Source
	if !strings.HasSuffix(src, "\n") {
		src += "\n"
	}
	_, err = io.WriteString(e.stdout, src)
	return err
}

func wfDelete(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf delete", &cf, e)
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if err := cf.client().DeleteWorkflow(e.ctx, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted workflow %s\n", rest[0])
	return nil
}

func wfInvoke(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf invoke", &cf, e)
	data := fs.StringP("data", "d", "", "the input: JSON, or any other text as a string")
	file := fs.StringP("file", "f", "", "read the input from a file (- for stdin)")
	wait := fs.BoolP("wait", "w", false, "wait until the invocation has finished and print its output")
	id := fs.String("id", "", "the invocation's id, to make it idempotent: invoking again with it returns that invocation")
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	in, err := readInput(e, data, fs.Changed("data"), *file)
	if err != nil {
		return err
	}
	inv, err := cf.client().InvokeWorkflow(e.ctx, rest[0], in, client.InvokeOptions{Wait: *wait, IdempotencyKey: *id})
	if err != nil {
		return err
	}
	switch {
	case cf.output == "json":
		if err := printJSON(e.stdout, inv); err != nil {
			return err
		}
	case !*wait:
		fmt.Fprintln(e.stdout, inv.ID)
		return nil
	case inv.Status == engine.StatusSucceeded:
		if len(inv.Output) > 0 {
			if _, err := fmt.Fprintf(e.stdout, "%s\n", compactJSON(inv.Output)); err != nil {
				return err
			}
		}
	}
	if *wait {
		return invocationError(inv)
	}
	return nil
}

// invocationError is the error of a finished invocation that did not
// succeed: which task failed and why.
func invocationError(inv *engine.Invocation) error {
	switch inv.Status {
	case engine.StatusSucceeded, engine.StatusRunning:
		return nil
	}
	msg := fmt.Sprintf("invocation %s %s", inv.ID, inv.Status)
	if inv.FailedTask != "" && !strings.HasPrefix(inv.Error, "task "+inv.FailedTask+":") {
		msg += ": task " + inv.FailedTask
	}
	if inv.Error != "" {
		msg += ": " + inv.Error
	}
	return fmt.Errorf("%s", msg)
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func wfStatus(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf status", &cf, e)
	rest, err := parse(fs, args, "ID")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	inv, err := cf.client().Invocation(e.ctx, rest[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, inv)
	}
	return printInvocation(e.stdout, inv)
}

func printInvocation(w io.Writer, inv *engine.Invocation) error {
	rows := [][]string{
		{"id:", inv.ID},
		{"workflow:", fmt.Sprintf("%s (revision %s)", inv.Workflow, short(inv.Revision))},
		{"status:", inv.Status},
		{"created:", inv.Created.Local().Format(time.RFC3339)},
	}
	if inv.Finished != nil {
		took := inv.Finished.Sub(inv.Created)
		if took >= time.Second {
			took = took.Round(time.Millisecond)
		} else {
			took = took.Round(time.Microsecond)
		}
		rows = append(rows, []string{"finished:", fmt.Sprintf("%s (took %s)", inv.Finished.Local().Format(time.RFC3339), took)})
	}
	if inv.Parent != "" {
		rows = append(rows, []string{"parent:", inv.Parent})
	}
	if len(inv.Input) > 0 {
		rows = append(rows, []string{"input:", clip(compactJSON(inv.Input))})
	}
	if len(inv.Output) > 0 && (inv.Status == engine.StatusSucceeded || string(inv.Output) != "null") {
		rows = append(rows, []string{"output:", clip(compactJSON(inv.Output))})
	}
	if inv.FailedTask != "" {
		rows = append(rows, []string{"failed task:", inv.FailedTask})
	}
	if inv.Error != "" {
		rows = append(rows, []string{"error:", oneLine(inv.Error)})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-13s %s\n", r[0], r[1])
	}
	if len(inv.Tasks) == 0 {
		return nil
	}
	ids := make([]string, 0, len(inv.Tasks))
	for id := range inv.Tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	trows := make([][]string, 0, len(ids))
	for _, id := range ids {
		t := inv.Tasks[id]
		trows = append(trows, []string{id, t.Status, dash(t.Run), strconv.Itoa(t.Attempts), dash(clip(oneLine(t.Error)))})
	}
	fmt.Fprintln(w)
	return table(w, []string{"TASK", "STATUS", "RUN", "ATTEMPTS", "ERROR"}, trows)
}

// clip keeps a value on a readable line; -o json shows it whole.
func clip(s string) string {
	const max = 120
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

func wfEvents(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf events", &cf, e)
	rest, err := parse(fs, args, "ID")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	evs, err := cf.client().Events(e.ctx, rest[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		if evs == nil {
			evs = []*engine.Event{}
		}
		return printJSON(e.stdout, evs)
	}
	for _, ev := range evs {
		if _, err := fmt.Fprintln(e.stdout, ev.String()); err != nil {
			return err
		}
	}
	return nil
}

func wfCancel(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf cancel", &cf, e)
	rest, err := parse(fs, args, "ID")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	inv, err := cf.client().CancelInvocation(e.ctx, rest[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, inv)
	}
	fmt.Fprintf(e.stdout, "invocation %s: %s\n", inv.ID, inv.Status)
	return nil
}

func wfInvocations(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("wf invocations", &cf, e)
	rest, err := parseOptional(fs, args, "NAME")
	if err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	workflow := ""
	if len(rest) == 1 {
		workflow = rest[0]
	}
	invs, err := cf.client().Invocations(e.ctx, workflow)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		if invs == nil {
			invs = []*engine.Invocation{}
		}
		return printJSON(e.stdout, invs)
	}
	rows := make([][]string, 0, len(invs))
	for _, inv := range invs {
		finished := "-"
		if inv.Finished != nil {
			finished = ago(*inv.Finished)
		}
		rows = append(rows, []string{inv.ID, inv.Workflow, inv.Status, ago(inv.Created), finished})
	}
	return table(e.stdout, []string{"ID", "WORKFLOW", "STATUS", "CREATED", "FINISHED"}, rows)
}

// parseOptional parses flags and at most one optional positional
// argument.
func parseOptional(fs *pflag.FlagSet, args []string, name string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%v", err)
	}
	if fs.NArg() > 1 {
		return nil, usagef("%s: unexpected argument %q (usage: %s [%s] [flags])", fs.Name(), fs.Arg(1), fs.Name(), name)
	}
	return fs.Args(), nil
}
