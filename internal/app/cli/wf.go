package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/catalog"
)

// DefaultInvocationsLimit is how many invocations wf invocations lists by
// default: the newest, a screenful or two, never the whole history.
const DefaultInvocationsLimit = 100

func wfCommands(e *env) []*cobra.Command {
	return []*cobra.Command{wfCreate(e), wfList(e), wfGet(e), wfDelete(e), wfInvoke(e), wfStatus(e), wfEvents(e), wfCancel(e), wfInvocations(e)}
}

// readFile reads a file named on the command line, "-" being stdin.
func readFile(e *env, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(file)
}

func wfCreate(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "create NAME -f WORKFLOW.yaml",
		Short: "create a workflow from its YAML definition (a new version if it changed)",
		Long: `Create a workflow from its YAML definition. The daemon checks it first (YAML,
requires, cycles, expressions, the functions and workflows it runs) and
refuses it with every problem and its line. Creating it again with another
definition makes a new version; the same definition changes nothing.`,
		Example: `  sluice wf create order -f order.yaml
  cat order.yaml | sluice wf create order -f -`,
	}, arg("NAME", "the workflow's name: "+nameHelp+"; the definition's name: must match"))
	cf := addClientFlags(cmd, true)
	file := cmd.Flags().StringP("file", "f", "", "the workflow definition, YAML (- for stdin)")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	cmd.ValidArgsFunction = completeFirst(cf, workflowNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *file == "" {
			return usagef("wf create: -f WORKFLOW.yaml is required")
		}
		if err := catalog.ValidateName("workflow", args[0]); err != nil {
			return usagef("%v", strings.TrimPrefix(err.Error(), "invalid: "))
		}
		src, err := readFile(e, *file)
		if err != nil {
			return fmt.Errorf("read workflow: %w", err)
		}
		v, changed, err := cf.client().CreateWorkflow(e.ctx, args[0], src)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, v)
		}
		if changed {
			fmt.Fprintf(e.stdout, "created workflow %s version %d (revision %s)\n", v.Name, v.Version, short(v.Revision))
		} else {
			fmt.Fprintf(e.stdout, "workflow %s unchanged (version %d)\n", v.Name, v.Version)
		}
		return nil
	}
	return cmd
}

func wfList(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:     "list",
		Short:   "list workflows",
		Example: `  sluice wf list -o json`,
	})
	cf := addClientFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		wfs, err := cf.client().Workflows(e.ctx)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, wfs)
		}
		rows := make([][]string, 0, len(wfs))
		for _, w := range wfs {
			rows = append(rows, []string{w.Name, strconv.Itoa(w.Version), short(w.Revision), dash(strings.Join(w.Triggers, ",")), ago(w.Created)})
		}
		return table(e.stdout, []string{"NAME", "VERSION", "REVISION", "TRIGGERS", "CREATED"}, rows)
	}
	return cmd
}

func wfGet(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "get NAME",
		Short: "print a workflow's definition",
		Example: `  sluice wf get order > order.yaml
  sluice wf get order -o json    # with its version and revision`,
	}, arg("NAME", "the workflow"))
	cf := addClientFlags(cmd, true)
	cmd.ValidArgsFunction = completeFirst(cf, workflowNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		w, err := cf.client().Workflow(e.ctx, args[0])
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, w)
		}
		src := w.Source
		if !strings.HasSuffix(src, "\n") {
			src += "\n"
		}
		return e.writeData([]byte(src))
	}
	return cmd
}

func wfDelete(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "delete NAME",
		Short: "delete a workflow",
		Long: `Delete a workflow; its invocations stay. A workflow that another workflow or a
trigger uses is not deleted: the error names them. Delete or change them
first, or give --force.`,
		Example: `  sluice wf delete order`,
	}, arg("NAME", "the workflow"))
	cf := addClientFlags(cmd, false)
	force := cmd.Flags().Bool("force", false, forceHelp)
	cmd.ValidArgsFunction = completeFirst(cf, workflowNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := cf.client().DeleteWorkflow(e.ctx, args[0], client.Force(*force)); err != nil {
			return deleteError(err)
		}
		fmt.Fprintf(e.stdout, "deleted workflow %s\n", args[0])
		return nil
	}
	return cmd
}

