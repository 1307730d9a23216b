// Package catalog is the event-sourced catalog of functions and triggers.
// Its source of truth is one stream of the event log (package eventlog),
// sluice.catalog, of JSON events; module bytes are the event log's blobs,
// named by their sha256. Every daemon replays the catalog stream at start
// and then follows it, so all daemons on one broker see the same catalog,
// and a daemon killed at any point loses nothing: an operation is done
// when its event is stored, and is applied by everyone from there.
package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/triggers/route"
)

// Channel is the stream of catalog events.
const Channel = "sluice.catalog"

// writeTimeout bounds a catalog write: storing the event and applying it
// take milliseconds; longer means NATS Streaming is unreachable, and the
// user hears so instead of waiting forever.
const writeTimeout = 30 * time.Second

// Options configure a Catalog.
type Options struct {
	// Dir caches module bytes on local disk ("" fetches them every time).
	Dir string
	// Daemon names the daemon in the events it writes.
	Daemon string
	Logger *slog.Logger
}

// Catalog follows the catalog channel and writes to it.
type Catalog struct {
	conn eventlog.Log
	opts Options
	log  *slog.Logger

	mu       sync.RWMutex
	state    *State
	waiters  map[string]chan applied
	watchers []func(Change)
	fatal    error
	first    uint64 // the sequence of the first message received

	sub     eventlog.Subscription
	fetchMu sync.Mutex
	fetches map[string]*fetch
}

type applied struct {
	change Change
	err    error
}

// Open replays the catalog and keeps following it. It returns once every
// event stored before the call has been applied, so what it shows is at
// least as new as the moment it was opened.
func Open(ctx context.Context, conn eventlog.Log, opts Options) (*Catalog, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Catalog{
		conn: conn, opts: opts, log: opts.Logger,
		state: NewState(), waiters: map[string]chan applied{}, fetches: map[string]*fetch{},
	}
	sub, err := conn.Subscribe(Channel, eventlog.SubOptions{Start: eventlog.First}, c.receive)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", Channel, err)
	}
	c.sub = sub
	start := time.Now()
	if _, err := c.append(ctx, &Event{Type: EventSync}); err != nil {
		sub.Close()
		return nil, fmt.Errorf("replay %s: %w", Channel, err)
	}
	c.mu.RLock()
	n, seq := len(c.state.Functions), c.state.Seq
	c.mu.RUnlock()
	c.log.Info("catalog replayed", "functions", n, "events", seq, "took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// Close stops following the channel.
func (c *Catalog) Close() error { return c.sub.Close() }

// receive applies one message of the channel. Nothing in a message can
// stop the follower: a message that is not an event, an event that breaks
// a rule, or one that makes the fold or a watcher panic is skipped (the
// fold is left as it was), with a warning naming its sequence and why.
func (c *Catalog) receive(m *eventlog.Msg) {
	c.mu.Lock()
	if c.first == 0 {
		c.first = m.Sequence
		if m.Sequence > 1 && c.fatal == nil {
			c.fatal = fmt.Errorf("the %s channel starts at sequence %d: the server dropped earlier events (channel limits); give %s unlimited limits", Channel, m.Sequence, Channel)
			c.log.Error("catalog incomplete", "err", c.fatal)
		}
	}
	c.mu.Unlock()
	var ev Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		c.log.Warn("skipping a catalog event that is not a JSON event", "seq", m.Sequence, "err", err)
		return
	}
	c.mu.Lock()
	ch, err := c.apply(m.Sequence, &ev)
	waiter := c.waiters[ev.ID]
	delete(c.waiters, ev.ID)
	watchers := c.watchers
	c.mu.Unlock()
	switch {
	case err != nil && waiter == nil && errors.Is(err, ErrInvalid):
		// the API checks what it writes: this event was not written by a
		// daemon's API (forged, corrupt, or from a sluice with other rules)
		c.log.Warn("skipping a malformed catalog event", "seq", m.Sequence, "type", ev.Type, "daemon", ev.Daemon, "err", err)
	case err != nil && waiter == nil && errors.As(err, new(*route.ConflictError)):
		// a route a sluice with other routing rules stored (or the loser
		// of two creates racing): the earlier trigger keeps the route
		c.log.Warn("skipping an HTTP trigger: its route takes the requests of an earlier trigger's, which keeps them; delete one of them and create it again with another path or method",
			"seq", m.Sequence, "trigger", ev.Trigger.Name, "daemon", ev.Daemon, "err", err)
	case err != nil && waiter == nil:
		// two writers raced and the log's order decided: the other's user
		// heard why from its own daemon
		c.log.Debug("catalog event rejected", "type", ev.Type, "seq", m.Sequence, "err", err)
	case err == nil && !knownEvent(ev.Type):
		c.log.Warn("skipping a catalog event of an unknown type (written by a newer sluice?)", "seq", m.Sequence, "type", ev.Type, "daemon", ev.Daemon)
	}
	if err == nil && (ch.Function != nil || ch.Trigger != nil || ch.Workflow != nil) {
		for _, w := range watchers {
			c.watch(w, ch)
		}
	}
	if waiter != nil {
		waiter <- applied{change: ch, err: err}
	}
}

