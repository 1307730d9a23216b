package engine

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/logctx"
)

// eventCancelRequested asks an invocation's owner to cancel it: any
// daemon may write it, only the owner writes InvocationCanceled, so that
// every event that changes an invocation comes from one writer, in order.
const eventCancelRequested = "CancelRequested"

// eventOwnerChanged moves an invocation to another owner: written by the
// daemon taking over the invocations of a daemon that stopped answering.
// It applies only if From is still the owner, so of two daemons racing to
// take over, the first in the log wins.
const eventOwnerChanged = "OwnerChanged"

// errIgnored: an event that does not fit the state (a duplicate, a
// transition already made) and changes nothing.
var errIgnored = errors.New("event does not apply")

// state is the fold of the event log. apply is a pure function of the
// state and the event: no clock, no randomness, no I/O. Replaying the same
// events gives the same state, which is what resuming after a crash rests
// on.
type state struct {
	// seq is the sequence of the last event applied.
	seq  uint64
	invs map[string]*invState
	// finished lists finished invocations in the order they finished:
	// beyond retain of them, or retainBytes of their footprints in all,
	// the oldest are forgotten (the newest is always kept). A child
	// workflow that ends while its parent runs joins the list once the
	// parent has recorded its end (or ended): until then the parent reads
	// it.
	finished      []*invState
	finishedBytes int64
	retain        int
	retainBytes   int64
	// live counts, by root invocation, the child workflows running under
	// it at any depth: kept with each child's own changes, so that it
	// stays right when an invocation is rebuilt from the log (replace).
	live map[string]int
	// forgotten lists the invocations forgotten since the engine last
	// took them (takeForgotten): whose events the log need no longer keep.
	forgotten []*invState
	// blobs holds, by root invocation, the names of the values its tree
	// stored apart (blobName) that its events refer to: deleted with the
	// root's events when it is forgotten.
	blobs map[string]map[string]struct{}
	// byCreated indexes the invocations by creation time (list.go).
	byCreated []listKey
}

// invState is one invocation.
type invState struct {
	id, workflow, revision, owner, parent string
	input                                 datum
	status                                string
	output                                datum
	err, failedTask                       string
	created                               time.Time
	finishedAt                            time.Time
	firstSeq, lastSeq                     uint64
	// endSeq is where the event that ended the invocation is in the log,
	// once this fold has read it there (0 while running, and on its owner
	// between writing the end and reading it back): a signal before it in
	// the log is the invocation's, even read after the owner ended it
	// (signal.go).
	endSeq uint64
	// cancel is the reason given by a CancelRequested not yet acted on.
	cancel string
	tasks  map[string]*taskState
	// order lists task ids in the order they were scheduled.
	order []string
	// root is the invocation at the top of its parents (itself if it has
	// none). On a root, spawned counts the child workflows started under
	// it in all, at any depth (state.live those running).
	root    string
	spawned int
	// doneKids are the child workflows that ended while this one runs.
	doneKids []*invState
	// bytes is the footprint of a finished invocation (retainBytes).
	bytes int64
	// trace is the invocation's span (zero if its creation recorded
	// none): its task calls are children of it.
	trace logctx.Trace
	// pins are the versions of the functions it calls (versions.go).
	pins []pin
	// in decodes input for expressions, once (nil once finished).
	in *lazyView
	// view lists the tasks for expressions (eval.go), until they change.
	view []taskView
	// blobNames are, once a root is forgotten, the values its tree stored
	// apart: to delete with its events.
	blobNames []string

	// code is the error code of its failure; comp its compensation and
	// the order its tasks succeeded in (failure.go).
	code string
	comp compensation
	// source is an inline workflow's definition (a dynamic task's child).
	source []byte
	// signals are those delivered and not yet taken by a wait, in the
	// log's order (signal.go); kept when it ends only for a redrive
	// (keptSignals).
	signals []pendingSignal
	// redrives counts the InvocationRedriven applied (redrive.go);
	// redriven is the time of the last, from which the deadline counts
	// again.
	redrives int
	redriven time.Time
	// driveAll moves on when every foreach is to drive all its active
	// kids (a takeover, a signal: loops_dirty.go).
	driveAll int
}

