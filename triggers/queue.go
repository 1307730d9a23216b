package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/logctx"
)

// QueueTrigger is a message-queue trigger as this daemon runs it.
type QueueTrigger struct {
	Name string
	// Target is what each message runs.
	Target fn.Target
	// Topic is consumed; RespTopic (optional) receives each output;
	// ErrorTopic (optional) receives a DeadLetter for each message that
	// failed MaxRetries redeliveries.
	Topic, RespTopic, ErrorTopic string
	MaxRetries, MaxInflight      int
	AckWait                      time.Duration
	// Group is the durable name and queue group shared by every daemon
	// running the trigger.
	Group string

	// input, when set, turns a message into the function's input; run
	// false acks the message without a call (timer claims that lost).
	input func(m *eventlog.Msg) (in []byte, run bool, err error)
}

// DeadLetter is what a message-queue trigger publishes to its error topic
// for a message that failed every attempt: a JSON object carrying the
// error and the original payload (base64, as encoding/json writes bytes).
type DeadLetter struct {
	Error string `json:"error"`
	// Code is the API's error code for the failure (timeout, trap, ...).
	Code string `json:"code"`
	// Function or Workflow is what the message ran.
	Function     string    `json:"function,omitempty"`
	Workflow     string    `json:"workflow,omitempty"`
	Trigger      string    `json:"trigger"`
	Topic        string    `json:"topic"`
	Sequence     uint64    `json:"sequence"`
	Redeliveries uint32    `json:"redeliveries"`
	Time         time.Time `json:"time"`
	Payload      []byte    `json:"payload"`
	// Traceparent is the W3C trace context of the last failed call: its
	// trace_id and span_id find the call's log lines.
	Traceparent string `json:"traceparent,omitempty"`
}

// QueueStats are a trigger's counters on this daemon.
type QueueStats struct {
	Delivered, Redelivered, Succeeded, Failed, DeadLettered, Skipped uint64
	InFlight                                                         int64
}

// Queue runs this daemon's message-queue triggers.
type Queue struct {
	conn eventlog.Log // where the triggers' messages come from
	pub  eventlog.Log // where their results and dead letters go: conn unless PublishOn
	inv  fn.Invoker
	log  *slog.Logger

	mu       sync.Mutex
	running  map[string]*queueRun
	draining bool
	lag      func(trigger string, lag time.Duration)
}

// ObserveLag sets a function told, for each message taken, how long it
// waited in its channel (metrics). Set it before starting triggers.
func (q *Queue) ObserveLag(fn func(trigger string, lag time.Duration)) { q.lag = fn }

// NewQueue returns a runner of message-queue triggers.
func NewQueue(conn eventlog.Log, inv fn.Invoker, log *slog.Logger) *Queue {
	return &Queue{conn: conn, pub: conn, inv: inv, log: log, running: map[string]*queueRun{}}
}

// PublishOn makes the triggers publish their results and dead letters on
// l, a second connection to the broker their messages come from, rather
// than on that one. stan.go takes one lock of its connection to deliver a
// message, twice to publish one and once for each publish's ack: a worker
// publishing where its messages arrive contends with the goroutines that
// deliver them and that process the acks (docs/RATIONALE.md, "A second
// connection for results"). Set it before starting triggers.
func (q *Queue) PublishOn(l eventlog.Log) { q.pub = l }

type queueRun struct {
	q    *Queue
	t    QueueTrigger
	sub  eventlog.Subscription // under mu: nil until subscribed
	work chan *eventlog.Msg
	quit chan struct{}  // stops the workers
	wg   sync.WaitGroup // workers
	// workers: how many there are and what they do (workers.go)
	workers pool
	// pubs are the results and dead letters waiting to be published,
	// one worker at a time (publish.go).
	pubs pubQueue
	// headers: the broker delivers headers (the trace context is passed
	// on to the results); NATS Streaming has none, and building them for
	// nothing was an allocation per message.
	headers bool
	inner   sync.WaitGroup // messages between delivery and their ack (or giving up)
	mu      sync.Mutex     // orders stop against inner.Add, quitting against wg.Add; guards sub
	stop    bool           // stop taking messages
	// quitting: the workers are told to quit and waited for; no more
	// are started
	quitting bool
	stats    struct {
		delivered, redelivered, succeeded, failed, dead, skipped atomic.Uint64
		inflight                                                 atomic.Int64
	}
}

