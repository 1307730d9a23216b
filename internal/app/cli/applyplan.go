package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/catalog"
)

// apply: read the spec and the daemon, plan every change (what to create,
// change, leave alone and, with --prune, delete), check the plan as a
// whole, then make the changes in an order where nothing ever names what
// does not exist: functions, workflows, triggers, then the deletes in the
// reverse order (triggers, workflows, functions). --dry-run prints the
// plan and stops.

func applyCommand(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "apply -f SPEC.yaml",
		Short: "make functions, workflows and triggers match a spec",
		Long: `Make the daemon's functions, workflows and triggers match a spec: YAML documents
of kind Function, Workflow and Trigger (apiVersion: sluice/v1; module paths
are relative to the spec's file). What already matches is left alone; the
whole spec is checked, against the files it names and the daemon, before
anything changes.

--dry-run prints what would change and changes nothing: what would be
created, changed (with the fields that change; a trigger is replaced),
left unchanged and, with --prune, deleted.

--prune also deletes what the spec no longer lists, of the kinds it has
documents of: a spec without Trigger documents never deletes a trigger.
Triggers go first, then workflows, then functions. Nothing is pruned that
something staying still uses: apply refuses before changing anything and
names it.`,
		Example: `  sluice apply -f examples/hello-workflow/spec.yaml

  # what would change, deletes included, as JSON
  sluice apply -f spec.yaml --prune --dry-run -o json`,
	})
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	file := fs.StringP("file", "f", "", "the spec: YAML documents of kind Function, Workflow and Trigger (- for stdin)")
	dryRun := fs.Bool("dry-run", false, "print what would change; change nothing")
	prune := fs.Bool("prune", false, "also delete the functions, workflows and triggers the spec does not list, of the kinds it lists")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *file == "" {
			return usagef("apply: -f SPEC.yaml is required")
		}
		name, dir := *file, filepath.Dir(*file)
		if *file == "-" {
			name, dir = "stdin", "."
		}
		data, err := readFile(e, *file)
		if err != nil {
			return fmt.Errorf("read spec: %w", err)
		}
		s, err := parseSpec(name, dir, data)
		if err != nil {
			return err
		}
		return s.apply(e, cf, applyOptions{dryRun: *dryRun, prune: *prune})
	}
	return cmd
}

type applyOptions struct {
	dryRun, prune bool
}

// Actions of a change.
const (
	actCreate    = "create"
	actChange    = "change"
	actUnchanged = "unchanged"
	actDelete    = "delete"
)

// change is what apply does, or with --dry-run would do, to one object.
type change struct {
	Kind   string `json:"kind"` // function, workflow or trigger
	Name   string `json:"name"`
	Action string `json:"action"` // create, change, unchanged or delete
	// Fields say what changes: "timeout 5s → 6s", "env GREETING changed",
	// "tasks.b". Environment values are never shown.
	Fields []string `json:"fields,omitempty"`
	// Version is the version the change made (functions and workflows).
	Version int `json:"version,omitempty"`

	doc *specDoc
}

// module is a function's module, read.
type module struct {
	wasm []byte
	sha  string
}

// applyState is what the daemon has, read before changing anything.
type applyState struct {
	functions map[string]api.FunctionView
	workflows map[string]api.WorkflowView
	triggers  map[string]catalog.Trigger
}

