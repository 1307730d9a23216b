package engine

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/eventlog"
)

// Waits on topics: a wait task with inputs {topic: TOPIC, match:
// CONDITION} ends on the first message stored on the topic after its
// attempt started for which CONDITION (an expression that sees the
// message as `message`) is true; its output is the message's data.
//
// Durable and exact. When the attempt starts, the owner reads the
// topic's last sequence (Log.Last) and records it in the attempt's
// TaskStarted (after): the messages that count are those stored after it,
// whatever happens next. Until that TaskStarted is read back from the
// log, the owner keeps the position it read (topicWaits.begun): if the
// event is not stored (the link to the broker cut as it was written), the
// invocation is rebuilt from the log with the task scheduled, and the
// attempt starts again from that same position, not from the topic's end
// by then: the wait watched from there, and the messages stored during
// the outage count. The owner subscribes to the topic from after+1
// and examines the messages in order, evaluating CONDITION outside the
// engine's lock within an expression's budget; the first that matches
// ends the task (TaskSucceeded with its data, and consumed: its sequence).
// After a restart, a takeover or a rebuild from the log, the owner
// subscribes from after+1 again and examines the same messages again: the
// expression is a function of the message and of values that do not
// change, so it takes the same one, and a message published while the
// daemon was down is not lost (within the topic's retention). A message
// is not consumed from its topic: every wait watching it examines it,
// and the triggers on it run as before.
//
// No goroutine waits: a wait is its subscription (the broker delivers its
// messages on the subscription's goroutine, where the condition is
// evaluated), and a short-lived goroutine reads the topic's last sequence
// and subscribes, outside the lock. The subscription ends when the
// attempt ends (matched, failed, timed out, canceled with its invocation),
// when ownership moves, when the invocation goes stale and when the
// engine closes.

// Limits of the waits on topics.
const (
	// maxTopicWaits bounds the waits on topics one daemon holds at once:
	// each is a subscription on the broker. Ten thousand is far more than
	// a daemon's workflows wait on (callbacks, events of an order); a
	// foreach starting a wait per item of a large list is stopped there.
	maxTopicWaits = 10000
	// topicWaitSetup bounds reading a topic's last sequence when a wait
	// starts: the broker answers in milliseconds (NATS Streaming takes a
	// second on an empty topic: it has no query for a channel's last
	// sequence, see natslog's Last); beyond, the broker is away.
	topicWaitSetup = 30 * time.Second
	// topicWaitRetry is how long a wait whose topic could not be read
	// (the broker away) waits before trying again.
	topicWaitRetry = time.Second
)

// topicWaits are the waits on topics a node holds.
type topicWaits struct {
	// n counts them (under Engine.mu).
	n int
	// max is the most there may be; 0 is maxTopicWaits (a test lowers
	// it rather than start ten thousand subscriptions).
	max int
	// slots bounds the conditions evaluated at once, as the evaluation
	// workers bound the other expressions (maxEvaluations): each may make
	// up to 32 MiB.
	slots chan struct{}
	// begun holds, by invocation and task (under Engine.mu), the attempts
	// this node started whose TaskStarted is not yet read back from the
	// log, with the position each recorded: an attempt whose TaskStarted
	// was lost starts again from there.
	begun map[string]map[string]topicStart
}

// topicStart is an attempt of a wait on a topic started by this node and
// the topic's last sequence it read then.
type topicStart struct {
	attempt int
	after   uint64
}

// begin notes an attempt started, until its TaskStarted is read back.
func (w *topicWaits) begin(inv, task string, attempt int, after uint64) {
	if w.begun == nil {
		w.begun = map[string]map[string]topicStart{}
	}
	if w.begun[inv] == nil {
		w.begun[inv] = map[string]topicStart{}
	}
	w.begun[inv][task] = topicStart{attempt: attempt, after: after}
}

// recorded forgets an attempt noted by begin once its TaskStarted is
// read back from the log.
func (w *topicWaits) recorded(inv, task string, attempt int) {
	if s, ok := w.begun[inv][task]; ok && s.attempt == attempt {
		delete(w.begun[inv], task)
		if len(w.begun[inv]) == 0 {
			delete(w.begun, inv)
		}
	}
}

// forget forgets the attempts noted by begin of an invocation this node
// no longer drives (ended, taken over, stopped).
func (w *topicWaits) forget(inv string) { delete(w.begun, inv) }

// limit is the most waits on topics a node may hold.
func (w *topicWaits) limit() int {
	if w.max > 0 {
		return w.max
	}
	return maxTopicWaits
}