// Start runs a trigger on this daemon: it joins the trigger's durable queue
// group, so that the daemons running it share its messages.
func (q *Queue) Start(t QueueTrigger) error {
	q.mu.Lock()
	if q.draining {
		q.mu.Unlock()
		return errors.New("shutting down")
	}
	if _, ok := q.running[t.Name]; ok {
		q.mu.Unlock()
		return nil
	}
	r := &queueRun{q: q, t: t, work: make(chan *eventlog.Msg, t.MaxInflight), quit: make(chan struct{})}
	r.headers = q.conn.Features().Headers
	q.running[t.Name] = r
	q.mu.Unlock()

	r.workers.took.Store(time.Now().UnixNano())
	r.startWorker()
	sub, err := q.conn.Subscribe(t.Topic, eventlog.SubOptions{
		Queue: t.Group, Start: eventlog.First, ManualAck: true,
		AckWait: t.AckWait, MaxInflight: t.MaxInflight,
	}, r.deliver)
	if err != nil {
		q.mu.Lock()
		delete(q.running, t.Name)
		q.mu.Unlock()
		r.stopWorkers()
		return fmt.Errorf("trigger %q: %w", t.Name, err)
	}
	r.mu.Lock()
	if r.stop { // stopped while it subscribed: shutdown found no sub
		r.mu.Unlock()
		_ = sub.Close()
		return nil
	}
	r.sub = sub
	r.mu.Unlock()
	q.log.Info("message-queue trigger running", "trigger", t.Name, "topic", t.Topic, "target", t.Target.String(), "group", t.Group)
	return nil
}

// Stop stops a trigger on this daemon after its messages in flight are
// done. With forget (the trigger was deleted) the durable subscription is
// removed too; otherwise it stays on the server and keeps its position.
func (q *Queue) Stop(ctx context.Context, name string, forget bool) {
	q.mu.Lock()
	r := q.running[name]
	delete(q.running, name)
	q.mu.Unlock()
	if r != nil {
		r.shutdown(ctx, forget)
	}
}

// Close stops taking messages, finishes the calls in flight, acks those
// that completed, then leaves every queue group (durables stay).
func (q *Queue) Close(ctx context.Context) {
	q.mu.Lock()
	q.draining = true
	runs := make([]*queueRun, 0, len(q.running))
	for _, r := range q.running {
		runs = append(runs, r)
	}
	q.running = map[string]*queueRun{}
	q.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func(r *queueRun) {
			defer wg.Done()
			r.shutdown(ctx, false)
		}(r)
	}
	wg.Wait()
}

// Stats returns a trigger's counters on this daemon.
func (q *Queue) Stats(name string) (QueueStats, bool) {
	q.mu.Lock()
	r := q.running[name]
	q.mu.Unlock()
	if r == nil || !r.subscribed() {
		return QueueStats{}, false
	}
	s := &r.stats
	return QueueStats{
		Delivered: s.delivered.Load(), Redelivered: s.redelivered.Load(), Succeeded: s.succeeded.Load(),
		Failed: s.failed.Load(), DeadLettered: s.dead.Load(), Skipped: s.skipped.Load(), InFlight: s.inflight.Load(),
	}, true
}

// subscribed tells whether the trigger's subscription is made: it takes
// messages (Stats shows a trigger only from then on).
func (r *queueRun) subscribed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sub != nil
}

func (r *queueRun) shutdown(ctx context.Context, forget bool) {
	r.mu.Lock()
	r.stop = true
	sub := r.sub
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		r.inner.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.q.log.Warn("trigger stopped with messages in flight; they will be redelivered", "trigger", r.t.Name)
	}
	if sub != nil {
		if forget {
			_ = sub.Unsubscribe()
		} else {
			_ = sub.Close()
		}
	}
	r.stopWorkers()
}

// deliver runs on the subscription's goroutine: it hands the message to a
// worker. The server sends at most MaxInflight unacked messages, so the
// channel never blocks for long.
func (r *queueRun) deliver(m *eventlog.Msg) {
	r.mu.Lock()
	if r.stop {
		r.mu.Unlock()
		return // not acked: redelivered, to another daemon if there is one
	}
	r.inner.Add(1)
	r.mu.Unlock()
	r.stats.delivered.Add(1)
	if m.Redelivered() {
		r.stats.redelivered.Add(1)
	}
	if !r.queued(m) {
		r.inner.Done()
	}
}