// lazyView is a value decoded for expressions on first use, once, from
// whichever goroutine needs it first: expressions are evaluated outside
// the engine's lock, on snapshots that share these.
type lazyView struct {
	d    datum
	once sync.Once
	v    any
}

func newLazy(d datum) *lazyView { return &lazyView{d: d} }

func (l *lazyView) value() any {
	if l == nil {
		return nil
	}
	l.once.Do(func() { l.v = l.d.view() })
	return l.v
}

// taskState is one task of an invocation.
type taskState struct {
	id, run  string
	status   string
	attempts int
	// version is the function's version the last attempt called.
	version int
	// failures counts the attempts that failed and were retried.
	failures int
	input    datum
	output   datum
	// child is a workflow task's child input when it is data.
	child    datum
	err      string
	wake     time.Time
	started  time.Time
	finished time.Time
	// scope holds the loop variables this task adds (item, index, prev).
	scope map[string]any
	// kids counts the dynamic tasks scheduled under this one, kidsDone
	// those that succeeded, loop those not finished (loops.go): kept by
	// kidChanged.
	kids, kidsDone int
	loop           *kidSet
	// dirty tells that it is among its foreach's dirty kids (loops_dirty.go).
	dirty bool
	// out decodes output for expressions, once (nil once finished).
	out *lazyView
	// items is a foreach's input, read once.
	items *foreachInput

	// code is the error code of its last failure; caught tells that it
	// failed and its catch ran (failure.go).
	code   string
	caught bool
	// after is where a wait on a topic started reading it: its last
	// attempt's TaskStarted (topicwait.go).
	after *uint64
	// reschedule tells that a redrive put it back to be scheduled again:
	// it had failed before it started (redrive.go).
	reschedule bool
}

// newState makes an empty state that keeps at most retain finished
// invocations and retainBytes of their footprints (0: no limit).
func newState(retain int, retainBytes int64) *state {
	return &state{invs: map[string]*invState{}, retain: retain, retainBytes: retainBytes, live: map[string]int{},
		blobs: map[string]map[string]struct{}{}}
}

// parentID is the id of the task a dynamic task belongs to ("" for a
// static task): "each/3" -> "each", "sw/case/1" -> "sw".
func parentID(id string) string {
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return ""
	}
	p := id[:i]
	if strings.HasSuffix(p, "/case") {
		p = strings.TrimSuffix(p, "/case")
	}
	return p
}

// apply folds one event into the state.
func (s *state) apply(ev *Event) error {
	if ev.Seq != 0 {
		if ev.Seq <= s.seq {
			return errIgnored
		}
		s.seq = ev.Seq
	}
	inv := s.invs[ev.Invocation]
	if ev.Type == EventInvocationCreated {
		if inv != nil {
			return errIgnored
		}
		if ev.Invocation == "" {
			return errIgnored
		}
		inv = &invState{
			id: ev.Invocation, workflow: ev.Workflow, revision: ev.Revision, owner: ev.Owner,
			parent: ev.Parent, input: evInput(ev), status: StatusRunning, created: ev.Time,
			firstSeq: ev.Seq, lastSeq: ev.Seq, tasks: map[string]*taskState{}, root: ev.Invocation,
			source: ev.Source,
		}
		inv.in = newLazy(inv.input)
		inv.repin(ev)
		if tc, ok := logctx.ParseTraceparent(ev.Traceparent); ok {
			tc.State = logctx.ParseTracestate(ev.Tracestate)
			inv.trace = tc
		}
		if p := s.parentOf(inv); p != nil {
			inv.root = p.root
			if r := s.invs[inv.root]; r != nil {
				r.spawned++
			}
		}
		s.invs[inv.id] = inv
		s.indexCreated(inv)
		s.running(inv, 1)
		s.bind(inv, ev)
		return nil
	}
	if inv == nil {
		return errIgnored
	}
	if ev.Type == eventOwnerChanged {
		if inv.status != StatusRunning || ev.From != inv.owner || ev.Owner == "" {
			return errIgnored
		}
		inv.owner = ev.Owner
		inv.lastSeq = max(inv.lastSeq, ev.Seq)
		inv.driveAll++ // its new owner drives every item (loops_dirty.go)
		return nil
	}
	if ev.Type == EventInvocationRedriven {
		return s.redrive(inv, ev)
	}
	// Only the owner changes an invocation; anyone may ask to cancel it.
	// Events written by a former owner that had not yet heard it was
	// replaced change nothing.
	if ev.Node != "" && ev.Node != inv.owner && !anyNodeWrites(ev.Type) {
		return errIgnored
	}
	if err := inv.apply(ev); err != nil {
		return err
	}
	s.bind(inv, ev)
	inv.lastSeq = max(inv.lastSeq, ev.Seq)
	if inv.status != StatusRunning && isInvocationEnd(ev.Type) {
		s.ended(inv)
		inv.endSeq = ev.Seq // 0 on the owner as it writes it: set when read back
	} else if ev.Type == EventSignalSent && inv.status != StatusRunning {
		s.keptLate(inv)
	}
	if t := inv.tasks[ev.Task]; t != nil && startsChild(t.run) &&
		(ev.Type == EventTaskSucceeded || ev.Type == EventTaskFailed || ev.Type == EventTaskRetrying || ev.Type == EventTaskCaught) {
		s.observed(inv, childID(inv.id, t.id, t.attempts))
	}
	s.touched(inv, ev)
	return nil
}