// topicWait is one wait on a topic, one attempt of its task.
type topicWait struct {
	inv, task, root, topic string
	attempt                int
	match                  *value
	// started tells whether the attempt's TaskStarted is written, with
	// after (under Engine.mu until the subscription starts; then fixed).
	started bool
	after   uint64
	// kept: the attempt is not started, and after is the position this
	// node read when it started it before, in a TaskStarted the log lost;
	// the attempt starts again from there.
	kept bool
	// view is what the condition sees besides the message, taken when
	// the attempt started (or resumed).
	view *view
	// sub is the subscription once made (under Engine.mu).
	sub eventlog.Subscription
	// over is set when the wait no longer examines messages.
	over atomic.Bool
}

// validTopic tells whether a name may name the topic of a wait: a topic
// the queue triggers accept (sluice's own channels are not).
func validTopic(name string) bool {
	return eventlog.ValidName(name) && name != "sluice" && !strings.HasPrefix(name, "sluice.")
}

func badTopic(name string) string {
	if eventlog.ValidName(name) {
		return fmt.Sprintf("topic %q: topics under sluice. are sluice's own", name)
	}
	return fmt.Sprintf("topic %q: want a topic name like orders or orders.eu (letters, digits, '-', '_', separated by dots; no wildcards)", name)
}

// waitInput reads a wait's recorded input: the signal it waits for, or
// the topic it watches.
func waitInput(x any) (signal, topic string, err error) {
	m, ok := x.(map[string]any)
	if !ok {
		return "", "", fmt.Errorf("wait: want inputs {signal: NAME} or {topic: TOPIC, match: CONDITION}, got %s", brief(x))
	}
	raw, ok := m["topic"]
	if !ok {
		signal, err = waitSignal(x)
		return signal, "", err
	}
	name, ok := raw.(string)
	if !ok {
		return "", "", fmt.Errorf("wait: the topic is %s, not a name", brief(raw))
	}
	if !validTopic(name) {
		return "", "", fmt.Errorf("wait: %s", badTopic(name))
	}
	return "", name, nil
}

// waitingTopic is the topic a running wait watches ("" if it is not one):
// what wf status shows.
func (t *taskState) waitingTopic() string {
	if t.run != builtinWait || t.status != TaskRunning {
		return ""
	}
	_, topic, _ := waitInput(t.input.view())
	return topic
}

// waitOne refuses a wait given both a signal and a topic, or neither, or
// a match without a topic; it tells whether the inputs are a signal's.
func (p *parser) waitOne(n, topic, match *yaml.Node, what string) bool {
	switch {
	case topic != nil:
		p.errorf(topic.Line, "%s: wait: give signal: or topic:, not both (a wait ends on a signal or on a message)", what)
	case !hasKey(n, "signal"):
		p.errorf(n.Line, "%s: wait: signal: or topic: is missing (inputs: {signal: NAME} or {topic: TOPIC, match: CONDITION})", what)
	case match != nil:
		p.errorf(match.Line, "%s: wait: match: applies to a wait on a topic (inputs: {topic: TOPIC, match: CONDITION}); a signal is taken as it comes", what)
	default:
		return true
	}
	return false
}

// waitTopic parses a wait's inputs {topic: TOPIC, match: CONDITION}: its
// TaskScheduled records {topic} (a literal checked now, or an expression
// checked when the task is scheduled); the condition is kept apart and
// evaluated per message, with message in scope.
func (p *parser) waitTopic(t *taskSpec, n, topic, match *yaml.Node, what string) {
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "topic", Line: topic.Line}
	t.inputs = p.value(&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Content: []*yaml.Node{key, topic}}, t.scope)
	if t.inputs.static {
		if _, _, err := waitInput(t.inputs.lit); err != nil {
			p.errorf(topic.Line, "%s: %v", what, err)
		}
	}
	if match == nil {
		return // the first message
	}
	sc := t.scope
	sc.message = true
	t.match = p.value(match, sc)
	switch {
	case t.match.static:
		if _, ok := t.match.lit.(bool); !ok {
			p.errorf(match.Line, "%s: wait: match %q: want a condition on the message, like ${ message.order == input.order }", what, match.Value)
		}
	case t.match.kind != kindExpr:
		p.errorf(match.Line, "%s: wait: match %q: want one expression, ${ CONDITION }, true or false (not a string with ${ } in it)", what, match.Value)
	}
}