func wfInvoke(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "invoke NAME",
		Short: "start a workflow; prints the invocation id, or with --wait the output",
		Long: `Start an invocation of a workflow with an input from --data, --file or stdin.
The input is JSON, kept as it is sent: input that does not parse is refused
here, saying where, before anything is sent; --raw sends any bytes instead
(text is a string to expressions, other bytes a bytes value). Prints the
invocation's id, or with --wait its output (and exits 1 if it failed): the
exact bytes when stdout is a pipe or a file, as fn invoke prints a
function's; on a terminal, control characters are shown as escapes.`,
		Example: `  sluice wf invoke order --data '{"items": [1, 2]}' --wait
  sluice wf invoke greet --raw --data 'Ada Lovelace'
  sluice wf invoke order --file order.json --id order-42    # idempotent`,
	}, arg("NAME", "the workflow"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	in := addInputFlags(fs, "the input, JSON (or any text with --raw)")
	raw := fs.Bool("raw", false, "send the input as a string, not JSON")
	wait := fs.BoolP("wait", "w", false, "wait until the invocation has finished and print its output")
	id := fs.String("id", "", "the invocation's id, to make it idempotent: invoking again with it returns that invocation")
	cmd.ValidArgsFunction = completeFirst(cf, workflowNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		input, source, err := in.read(e, fs)
		if err != nil {
			return err
		}
		if !*raw {
			if err := checkJSON(source, input); err != nil {
				return err
			}
		}
		inv, err := cf.client().InvokeWorkflow(e.ctx, args[0], input, client.InvokeOptions{Wait: *wait, IdempotencyKey: *id, Raw: *raw})
		if err != nil {
			return err
		}
		switch {
		case cf.json():
			if err := printJSON(e.stdout, inv); err != nil {
				return err
			}
		case !*wait:
			fmt.Fprintln(e.stdout, inv.ID)
			return nil
		case inv.Status == engine.StatusSucceeded:
			out, _, err := cf.client().InvocationOutput(e.ctx, inv.ID)
			if err != nil {
				return fmt.Errorf("invocation %s succeeded; reading its output: %w", inv.ID, err)
			}
			if err := e.writeData(out); err != nil {
				return err
			}
		}
		if *wait {
			return invocationError(inv)
		}
		return nil
	}
	return cmd
}

// checkJSON checks a workflow's input before it is sent: a typo in a JSON
// document must not quietly become a string, and the place of the typo
// is easier to find here than in the daemon's answer. No input is null.
func checkJSON(source string, b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var v any
	err := json.Unmarshal(b, &v)
	if err == nil {
		return nil
	}
	where := ""
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		where = fmt.Sprintf(" at byte %d", syn.Offset)
		if bytes.ContainsRune(b, '\n') {
			before := b[:max(syn.Offset-1, 0)]
			line := bytes.Count(before, []byte("\n")) + 1
			col := len(before) - bytes.LastIndexByte(before, '\n')
			where += fmt.Sprintf(" (line %d, column %d)", line, col)
		}
	}
	return usagef("%s is not JSON: %v%s; use --raw to send it as a string", source, err, where)
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
	return errors.New(msg)
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func wfStatus(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:     "status ID",
		Short:   "show an invocation and its tasks",
		Example: `  sluice wf status "$(sluice wf invoke order --data '{}')"`,
	}, arg("ID", "the invocation's id, as wf invoke prints it"))
	cf := addClientFlags(cmd, true)
	cmd.ValidArgsFunction = completeFirst(cf, invocationIDs)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		inv, err := cf.client().Invocation(e.ctx, args[0])
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, inv)
		}
		return printInvocation(e.stdout, inv)
	}
	return cmd
}

func printInvocation(w io.Writer, inv *engine.Invocation) error {
	rows := [][2]string{
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
		rows = append(rows, [2]string{"finished:", fmt.Sprintf("%s (took %s)", inv.Finished.Local().Format(time.RFC3339), took)})
	}
	if inv.Parent != "" {
		rows = append(rows, [2]string{"parent:", inv.Parent})
	}
	if len(inv.Input) > 0 {
		rows = append(rows, [2]string{"input:", showValue(inv.Input, inv.InputForm)})
	}
	if len(inv.Output) > 0 && (inv.Status == engine.StatusSucceeded || string(inv.Output) != "null") {
		rows = append(rows, [2]string{"output:", showValue(inv.Output, inv.OutputForm)})
	}
	if inv.FailedTask != "" {
		rows = append(rows, [2]string{"failed task:", inv.FailedTask})
	}
	if inv.Error != "" {
		rows = append(rows, [2]string{"error:", oneLine(inv.Error)})
	}
	fields(w, 13, rows)
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

// showValue renders a value on one line as the API gives it (its JSON and
// its form): JSON as JSON, text as text (control characters escaped),
// other bytes as their size and first bytes in hex. -o json shows the
// value whole, and GET /v1/invocations/ID/output its exact bytes.
func showValue(raw json.RawMessage, form string) string {
	switch form {
	case engine.FormText:
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return clip(visible(s))
		}
	case engine.FormBase64:
		var b []byte
		if json.Unmarshal(raw, &b) == nil {
			return describeBytes(b)
		}
	case engine.FormBlob:
		var ref struct {
			Blob string `json:"blob"`
			Size int    `json:"size"`
		}
		if json.Unmarshal(raw, &ref) == nil {
			return fmt.Sprintf("%d bytes, stored in the broker (sha256 %.12s…): wf invoke --wait, or GET /v1/invocations/ID/output, gives them", ref.Size, ref.Blob)
		}
	}
	return clip(compactJSON(raw))
}