// bind names the values stored apart that an event just applied put in
// the invocation (after the root their reference names, which is the
// invocation's), and records them with the root.
func (s *state) bind(inv *invState, ev *Event) {
	if !refersToBlob(ev.InputData) && !refersToBlob(ev.OutputData) {
		return
	}
	name := func(d *datum) {
		if d.ref == nil || d.ref.name != "" {
			return
		}
		if d.ref.root == "" { // a reference without its root: the invocation's
			d.ref.root = inv.root
		}
		d.ref.name = blobName(d.ref.root, d.ref.sha)
		set := s.blobs[d.ref.root]
		if set == nil {
			set = map[string]struct{}{}
			s.blobs[d.ref.root] = set
		}
		set[d.ref.name] = struct{}{}
	}
	name(&inv.input)
	name(&inv.output)
	if t := inv.tasks[ev.Task]; t != nil {
		name(&t.input)
		name(&t.child)
		name(&t.output)
	}
}

func refersToBlob(d *Data) bool { return d != nil && d.Blob != "" }

// hasBlob tells whether a root's tree already refers to a stored value.
func (s *state) hasBlob(root, name string) bool {
	_, ok := s.blobs[root][name]
	return ok
}

// observed files a child workflow its parent has recorded the end of (its
// workflow task ended or retries): the parent no longer reads it.
func (s *state) observed(p *invState, cid string) {
	for i, k := range p.doneKids {
		if k.id != cid {
			continue
		}
		p.doneKids = append(p.doneKids[:i:i], p.doneKids[i+1:]...)
		s.retire(k)
		return
	}
}

// parentOf returns an invocation's parent if it is known.
func (s *state) parentOf(inv *invState) *invState {
	if inv.parent == "" {
		return nil
	}
	pid, _, _ := strings.Cut(inv.parent, "/")
	return s.invs[pid]
}

// ended files an invocation that has just ended: with its running parent,
// which may still read it, or among the finished; the children that waited
// for it join the finished (it has read them, or never will).
func (s *state) ended(inv *invState) {
	inv.in, inv.view = nil, nil
	inv.signals = inv.keptSignals() // signal.go
	for _, t := range inv.tasks {
		t.out, t.items = nil, nil
	}
	inv.bytes = inv.footprint()
	s.running(inv, -1)
	kids := inv.doneKids
	inv.doneKids = nil
	for _, k := range kids {
		s.retire(k)
	}
	if p := s.parentOf(inv); p != nil && p.status == StatusRunning {
		p.doneKids = append(p.doneKids, inv)
		return
	}
	s.retire(inv)
}

