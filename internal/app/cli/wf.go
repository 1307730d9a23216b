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
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/catalog"
)

// DefaultInvocationsLimit is how many invocations wf invocations lists by
// default: the newest, a screenful or two, never the whole history.
const DefaultInvocationsLimit = 100

func wfCommands(e *env) []*cobra.Command {
	return []*cobra.Command{wfCreate(e), wfList(e), wfGet(e), wfRevisions(e), wfDelete(e), wfInvoke(e), wfStatus(e), wfEvents(e), wfCancel(e), wfInvocations(e),
		wfSignal(e), wfRedrive(e)}
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

func wfRevisions(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "revisions NAME",
		Short: "list every definition a workflow has had, newest first",
		Long: `List every definition a workflow name has had, newest first, each once (as
first created): its version, revision (the sha256 of its YAML, which its
invocations name) and when it was created. -o json with --source gives each
one's YAML.`,
		Example: `  sluice wf revisions order
  sluice wf revisions order --source -o json`,
	}, arg("NAME", "the workflow"))
	cf := addClientFlags(cmd, true)
	source := cmd.Flags().Bool("source", false, "with -o json, give each revision's YAML")
	cmd.ValidArgsFunction = completeFirst(cf, workflowNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ws, err := cf.client().WorkflowRevisions(e.ctx, args[0], *source)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, ws)
		}
		rows := make([][]string, 0, len(ws))
		for _, w := range ws {
			rows = append(rows, []string{strconv.Itoa(w.Version), w.Revision[:min(12, len(w.Revision))], ago(w.Created)})
		}
		return table(e.stdout, []string{"VERSION", "REVISION", "CREATED"}, rows)
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
	if inv.ErrorCode != "" {
		rows = append(rows, [2]string{"error code:", inv.ErrorCode})
	}
	if inv.Compensation != "" {
		rows = append(rows, [2]string{"compensation:", inv.Compensation})
	}
	if inv.Redrives > 0 {
		rows = append(rows, [2]string{"redriven:", fmt.Sprintf("%d times", inv.Redrives)})
	}
	if len(inv.PendingSignals) > 0 {
		rows = append(rows, [2]string{"signals:", clip(strings.Join(inv.PendingSignals, ", ")) + " (sent, no wait has taken them yet)"})
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
		status, msg := t.Status, t.Error
		if t.Caught {
			status += " (caught)"
		}
		if t.Waiting != "" {
			status = "waiting for signal " + t.Waiting
		}
		if t.WaitingTopic != "" {
			status = "waiting for a message on topic " + t.WaitingTopic
		}
		if t.ErrorCode != "" {
			msg = "[" + t.ErrorCode + "] " + msg
		}
		version := "-" // a built-in, or an attempt started before versions were recorded
		if t.Version != 0 {
			version = strconv.Itoa(t.Version)
		}
		trows = append(trows, []string{id, status, dash(t.Run), version, strconv.Itoa(t.Attempts), dash(clip(oneLine(msg)))})
	}
	fmt.Fprintln(w)
	return table(w, []string{"TASK", "STATUS", "RUN", "VERSION", "ATTEMPTS", "ERROR"}, trows)
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
var invocationStatuses = engine.ListStatuses