// driveTopicWait runs a wait on a topic: its attempt starts (the topic's
// last sequence read and recorded, outside the lock), then its
// subscription examines the messages after it.
func (e *Engine) driveTopicWait(inv *invState, spec *taskSpec, t *taskState, topic string) {
	l := e.localOf(inv.id)
	if l.topics == nil {
		l.topics = map[string]*topicWait{}
	}
	w := l.topics[t.id]
	attempt := t.attempts
	switch t.status {
	case TaskScheduled:
		attempt++
		if w != nil && !w.started && w.attempt == attempt {
			return // starting
		}
	case TaskRunning:
		if w != nil && w.started && w.attempt == attempt {
			return // watching
		}
		if t.after == nil {
			e.fail(inv, t, fmt.Sprintf("wait on topic %s: its TaskStarted records no position in the topic (written by another version of sluice?)", topic))
			return
		}
	default:
		return
	}
	if w != nil {
		e.dropTopicWait(l, t.id)
	}
	var begun topicStart
	if t.status == TaskScheduled {
		begun = e.topics.begun[inv.id][t.id]
	}
	if max := e.topics.limit(); e.topics.n >= max {
		e.fail(inv, t, fmt.Sprintf("wait on topic %s: this daemon already holds %d waits on topics, its limit (each is a subscription on the broker): bound the foreach that starts them with parallel:, or wait for a signal",
			topic, max))
		return
	}
	if e.topics.slots == nil {
		e.topics.slots = make(chan struct{}, maxEvaluations)
	}
	w = &topicWait{inv: inv.id, task: t.id, root: inv.root, topic: topic, attempt: attempt, match: spec.match}
	switch {
	case t.status == TaskRunning:
		// started by an earlier life of this node, or another node:
		// examine the same messages again
		w.started, w.after, w.view = true, *t.after, e.viewOf(inv, t.id, nil)
	case begun.attempt == attempt:
		// started by this node, but its TaskStarted was not stored (the
		// invocation was rebuilt from the log without it): start again
		// from the position read then
		w.kept, w.after = true, begun.after
	}
	l.topics[t.id] = w
	e.topics.n++
	e.calls.Add(1)
	go e.startTopicWait(w)
}

// startTopicWait starts a wait's attempt, if it is not started, and
// subscribes to its topic after the attempt's position.
func (e *Engine) startTopicWait(w *topicWait) {
	defer e.calls.Done()
	if !w.started && !e.startAttempt(w) {
		return
	}
	sub, err := e.o.Log.Subscribe(w.topic, eventlog.SubOptions{Start: eventlog.At(w.after + 1)}, func(m *eventlog.Msg) { e.topicMessage(w, m) })
	e.mu.Lock()
	if err == nil && !w.over.Load() && !e.closed {
		w.sub = sub
		e.mu.Unlock()
		return
	}
	if err != nil {
		if inv, _ := e.topicWaitNow(w); inv != nil {
			e.retryTopicWait(inv, w, "subscribing to it", err)
		}
	}
	e.mu.Unlock()
	if err == nil {
		sub.Close() // stopped meanwhile
	}
}

// startAttempt reads the topic's last sequence (or takes the one kept
// from the attempt's lost TaskStarted) and writes the attempt's
// TaskStarted with it; false if the wait is not to go on.
func (e *Engine) startAttempt(w *topicWait) bool {
	after, err := w.after, error(nil)
	if !w.kept {
		after, err = e.lastOf(w.topic)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.guard(w.inv)
	inv, t := e.topicWaitNow(w)
	switch {
	case inv == nil:
		return false
	case err != nil:
		e.retryTopicWait(inv, w, "reading its last sequence", err)
		return false
	case t.status != TaskScheduled || t.attempts+1 != w.attempt:
		e.dropTopicWait(e.local[w.inv], w.task)
		return false
	}
	e.topics.begin(inv.id, t.id, w.attempt, after)
	e.emit(inv, nil, &Event{Type: EventTaskStarted, Task: t.id, Attempt: w.attempt, After: &after})
	w.started, w.after, w.view = true, after, e.viewOf(inv, t.id, nil)
	e.reconcile(inv) // its timeout, if it has one
	return !w.over.Load()
}

// lastOf reads a topic's last sequence, within topicWaitSetup or until
// the engine closes.
func (e *Engine) lastOf(topic string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), topicWaitSetup)
	defer cancel()
	read := make(chan struct{})
	defer close(read)
	go func() { // Close does not wait for the broker
		select {
		case <-e.stop:
			cancel()
		case <-read:
		}
	}()
	return e.o.Log.Last(ctx, topic)
}

// retryTopicWait drops a wait that could not read its topic (the broker
// away) and drives it again after topicWaitRetry.
func (e *Engine) retryTopicWait(inv *invState, w *topicWait, doing string, err error) {
	e.log.Warn("a wait on a topic could not read it; it tries again", "invocation", inv.id, "workflow", inv.workflow, "task", w.task,
		"topic", w.topic, "doing", doing, "retry_in", topicWaitRetry, "err", err)
	e.dropTopicWait(e.local[w.inv], w.task)
	e.timer(inv, w.task, e.now().Add(topicWaitRetry))
}