// running counts a child workflow that starts (1) or stops (-1) running
// under its root.
func (s *state) running(inv *invState, d int) {
	if inv.root == inv.id {
		return
	}
	if n := s.live[inv.root] + d; n > 0 {
		s.live[inv.root] = n
	} else {
		delete(s.live, inv.root)
	}
}

// replace puts an invocation rebuilt from the log (resync) in place of the
// one the state has, keeping what spans invocations (the finished list,
// the children a parent keeps) pointing at the state's own.
func (s *state) replace(inv *invState) {
	old := s.invs[inv.id]
	s.invs[inv.id] = inv
	if old == nil || !old.created.Equal(inv.created) {
		s.indexCreated(inv)
	}
	if old != nil {
		inv.spawned = max(inv.spawned, old.spawned)
		if old.status == StatusRunning {
			s.running(old, -1)
		}
	}
	if inv.status == StatusRunning {
		s.running(inv, 1)
	}
	var kids []*invState
	for _, k := range inv.doneKids {
		if mine := s.invs[k.id]; mine != nil && mine != inv {
			kids = append(kids, mine)
		}
	}
	inv.doneKids = kids
	if inv.status == StatusRunning {
		return
	}
	if old != nil && old.status != StatusRunning {
		for i := len(s.finished) - 1; i >= 0; i-- {
			if s.finished[i] == old {
				s.finished[i] = inv
				s.finishedBytes += inv.bytes - old.bytes
				return
			}
		}
		if p := s.parentOf(old); p != nil {
			for i, k := range p.doneKids {
				if k == old {
					p.doneKids[i] = inv
					return
				}
			}
		}
		return
	}
	kids, inv.doneKids = inv.doneKids, nil
	for _, k := range kids {
		s.retire(k)
	}
	if p := s.parentOf(inv); p != nil && p.status == StatusRunning {
		p.doneKids = append(p.doneKids, inv)
		return
	}
	s.retire(inv)
}

// retire adds an invocation to the finished ones, and forgets the oldest
// beyond the limits, but the one just added.
func (s *state) retire(inv *invState) {
	s.finished = append(s.finished, inv)
	s.finishedBytes += inv.bytes
	for len(s.finished) > 1 && (s.retain > 0 && len(s.finished) > s.retain ||
		s.retainBytes > 0 && s.finishedBytes > s.retainBytes) {
		old := s.finished[0]
		s.finished[0] = nil
		s.finished = s.finished[1:]
		s.finishedBytes -= old.bytes
		if s.invs[old.id] == old {
			delete(s.invs, old.id)
			if set := s.blobs[old.id]; set != nil && old.root == old.id {
				old.blobNames = sortedKeys(set)
				delete(s.blobs, old.id)
			}
			s.forgotten = append(s.forgotten, old)
		}
	}
}

// takeForgotten returns the invocations forgotten since the last call.
func (s *state) takeForgotten() []*invState {
	f := s.forgotten
	s.forgotten = nil
	return f
}

func isInvocationEnd(t string) bool {
	return t == EventInvocationSucceeded || t == EventInvocationFailed || t == EventInvocationCanceled
}