// apply folds an event into the state; a panic of the fold (a bug an
// event found) is the event's error, so that one event cannot stop the
// follower. Called with mu held.
func (c *Catalog) apply(seq uint64, ev *Event) (ch Change, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("the catalog fold panicked on an event; skipping it", "seq", seq, "type", ev.Type, "panic", v, "stack", string(debug.Stack()))
			ch, err = Change{Seq: seq, Event: ev}, fmt.Errorf("%w: event %d (%s) made the catalog fail: %v", ErrInvalid, seq, ev.Type, v)
		}
	}()
	return c.state.Apply(seq, ev)
}

// watch calls a watcher with a change; a watcher that panics misses the
// change, and the follower goes on.
func (c *Catalog) watch(w func(Change), ch Change) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("a catalog watcher panicked; it skipped the event", "seq", ch.Seq, "type", ch.Event.Type, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	w(ch)
}

// knownEvent tells whether this daemon knows an event type.
func knownEvent(typ string) bool {
	switch typ {
	case EventSync, EventFunctionDeployed, EventFunctionDeleted, EventTriggerCreated, EventTriggerDeleted, EventWorkflowCreated, EventWorkflowDeleted:
		return true
	}
	return false
}

// append stores an event and waits until this catalog has applied it,
// returning the outcome of applying it.
func (c *Catalog) append(ctx context.Context, ev *Event) (Change, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	ev.ID = nuid.Next()
	ev.Time = time.Now().UTC()
	ev.Daemon = c.opts.Daemon
	data, err := json.Marshal(ev)
	if err != nil {
		return Change{}, err
	}
	wait := make(chan applied, 1)
	c.mu.Lock()
	c.waiters[ev.ID] = wait
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, ev.ID)
		c.mu.Unlock()
	}()
	if _, err := c.conn.Publish(ctx, Channel, eventlog.Message{Data: data}); err != nil {
		return Change{}, err
	}
	select {
	case a := <-wait:
		c.mu.RLock()
		fatal := c.fatal
		c.mu.RUnlock()
		if fatal != nil {
			return a.change, fatal
		}
		return a.change, a.err
	case <-ctx.Done():
		return Change{}, fmt.Errorf("the event is stored but not yet applied here: %w", ctx.Err())
	}
}

// Watch calls fn for every change applied from now on, on the goroutine
// that follows the channel: fn must be quick. It returns the state's
// functions and triggers at the time of the call, so that the watcher can
// start from them without missing a change.
func (c *Catalog) Watch(fn func(Change)) ([]*Function, []*Trigger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchers = append(c.watchers, fn)
	return c.functionsLocked(), c.triggersLocked()
}

// Deploy stores the module (unless the same bytes are stored already) and
// a new version of the function. f.Module, Size and Chunks are filled in.
func (c *Catalog) Deploy(ctx context.Context, f Function, wasm []byte) (*Function, error) {
	if err := ValidateName("function", f.Name); err != nil {
		return nil, err
	}
	ref, err := c.putModule(ctx, wasm)
	if err != nil {
		return nil, err
	}
	f.Module, f.Size, f.Chunks = ref.sha, ref.Size, ref.Chunks
	ch, err := c.append(ctx, &Event{Type: EventFunctionDeployed, Function: &f})
	if err != nil {
		return nil, err
	}
	return ch.Function, nil
}

// DeleteFunction deletes a function. It fails with an *InUseError while
// triggers or workflows use it, unless force.
func (c *Catalog) DeleteFunction(ctx context.Context, name string, force bool) error {
	ev := &Event{Type: EventFunctionDeleted, Name: name, Force: force}
	if err := c.check(ev); err != nil {
		return err
	}
	_, err := c.append(ctx, ev)
	return err
}

// check tells whether a delete or a conditional deploy would be refused
// now, so that an event bound to be refused is not written; the fold, in
// log order, still decides for those that are.
func (c *Catalog) check(ev *Event) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if ev.Function != nil {
		return c.state.checkVersion(ev.Function.Name, ev.IfVersion)
	}
	return c.state.checkDelete(ev)
}

