package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/jsonquote"
	"github.com/sluicehq/sluice/logctx"
)

// Channels of the engine.
const (
	// EventsChannel is the workflow event log: every invocation's events,
	// JSON, in one stream (unlimited: it is the state).
	EventsChannel = "sluice.wf.events"
	// CheckpointChannel holds replay checkpoints: the sequence of
	// EventsChannel below which no event needs replaying. Readers take the
	// highest, so the store may keep only the last ones (NATS Streaming's
	// embedded server keeps a thousand).
	CheckpointChannel = "sluice.wf.checkpoints"
)

// InvocationStreams names the family of streams (eventlog.Families) that
// holds the workflow events where the log offers families and Delete: each
// invocation's events in a stream of its own, InvocationStreams + "." +
// its id (a child's id starts with its parent's, so a tree of
// invocations is a family too). A forgotten invocation's stream is
// deleted, and a start replays only what is still kept.
const InvocationStreams = "sluice.wf.inv"

// EventStream names the stream that holds an invocation's events on a
// log with the given features: its own stream under InvocationStreams
// where the log offers families and Delete, else EventsChannel. A tool
// other than the engine (a migration) writes them there.
func EventStream(f eventlog.Features, invocation string) string {
	if perInvocation(f) {
		return InvocationStreams + "." + invocation
	}
	return EventsChannel
}

// perInvocation tells whether the engine keeps each invocation's events
// in a stream of its own on a log with these features.
func perInvocation(f eventlog.Features) bool { return f.Families && f.Delete }

// Defaults and limits.
const (
	// DefaultRetain is how many finished invocations stay in memory (and
	// in replay at start) for wf status; older ones are forgotten.
	DefaultRetain = 10000
	// DefaultRetainBytes bounds the memory those finished invocations hold
	// (their footprint, see state.footprint), whatever their count: 10,000
	// invocations of a few small values fit; 3,000 carrying 10 KB through
	// two tasks (779 MB before this bound) keep their newest ~1,000.
	DefaultRetainBytes = 64 << 20
	// MaxData is the largest value an event holds (as stored: text
	// escaped, bytes in base64); NATS's default payload limit is 1 MiB.
	// A larger value is stored apart, in the log's blob store, and the
	// event holds its reference (blobs.go): under it, everything the
	// engine reads under its lock (a built-in's input, the list a foreach
	// collects) stays in the event, as it always was.
	MaxData = 512 << 10
	// maxDepth bounds nested child workflows (a workflow calling itself).
	maxDepth = 16
	// checkpointEvery is how many events go by between checkpoints.
	checkpointEvery = 5000
	// syncTimeout bounds replaying the log at start and reading an
	// invocation's events.
	syncTimeout = 2 * time.Minute
	// invokeConnectWait bounds how long Invoke waits for a lost
	// connection to NATS Streaming to come back.
	invokeConnectWait = 15 * time.Second
	// cancelWait is how long Cancel waits for the owner to act.
	cancelWait = 10 * time.Second
	// readRecheck is how often a read up to the end of a stream (or
	// family) asks again where that end is, in case the stream holding
	// the last message was deleted meanwhile (a forgotten invocation):
	// rare, so a second costs nothing in the common case.
	readRecheck = time.Second
	// deleteTimeout bounds deleting a forgotten invocation's stream; one
	// that fails stays until a start forgets the invocation again.
	deleteTimeout = 30 * time.Second
)

// eventSync is a marker: a reader that sees its own marker has read
// everything stored before it.
const eventSync = "Sync"

// Engine runs workflows: it follows the event log, keeps the state of
// every invocation, and drives the invocations it owns.
type Engine struct {
	o   Options
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	st        *state
	defs      map[string]*defEntry // parsed definitions, by revision
	inline    *inlineDefs          // parsed inline definitions (dynamic.go)
	local     map[string]*local    // per owned invocation: running calls and timers
	topics    topicWaits           // the waits on topics this node holds (topicwait.go)
	waiters   map[string][]chan *Invocation
	watches   watchers // watch.go
	replaying bool
	syncID    string
	synced    chan struct{}
	closed    bool
	sinceCkpt int
	emitted   int // events written, to tell whether a pass did anything
	lastCkpt  uint64
	// The invocations to reconcile (reconcile), and those stopped after an
	// internal error (quarantine).
	queue       []string
	queued      map[string]bool
	draining    bool
	quarantined map[string]bool
	// The evaluations waiting for one of the maxEvaluations workers
	// (eval.go), under evalMu, taken inside mu or alone.
	evalMu      sync.Mutex
	evalCond    *sync.Cond
	evalQueue   []*evalJob
	evalStopped bool

	// ackMu guards inflight and stale; it is taken inside mu, never the
	// reverse (publish acknowledgements arrive on the client's goroutine).
	ackMu    sync.Mutex
	inflight map[string]*inflight // inflight.go
	// stale holds invocations whose local state may be ahead of the log
	// (an event failed to be stored): they are not driven until resync
	// has rebuilt them from the log.
	stale     map[string]bool
	staleWake chan struct{}
	// staleBuf holds, under mu, the events received for a stale
	// invocation while it waits to be rebuilt.
	staleBuf map[string][]*Event
	stop     chan struct{}

	sub   eventlog.Subscription
	calls sync.WaitGroup

	// perInv: each invocation's events are in a stream of its own
	// (EventStream); replay reads the family, and forgotten invocations'
	// streams are deleted (deleter), under mu.
	perInv   bool
	seen     uint64 // the highest sequence received (perInv)
	target   uint64 // replay is done once seen reaches it (perInv)
	replayed int    // events received while replaying
	deleting map[string]chan struct{}
	delQueue []string
	// delBlobs are the values stored apart of the roots queued for
	// deletion, by root.
	delBlobs map[string][]string
	// values keeps the values last stored apart or read (blobs.go).
	values  *valueCache
	delWake chan struct{}
	deleted int

	// Ownership (owners.go), under mu.
	nodes   map[string]nodeSeen
	claimed map[string]time.Time
	started time.Time
	// selfHeard is when this node last heard its own heartbeat back, and
	// hearingSince when the run of its heartbeats coming back without a
	// gap began: only silence heard through such a run counts.
	selfHeard, hearingSince time.Time
	nodesSub                eventlog.Subscription
	// silent stops the heartbeats (tests: a node cut off from the others).
	silent atomic.Bool
}