// maxShownBytes is how many of a binary value's bytes wf status shows.
const maxShownBytes = 16

// describeBytes names a binary value by its size and its first bytes.
func describeBytes(b []byte) string {
	head := b[:min(len(b), maxShownBytes)]
	s := fmt.Sprintf("%d bytes, not text: % x", len(b), head)
	if len(b) > len(head) {
		s += " …"
	}
	return s
}

// clip keeps a value on a readable line; -o json shows it whole.
func clip(s string) string {
	const max = 120
	if len(s) > max {
		return strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}

func wfEvents(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:     "events ID",
		Short:   "print an invocation's events, one per line",
		Example: `  sluice wf events 5f3a9c1e2b7d -o json`,
	}, arg("ID", "the invocation's id"))
	cf := addClientFlags(cmd, true)
	cmd.ValidArgsFunction = completeFirst(cf, invocationIDs)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		evs, err := cf.client().Events(e.ctx, args[0])
		if err != nil {
			return err
		}
		if cf.json() {
			if evs == nil {
				evs = []*engine.Event{}
			}
			return printJSON(e.stdout, evs)
		}
		for _, ev := range evs {
			if _, err := fmt.Fprintln(e.stdout, visible(ev.String())); err != nil {
				return err
			}
		}
		return nil
	}
	return cmd
}

func wfCancel(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:     "cancel ID",
		Short:   "cancel a running invocation",
		Example: `  sluice wf cancel 5f3a9c1e2b7d`,
	}, arg("ID", "the invocation's id"))
	cf := addClientFlags(cmd, true)
	cmd.ValidArgsFunction = completeFirst(cf, invocationIDs)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		inv, err := cf.client().CancelInvocation(e.ctx, args[0])
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, inv)
		}
		fmt.Fprintf(e.stdout, "invocation %s: %s\n", inv.ID, inv.Status)
		return nil
	}
	return cmd
}

// invocationStatuses are the statuses wf invocations --status takes.
var invocationStatuses = []string{engine.StatusRunning, engine.StatusSucceeded, engine.StatusFailed, engine.StatusCanceled}

func wfInvocations(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "invocations [NAME]",
		Short: "list invocations, newest first",
		Long: `List invocations, newest first: of every workflow, or of one. At most --limit
are listed (the newest); --status keeps those with that status.`,
		Example: `  sluice wf invocations
  sluice wf invocations order --status failed --limit 20`,
	}, optionalArg("NAME", "list only this workflow's invocations"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	status := fs.String("status", "", "list only invocations with this status: "+strings.Join(invocationStatuses, ", "))
	limit := fs.Int("limit", DefaultInvocationsLimit, "list at most this many, the newest")
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(invocationStatuses, cobra.ShellCompDirectiveNoFileComp))
	cmd.ValidArgsFunction = completeFirst(cf, workflowNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case *status != "" && !slices.Contains(invocationStatuses, *status):
			return usagef("--status %q: use %s", *status, strings.Join(invocationStatuses, ", "))
		case *limit <= 0:
			return usagef("--limit %d: want a positive number", *limit)
		}
		f := client.InvocationFilter{Status: *status, Limit: *limit}
		if len(args) == 1 {
			f.Workflow = args[0]
		}
		invs, err := cf.client().ListInvocations(e.ctx, f)
		if err != nil {
			return err
		}
		// a daemon that does not know the filter lists more: keep to it
		invs = slices.DeleteFunc(invs, func(inv *engine.Invocation) bool { return f.Status != "" && inv.Status != f.Status })
		invs = invs[:min(len(invs), f.Limit)]
		if cf.json() {
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
	return cmd
}