// process calls the function for one message and settles the message:
// acked once the result is stored on the response topic (or at once
// without one), left unacked on failure so that the server redelivers it,
// dead-lettered after MaxRetries redeliveries.
func (r *queueRun) process(m *eventlog.Msg) {
	t := &r.t
	// the message's lines and its call's log records say which it is,
	// and its call continues the trace the message's headers carry (a
	// new one without: NATS Streaming has no headers, a timer's claims
	// carry none)
	tc := logctx.Continue(logctx.HeaderValue(m.Header, logctx.TraceparentHeader), logctx.HeaderValue(m.Header, logctx.TracestateHeader))
	ctx := logctx.WithTrace(context.Background(), tc, slog.String(logctx.Trigger, t.Name), slog.Uint64(logctx.Sequence, m.Sequence))
	if r.q.lag != nil {
		r.q.lag(t.Name, time.Since(m.Time))
	}
	res, run, err := r.call(ctx, m)
	for wait := busyRetryBase; err != nil && errcode.Of(err) == errcode.Busy; wait = min(2*wait, busyRetryMax) {
		// Every slot of the function is taken and its queue of waiting
		// calls is full (a --max-inflight above what the function's
		// --concurrency queues): backpressure, not the message's
		// failure. Call again when a slot may be free.
		select {
		case <-time.After(wait):
		case <-r.quit: // stopped past its deadline: redelivered
			r.inner.Done()
			return
		}
		res, run, err = r.call(ctx, m)
	}
	if err == nil && !run {
		r.stats.skipped.Add(1)
		r.ack(ctx, m)
		return
	}
	if err == nil {
		r.stats.succeeded.Add(1)
		if t.RespTopic == "" {
			r.ack(ctx, m)
			return
		}
		r.publishThenAck(ctx, m, t.RespTopic, eventlog.Message{Data: res.Output, Header: r.header(tc)}, "result")
		return
	}
	if errors.Is(err, eventlog.ErrNotConnected) || errors.Is(err, eventlog.ErrClosed) {
		// Not the message's fault: NATS Streaming is out of reach (a
		// workflow invocation cannot be stored). It comes back after
		// AckWait; an outage never dead-letters a message.
		r.q.log.WarnContext(ctx, "cannot process the message now; it will be redelivered", "trigger", t.Name, "topic", t.Topic,
			"sequence", m.Sequence, "err", err)
		r.inner.Done()
		return
	}
	r.stats.failed.Add(1)
	if m.Deliveries <= t.MaxRetries {
		r.q.log.WarnContext(ctx, "message failed; it will be redelivered", "trigger", t.Name, "topic", t.Topic, "sequence", m.Sequence,
			"attempt", m.Deliveries, "of", t.MaxRetries+1, "err", err)
		r.nak(ctx, m)
		return
	}
	r.stats.dead.Add(1)
	if t.ErrorTopic == "" {
		r.q.log.ErrorContext(ctx, "message failed every attempt; dropped (the trigger has no --error-topic)", "trigger", t.Name, "topic", t.Topic,
			"sequence", m.Sequence, "attempts", m.Deliveries, "err", err)
		r.ack(ctx, m)
		return
	}
	code := string(errcode.Of(err))
	dl, _ := json.Marshal(DeadLetter{
		Error: err.Error(), Code: code, Function: nameIf(t.Target, fn.KindFunction), Workflow: nameIf(t.Target, fn.KindWorkflow), Trigger: t.Name, Topic: t.Topic,
		Sequence: m.Sequence, Redeliveries: uint32(m.Deliveries - 1), Time: time.Now().UTC(), Payload: m.Data,
		Traceparent: tc.Traceparent(),
	})
	r.publishThenAck(ctx, m, t.ErrorTopic, eventlog.Message{Data: dl, Header: r.header(tc)}, "dead letter")
}

// header is what a result or dead letter carries of the call's trace,
// where the broker has headers.
func (r *queueRun) header(tc logctx.Trace) map[string]string {
	if !r.headers {
		return nil
	}
	return tc.Header()
}