// local is what this process does for one invocation it owns.
type local struct {
	runs   map[string]*run
	timers map[string]*time.Timer
	// evals are the evaluations of its decisions, running or done and
	// not yet taken (eval.go), by decision.
	evals map[string]*evaluation
	// topics are its waits on topics, by task (topicwait.go).
	topics map[string]*topicWait
}

// run is a function call of this process, in flight or ended, with its
// outcome. It stays until the event recording the outcome is read back
// from the log (stored): if the invocation goes stale first (an event was
// not stored), the rebuild records the outcome again where the log says
// that attempt is still running, so an outage of NATS Streaming does not
// re-run calls this process made.
type run struct {
	attempt  int
	spec     *taskSpec
	cancel   context.CancelFunc
	ended    bool
	out      datum // a large output stored apart already (spill)
	err      error
	timedOut bool
}

// Open replays the event log from the last checkpoint and resumes this
// node's unfinished invocations: a task whose success is recorded is not
// run again; one that was started and not finished runs again.
func Open(ctx context.Context, o Options) (*Engine, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Node == "" {
		return nil, errors.New("engine: Options.Node is empty")
	}
	if o.Retain <= 0 {
		o.Retain = DefaultRetain
	}
	if o.RetainBytes <= 0 {
		o.RetainBytes = DefaultRetainBytes
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = DefaultNodeTimeout
	}
	if o.MaxValue <= 0 {
		o.MaxValue = DefaultMaxValue
	}
	e := &Engine{
		o: o, log: o.Logger, now: func() time.Time { return time.Now().UTC() },
		st: newState(o.Retain, o.RetainBytes), defs: map[string]*defEntry{}, local: map[string]*local{},
		waiters: map[string][]chan *Invocation{}, inflight: map[string]*inflight{},
		queued: map[string]bool{}, quarantined: map[string]bool{},
		stale: map[string]bool{}, staleWake: make(chan struct{}, 1), stop: make(chan struct{}),
		staleBuf: map[string][]*Event{},
		nodes:    map[string]nodeSeen{}, claimed: map[string]time.Time{},
		replaying: true, syncID: nuid.Next(), synced: make(chan struct{}),
		perInv: perInvocation(o.Log.Features()), deleting: map[string]chan struct{}{}, delBlobs: map[string][]string{}, values: newValueCache(valueCacheBytes), delWake: make(chan struct{}, 1),
	}
	e.evalCond = sync.NewCond(&e.evalMu)
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	start := time.Now()
	from := uint64(1)
	if e.perInv {
		if err := e.replayFamily(ctx); err != nil {
			return nil, err
		}
	} else {
		var err error
		if from, err = e.replayChannel(ctx); err != nil {
			return nil, err
		}
	}
	for i := 0; i < maxEvaluations; i++ {
		e.calls.Add(1)
		go e.evalWorker()
	}
	e.mu.Lock()
	e.replaying = false
	e.started = e.now()
	// Resuming one invocation may end it, and an end may push retained
	// invocations out of memory: list what to resume first, and look each
	// up again when its turn comes.
	var resume []string
	for _, id := range sortedKeys(e.st.invs) {
		if inv := e.st.invs[id]; inv.owner == o.Node && inv.status == StatusRunning {
			resume = append(resume, id)
		}
	}
	resumed := 0
	for _, id := range resume {
		if inv := e.st.invs[id]; inv != nil && inv.status == StatusRunning {
			resumed++
			e.reconcile(inv)
		}
	}
	n, seq, replayed := len(e.st.invs), e.st.seq, e.replayed
	e.mu.Unlock()
	go e.resyncLoop()
	if e.perInv {
		e.calls.Add(1)
		go e.deleter()
	}
	if err := e.startOwnership(); err != nil {
		e.Close(ctx)
		return nil, fmt.Errorf("follow %s: %w", NodesChannel, err)
	}
	e.log.Info("workflow events replayed", "from", from, "to", seq, "events", replayed, "invocations", n, "resumed", resumed,
		"took", time.Since(start).Round(time.Millisecond))
	return e, nil
}

// replayChannel replays EventsChannel from the last checkpoint up to a
// marker it writes, and follows it; it returns where it started.
func (e *Engine) replayChannel(ctx context.Context) (uint64, error) {
	from, err := e.readCheckpoint(ctx)
	if err != nil {
		return 0, err
	}
	e.lastCkpt = from
	e.st.seq = from - 1
	e.sub, err = e.o.Log.Subscribe(EventsChannel, eventlog.SubOptions{Start: eventlog.At(from)}, e.receive)
	if err != nil {
		return 0, fmt.Errorf("follow %s: %w", EventsChannel, err)
	}
	marker, _ := json.Marshal(&Event{Type: eventSync, Node: e.o.Node, Marker: e.syncID, Time: e.now()})
	if _, err := e.o.Log.Publish(ctx, EventsChannel, eventlog.Message{Data: marker}); err != nil {
		e.sub.Close()
		return 0, fmt.Errorf("replay %s: %w", EventsChannel, err)
	}
	select {
	case <-e.synced:
	case <-ctx.Done():
		e.sub.Close()
		return 0, fmt.Errorf("replay %s: %w", EventsChannel, ctx.Err())
	}
	return from, nil
}