func wfInvocations(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "invocations [NAME]",
		Short: "list invocations, newest first, a page at a time",
		Long: `List invocations, newest first: of every workflow, or of one, a page of at
most --limit at a time. After the table, on stderr, come the counts per
status and, when there are more, the command that lists the next page
(--cursor); --all lists every page.

--status keeps the invocations with any of the statuses given (--status
failed,canceled, or --status again): running, succeeded, failed, canceled,
compensating (running ones whose undo tasks run), compensated (failed ones
whose undo tasks ran), catching (running ones with a task whose catch runs).
--since and --until keep those created in a range: an RFC 3339 time, or a
duration before now (--since 1h: the last hour). Child workflows' invocations
are listed, with their parent (INVOCATION/TASK); --top leaves them out.

-o json prints the invocations as a JSON array, as every listing does; the
counts and the next page's command still go to stderr.`,
		Example: `  sluice wf invocations
  sluice wf invocations order --status failed --since 1h --limit 20
  sluice wf invocations --status failed,canceled --top --all -o json`,
	}, optionalArg("NAME", "list only this workflow's invocations"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	statuses := fs.StringSlice("status", nil, "list only invocations with any of these statuses: "+strings.Join(invocationStatuses, ", "))
	since := fs.String("since", "", "list only invocations created at or after this `time`: RFC 3339, or a duration before now (1h)")
	until := fs.String("until", "", "list only invocations created before this `time`: RFC 3339, or a duration before now (1h)")
	top := fs.Bool("top", false, "leave out child workflows' invocations")
	limit := fs.Int("limit", DefaultInvocationsLimit, fmt.Sprintf("list at most this many per page, the newest (at most %d)", api.MaxInvocations))
	cursor := fs.String("cursor", "", "list the page after the one that printed this cursor")
	all := fs.Bool("all", false, fmt.Sprintf("list every page (of %d)", api.MaxInvocations))
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(invocationStatuses, cobra.ShellCompDirectiveNoFileComp))
	cmd.ValidArgsFunction = completeFirst(cf, workflowNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		for _, st := range *statuses {
			if !slices.Contains(invocationStatuses, st) {
				return usagef("--status %q: use %s", st, strings.Join(invocationStatuses, ", "))
			}
		}
		switch {
		case *limit <= 0 || *limit > api.MaxInvocations:
			return usagef("--limit %d: want a number from 1 to %d", *limit, api.MaxInvocations)
		case *all && fs.Changed("limit"):
			return usagef("--all lists every page: give --limit or --all, not both")
		case *all && *cursor != "":
			return usagef("--all lists every page from the newest: give --cursor or --all, not both")
		}
		f := client.InvocationFilter{Statuses: *statuses, Since: *since, Until: *until, Top: *top, Limit: *limit, Cursor: *cursor}
		if len(args) == 1 {
			f.Workflow = args[0]
		}
		if *all {
			f.Limit = api.MaxInvocations
		}
		c := cf.client()
		p, err := c.InvocationPage(e.ctx, f)
		if err != nil {
			return err
		}
		// the next pages keep the range the first resolved (--since 1h)
		if p.Since != nil {
			f.Since = p.Since.Format(time.RFC3339Nano)
		}
		if p.Until != nil {
			f.Until = p.Until.Format(time.RFC3339Nano)
		}
		for *all && p.NextCursor != "" {
			f.Cursor, f.NoCounts = p.NextCursor, true
			next, err := c.InvocationPage(e.ctx, f)
			if err != nil {
				return err
			}
			p.Invocations, p.NextCursor = append(p.Invocations, next.Invocations...), next.NextCursor
		}
		if cf.json() {
			if err := printJSON(e.stdout, p.Invocations); err != nil {
				return err
			}
			return morePages(e, f, p)
		}
		rows := make([][]string, 0, len(p.Invocations))
		for _, inv := range p.Invocations {
			finished := "-"
			if inv.Finished != nil {
				finished = ago(*inv.Finished)
			}
			status := inv.Status
			if inv.Compensation != "" {
				status += " (" + inv.Compensation + ")"
			}
			parent := inv.Parent
			if parent == "" {
				parent = "-"
			}
			rows = append(rows, []string{inv.ID, inv.Workflow, status, parent, ago(inv.Created), finished})
		}
		if err := table(e.stdout, []string{"ID", "WORKFLOW", "STATUS", "PARENT", "CREATED", "FINISHED"}, rows); err != nil {
			return err
		}
		return morePages(e, f, p)
	}
	return cmd
}

// morePages prints on stderr (stdout stays the table or the JSON, for a
// pipe) the counts of a page's filter and, when there are more, the
// command that lists the next page.
func morePages(e *env, f client.InvocationFilter, p *api.InvocationPage) error {
	if counts := countsLine(p.Counts); counts != "" {
		fmt.Fprintln(e.stderr, counts)
	}
	if p.NextCursor != "" {
		fmt.Fprintf(e.stderr, "more: %s\n", nextPageCommand(f, p.NextCursor))
	}
	return nil
}