// call turns a message into the function's input and calls it; run false
// means the message is to be acked without a call (a timer claim that
// lost). A panic in either (a bug a message found) is a failed call: the
// message is retried and dead-lettered like any failure, and the daemon
// carries on.
func (r *queueRun) call(ctx context.Context, m *eventlog.Msg) (res fn.Result, run bool, err error) {
	t := &r.t
	defer func() {
		if v := recover(); v != nil {
			r.q.log.ErrorContext(ctx, "panic processing a message; it counts as a failed call", "trigger", t.Name, "topic", t.Topic,
				"sequence", m.Sequence, "panic", v, "stack", string(debug.Stack()))
			res, run, err = fn.Result{}, true, fmt.Errorf("trigger %q: processing message %d failed inside sluice (a bug; the daemon's log has the details): %v", t.Name, m.Sequence, v)
		}
	}()
	in := m.Data
	if t.input != nil {
		if in, run, err = t.input(m); err != nil || !run {
			return fn.Result{}, run, err
		}
	}
	res, err = r.q.inv.Invoke(ctx, t.Target, fn.Call{
		Input: in,
		Meta: map[string]string{
			abi.MetaTrigger:      t.Name,
			abi.MetaTopic:        t.Topic,
			abi.MetaSequence:     strconv.FormatUint(m.Sequence, 10),
			abi.MetaRedelivered:  strconv.FormatBool(m.Redelivered()),
			abi.MetaRedeliveries: strconv.Itoa(m.Deliveries - 1),
		},
	})
	return res, true, err
}

// publishThenAck publishes out asynchronously (in its turn: see put), and
// acks the message when the server has stored the publication. If it cannot,
// the message stays unacked and comes back after AckWait: at least once,
// never lost.
func (r *queueRun) publishThenAck(ctx context.Context, m *eventlog.Msg, topic string, out eventlog.Message, what string) {
	r.put(pub{ctx: ctx, m: m, topic: topic, out: out, what: what})
}

// publish publishes one result or dead letter, and acks its message from
// the publication's callback.
func (r *queueRun) publish(p *pub) {
	ctx, m, topic, what := p.ctx, p.m, p.topic, p.what
	err := r.q.pub.PublishAsync(topic, p.out, func(_ uint64, err error) {
		if err != nil {
			r.q.log.WarnContext(ctx, "publish failed; the message will be redelivered", "trigger", r.t.Name, "what", what, "topic", topic, "err", err)
			r.inner.Done()
			return
		}
		r.ack(ctx, m)
	})
	if err != nil {
		r.q.log.WarnContext(ctx, "cannot publish; the message will be redelivered", "trigger", r.t.Name, "what", what, "topic", topic, "err", err)
		r.inner.Done()
	}
}

// busyRetryBase and busyRetryMax bound the wait before a call the
// function refused as busy is made again: the first retry comes after
// about the time a few short calls take, and each further one waits twice
// as long, up to a tenth of a second, so that a long wait for a slow
// function costs a few wake-ups a second.
const (
	busyRetryBase = time.Millisecond
	busyRetryMax  = 100 * time.Millisecond
)

// retryBase is how long a failed message waits for its first retry
// where the broker has negative acks (eventlog.Features.Nak): long enough
// for a dependency's blip to pass, short next to the 30 s AckWait a broker
// without them waits. Each further retry waits twice as long, up to the
// trigger's AckWait.
const retryBase = time.Second

// retryDelay is the wait before the retry of a message that failed its
// deliveries-th delivery.
func retryDelay(deliveries int, ackWait time.Duration) time.Duration {
	if ackWait <= 0 {
		ackWait = 30 * time.Second // the contract's default AckWait
	}
	d := retryBase
	for i := 1; i < deliveries && d < ackWait; i++ {
		d *= 2
	}
	return min(d, ackWait)
}

// nak settles a failed message for a retry: redelivered after retryDelay
// where the broker has negative acks, after AckWait elsewhere.
func (r *queueRun) nak(ctx context.Context, m *eventlog.Msg) {
	if err := m.Nak(retryDelay(m.Deliveries, r.t.AckWait)); err != nil {
		r.q.log.DebugContext(ctx, "nak failed; the message will be redelivered after the ack wait", "trigger", r.t.Name, "sequence", m.Sequence, "err", err)
	}
	r.inner.Done()
}

func (r *queueRun) ack(ctx context.Context, m *eventlog.Msg) {
	if err := m.Ack(); err != nil {
		r.q.log.DebugContext(ctx, "ack failed; the message will be redelivered", "trigger", r.t.Name, "sequence", m.Sequence, "err", err)
	}
	r.inner.Done()
}

// nameIf is the target's name if it is of kind k.
func nameIf(t fn.Target, k fn.Kind) string {
	if t.Kind == k {
		return t.Name
	}
	return ""
}