func (inv *invState) apply(ev *Event) error {
	running := inv.status == StatusRunning
	switch ev.Type {
	case eventCancelRequested:
		if !running || inv.cancel != "" {
			return errIgnored
		}
		inv.cancel = ev.Error
		if inv.cancel == "" {
			inv.cancel = "canceled"
		}
		return nil
	case EventSignalSent:
		return inv.signal(ev)
	case EventInvocationSucceeded, EventInvocationFailed, EventInvocationCanceled:
		if !running {
			return errIgnored
		}
		inv.finishedAt = ev.Time
		// Tasks left unfinished end with the invocation: their late
		// results, if any, are not recorded.
		for _, t := range inv.tasks {
			if t.status != TaskSucceeded && t.status != TaskFailed {
				from := t.status
				t.status, t.finished, t.wake = TaskCanceled, ev.Time, time.Time{}
				inv.kidChanged(t, from)
			}
		}
		switch ev.Type {
		case EventInvocationSucceeded:
			inv.status, inv.output = StatusSucceeded, evOutput(ev)
		case EventInvocationFailed:
			inv.status, inv.err, inv.failedTask, inv.code = StatusFailed, ev.Error, ev.Task, ev.Code
			if inv.comp.state == Compensating {
				inv.comp.state = Compensated
			}
		default:
			inv.status, inv.err = StatusCanceled, ev.Error
		}
		return nil
	}
	t := inv.tasks[ev.Task]
	if parentID(ev.Task) == "" {
		inv.view = nil // expressions see the workflow's tasks only (tasksView)
	}
	switch ev.Type {
	case EventTaskScheduled:
		if !running || t != nil && !t.reschedule || ev.Task == "" {
			return errIgnored
		}
		// Loop variables as expressions see them live: numbers as
		// numbers reads them, bytes values as bytes.
		scope := ev.Scope
		if scope != nil {
			numbers(map[string]any(scope))
		}
		if len(ev.ScopeData) > 0 {
			scope = make(map[string]any, len(ev.Scope)+len(ev.ScopeData))
			for k, x := range ev.Scope {
				scope[k] = x
			}
			for k, d := range ev.ScopeData {
				if d != nil {
					scope[k] = dataView(d.Bytes)
				}
			}
		}
		t = &taskState{id: ev.Task, run: ev.Run, status: TaskScheduled, input: evInput(ev), scope: scope}
		if (ev.Run == builtinWorkflow || ev.Run == builtinHTTP) && ev.InputData != nil {
			// {"workflow"} as JSON, the child's input as data beside it
			// (an http task's body, beside its request)
			t.input, t.child = jsonValue(ev.Input), ev.InputData.datum()
		}
		if old := inv.tasks[ev.Task]; old != nil {
			old.scheduledAgain(t) // redrive.go
			return nil
		}
		inv.tasks[ev.Task] = t
		inv.order = append(inv.order, ev.Task)
		inv.kidChanged(t, "")
		return nil
	case EventTaskStarted:
		if !running || t == nil || ev.Attempt <= t.attempts ||
			(t.status != TaskScheduled && t.status != TaskRetrying && t.status != TaskRunning) {
			return errIgnored
		}
		t.status, t.attempts, t.started = TaskRunning, ev.Attempt, ev.Time
		t.wake, t.version = time.Time{}, ev.Version
		if ev.Wake != nil {
			t.wake = *ev.Wake
		}
		t.after = ev.After
		return nil
	case EventTaskRetrying:
		if t == nil || t.status != TaskRunning || ev.Attempt != t.attempts {
			return errIgnored
		}
		t.status, t.err, t.code = TaskRetrying, ev.Error, ev.Code
		t.failures++
		inv.cancelKids(t, ev.Time)
		t.wake = time.Time{}
		if ev.Wake != nil {
			t.wake = *ev.Wake
		}
		return nil
	case EventTaskSucceeded:
		if t == nil || (t.status != TaskRunning && t.status != TaskCatching) || (ev.Attempt != 0 && ev.Attempt != t.attempts) {
			return errIgnored
		}
		if ev.Signal != "" && !inv.consume(ev) {
			return errIgnored // a wait takes a signal that is pending
		}
		t.status, t.output, t.err, t.finished = TaskSucceeded, evOutput(ev), t.keptErr(), ev.Time
		inv.comp.done = append(inv.comp.done, t.id)
		t.wake, t.out = time.Time{}, newLazy(t.output)
		inv.kidChanged(t, TaskRunning)
		return nil
	case EventTaskFailed:
		if t == nil || (t.status != TaskScheduled && t.status != TaskRunning && t.status != TaskRetrying && t.status != TaskCatching) {
			return errIgnored
		}
		from := t.status
		t.status, t.err, t.code, t.finished, t.wake = TaskFailed, ev.Error, ev.Code, ev.Time, time.Time{}
		inv.kidChanged(t, from)
		inv.cancelKids(t, ev.Time)
		return nil
	case EventTaskCaught:
		return inv.caught(t, ev)
	case EventCompensationStarted:
		return inv.compensate(ev)
	}
	// Unknown types come from newer daemons: skipped.
	return errIgnored
}