// topicWaitNow returns the invocation and task of a wait this node still
// drives (nil if not: then the wait is dropped, and driven again from the
// log if it is to go on).
func (e *Engine) topicWaitNow(w *topicWait) (*invState, *taskState) {
	if e.closed {
		return nil, nil
	}
	l := e.local[w.inv]
	if l == nil || l.topics[w.task] != w {
		return nil, nil
	}
	inv := e.st.invs[w.inv]
	var t *taskState
	if inv != nil {
		t = inv.tasks[w.task]
	}
	if t == nil || inv.status != StatusRunning || inv.owner != e.o.Node || e.isStale(inv.id) || e.quarantined[inv.id] {
		e.dropTopicWait(l, w.task)
		return nil, nil
	}
	return inv, t
}

// topicMessage examines a message of a wait's topic, on its
// subscription's goroutine: the condition is evaluated outside the lock;
// a match (or the condition's error) ends the attempt.
func (e *Engine) topicMessage(w *topicWait, m *eventlog.Msg) {
	if w.over.Load() || m.Sequence <= w.after {
		return
	}
	ok, err := e.matches(w, m.Data)
	if err == nil && !ok {
		return
	}
	var out datum
	if err == nil {
		// a message over MaxData is stored apart, as a function's output
		out, err = e.spill(context.Background(), w.root, dataValue(m.Data), "the message")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.guard(w.inv)
	inv, t := e.topicWaitNow(w)
	if inv == nil || w.over.Load() {
		return
	}
	e.dropTopicWait(e.local[w.inv], w.task)
	if t.status != TaskRunning || t.attempts != w.attempt {
		return
	}
	if err != nil {
		e.fail(inv, t, fmt.Sprintf("wait on topic %s: message %d: %v", w.topic, m.Sequence, err))
	} else {
		ev := &Event{Type: EventTaskSucceeded, Task: t.id, Attempt: t.attempts, Consumed: m.Sequence}
		out.put(ev, true)
		e.emit(inv, nil, ev)
	}
	e.reconcile(inv)
}

// matches evaluates a wait's condition on a message's data, within an
// expression's budget, on one of the condition slots.
func (e *Engine) matches(w *topicWait, data []byte) (ok bool, err error) {
	switch {
	case w.match == nil:
		return true, nil // the first message
	case w.match.static:
		b, _ := w.match.lit.(bool)
		return b, nil
	}
	select {
	case e.topics.slots <- struct{}{}:
	case <-e.stop:
		return false, nil
	}
	defer func() { <-e.topics.slots }()
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("a wait's condition panicked; its task fails", "invocation", w.inv, "task", w.task,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			ok, err = false, fmt.Errorf("internal error while evaluating match: %v", r)
		}
	}()
	b := newBudget(e.stop)
	if err := b.alloc(len(data)); err != nil {
		return false, w.match.failed(err)
	}
	en, err := w.view.env(b, w.match)
	if err != nil {
		return false, w.match.failed(err)
	}
	en["message"] = dataView(data)
	x, err := w.match.eval(en, b)
	if err != nil {
		return false, err
	}
	ok, isBool := x.(bool)
	if !isBool {
		return false, w.match.failed(fmt.Errorf("match is %s, not true or false", brief(x)))
	}
	return ok, nil
}

// dropTopicWait stops a wait: no more messages are examined, and its
// subscription is closed (on a goroutine: closing talks to the broker).
func (e *Engine) dropTopicWait(l *local, task string) {
	if l == nil {
		return
	}
	w := l.topics[task]
	if w == nil {
		return
	}
	delete(l.topics, task)
	e.topics.n--
	w.over.Store(true)
	if sub := w.sub; sub != nil {
		w.sub = nil
		e.calls.Add(1)
		go func() {
			defer e.calls.Done()
			sub.Close()
		}()
	}
}

// stopTopicWaits stops every wait on a topic of an invocation.
func (e *Engine) stopTopicWaits(l *local) {
	for task := range l.topics {
		e.dropTopicWait(l, task)
	}
}

// endsAttempts tells whether an event may end a task's attempt, or its
// dynamic tasks' (canceled with it), for sweepTopicWaits.
func endsAttempts(typ string) bool {
	switch typ {
	case EventTaskSucceeded, EventTaskFailed, EventTaskRetrying, EventTaskCaught, EventCompensationStarted:
		return true
	}
	return false
}

// sweepTopicWaits stops the waits of an invocation whose attempt an event
// ended (a timeout, a failure, a parent's failure canceling them): their
// subscriptions end now, not when a message comes.
func (e *Engine) sweepTopicWaits(inv *invState, ev *Event) {
	if e.topics.n == 0 || !endsAttempts(ev.Type) {
		return
	}
	l := e.local[inv.id]
	if l == nil {
		return
	}
	for task, w := range l.topics {
		if t := inv.tasks[task]; t == nil || t.status != TaskRunning && t.status != TaskScheduled ||
			w.started && t.attempts != w.attempt {
			e.dropTopicWait(l, task)
		}
	}
}