// countsLine is the counts of a page's filter per status, those not 0:
// "in all: running 3, failed 12, compensated 1" (compensated ones are
// among the failed, as --help says).
func countsLine(counts map[string]int) string {
	var parts []string
	for _, st := range invocationStatuses {
		if n := counts[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", st, n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "in all: " + strings.Join(parts, ", ")
}

// nextPageCommand is the command that lists the page after a cursor.
func nextPageCommand(f client.InvocationFilter, cursor string) string {
	args := []string{"sluice", "wf", "invocations"}
	if f.Workflow != "" {
		args = append(args, f.Workflow) // a name is letters, digits and - . _
	}
	if len(f.Statuses) > 0 {
		args = append(args, "--status", strings.Join(f.Statuses, ","))
	}
	if f.Since != "" {
		args = append(args, "--since", f.Since)
	}
	if f.Until != "" {
		args = append(args, "--until", f.Until)
	}
	if f.Top {
		args = append(args, "--top")
	}
	if f.Limit != DefaultInvocationsLimit {
		args = append(args, "--limit", strconv.Itoa(f.Limit))
	}
	return strings.Join(append(args, "--cursor", cursor), " ") + "   (or --all instead of --cursor for every page)"
}

func wfSignal(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "signal ID NAME",
		Short: "deliver a signal to a running invocation: a wait task of that name takes it",
		Long: `Deliver a signal to a running invocation, with data from --data or --data-file
(JSON, kept as it is sent; --raw sends any text as a string; none is null).
The first wait task of that name takes it and outputs its data: one waiting
now, or one that starts later (the signal is kept for it). Signals are stored
in the invocation's log, so a signal sent while the daemon that runs the
invocation is down is taken when it is back.`,
		Example: `  sluice wf signal 5f3a9c1e2b7d approve --data '{"by": "Ada"}'
  sluice wf signal 5f3a9c1e2b7d done`,
	}, arg("ID", "the invocation's id"), arg("NAME", "the signal: 1 to 63 letters, digits, '_', '.' and '-'"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	data := fs.String("data", "", "the signal's data, JSON (or any text with --raw); none is null")
	file := fs.String("data-file", "", "read the data from this `file` (- for stdin)")
	raw := fs.Bool("raw", false, "send the data as a string, not JSON")
	cmd.ValidArgsFunction = completeFirst(cf, invocationIDs)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var b []byte
		source := "--data"
		switch {
		case fs.Changed("data") && *file != "":
			return usagef("give --data or --data-file, not both")
		case fs.Changed("data"):
			b = []byte(*data)
		case *file != "":
			var err error
			source = "--data-file " + *file
			if b, err = readFile(e, *file); err != nil {
				return fmt.Errorf("read signal data: %w", err)
			}
		}
		if !*raw {
			if err := checkJSON(source, b); err != nil {
				return err
			}
		}
		v, err := cf.client().SignalInvocation(e.ctx, args[0], args[1], b, client.SignalOptions{Raw: *raw})
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, v)
		}
		fmt.Fprintf(e.stdout, "signal %s sent to invocation %s\n", v.Signal, v.Invocation)
		return nil
	}
	return cmd
}

func wfRedrive(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "redrive ID",
		Short: "continue a failed or canceled invocation: its failed and canceled tasks run again",
		Long: `Continue a failed or canceled invocation on the revision it started on, once the
cause is fixed (a function updated, a service back): its succeeded tasks keep
their outputs and are not run again; its failed and canceled tasks run again,
with their next attempt (a foreach re-runs only its items that did not
succeed, a workflow task starts a new child). This daemon runs it from then
on. A child workflow's invocation is redriven through its root.`,
		Example: `  sluice wf redrive 5f3a9c1e2b7d`,
	}, arg("ID", "the invocation's id"))
	cf := addClientFlags(cmd, true)
	cmd.ValidArgsFunction = completeFirst(cf, invocationIDs)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		inv, err := cf.client().RedriveInvocation(e.ctx, args[0])
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, inv)
		}
		fmt.Fprintf(e.stdout, "invocation %s redriven: %s\n", inv.ID, inv.Status)
		return nil
	}
	return cmd
}