// Update stores a new version of a function with the module of version
// base and the configuration cfg. It fails with ErrConflict if base is no
// longer the current version when the event is applied (a deploy or an
// update came first), so that a change never undoes another.
func (c *Catalog) Update(ctx context.Context, base *Function, cfg Config) (*Function, error) {
	f := Function{Name: base.Name, Module: base.Module, Size: base.Size, Chunks: base.Chunks, Config: cfg}
	ev := &Event{Type: EventFunctionDeployed, Function: &f, IfVersion: base.Version}
	if err := c.check(ev); err != nil {
		return nil, err
	}
	ch, err := c.append(ctx, ev)
	if err != nil {
		return nil, err
	}
	return ch.Function, nil
}

// CreateTrigger creates a trigger.
func (c *Catalog) CreateTrigger(ctx context.Context, t Trigger) (*Trigger, error) {
	c.mu.RLock()
	err := c.state.checkTrigger(&t)
	c.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	ch, err := c.append(ctx, &Event{Type: EventTriggerCreated, Trigger: &t})
	if err != nil {
		return nil, err
	}
	return ch.Trigger, nil
}

// DeleteTrigger deletes a trigger.
func (c *Catalog) DeleteTrigger(ctx context.Context, name string) error {
	if _, ok := c.Trigger(name); !ok {
		return fmt.Errorf("%w: no trigger %q", ErrNotFound, name)
	}
	_, err := c.append(ctx, &Event{Type: EventTriggerDeleted, Name: name})
	return err
}

// CreateWorkflow stores a new version of a workflow, whose definition the
// caller has validated; functions and workflows are what it names (its
// Definition.Uses), which must exist when the event is applied. Creating
// the current definition again changes nothing and returns the current
// version.
func (c *Catalog) CreateWorkflow(ctx context.Context, name, source string, functions, workflows []string) (*Workflow, error) {
	if err := ValidateName("workflow", name); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(source))
	w := &Workflow{Name: name, Revision: hex.EncodeToString(sum[:]), Source: source, Functions: functions, Workflows: workflows}
	if cur, ok := c.Workflow(name); ok && cur.Revision == w.Revision {
		return cur, nil
	}
	ch, err := c.append(ctx, &Event{Type: EventWorkflowCreated, Workflow: w})
	if err != nil {
		return nil, err
	}
	return ch.Workflow, nil
}

// DeleteWorkflow deletes a workflow. Invocations running keep their
// version. It fails with an *InUseError while triggers or other
// workflows use it, unless force.
func (c *Catalog) DeleteWorkflow(ctx context.Context, name string, force bool) error {
	ev := &Event{Type: EventWorkflowDeleted, Name: name, Force: force}
	if err := c.check(ev); err != nil {
		return err
	}
	_, err := c.append(ctx, ev)
	return err
}

// Workflow returns the current version of a workflow.
func (c *Catalog) Workflow(name string) (*Workflow, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	w, ok := c.state.Workflows[name]
	return w, ok
}

// Revision returns a workflow version by revision, deleted or not.
func (c *Catalog) Revision(rev string) (*Workflow, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	w, ok := c.state.Revisions[rev]
	return w, ok
}

// Workflows returns the workflows, sorted by name.
func (c *Catalog) Workflows() []*Workflow {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*Workflow, 0, len(c.state.Workflows))
	for _, name := range sortedNames(c.state.Workflows) {
		out = append(out, c.state.Workflows[name])
	}
	return out
}

// Function returns the current version of a function.
func (c *Catalog) Function(name string) (*Function, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	f, ok := c.state.Functions[name]
	return f, ok
}

// Functions returns the functions, sorted by name.
func (c *Catalog) Functions() []*Function {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.functionsLocked()
}

func (c *Catalog) functionsLocked() []*Function {
	out := make([]*Function, 0, len(c.state.Functions))
	for _, f := range c.state.Functions {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Trigger returns a trigger.
func (c *Catalog) Trigger(name string) (*Trigger, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.state.Triggers[name]
	return t, ok
}

// Triggers returns the triggers, sorted by name.
func (c *Catalog) Triggers() []*Trigger {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.triggersLocked()
}

func (c *Catalog) triggersLocked() []*Trigger {
	out := make([]*Trigger, 0, len(c.state.Triggers))
	for _, t := range c.state.Triggers {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Seq is the sequence of the last event applied.
func (c *Catalog) Seq() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.state.Seq
}

// Err reports a problem that makes the catalog untrustworthy (events
// dropped by the server), or nil.
func (c *Catalog) Err() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.fatal
}

// IsNotFound, IsConflict and IsInvalid classify the errors of the
// catalog's operations.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict tells whether err is a conflict with the catalog's state.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsInvalid tells whether err is invalid input.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }
