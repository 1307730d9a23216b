package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/schedule"
	"github.com/sluicehq/sluice/triggers/route"
)

// Event types of the catalog channel. The names are part of what users
// see when they read the channel with `sluice topic tail sluice.catalog`.
const (
	EventFunctionDeployed = "FunctionDeployed"
	EventFunctionDeleted  = "FunctionDeleted"
	EventTriggerCreated   = "TriggerCreated"
	EventTriggerDeleted   = "TriggerDeleted"
	EventWorkflowCreated  = "WorkflowCreated"
	EventWorkflowDeleted  = "WorkflowDeleted"
	// EventSync is a marker a daemon appends at start: once it reads its
	// own marker back, it has replayed everything before it.
	EventSync = "Sync"
)

// Event is one entry of the catalog channel.
type Event struct {
	Type   string    `json:"type"`
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Daemon string    `json:"daemon,omitempty"`
	// Function is the deployed function (FunctionDeployed); its Version
	// is assigned when the event is applied, not by the writer.
	Function *Function `json:"function,omitempty"`
	// Trigger is the created trigger (TriggerCreated).
	Trigger *Trigger `json:"trigger,omitempty"`
	// Workflow is the created workflow version (WorkflowCreated).
	Workflow *Workflow `json:"workflow,omitempty"`
	// Name is what a delete event deletes.
	Name string `json:"name,omitempty"`
	// Force makes a delete event delete what others still use (--force):
	// without it, a function or workflow in use is not deleted.
	Force bool `json:"force,omitempty"`
	// IfVersion makes a FunctionDeployed event conditional: it applies
	// only while the function is at that version (a change of
	// configuration, made to the version it read). 0 applies always.
	IfVersion int `json:"if_version,omitempty"`
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler; it takes "30s" or nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string like \"30s\": %w", err)
	}
	*d = Duration(n)
	return nil
}

// Config is a function's configuration, as given at deploy. Zero values
// mean the host's defaults.
type Config struct {
	ABI         string            `json:"abi"`
	Memory      uint64            `json:"memory,omitempty"`
	Timeout     Duration          `json:"timeout,omitempty"`
	Concurrency int               `json:"concurrency,omitempty"`
	MaxInput    int               `json:"max_input,omitempty"`
	MaxOutput   int               `json:"max_output,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	// CGI runs a WASI command as a CGI script (fn deploy --cgi).
	CGI bool `json:"cgi,omitempty"`
	// Export is an Extism plugin's entry point (fn deploy --export; the
	// one chosen at deploy when not given), PluginConfig what its
	// config_get reads (fn deploy --config K=V).
	Export       string            `json:"export,omitempty"`
	PluginConfig map[string]string `json:"plugin_config,omitempty"`
	// MetaEnv gives a WASI command the call's metadata as SLUICE_*
	// environment variables (fn deploy --meta-env). Every deploy and
	// update records it; nil is a function deployed before it existed,
	// when every command got them: it keeps them (MetaEnvOn).
	MetaEnv *bool `json:"meta_env,omitempty"`
}

// MetaEnvOn tells whether a function with the configuration gets the
// call's metadata in its environment: if it asked (meta_env true), or if
// it is a WASI command deployed before the setting existed.
func (c Config) MetaEnvOn() bool {
	if c.MetaEnv == nil {
		return c.ABI == string(abi.WASI)
	}
	return *c.MetaEnv
}

// Function is a deployed function: one version of a name.
type Function struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Module is the sha256 of the module bytes, in hex; Size their length
	// and Chunks the number of messages they are stored in.
	Module   string    `json:"module"`
	Size     int       `json:"size"`
	Chunks   int       `json:"chunks"`
	Config   Config    `json:"config"`
	Deployed time.Time `json:"deployed"`
}

// Workflow is one version of a workflow definition. The engine parses
// Source; the catalog only stores it.
type Workflow struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Revision is the sha256 of Source, in hex: invocations name the
	// revision they run, so a redeploy does not change them.
	Revision string    `json:"revision"`
	Source   string    `json:"source"`
	Created  time.Time `json:"created"`
	// Functions and Workflows are what the definition names (the
	// engine's Definition.Uses at create), sorted: while this version is
	// current they cannot be deleted without --force. A version stored
	// before sluice recorded them names nothing.
	Functions []string `json:"functions,omitempty"`
	Workflows []string `json:"workflows,omitempty"`
}

// Trigger binds a function or a workflow to events: exactly one of
// Function and Workflow, and one of HTTP, Queue and Cron, is set.
type Trigger struct {
	Name     string     `json:"name"`
	Function string     `json:"function,omitempty"`
	Workflow string     `json:"workflow,omitempty"`
	HTTP     *HTTPSpec  `json:"http,omitempty"`
	Queue    *QueueSpec `json:"queue,omitempty"`
	Cron     *CronSpec  `json:"cron,omitempty"`
	Created  time.Time  `json:"created"`
	// Group names the trigger's durable queue subscription and queue
	// group: the trigger's name and the sequence of its creation, so that
	// a trigger deleted and created again starts afresh.
	Group string `json:"group,omitempty"`
}

// QueueSpec is a message-queue trigger: each message on Topic calls the
// function once (at least once); see the README's "Message-queue and timer triggers".
type QueueSpec struct {
	Topic       string   `json:"topic"`
	RespTopic   string   `json:"resp_topic,omitempty"`
	ErrorTopic  string   `json:"error_topic,omitempty"`
	MaxRetries  int      `json:"max_retries"`
	MaxInflight int      `json:"max_inflight"`
	AckWait     Duration `json:"ack_wait"`
}

// Defaults of a message-queue trigger.
const (
	// DefaultMaxRetries: three redeliveries, so four attempts in all.
	DefaultMaxRetries = 3
	// DefaultMaxInflight lets a trigger keep both cores busy with a
	// microsecond function while NATS round trips are in flight.
	DefaultMaxInflight = 16
	// DefaultAckWait matches the default function timeout: a message is
	// not redelivered while its call may still be running.
	DefaultAckWait = Duration(30 * time.Second)
	// MaxMaxInflight bounds --max-inflight (and the workers it starts).
	MaxMaxInflight = 4096
)

// CronSpec is a timer trigger.
type CronSpec struct {
	// Schedule is a 5-field cron expression (UTC) or "@every DURATION".
	Schedule  string `json:"schedule"`
	RespTopic string `json:"resp_topic,omitempty"`
}

// HTTPSpec is an HTTP trigger: the function serves /fn + Path.
type HTTPSpec struct {
	Path string `json:"path"`
	// Method restricts the route to one method; "" accepts any.
	Method string `json:"method,omitempty"`
	// Request (a workflow trigger's only, --http-request) gives the
	// workflow the whole request as its input ({method, path, params,
	// query, headers, body...}) and lets an output of the shape {status,
	// headers, body} set the response; see the README's "Workflows behind
	// HTTP". Without it the workflow gets the body alone.
	Request bool `json:"request,omitempty"`
}

// Kind names the trigger's kind: "http".
func (t *Trigger) Kind() string {
	switch {
	case t.HTTP != nil:
		return "http"
	case t.Queue != nil:
		return "queue"
	case t.Cron != nil:
		return "cron"
	}
	return "unknown"
}

// ValidateName checks a function, trigger or workflow name.
func ValidateName(kind, name string) error {
	if !fn.ValidName(name) {
		if name == "" {
			return fmt.Errorf("%w: %s name is missing", ErrInvalid, kind)
		}
		return fmt.Errorf("%w: %s name %q: use %s", ErrInvalid, kind, name, fn.NameRule)
	}
	return nil
}

var methodPattern = regexp.MustCompile(`^[A-Z]+$`)

// ValidateHTTP checks an HTTP trigger's route pattern and method.
func ValidateHTTP(h *HTTPSpec) error {
	if _, err := route.Parse(h.Path); err != nil {
		return fmt.Errorf("%w: --http-path %s", ErrInvalid, strings.TrimPrefix(err.Error(), "route "))
	}
	if h.Method != "" && !methodPattern.MatchString(h.Method) {
		return fmt.Errorf("%w: --method %q: want an HTTP method like GET or POST", ErrInvalid, h.Method)
	}
	return nil
}

// State is the catalog as the fold of its events. Apply is a pure
// function of the state and the event: no clock, no I/O, so that every
// daemon replaying the channel reaches the same state.
type State struct {
	// Seq is the sequence of the last event applied.
	Seq       uint64
	Functions map[string]*Function
	Triggers  map[string]*Trigger
	Workflows map[string]*Workflow
	// Revisions are every workflow version ever created, by revision:
	// invocations started on an old version keep running on it.
	Revisions map[string]*Workflow
	// Modules are the module blobs fully stored, by sha256: every module a
	// deploy event ever referenced (blobs are never deleted).
	Modules map[string]ModuleRef
	// versions is the last version of each function name, kept after a
	// delete so that versions of a name never repeat.
	versions map[string]int
	// history holds the last KeepVersions versions of each function name
	// (versions.go), deleted or not, oldest first: a workflow invocation
	// calls the version it pinned when it started.
	history map[string][]*Function
	// wfVersions is the same for workflows.
	wfVersions map[string]int
	// recent holds the ids of the last dedupWindow events: a publish that
	// timed out and was retried may have been stored twice.
	recent map[string]struct{}
	ring   []string
}

// dedupWindow is how many recent events are checked for a duplicate id. A
// retried publish lands within a few events of the original.
const dedupWindow = 1024

// ModuleRef locates a module blob.
type ModuleRef struct {
	Size   int
	Chunks int
}

// NewState returns an empty catalog.
func NewState() *State {
	return &State{
		Functions: map[string]*Function{}, Triggers: map[string]*Trigger{},
		Workflows: map[string]*Workflow{}, Revisions: map[string]*Workflow{},
		Modules: map[string]ModuleRef{}, versions: map[string]int{}, wfVersions: map[string]int{},
		history: map[string][]*Function{}, recent: map[string]struct{}{},
	}
}

// Change says what an applied event changed.
type Change struct {
	Seq   uint64
	Event *Event
	// Function is the function deployed, or the one deleted.
	Function *Function
	// Trigger is the trigger created, or the one deleted.
	Trigger *Trigger
	// Workflow is the workflow version created, or the one deleted.
	Workflow *Workflow
}

// Apply folds one event into the state. An event that breaks a rule (a
// trigger for a missing function, a route taken twice) changes nothing and
// returns the reason; the writer of the event gets it as its answer.
// Events at or below Seq were applied already and change nothing.
func (s *State) Apply(seq uint64, ev *Event) (Change, error) {
	ch := Change{Seq: seq, Event: ev}
	if seq != 0 && seq <= s.Seq {
		return ch, nil
	}
	if seq != 0 {
		s.Seq = seq
	}
	if ev.ID != "" {
		if _, dup := s.recent[ev.ID]; dup {
			return ch, nil
		}
		if len(s.ring) == dedupWindow {
			delete(s.recent, s.ring[0])
			s.ring = s.ring[1:]
		}
		s.ring = append(s.ring, ev.ID)
		s.recent[ev.ID] = struct{}{}
	}
	switch ev.Type {
	case EventSync:
		return ch, nil
	case EventFunctionDeployed:
		f := ev.Function
		if f == nil {
			return ch, fmt.Errorf("%w: %s without a function", ErrInvalid, ev.Type)
		}
		if err := validateFunction(f); err != nil {
			return ch, err
		}
		if err := s.checkVersion(f.Name, ev.IfVersion); err != nil {
			return ch, err
		}
		nf := *f
		nf.Version = s.versions[f.Name] + 1
		nf.Deployed = ev.Time
		s.versions[f.Name] = nf.Version
		s.Functions[f.Name] = &nf
		s.keep(&nf)
		s.Modules[f.Module] = ModuleRef{Size: f.Size, Chunks: f.Chunks}
		ch.Function = &nf
		return ch, nil
	case EventFunctionDeleted:
		if err := s.checkDelete(ev); err != nil {
			return ch, err
		}
		ch.Function = s.Functions[ev.Name]
		delete(s.Functions, ev.Name)
		return ch, nil
	case EventTriggerCreated:
		t := ev.Trigger
		if t == nil {
			return ch, fmt.Errorf("%w: %s without a trigger", ErrInvalid, ev.Type)
		}
		if err := s.checkTrigger(t); err != nil {
			return ch, err
		}
		nt := *t
		nt.Created = ev.Time
		nt.Group = ""
		if nt.Queue != nil || nt.Cron != nil {
			nt.Group = fmt.Sprintf("sluice-%s-%d", nt.Name, seq)
		}
		s.Triggers[t.Name] = &nt
		ch.Trigger = &nt
		return ch, nil
	case EventWorkflowCreated:
		w := ev.Workflow
		if w == nil {
			return ch, fmt.Errorf("%w: %s without a workflow", ErrInvalid, ev.Type)
		}
		if err := validateWorkflow(w); err != nil {
			return ch, err
		}
		if cur, ok := s.Workflows[w.Name]; ok && cur.Revision == w.Revision {
			ch.Workflow = cur // the same definition again changes nothing
			return ch, nil
		}
		// what it uses must exist when it is created, in log order: a
		// function deleted a moment before its definition was checked
		for _, fn := range w.Functions {
			if _, ok := s.Functions[fn]; !ok {
				return ch, fmt.Errorf("%w: workflow %q runs function %q, which is not deployed (deleted meanwhile?)", ErrNotFound, w.Name, fn)
			}
		}
		for _, wf := range w.Workflows {
			if _, ok := s.Workflows[wf]; !ok && wf != w.Name {
				return ch, fmt.Errorf("%w: workflow %q runs workflow %q, which does not exist (deleted meanwhile?)", ErrNotFound, w.Name, wf)
			}
		}
		nw := *w
		nw.Version = s.wfVersions[w.Name] + 1
		nw.Created = ev.Time
		s.wfVersions[w.Name] = nw.Version
		s.Workflows[w.Name] = &nw
		if _, ok := s.Revisions[nw.Revision]; !ok {
			s.Revisions[nw.Revision] = &nw
		}
		ch.Workflow = &nw
		return ch, nil
	case EventWorkflowDeleted:
		if err := s.checkDelete(ev); err != nil {
			return ch, err
		}
		ch.Workflow = s.Workflows[ev.Name]
		delete(s.Workflows, ev.Name)
		return ch, nil
	case EventTriggerDeleted:
		t, ok := s.Triggers[ev.Name]
		if !ok {
			return ch, fmt.Errorf("%w: no trigger %q", ErrNotFound, ev.Name)
		}
		delete(s.Triggers, ev.Name)
		ch.Trigger = t
		return ch, nil
	}
	// Unknown types come from newer daemons; skipping them keeps older
	// daemons running during a rolling upgrade.
	return ch, nil
}

func (s *State) checkTrigger(t *Trigger) error {
	if err := ValidateName("trigger", t.Name); err != nil {
		return err
	}
	if _, ok := s.Triggers[t.Name]; ok {
		return fmt.Errorf("%w: trigger %q exists: delete it first", ErrConflict, t.Name)
	}
	switch {
	case t.Function != "" && t.Workflow != "":
		return fmt.Errorf("%w: trigger %q: give --fn or --workflow, not both", ErrInvalid, t.Name)
	case t.Workflow != "":
		if _, ok := s.Workflows[t.Workflow]; !ok {
			return fmt.Errorf("%w: no workflow %q for trigger %q", ErrNotFound, t.Workflow, t.Name)
		}
	case t.Function == "":
		return fmt.Errorf("%w: trigger %q: give the function (--fn) or the workflow (--workflow) it runs", ErrInvalid, t.Name)
	default:
		if _, ok := s.Functions[t.Function]; !ok {
			return fmt.Errorf("%w: no function %q for trigger %q", ErrNotFound, t.Function, t.Name)
		}
	}
	kinds := 0
	for _, set := range []bool{t.HTTP != nil, t.Queue != nil, t.Cron != nil} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		return fmt.Errorf("%w: trigger %q: give one of --http-path, --topic and --cron", ErrInvalid, t.Name)
	}
	switch {
	case t.Queue != nil:
		return ValidateQueue(t.Queue)
	case t.Cron != nil:
		return ValidateCron(t.Cron)
	case t.HTTP != nil:
		if err := ValidateHTTPTarget(t); err != nil {
			return err
		}
		return s.checkRoute(t)
	default:
		return fmt.Errorf("%w: trigger %q has no kind: give --http-path, --topic or --cron", ErrInvalid, t.Name)
	}
}

// ValidateHTTPTarget checks what an HTTP trigger's options ask of its
// target: --http-request is a workflow trigger's.
func ValidateHTTPTarget(t *Trigger) error {
	if t.HTTP != nil && t.HTTP.Request && t.Workflow == "" {
		return fmt.Errorf("%w: trigger %q: --http-request gives a workflow the whole request as its input; a function (--fn) reads the request as call metadata: drop --http-request, or give --workflow", ErrInvalid, t.Name)
	}
	return nil
}

// checkRoute checks an HTTP trigger's route: well formed, and taking no
// requests another trigger's route takes (the same shape and a method in
// common: /users/{id} and /users/{name}). A conflict is a
// *route.ConflictError wrapped in ErrConflict, naming the other trigger.
func (s *State) checkRoute(t *Trigger) error {
	if err := ValidateHTTP(t.HTTP); err != nil {
		return err
	}
	p, _ := route.Parse(t.HTTP.Path)
	for _, name := range sortedNames(s.Triggers) {
		o := s.Triggers[name]
		if o.HTTP == nil {
			continue
		}
		op, err := route.Parse(o.HTTP.Path)
		if err != nil {
			continue // stored before the rules it breaks; it serves nothing
		}
		if route.Overlap(p, t.HTTP.Method, op, o.HTTP.Method) {
			return fmt.Errorf("%w: %w", ErrConflict, &route.ConflictError{
				Route: t.HTTP.Path, Method: t.HTTP.Method, Other: o.Name, OtherRoute: o.HTTP.Path, OtherMethod: o.HTTP.Method})
		}
	}
	return nil
}

// checkVersion checks the condition of a conditional deploy: the
// function is at version ifVersion (0: no condition).
func (s *State) checkVersion(name string, ifVersion int) error {
	if ifVersion == 0 {
		return nil
	}
	cur, ok := s.Functions[name]
	if !ok {
		return fmt.Errorf("%w: no function %q (it was deleted meanwhile)", ErrNotFound, name)
	}
	if cur.Version != ifVersion {
		return fmt.Errorf("%w: function %q changed meanwhile (version %d is current, the change was made to version %d): try again", ErrConflict, name, cur.Version, ifVersion)
	}
	return nil
}

// checkDelete checks a FunctionDeleted or WorkflowDeleted event: what it
// deletes exists and, unless forced, nothing uses it.
func (s *State) checkDelete(ev *Event) error {
	name := ev.Name
	if ev.Type == EventFunctionDeleted {
		if _, ok := s.Functions[name]; !ok {
			return fmt.Errorf("%w: no function %q", ErrNotFound, name)
		}
		if deps := s.dependents(func(t *Trigger) bool { return t.Function == name }, func(w *Workflow) bool {
			return slices.Contains(w.Functions, name)
		}); len(deps) > 0 && !ev.Force {
			return &InUseError{Kind: "function", Name: name, Dependents: deps}
		}
		return nil
	}
	if _, ok := s.Workflows[name]; !ok {
		return fmt.Errorf("%w: no workflow %q", ErrNotFound, name)
	}
	if deps := s.dependents(func(t *Trigger) bool { return t.Workflow == name }, func(w *Workflow) bool {
		return w.Name != name && slices.Contains(w.Workflows, name) // a workflow that runs itself may go
	}); len(deps) > 0 && !ev.Force {
		return &InUseError{Kind: "workflow", Name: name, Dependents: deps}
	}
	return nil
}

// dependents lists the current workflows and the triggers that use
// something, as the trigger and workflow funcs tell: workflows first, each
// kind sorted by name.
func (s *State) dependents(trigger func(*Trigger) bool, workflow func(*Workflow) bool) []Dependent {
	var deps []Dependent
	for _, name := range sortedNames(s.Workflows) {
		if workflow(s.Workflows[name]) {
			deps = append(deps, Dependent{Kind: "workflow", Name: name})
		}
	}
	for _, name := range sortedNames(s.Triggers) {
		if trigger(s.Triggers[name]) {
			deps = append(deps, Dependent{Kind: "trigger", Name: name})
		}
	}
	return deps
}

// validateFunction checks what a FunctionDeployed event carries beyond
// the name: every daemon's API writes well-formed ones, so a malformed one
// is forged or corrupt, and must not reach the module cache (the sha256
// names a file) or the host.
func validateFunction(f *Function) error {
	if err := ValidateName("function", f.Name); err != nil {
		return err
	}
	if !eventlog.IsContentHash(f.Module) {
		return fmt.Errorf("%w: function %q: module %q is not a sha256 in hex", ErrInvalid, f.Name, f.Module)
	}
	if f.Size <= 0 || f.Chunks != (f.Size+ChunkSize-1)/ChunkSize {
		return fmt.Errorf("%w: function %q: a module of %d bytes is not stored in %d chunks", ErrInvalid, f.Name, f.Size, f.Chunks)
	}
	c := &f.Config
	if c.Timeout < 0 || c.Concurrency < 0 || c.MaxInput < 0 || c.MaxOutput < 0 {
		return fmt.Errorf("%w: function %q: negative limits", ErrInvalid, f.Name)
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: function %q: env name %q", ErrInvalid, f.Name, k)
		}
	}
	return nil
}

// validateWorkflow checks what a WorkflowCreated event carries: a name,
// the revision that is its source's sha256, and valid names of what it
// uses.
func validateWorkflow(w *Workflow) error {
	if err := ValidateName("workflow", w.Name); err != nil {
		return err
	}
	if sum := sha256.Sum256([]byte(w.Source)); w.Revision != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("%w: workflow %q: revision %.16q is not the sha256 of its source", ErrInvalid, w.Name, w.Revision)
	}
	for _, name := range slices.Concat(w.Functions, w.Workflows) {
		if !fn.ValidName(name) {
			return fmt.Errorf("%w: workflow %q: it names %q, which is no function or workflow name", ErrInvalid, w.Name, name)
		}
	}
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var topicPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// ValidateTopic checks a NATS Streaming channel name given by a user:
// dot-separated tokens of letters, digits, '-' and '_', no wildcards. The
// "sluice." prefix is sluice's own; triggers may not consume or produce it.
func ValidateTopic(flag, topic string) error {
	if len(topic) > 255 || !topicPattern.MatchString(topic) {
		return fmt.Errorf("%w: %s %q: want a channel name like orders or orders.eu (letters, digits, '-', '_', separated by dots; no wildcards)", ErrInvalid, flag, topic)
	}
	if strings.HasPrefix(topic, "sluice.") || topic == "sluice" {
		return fmt.Errorf("%w: %s %q: channels under sluice. are sluice's own", ErrInvalid, flag, topic)
	}
	return nil
}

// ValidateQueue checks a message-queue trigger, defaults already applied.
func ValidateQueue(q *QueueSpec) error {
	if err := ValidateTopic("--topic", q.Topic); err != nil {
		return err
	}
	for flag, topic := range map[string]string{"--resp-topic": q.RespTopic, "--error-topic": q.ErrorTopic} {
		if topic == "" {
			continue
		}
		if err := ValidateTopic(flag, topic); err != nil {
			return err
		}
		if topic == q.Topic {
			return fmt.Errorf("%w: %s is the trigger's own --topic %q: every message would call the function again, forever", ErrInvalid, flag, topic)
		}
	}
	switch {
	case q.MaxRetries < 0 || q.MaxRetries > 1000:
		return fmt.Errorf("%w: --max-retries %d: want 0 to 1000", ErrInvalid, q.MaxRetries)
	case q.MaxInflight < 1 || q.MaxInflight > MaxMaxInflight:
		return fmt.Errorf("%w: --max-inflight %d: want 1 to %d", ErrInvalid, q.MaxInflight, MaxMaxInflight)
	case time.Duration(q.AckWait) < time.Second:
		return fmt.Errorf("%w: --ack-wait %s: NATS Streaming needs at least 1s", ErrInvalid, time.Duration(q.AckWait))
	}
	return nil
}

// ValidateCron checks a timer trigger.
func ValidateCron(c *CronSpec) error {
	if _, err := schedule.Parse(c.Schedule); err != nil {
		return fmt.Errorf("%w: --cron: %v", ErrInvalid, err)
	}
	if c.RespTopic != "" {
		return ValidateTopic("--resp-topic", c.RespTopic)
	}
	return nil
}