func readState(e *env, c *client.Client) (*applyState, error) {
	st := &applyState{functions: map[string]api.FunctionView{}, workflows: map[string]api.WorkflowView{}, triggers: map[string]catalog.Trigger{}}
	// the environment's values, to tell whether they change
	fns, err := c.Functions(e.ctx, client.RevealEnv(true))
	if err != nil {
		return nil, err
	}
	for _, f := range fns {
		st.functions[f.Name] = f
	}
	wfs, err := c.Workflows(e.ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range wfs {
		st.workflows[w.Name] = w
	}
	ts, err := c.Triggers(e.ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		st.triggers[t.Name] = t
	}
	return st, nil
}

// plan is every change of an apply, in the order they are made.
type plan struct {
	changes []*change
	modules map[string]module
	// blocked is why the plan cannot be carried out (a prune of what
	// something staying uses); a dry run still shows the plan.
	blocked error
}

// kindName is a spec document kind's name in messages: "function".
func kindName(kind string) string { return strings.ToLower(kind) }

// plan checks the spec against the files it names and the daemon, and
// works out every change; it changes nothing.
func (s *spec) plan(e *env, c *client.Client, prune bool) (*plan, error) {
	p := &plan{modules: map[string]module{}}
	for _, d := range s.ofKind(kindFunction) {
		wasm, err := os.ReadFile(d.path)
		if err != nil {
			return nil, s.errorf(d, "read module: %v", err)
		}
		sum := sha256.Sum256(wasm)
		p.modules[d.name] = module{wasm, hex.EncodeToString(sum[:])}
	}
	st, err := readState(e, c)
	if err != nil {
		return nil, err
	}
	exists := func(fn string) bool {
		_, ok := st.functions[fn]
		return ok || s.has(kindFunction, fn)
	}
	known := engine.Known{
		Function: exists,
		Workflow: func(wf string) bool { return st.workflows[wf].Name != "" || s.has(kindWorkflow, wf) },
	}
	for _, d := range s.ofKind(kindWorkflow) {
		def, err := engine.ParseDefinition(d.name, []byte(d.padded), known)
		if err != nil {
			return nil, s.errorf(d, "%s", strings.TrimPrefix(err.Error(), "invalid: "))
		}
		d.def = def
	}
	for _, d := range s.ofKind(kindTrigger) {
		if fn := d.req.Function; fn != "" && !exists(fn) {
			return nil, s.errorf(d, "no function %q: deploy it or add a Function document", fn)
		}
		if wf := d.req.Workflow; wf != "" && st.workflows[wf].Name == "" && !s.has(kindWorkflow, wf) {
			return nil, s.errorf(d, "no workflow %q: create it or add a Workflow document", wf)
		}
	}

	for _, d := range s.ofKind(kindFunction) {
		ch := &change{Kind: "function", Name: d.name, doc: d, Action: actCreate}
		if cur, ok := st.functions[d.name]; ok {
			ch.Fields = functionDiff(cur, p.modules[d.name].sha, d.cfg)
			ch.Action = changed(ch.Fields)
		}
		p.changes = append(p.changes, ch)
	}
	for _, d := range s.ofKind(kindWorkflow) {
		ch := &change{Kind: "workflow", Name: d.name, doc: d, Action: actCreate}
		if cur, ok := st.workflows[d.name]; ok {
			sum := sha256.Sum256([]byte(d.source))
			ch.Action = actUnchanged
			if cur.Revision != hex.EncodeToString(sum[:]) {
				ch.Action = actChange
				if w, err := c.Workflow(e.ctx, d.name); err == nil {
					ch.Fields = workflowDiff(w.Source, d.source)
				}
			}
		}
		p.changes = append(p.changes, ch)
	}
	for _, d := range s.ofKind(kindTrigger) {
		ch := &change{Kind: "trigger", Name: d.name, doc: d, Action: actCreate}
		if cur, ok := st.triggers[d.name]; ok {
			ch.Fields = triggerDiff(cur, d.trigger)
			ch.Action = changed(ch.Fields)
		}
		p.changes = append(p.changes, ch)
	}
	if prune {
		p.blocked = s.prune(e, c, st, p)
	}
	return p, nil
}

func changed(fields []string) string {
	if len(fields) == 0 {
		return actUnchanged
	}
	return actChange
}

// prune adds the deletes of what the spec does not list, of the kinds it
// lists, and checks that nothing staying uses what goes.
func (s *spec) prune(e *env, c *client.Client, st *applyState, p *plan) error {
	listed := func(kind, name string) bool { return s.has(kind, name) }
	var gone []*change
	drop := func(kind, specKind string, names []string) {
		if len(s.ofKind(specKind)) == 0 {
			return
		}
		for _, n := range slices.Sorted(slices.Values(names)) {
			if !listed(specKind, n) {
				gone = append(gone, &change{Kind: kind, Name: n, Action: actDelete})
			}
		}
	}
	drop("trigger", kindTrigger, slices.Collect(maps.Keys(st.triggers)))
	drop("workflow", kindWorkflow, slices.Collect(maps.Keys(st.workflows)))
	drop("function", kindFunction, slices.Collect(maps.Keys(st.functions)))
	p.changes = append(p.changes, gone...)
	deleted := map[string]bool{}
	for _, ch := range gone {
		deleted[ch.Kind+"/"+ch.Name] = true
	}
	if len(deleted) == 0 {
		return nil
	}

	// What stays, and what it uses: the spec's triggers and workflows,
	// and the daemon's that are not deleted.
	type user struct{ what, uses string } // "trigger t", "function/f"
	var uses []user
	for _, d := range s.ofKind(kindTrigger) {
		uses = append(uses, user{"trigger " + d.name, triggerTarget(d.trigger)})
	}
	for _, name := range slices.Sorted(maps.Keys(st.triggers)) {
		if !listed(kindTrigger, name) && !deleted["trigger/"+name] {
			uses = append(uses, user{"trigger " + name, triggerTarget(st.triggers[name])})
		}
	}
	addWorkflow := func(name string, def *engine.Definition) {
		fns, wfs := def.Uses()
		for _, f := range fns {
			uses = append(uses, user{"workflow " + name, "function/" + f})
		}
		for _, w := range wfs {
			if w != name {
				uses = append(uses, user{"workflow " + name, "workflow/" + w})
			}
		}
	}
	for _, d := range s.ofKind(kindWorkflow) {
		addWorkflow(d.name, d.def)
	}
	for _, name := range slices.Sorted(maps.Keys(st.workflows)) {
		if listed(kindWorkflow, name) || deleted["workflow/"+name] {
			continue
		}
		w, err := c.Workflow(e.ctx, name)
		if err != nil {
			return fmt.Errorf("prune: read workflow %q, to see what it uses: %w", name, err)
		}
		def, err := engine.ParseDefinition(name, []byte(w.Source), engine.Known{})
		if err != nil {
			return fmt.Errorf("prune: workflow %q on the daemon does not parse, so what it uses is unknown: %v", name, err)
		}
		addWorkflow(name, def)
	}
	var problems []string
	for _, ch := range gone {
		var by []string
		for _, u := range uses {
			if u.uses == ch.Kind+"/"+ch.Name && !slices.Contains(by, u.what) {
				by = append(by, u.what)
			}
		}
		if len(by) > 0 {
			problems = append(problems, fmt.Sprintf("%s %q is used by %s", ch.Kind, ch.Name, strings.Join(by, ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: --prune would delete what stays in use: %s; list it in the spec, or change or delete what uses it first (nothing was changed)",
			s.file, strings.Join(problems, "; "))
	}
	return nil
}

// triggerTarget is "function/NAME" or "workflow/NAME".
func triggerTarget(t catalog.Trigger) string {
	if t.Workflow != "" {
		return "workflow/" + t.Workflow
	}
	return "function/" + t.Function
}

// apply makes the daemon match the spec, or with o.dryRun prints what
// that would change.
func (s *spec) apply(e *env, cf *clientFlags, o applyOptions) error {
	c := cf.client()
	p, err := s.plan(e, c, o.prune)
	if err != nil {
		return err
	}
	if o.dryRun {
		if err := p.print(e, cf); err != nil {
			return err
		}
		return p.blocked
	}
	if p.blocked != nil {
		return p.blocked
	}
	// deletes last, in the order of the plan: triggers, workflows,
	// functions
	for _, ch := range p.changes {
		if err := s.do(e, c, p, ch); err != nil {
			if ch.doc != nil {
				return s.errorf(ch.doc, "%v", err)
			}
			return fmt.Errorf("%s: prune %s %q: %w", s.file, ch.Kind, ch.Name, err)
		}
		if !cf.json() {
			fmt.Fprintln(e.stdout, visible(ch.done()))
		}
	}
	if cf.json() {
		return printJSON(e.stdout, applyReport{DryRun: false, Changes: p.nonNil()})
	}
	return nil
}

// do makes one change.
func (s *spec) do(e *env, c *client.Client, p *plan, ch *change) error {
	if ch.Action == actUnchanged {
		return nil
	}
	d := ch.doc
	switch {
	case ch.Action == actDelete:
		switch ch.Kind {
		case "trigger":
			return c.DeleteTrigger(e.ctx, ch.Name)
		case "workflow":
			return deleteError(c.DeleteWorkflow(e.ctx, ch.Name))
		default:
			return deleteError(c.DeleteFunction(e.ctx, ch.Name))
		}
	case ch.Kind == "function":
		v, err := c.Deploy(e.ctx, d.name, p.modules[d.name].wasm, d.query)
		ch.Version = v.Version
		return err
	case ch.Kind == "workflow":
		v, _, err := c.CreateWorkflow(e.ctx, d.name, []byte(d.source))
		ch.Version = v.Version
		return err
	}
	if ch.Action == actChange {
		// a trigger cannot be changed in place: NATS Streaming's durable
		// subscription is named after its creation
		if err := c.DeleteTrigger(e.ctx, d.name); err != nil {
			return fmt.Errorf("replace: %w", err)
		}
	}
	_, err := c.CreateTrigger(e.ctx, d.req)
	return err
}

// done says what a change did, on one line.
func (ch *change) done() string {
	var what string
	switch {
	case ch.Action == actUnchanged:
		what = "unchanged"
	case ch.Action == actDelete:
		what = "deleted"
	case ch.Kind == "function":
		what = fmt.Sprintf("deployed version %d", ch.Version)
	case ch.Kind == "workflow":
		what = fmt.Sprintf("created version %d", ch.Version)
	case ch.Action == actChange:
		what = "replaced"
	default:
		what = "created"
	}
	if len(ch.Fields) > 0 {
		what += " (" + strings.Join(ch.Fields, ", ") + ")"
	}
	return ch.Kind + " " + ch.Name + ": " + what
}

// wouldDo says what a change would do, on one line.
func (ch *change) wouldDo() string {
	var what string
	switch ch.Action {
	case actUnchanged:
		what = "unchanged"
	case actDelete:
		what = "would be deleted"
	case actCreate:
		what = "would be created"
	default:
		what = "would change"
		if ch.Kind == "trigger" {
			what = "would be replaced"
		}
		if len(ch.Fields) > 0 {
			what += ": " + strings.Join(ch.Fields, ", ")
		}
	}
	return ch.Kind + " " + ch.Name + ": " + what
}

// applyReport is apply's output with -o json.
type applyReport struct {
	DryRun  bool      `json:"dry_run"`
	Changes []*change `json:"changes"`
}

func (p *plan) nonNil() []*change {
	if p.changes == nil {
		return []*change{}
	}
	return p.changes
}

// print prints a dry run's plan.
func (p *plan) print(e *env, cf *clientFlags) error {
	if cf.json() {
		return printJSON(e.stdout, applyReport{DryRun: true, Changes: p.nonNil()})
	}
	n := map[string]int{}
	for _, ch := range p.changes {
		n[ch.Action]++
		fmt.Fprintln(e.stdout, visible(ch.wouldDo()))
	}
	_, err := fmt.Fprintf(e.stdout, "dry run: %d to create, %d to change, %d to delete, %d unchanged; nothing was changed\n",
		n[actCreate], n[actChange], n[actDelete], n[actUnchanged])
	return err
}

// functionDiff lists what a deploy of the module with the configuration
// changes in a deployed function; nothing if it runs them already.
func functionDiff(cur api.FunctionView, sha string, cfg catalog.Config) []string {
	var out []string
	if cur.Module != sha {
		out = append(out, fmt.Sprintf("module %s → %s", short(cur.Module), short(sha)))
	}
	if cfg.ABI != string(abi.Auto) && cfg.ABI != cur.ABI {
		out = append(out, fmt.Sprintf("abi %s → %s", cur.ABI, cfg.ABI))
	}
	if cfg.CGI != cur.CGI {
		out = append(out, fmt.Sprintf("cgi %s → %s", onOff(cur.CGI), onOff(cfg.CGI)))
	}
	// what the spec asks for: a function deployed before meta_env existed
	// may have it on without having asked
	if want := cfg.MetaEnv != nil && *cfg.MetaEnv; want != cur.MetaEnv {
		out = append(out, fmt.Sprintf("meta_env %s → %s", onOff(cur.MetaEnv), onOff(want)))
	}
	was, now := cur.Limits, api.EffectiveLimits(cfg)
	for _, l := range []struct {
		name     string
		was, now string
	}{
		{"memory", host.FormatBytes(was.Memory), host.FormatBytes(now.Memory)},
		{"timeout", was.Timeout, now.Timeout},
		{"concurrency", strconv.Itoa(was.Concurrency), strconv.Itoa(now.Concurrency)},
		{"max_input", host.FormatBytes(uint64(was.MaxInput)), host.FormatBytes(uint64(now.MaxInput))},
		{"max_output", host.FormatBytes(uint64(was.MaxOutput)), host.FormatBytes(uint64(now.MaxOutput))},
	} {
		if l.was != l.now {
			out = append(out, fmt.Sprintf("%s %s → %s", l.name, l.was, l.now))
		}
	}
	// an export the spec leaves out is the one the deploy chooses
	if cfg.Export != "" && cfg.Export != cur.Export {
		out = append(out, fmt.Sprintf("export %s → %s", cur.Export, cfg.Export))
	}
	out = append(out, mapDiff("env", cur.Env, cfg.Env)...)
	return append(out, mapDiff("config", cur.Config, cfg.PluginConfig)...)
}

// mapDiff lists the keys added, changed and removed from was to now,
// never their values (often secrets).
func mapDiff(what string, was, now map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		v, ok := was[k]
		switch {
		case !ok:
			out = append(out, what+" "+k+" added")
		case v != now[k]:
			out = append(out, what+" "+k+" changed")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(was)) {
		if _, ok := now[k]; !ok {
			out = append(out, what+" "+k+" removed")
		}
	}
	return out
}

// sameFunction tells whether a deployed function runs the module with the
// configuration: the same bytes, ABI, effective limits and environment.
func sameFunction(cur api.FunctionView, sha string, cfg catalog.Config) bool {
	return len(functionDiff(cur, sha, cfg)) == 0
}

// maxDiffSource bounds the definitions apply parses to show what changes:
// a definition is at most api.MaxWorkflowSource.
const maxDiffSource = api.MaxWorkflowSource

// workflowDiff lists what changes between two definitions: the top-level
// fields, and the tasks by id ("tasks.b", "tasks.c added"). A change of
// comments or layout alone is "source (layout or comments)".
func workflowDiff(was, now string) []string {
	if len(was) > maxDiffSource || len(now) > maxDiffSource {
		return []string{"source"}
	}
	var a, b map[string]any
	if yaml.Unmarshal([]byte(was), &a) != nil || yaml.Unmarshal([]byte(now), &b) != nil {
		return []string{"source"}
	}
	var out []string
	diffKeys := func(prefix string, a, b map[string]any) {
		for _, k := range slices.Sorted(maps.Keys(b)) {
			av, ok := a[k]
			switch {
			case !ok:
				out = append(out, prefix+k+" added")
			case !reflect.DeepEqual(av, b[k]):
				out = append(out, prefix+k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(a)) {
			if _, ok := b[k]; !ok {
				out = append(out, prefix+k+" removed")
			}
		}
	}
	at, aok := a["tasks"].(map[string]any)
	bt, bok := b["tasks"].(map[string]any)
	if aok && bok {
		delete(a, "tasks")
		delete(b, "tasks")
		diffKeys("", a, b)
		diffKeys("tasks.", at, bt)
	} else {
		diffKeys("", a, b)
	}
	if len(out) == 0 {
		return []string{"source (layout or comments)"}
	}
	return out
}

// triggerDiff lists what differs between a trigger and the one a spec
// asks for; nothing if they are the same.
func triggerDiff(cur, want catalog.Trigger) []string {
	a, b := triggerFields(cur), triggerFields(want)
	var out []string
	for _, f := range b {
		was := ""
		for _, g := range a {
			if g[0] == f[0] {
				was = g[1]
			}
		}
		if was != f[1] {
			out = append(out, fmt.Sprintf("%s %s → %s", f[0], dash(was), dash(f[1])))
		}
	}
	for _, g := range a {
		if !slices.ContainsFunc(b, func(f [2]string) bool { return f[0] == g[0] }) && g[1] != "" {
			out = append(out, fmt.Sprintf("%s %s → -", g[0], g[1]))
		}
	}
	return out
}

// triggerFields lists a trigger's settings as a spec names them.
func triggerFields(t catalog.Trigger) [][2]string {
	out := [][2]string{{"fn", t.Function}, {"workflow", t.Workflow}}
	switch {
	case t.HTTP != nil:
		req := ""
		if t.HTTP.Request {
			req = "true"
		}
		out = append(out, [2]string{"http_path", t.HTTP.Path}, [2]string{"method", t.HTTP.Method}, [2]string{"http_request", req})
	case t.Queue != nil:
		q := t.Queue
		out = append(out, [2]string{"topic", q.Topic}, [2]string{"resp_topic", q.RespTopic}, [2]string{"error_topic", q.ErrorTopic},
			[2]string{"max_retries", strconv.Itoa(q.MaxRetries)}, [2]string{"max_inflight", strconv.Itoa(q.MaxInflight)},
			[2]string{"ack_wait", time.Duration(q.AckWait).String()})
	case t.Cron != nil:
		out = append(out, [2]string{"cron", t.Cron.Schedule}, [2]string{"resp_topic", t.Cron.RespTopic})
	}
	return out
}

// sameTrigger tells whether a trigger is the one a spec asks for.
func sameTrigger(cur, want catalog.Trigger) bool {
	return len(triggerDiff(cur, want)) == 0
}