// value is a task's output decoded for expressions.
func (t *taskState) value() any {
	if t.out == nil {
		return t.output.view()
	}
	return t.out.value()
}

// snapshot copies an invocation for readers outside the engine's lock.
func (inv *invState) snapshot(withTasks bool) *Invocation {
	out := &Invocation{
		ID: inv.id, Workflow: inv.workflow, Revision: inv.revision, Status: inv.status,
		Error: inv.err, ErrorCode: inv.code, FailedTask: inv.failedTask, Compensation: inv.comp.state,
		Parent: inv.parent, Owner: inv.owner, Created: inv.created, in: inv.input, out: inv.output,
		Redrives: inv.redrives,
		Versions: versionsOf(inv.pins),
	}
	out.Input, out.InputForm = inv.input.jsonView()
	out.Output, out.OutputForm = inv.output.jsonView()
	if !inv.trace.IsZero() {
		out.Traceparent = inv.trace.Traceparent()
	}
	if !inv.finishedAt.IsZero() {
		f := inv.finishedAt
		out.Finished = &f
	}
	for _, s := range inv.signals {
		out.PendingSignals = append(out.PendingSignals, s.name)
	}
	if !withTasks {
		return out
	}
	out.Tasks = make(map[string]*Task, len(inv.tasks))
	for id, t := range inv.tasks {
		v := &Task{Status: t.status, Run: t.run, Attempts: t.attempts, Version: t.version, Error: t.err, ErrorCode: t.code, Caught: t.caught, Waiting: t.waiting(), WaitingTopic: t.waitingTopic()}
		if !t.input.none() {
			v.Input, v.InputForm = t.input.jsonView()
		}
		if !t.output.none() {
			v.Output, v.OutputForm = t.output.jsonView()
		}
		if !t.wake.IsZero() {
			w := t.wake
			v.Wake = &w
		}
		if !t.started.IsZero() {
			st := t.started
			v.Started = &st
		}
		if !t.finished.IsZero() {
			f := t.finished
			v.Finished = &f
		}
		out.Tasks[id] = v
	}
	return out
}

// What a finished invocation holds in memory beyond the bytes of its
// values: its structs, maps, strings and times, measured as a replay
// builds them (TestFootprint; go test ./engine -run Footprint -v): about
// 540 bytes, and 370 more per task.
const (
	invOverhead  = 500
	taskOverhead = 350
	// refOverhead is what a value stored apart costs instead of its bytes:
	// its reference (sha256, name, root), measured the same way
	// (BenchmarkRetainedLargeValues: 6 of them, 2 KB more than small
	// values).
	refOverhead = 330
)

// footprint estimates the memory a finished invocation holds, from what
// its events put in it: what retainBytes counts.
func (inv *invState) footprint() int64 {
	n := invOverhead + len(inv.id) + len(inv.workflow) + len(inv.revision) + len(inv.owner) + len(inv.parent) +
		inv.input.held() + inv.output.held() + len(inv.err) + len(inv.failedTask) + len(inv.cancel) + inv.failureBytes() + len(inv.source) + pinsHeld(inv.pins) + inv.signalsHeld()
	for id, t := range inv.tasks {
		n += taskOverhead + 2*len(id) + len(t.run) + t.input.held() + t.output.held() + t.child.held() + len(t.err) + valueSize(t.scope)
	}
	return int64(n)
}

// held is what a value holds in memory beyond its datum: its bytes, or
// its reference.
func (d datum) held() int {
	if d.ref != nil {
		return refOverhead
	}
	return len(d.b)
}

// valueSize estimates the memory of a decoded JSON value.
func valueSize(x any) int {
	switch v := x.(type) {
	case string:
		return 16 + len(v)
	case map[string]any:
		n := 48
		for k, el := range v {
			n += 32 + len(k) + valueSize(el)
		}
		return n
	case []any:
		n := 24
		for _, el := range v {
			n += 16 + valueSize(el)
		}
		return n
	}
	return 16
}