// replayFamily replays every invocation stream still kept (running and
// retained invocations: the others were deleted when forgotten), in the
// order the log holds them, up to the last event stored when it ends, and
// follows them.
func (e *Engine) replayFamily(ctx context.Context) error {
	var err error
	e.sub, err = e.o.Log.Subscribe(InvocationStreams, eventlog.SubOptions{Family: true, Start: eventlog.First}, e.receiveFamily)
	if err != nil {
		return fmt.Errorf("follow %s: %w", InvocationStreams, err)
	}
	tick := time.NewTicker(readRecheck)
	defer tick.Stop()
	for {
		last, err := e.o.Log.LastOfFamily(ctx, InvocationStreams)
		if err != nil {
			e.sub.Close()
			return fmt.Errorf("replay %s: %w", InvocationStreams, err)
		}
		e.mu.Lock()
		if e.seen >= last {
			e.mu.Unlock()
			return nil
		}
		e.target = last
		e.mu.Unlock()
		select {
		case <-e.synced:
			return nil
		case <-tick.C: // the last event's stream may have been deleted: ask again
		case <-ctx.Done():
			e.sub.Close()
			return fmt.Errorf("replay %s: %w", InvocationStreams, ctx.Err())
		}
	}
}

// receiveFamily receives a message of the invocation streams and notes
// how far replay has read.
func (e *Engine) receiveFamily(m *eventlog.Msg) {
	e.receive(m)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = max(e.seen, m.Sequence)
	if e.replaying && e.target != 0 && e.seen >= e.target {
		e.target = 0
		close(e.synced)
	}
}

// ReplayedEvents is how many events the engine read from the log to
// rebuild its state when it opened.
func (e *Engine) ReplayedEvents() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.replaying {
		return 0
	}
	return e.replayed
}

// checkpoint is a message of CheckpointChannel.
type checkpoint struct {
	// Seq: replaying EventsChannel from here rebuilds every invocation
	// still running and the retained finished ones.
	Seq    uint64 `json:"seq"`
	Marker string `json:"marker,omitempty"`
	Node   string `json:"node,omitempty"`
}

// readCheckpoint returns where replay starts: the highest checkpoint
// stored, or 1.
func (e *Engine) readCheckpoint(ctx context.Context) (uint64, error) {
	best := uint64(1)
	id := nuid.Next()
	marker, _ := json.Marshal(&checkpoint{Marker: id, Node: e.o.Node})
	_, err := e.scan(ctx, CheckpointChannel, eventlog.First, marker, func(m *eventlog.Msg) bool {
		var c checkpoint
		if json.Unmarshal(m.Data, &c) != nil {
			return false
		}
		best = max(best, c.Seq)
		return c.Marker == id
	})
	return best, err
}

// scan reads a channel from start up to a marker it appends now: each
// message goes to visit, on the subscription's goroutine, until visit says
// it is the marker. It returns the marker's sequence. Everything stored
// before the call has been visited when it returns.
func (e *Engine) scan(ctx context.Context, channel string, start eventlog.Start, marker []byte, visit func(*eventlog.Msg) (isMarker bool)) (uint64, error) {
	done := make(chan uint64, 1)
	sub, err := e.o.Log.Subscribe(channel, eventlog.SubOptions{Start: start}, func(m *eventlog.Msg) {
		if visit(m) {
			select {
			case done <- m.Sequence:
			default:
			}
		}
	})
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", channel, err)
	}
	defer sub.Close()
	if _, err := e.o.Log.Publish(ctx, channel, eventlog.Message{Data: marker}); err != nil {
		return 0, fmt.Errorf("read %s: %w", channel, err)
	}
	select {
	case seq := <-done:
		return seq, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("read %s: %w", channel, ctx.Err())
	}
}

// receive applies one message of the event log. A message that is not an
// event (not JSON, no type, no invocation: forged, or from a bug) is
// skipped with a warning naming its sequence; so is one whose handling
// panics, and the invocation it names is stopped (quarantine).
func (e *Engine) receive(m *eventlog.Msg) {
	ev, err := decodeEvent(m.Data)
	if err != nil {
		e.log.Warn("skipping a workflow event that is not JSON", "seq", m.Sequence, "err", err)
		return
	}
	if ev.Type == "" || (ev.Invocation == "" && ev.Type != eventSync) {
		e.log.Warn("skipping a workflow event without a type or an invocation", "seq", m.Sequence, "type", ev.Type)
		return
	}
	if e.perInv && m.Stream != e.stream(ev.Invocation) {
		// Replay and deletion go by stream: an event about another
		// invocation would outlive it, or vanish with the wrong one.
		e.log.Warn("skipping a workflow event stored in another invocation's stream", "seq", m.Sequence, "type", ev.Type,
			"invocation", ev.Invocation, "stream", m.Stream)
		return
	}
	ev.Seq = m.Sequence
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.changed(ev.Invocation) // watch.go: after it is applied
	if e.replaying {
		e.replayed++
	}
	defer e.reap()
	defer func() {
		if r := recover(); r != nil {
			e.log.Warn("skipping a workflow event the engine could not apply", "seq", m.Sequence, "type", ev.Type,
				"invocation", ev.Invocation, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if inv := e.st.invs[ev.Invocation]; inv != nil && !e.replaying {
				e.quarantine(inv, r)
			}
		}
	}()
	if ev.Type == eventSync {
		e.st.seq = max(e.st.seq, ev.Seq)
		if ev.Marker == e.syncID {
			close(e.synced)
		}
		return
	}
	if ev.Node == e.o.Node && !e.replaying && ev.Type != eventOwnerChanged && !appliedOnRead(ev.Type) && !e.unappliedRequest(ev) {
		// Our own event, applied when we wrote it: note where it landed.
		if inv := e.st.invs[ev.Invocation]; inv != nil {
			if inv.firstSeq == 0 {
				inv.firstSeq = ev.Seq
			}
			inv.lastSeq = max(inv.lastSeq, ev.Seq)
			if isInvocationEnd(ev.Type) && inv.status != StatusRunning {
				inv.endSeq = ev.Seq
			}
			e.stored(inv, ev)
		}
		e.st.seq = max(e.st.seq, ev.Seq)
		e.maybeCheckpoint()
		return
	}
	if !e.replaying && e.isStale(ev.Invocation) {
		// Kept for resync, which may have read the log only up to before
		// this event.
		e.staleBuf[ev.Invocation] = append(e.staleBuf[ev.Invocation], ev)
	}
	if err := e.st.apply(ev); err != nil {
		return
	}
	e.maybeCheckpoint()
	if e.replaying {
		return
	}
	inv := e.st.invs[ev.Invocation]
	if inv == nil {
		return
	}
	if ev.Type == EventInvocationRedriven {
		delete(e.quarantined, inv.id) // driven again, by its new owner
	}
	if ev.Type == eventOwnerChanged {
		switch {
		case inv.owner == e.o.Node:
			e.log.Info("took over an invocation", "invocation", inv.id, "from", ev.From)
		case ev.From == e.o.Node:
			// Replaced while cut off: what this node wrote since is
			// ignored by everyone; rebuild from the log.
			e.log.Warn("another node took over an invocation", "invocation", inv.id, "to", inv.owner)
			e.stopLocal(inv.id)
			e.markStale(inv.id)
			return
		}
	}
	if inv.owner == e.o.Node {
		e.reconcile(inv)
	}
	if inv.status != StatusRunning {
		e.notify(inv.id)
		// A child finished on another node: its parent goes on here.
		if p := e.st.parentOf(inv); p != nil && p.owner == e.o.Node && p.status == StatusRunning {
			e.reconcile(p)
		}
	}
}

// unappliedRequest tells a cancel request this node published without
// applying it (it did not own the invocation then) from one its emit
// applied: the former must be folded when read back, or it is lost to
// this node, which may own the invocation by the time it acts on it (a
// takeover from a dead owner, who would have canceled it).
func (e *Engine) unappliedRequest(ev *Event) bool {
	if ev.Type != eventCancelRequested {
		return false
	}
	inv := e.st.invs[ev.Invocation]
	return inv != nil && inv.status == StatusRunning && inv.cancel == ""
}

// maybeCheckpoint stores a checkpoint now and then.
func (e *Engine) maybeCheckpoint() {
	e.sinceCkpt++
	if e.sinceCkpt < checkpointEvery || e.replaying || e.perInv {
		return
	}
	e.sinceCkpt = 0
	seq := e.st.replayStart()
	if seq <= e.lastCkpt {
		return
	}
	e.lastCkpt = seq
	data, _ := json.Marshal(&checkpoint{Seq: seq, Node: e.o.Node})
	if err := e.o.Log.PublishAsync(CheckpointChannel, eventlog.Message{Data: data}, func(_ uint64, err error) {
		if err != nil {
			e.log.Warn("storing a workflow checkpoint failed", "seq", seq, "err", err)
		}
	}); err != nil {
		e.log.Warn("storing a workflow checkpoint failed", "seq", seq, "err", err)
	}
}

// replayStart is the lowest sequence a replay must start from to rebuild
// every running invocation and every retained finished one.
func (s *state) replayStart() uint64 {
	low := s.seq + 1
	for _, inv := range s.invs {
		if inv.firstSeq == 0 {
			// Written, not yet seen back: its sequence is above s.seq.
			continue
		}
		low = min(low, inv.firstSeq)
	}
	return low
}

// emit applies events to the state and appends them to the log, in that
// order and under e.mu, so that the log holds this node's events in the
// order its state saw them. It does not wait for the server: a later
// event is stored only if the earlier ones are, so after a crash the log
// is a prefix of what happened here, and replaying it resumes from a
// consistent point. ack, if given, gets the outcome of the last event.
func (e *Engine) emit(inv *invState, ack func(error), evs ...*Event) {
	defer e.reap()
	stream := e.stream(inv.id)
	for i, ev := range evs {
		ev.Invocation, ev.Node, ev.Time = inv.id, e.o.Node, e.now()
		e.emitted++
		if err := e.st.apply(ev); err != nil {
			e.log.Error("engine: an event it wrote does not apply", "type", ev.Type, "invocation", inv.id, "task", ev.Task)
			continue
		}
		e.sweepTopicWaits(inv, ev)
		data, err := encodeEvent(ev)
		if err != nil {
			e.log.Error("engine: encoding an event", "type", ev.Type, "err", err)
			continue
		}
		f := e.sending(inv.id)
		last := i == len(evs)-1
		id, typ := inv.id, ev.Type
		if obs := e.o.Observer; obs != nil {
			switch ev.Type {
			case EventTaskSucceeded:
				obs.TaskEnded(inv.workflow, TaskSucceeded)
			case EventTaskFailed:
				obs.TaskEnded(inv.workflow, TaskFailed)
			case EventTaskRetrying:
				obs.TaskEnded(inv.workflow, TaskRetrying)
			case EventInvocationSucceeded, EventInvocationFailed, EventInvocationCanceled:
				obs.InvocationEnded(inv.workflow, inv.status)
			}
			observeFailure(obs, inv, ev) // failure.go
		}
		// settle runs once with the outcome of storing the event.
		settle := func(err error) {
			if err != nil {
				level := slog.LevelDebug // one line per invocation is enough
				if e.markStale(id) {
					level = slog.LevelWarn
				}
				e.log.Log(context.Background(), level, "storing a workflow event failed; the invocation will be rebuilt from the log",
					"invocation", id, "type", typ, "err", err)
			}
			e.sent(id, f)
			if last && ack != nil {
				ack(err)
			}
		}
		sent := time.Now()
		if err := e.o.Log.PublishAsync(stream, eventlog.Message{Data: data}, func(_ uint64, err error) {
			if obs := e.o.Observer; obs != nil {
				obs.Appended(time.Since(sent), err)
			}
			settle(err)
		}); err != nil {
			settle(err)
		}
		if isInvocationEnd(ev.Type) {
			e.notify(inv.id)
		}
		e.stopped(inv, ev)
	}
}

// notify wakes the waiters of an invocation: with its snapshot if it has
// finished (it may be forgotten by the time they look), nil to have them
// look again.
func (e *Engine) notify(id string) {
	chs := e.waiters[id]
	if len(chs) == 0 {
		return
	}
	var snap *Invocation
	if inv := e.st.invs[id]; inv != nil && inv.status != StatusRunning && !e.isStale(id) {
		snap = e.snap(inv, true)
	}
	for _, ch := range chs {
		ch <- snap
	}
	delete(e.waiters, id)
}

func (e *Engine) localOf(id string) *local {
	l := e.local[id]
	if l == nil {
		l = &local{runs: map[string]*run{}, timers: map[string]*time.Timer{}, evals: map[string]*evaluation{}}
		e.local[id] = l
	}
	return l
}

// stored forgets the outcome of a call once the event recording it is in
// the log, and all of an invocation's calls once its end is.
func (e *Engine) stored(inv *invState, ev *Event) {
	if ev.Type == EventTaskStarted {
		e.topics.recorded(inv.id, ev.Task, ev.Attempt) // topicwait.go
	}
	l := e.local[inv.id]
	if l == nil {
		if isInvocationEnd(ev.Type) && inv.status != StatusRunning {
			e.topics.forget(inv.id)
		}
		return
	}
	switch {
	case isInvocationEnd(ev.Type) && inv.status != StatusRunning:
		e.stopLocal(inv.id)
	case ev.Type == EventTaskSucceeded || ev.Type == EventTaskFailed || ev.Type == EventTaskRetrying:
		if r := l.runs[ev.Task]; r != nil && r.ended && r.attempt == ev.Attempt {
			delete(l.runs, ev.Task)
		}
	}
}

// endLocal is stopLocal for an invocation that has ended here: the calls
// that ended are kept until the end is stored, in case it is not (see
// run).
func (e *Engine) endLocal(id string) {
	e.trimLocal(id, func(_ string, r *run) bool { return r.ended })
}

// stopLocal cancels the calls and timers of an invocation and forgets
// them.
func (e *Engine) stopLocal(id string) {
	e.topics.forget(id)
	e.trimLocal(id, nil)
}

// trimLocal stops every timer of an invocation and cancels and forgets its
// calls but those keep (if not nil) keeps, and the invocation's entry once
// nothing is left.
func (e *Engine) trimLocal(id string, keep func(task string, r *run) bool) {
	l := e.local[id]
	if l == nil {
		return
	}
	for task, t := range l.timers {
		t.Stop()
		delete(l.timers, task)
	}
	for task, r := range l.runs {
		if keep == nil || !keep(task, r) {
			r.cancel()
			delete(l.runs, task)
		}
	}
	clear(l.evals) // those running are dropped when they end
	e.stopTopicWaits(l)
	if len(l.runs) == 0 {
		delete(e.local, id)
	}
}

// Invoke starts an invocation of the current version of a workflow, its
// input read as o.Input says. It returns once InvocationCreated is stored.
// The invocation's span is the trace context ctx carries (logctx.WithTrace:
// the span of the call that starts it), or the first of a new trace; its
// creation records it, and each task call is a child span of it.
func (e *Engine) Invoke(ctx context.Context, workflow string, input []byte, o InvokeOptions) (*Invocation, error) {
	if len(input) > e.MaxValue() {
		return nil, e.errTooLarge("input", len(input))
	}
	in, err := inputValue(input, o.Input)
	if err != nil {
		return nil, err
	}
	rev, ok := e.o.Definitions.Current(workflow)
	if !ok {
		return nil, fmt.Errorf("%w: no workflow %q", ErrNotFound, workflow)
	}
	id := o.ID
	if id == "" {
		id = nuid.Next()
	} else if !validInvocationID(id) {
		return nil, fmt.Errorf("%w: invocation id %q: use 1 to 128 letters, digits, '-', '_' and '.'", ErrInvalid, id)
	}
	// A connection being re-made (the NATS Streaming leader changed) is
	// waited for a little, rather than failing the caller at once; an
	// invocation this node knows needs none.
	e.mu.Lock()
	_, known := e.st.invs[id]
	deleting := e.deleting[id]
	e.mu.Unlock()
	if deleting != nil {
		// A finished invocation of that id was just forgotten and its
		// stream is being deleted: the new one is written after.
		select {
		case <-deleting:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !known {
		wctx, cancel := context.WithTimeout(ctx, invokeConnectWait)
		err := e.o.Log.WaitUp(wctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("storing the invocation: %w", err)
		}
	}
	if known {
		// an id given again: answered from its invocation, before a large
		// input is hashed and stored apart for nothing
		e.mu.Lock()
		if inv := e.st.invs[id]; inv != nil {
			snap, err := e.again(inv, workflow, in)
			e.mu.Unlock()
			return snap, err
		}
		e.mu.Unlock()
	}
	// A large input is stored apart before the event that refers to it.
	sent := in
	if in, err = e.spill(ctx, id, in, "input"); err != nil {
		return nil, err
	}
	e.preparse(rev.Revision)
	acked := make(chan error, 1)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, fmt.Errorf("the workflow engine is shutting down: %w", eventlog.ErrClosed)
	}
	if _, err := e.definition(rev.Revision); err != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: workflow %q: %v", ErrInvalid, workflow, err)
	}
	if inv := e.st.invs[id]; inv != nil {
		// created meanwhile, by another call with this id
		snap, err := e.again(inv, workflow, sent)
		e.mu.Unlock()
		return snap, err
	}
	tc, ok := logctx.TraceFrom(ctx)
	if !ok {
		tc = logctx.NewTrace()
	}
	inv := e.create(id, rev, in, "", tc, func(err error) { acked <- err })
	snap := e.snap(inv, false)
	e.mu.Unlock()
	select {
	case err := <-acked:
		if err != nil {
			return nil, fmt.Errorf("storing the invocation: %w", err)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return snap, nil
}

// again answers an invocation id given again (an idempotency key): the
// invocation it names if the workflow and the input are the same, else a
// conflict saying when the id was used. Called with mu held.
func (e *Engine) again(inv *invState, workflow string, sent datum) (*Invocation, error) {
	if e.isStale(inv.id) {
		// its creation may not be stored: resync will tell
		return nil, fmt.Errorf("storing the invocation: %w: invocation %s is being rebuilt from the log", eventlog.ErrNotConnected, inv.id)
	}
	snap := e.snap(inv, false)
	if snap.Workflow != workflow {
		return nil, fmt.Errorf("%w: invocation %s exists (created %s) and runs workflow %s, not %s: an invocation id (idempotency key) names one invocation; use another id",
			ErrConflict, inv.id, snap.Created.Format(time.RFC3339), snap.Workflow, workflow)
	}
	if !sameInput(inv.input, sent) {
		return nil, fmt.Errorf("%w: invocation %s exists (created %s) with another input: an invocation id (idempotency key) names one invocation and its input; use another id for another input",
			ErrConflict, inv.id, snap.Created.Format(time.RFC3339))
	}
	return snap, nil
}

// sameInput tells whether an input sent again with an invocation's id is
// the one it was created with: the same kind and bytes, or, for an input
// stored apart, the same sha256.
func sameInput(stored, sent datum) bool {
	if stored.data != sent.data {
		return false
	}
	if stored.ref != nil {
		sum := sha256.Sum256(sent.b)
		return sent.ref == nil && hex.EncodeToString(sum[:]) == stored.ref.sha
	}
	return bytes.Equal(stored.b, sent.b)
}

// inputValue turns an invocation's input bytes into its value: data, its
// bytes as they were sent, but for InputString's text (a string, whatever
// it looks like) and InputJSON's empty input (null).
func inputValue(b []byte, f InputFormat) (datum, error) {
	var d datum
	switch f {
	case InputString:
		if !utf8.Valid(b) {
			d = dataValue(b) // a bytes value: no string holds them
			break
		}
		d = jsonValue(jsonquote.Append(nil, b))
	case InputAuto:
		d = dataValue(b)
	default:
		if len(bytes.TrimSpace(b)) == 0 {
			return jsonNull, nil
		}
		if !jsonDepthOK(b, MaxDepth) {
			return datum{}, fmt.Errorf("%w: %v", ErrInvalid, errTooDeep("the input"))
		}
		var raw json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				return datum{}, fmt.Errorf("%w: the input is not JSON: %v (at byte %d); send text as a string instead", ErrInvalid, err, syn.Offset)
			}
			return datum{}, fmt.Errorf("%w: the input is not JSON: %v; send text as a string instead", ErrInvalid, err)
		}
		if !utf8.Valid(b) {
			return datum{}, fmt.Errorf("%w: the input is not JSON: it is not UTF-8 text; send bytes as application/octet-stream instead", ErrInvalid)
		}
		d = dataValue(b) // kept as sent: spaces, key order, numbers
	}
	return d, nil
}

func validInvocationID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// create writes InvocationCreated and starts driving the invocation,
// whose span is tc.
func (e *Engine) create(id string, rev Revision, input datum, parent string, tc logctx.Trace, ack func(error)) *invState {
	inv := &invState{id: id}
	ev := &Event{Type: EventInvocationCreated, Workflow: rev.Name, Revision: rev.Revision,
		Owner: e.o.Node, Parent: parent, Traceparent: tc.Traceparent(), Tracestate: tc.State, Source: rev.inline,
		Versions: e.createPins(rev, parent)}
	input.put(ev, false)
	e.emit(inv, ack, ev)
	inv = e.st.invs[id]
	e.reconcile(inv)
	return inv
}

// Wait waits until an invocation has finished (its last event stored) and
// returns it.
func (e *Engine) Wait(ctx context.Context, id string) (*Invocation, error) {
	for {
		e.mu.Lock()
		inv := e.st.invs[id]
		if inv == nil {
			e.mu.Unlock()
			return nil, fmt.Errorf("%w: no invocation %q", ErrNotFound, id)
		}
		var snap *Invocation
		var ch chan *Invocation
		if inv.status != StatusRunning && !e.isStale(id) {
			snap = e.snap(inv, true)
		} else {
			ch = make(chan *Invocation, 1)
			e.waiters[id] = append(e.waiters[id], ch)
		}
		e.mu.Unlock()
		if ch != nil {
			select {
			case snap = <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if snap == nil {
				continue // rebuilt from the log: look again
			}
		}
		if err := e.settled(ctx, id); err != nil {
			return nil, err
		}
		if e.isStale(id) {
			continue // its end was not stored: wait for the invocation rebuilt from the log
		}
		return snap, nil
	}
}

// Running counts the running invocations this node drives, by workflow.
func (e *Engine) Running() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for _, inv := range e.st.invs {
		if inv.status == StatusRunning && inv.owner == e.o.Node {
			out[inv.workflow]++
		}
	}
	return out
}

// Get returns an invocation with its tasks (ErrNotFound if unknown).
func (e *Engine) Get(id string) (*Invocation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	inv := e.st.invs[id]
	if inv == nil {
		return nil, fmt.Errorf("%w: no invocation %q (the last %d finished invocations are kept, up to %d MiB of them)",
			ErrNotFound, id, e.st.retain, e.st.retainBytes>>20)
	}
	return e.snap(inv, true), nil
}

// List returns the invocations of a workflow ("" for all), newest first,
// without their tasks.
func (e *Engine) List(workflow string) []*Invocation {
	e.mu.Lock()
	var out []*Invocation
	for _, inv := range e.st.invs {
		if workflow == "" || inv.workflow == workflow {
			out = append(out, e.snap(inv, false))
		}
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// Events returns an invocation's events in log order, read back from the
// log: every event this node had written for it when asked, once the
// server has stored them (an invocation's status is this node's state,
// which runs ahead of the log by the events in flight).
func (e *Engine) Events(ctx context.Context, id string) ([]*Event, error) {
	wait, cancel := context.WithTimeout(ctx, syncTimeout)
	err := e.settled(wait, id)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("events of %s: waiting for those in flight to be stored: %w", id, err)
	}
	evs, _, err := e.readEvents(ctx, id, false, false)
	return evs, err
}

// readEvents reads an invocation's events from the log up to its end now,
// and returns the sequence read up to. unknownOK reads even an invocation
// not in memory; tree reads the events of its child workflows too, at any
// depth (they count under their root).
func (e *Engine) readEvents(ctx context.Context, invID string, unknownOK, tree bool) ([]*Event, uint64, error) {
	e.mu.Lock()
	inv := e.st.invs[invID]
	from := e.lastCkpt
	if inv != nil && inv.firstSeq != 0 {
		from = inv.firstSeq
	}
	e.mu.Unlock()
	if inv == nil && !unknownOK {
		return nil, 0, fmt.Errorf("%w: no invocation %q", ErrNotFound, invID)
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	var out []*Event
	members := map[string]bool{invID: true}
	visit := func(m *eventlog.Msg) (ev *Event) {
		ev, err := decodeEvent(m.Data)
		if err != nil {
			return nil
		}
		ev.Seq = m.Sequence
		if ev.Type == eventSync {
			return ev
		}
		if tree && ev.Type == EventInvocationCreated && ev.Parent != "" {
			if pid, _, _ := strings.Cut(ev.Parent, "/"); members[pid] {
				members[ev.Invocation] = true
			}
		}
		if members[ev.Invocation] {
			out = append(out, ev)
		}
		return ev
	}
	if e.perInv {
		// The invocation's own stream (and its children's, a family),
		// from its first event.
		seq, err := e.readToEnd(ctx, e.stream(invID), tree, func(m *eventlog.Msg) { visit(m) })
		if err != nil {
			return nil, 0, err
		}
		return out, seq, nil
	}
	id := nuid.Next()
	marker, _ := json.Marshal(&Event{Type: eventSync, Node: e.o.Node, Marker: id, Time: e.now()})
	seq, err := e.scan(ctx, EventsChannel, eventlog.At(max(from, 1)), marker, func(m *eventlog.Msg) bool {
		ev := visit(m)
		return ev != nil && ev.Type == eventSync && ev.Marker == id
	})
	if err != nil {
		return nil, 0, err
	}
	return out, seq, nil
}

// readToEnd reads a stream (or the family it names) from its first
// message up to its last one stored now: each message goes to visit, on
// this goroutine. It returns the sequence of the last message visited.
func (e *Engine) readToEnd(ctx context.Context, stream string, family bool, visit func(*eventlog.Msg)) (uint64, error) {
	last := func() (uint64, error) {
		if family {
			return e.o.Log.LastOfFamily(ctx, stream)
		}
		return e.o.Log.Last(ctx, stream)
	}
	msgs := make(chan *eventlog.Msg, 64)
	stop := make(chan struct{})
	defer close(stop)
	sub, err := e.o.Log.Subscribe(stream, eventlog.SubOptions{Family: family, Start: eventlog.First}, func(m *eventlog.Msg) {
		select {
		case msgs <- m:
		case <-stop:
		}
	})
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	defer sub.Close()
	end, err := last()
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	tick := time.NewTicker(readRecheck)
	defer tick.Stop()
	var seen uint64
	for seen < end {
		select {
		case m := <-msgs:
			seen = max(seen, m.Sequence)
			visit(m)
		case <-tick.C: // the stream may have been deleted: ask again
			if end, err = last(); err != nil {
				return 0, fmt.Errorf("read %s: %w", stream, err)
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("read %s: %w", stream, ctx.Err())
		}
	}
	return max(seen, end), nil
}

// stream is the stream that holds an invocation's events.
func (e *Engine) stream(id string) string {
	if e.perInv {
		return InvocationStreams + "." + id
	}
	return EventsChannel
}

// reap deletes, where each invocation has a stream of its own, the streams
// of the invocations the state has just forgotten: the owner deletes its
// own, any node those of a node gone, and a node replaying at start every
// one it forgets (a deletion its owner did not make before it stopped).
// Under e.mu.
func (e *Engine) reap() {
	gone := e.st.takeForgotten()
	if !e.perInv {
		return
	}
	for _, inv := range gone {
		if !e.replaying && inv.owner != e.o.Node && !e.nodeGone(inv.owner) {
			continue
		}
		if e.deleting[inv.id] != nil {
			continue
		}
		e.deleting[inv.id] = make(chan struct{})
		e.delQueue = append(e.delQueue, inv.id)
		if len(inv.blobNames) > 0 {
			e.delBlobs[inv.id] = inv.blobNames
		}
	}
	if len(e.delQueue) > 0 {
		select {
		case e.delWake <- struct{}{}:
		default:
		}
	}
}

// nodeGone tells whether a node has said it is leaving or has not been
// heard from for NodeTimeout. Under e.mu.
func (e *Engine) nodeGone(node string) bool {
	s, ok := e.nodes[node]
	return ok && (s.leaving || e.now().Sub(s.last) >= e.o.NodeTimeout)
}

// deleter deletes the streams reap queued, oldest first, until the
// engine stops. A deletion that fails is left: the stream is deleted when
// a start forgets the invocation again.
func (e *Engine) deleter() {
	defer e.calls.Done()
	defer func() {
		// Stopping: Invoke waits no more for what is left (a restart
		// deletes it).
		e.mu.Lock()
		for id, ch := range e.deleting {
			close(ch)
			delete(e.deleting, id)
		}
		e.delQueue = nil
		e.mu.Unlock()
	}()
	for {
		select {
		case <-e.stop:
			return
		case <-e.delWake:
		}
		for {
			e.mu.Lock()
			if len(e.delQueue) == 0 || e.closed {
				e.mu.Unlock()
				break
			}
			id := e.delQueue[0]
			e.delQueue[0] = ""
			e.delQueue = e.delQueue[1:]
			blobs := e.delBlobs[id]
			delete(e.delBlobs, id)
			e.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
			err := e.o.Log.Delete(ctx, e.stream(id))
			cancel()
			if err != nil {
				e.log.Warn("deleting the events of a forgotten invocation failed; a restart deletes them", "invocation", id, "err", err)
			}
			// Its values stored apart go with its events (after them: a
			// restart that replays the events finds the values).
			for _, name := range blobs {
				if err != nil {
					break
				}
				e.values.remove(name)
				ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
				if derr := e.o.Log.Blobs().Delete(ctx, name); derr != nil {
					e.log.Warn("deleting a value of a forgotten invocation failed; it stays in the broker's blob store", "invocation", id, "blob", name, "err", derr)
				}
				cancel()
			}
			e.mu.Lock()
			if err == nil {
				e.deleted++
			}
			close(e.deleting[id])
			delete(e.deleting, id)
			e.mu.Unlock()
		}
	}
}

// Cancel cancels a running invocation (ErrConflict if it has finished).
// The owner writes InvocationCanceled; Cancel waits a little for it.
func (e *Engine) Cancel(ctx context.Context, id string) (*Invocation, error) {
	e.mu.Lock()
	inv := e.st.invs[id]
	switch {
	case inv == nil:
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: no invocation %q", ErrNotFound, id)
	case inv.status != StatusRunning:
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: invocation %s has finished (%s)", ErrConflict, id, inv.status)
	case inv.parent != "":
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: invocation %s is a child of %s: cancel that one", ErrConflict, id, inv.parent)
	}
	if inv.owner == e.o.Node {
		e.emit(inv, nil, &Event{Type: eventCancelRequested, Error: "canceled by request"})
		e.reconcile(inv)
		e.mu.Unlock()
	} else {
		e.mu.Unlock()
		data, _ := json.Marshal(&Event{Type: eventCancelRequested, Invocation: id, Node: e.o.Node, Time: e.now(), Error: "canceled by request"})
		if _, err := e.o.Log.Publish(ctx, e.stream(id), eventlog.Message{Data: data}); err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, cancelWait)
	defer cancel()
	if snap, err := e.Wait(wctx, id); err == nil {
		return snap, nil
	}
	return e.Get(id)
}

// halt stops driving and following: no more events, calls canceled,
// timers stopped.
func (e *Engine) halt() {
	e.mu.Lock()
	e.closed = true
	close(e.stop)
	for id := range e.local {
		e.stopLocal(id)
	}
	e.mu.Unlock()
	e.stopEvaluations()
	if e.sub != nil {
		e.sub.Close()
	}
	if e.nodesSub != nil {
		e.nodesSub.Close()
	}
}

// Close stops the engine: calls in flight are canceled (their tasks run
// again when the engine is opened again), timers stop.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	e.sendHeartbeat(true) // the others take over now, not after a timeout
	e.halt()
	done := make(chan struct{})
	go func() { e.calls.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// childID names the child invocation of a workflow task: derived from the
// parent, so that resuming finds the child it started.
func childID(parent, task string, attempt int) string {
	h := fnv.New64a()
	h.Write([]byte(task))
	return fmt.Sprintf("%s.%x.%d", parent, h.Sum64()&0xffffffff, attempt)
}
