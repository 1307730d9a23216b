package jslog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/eventlog"
)

// Delivery tunables.
const (
	// DefaultAckWait is a queue's AckWait when SubOptions leave it 0 (the
	// contract's 30 s).
	DefaultAckWait = 30 * time.Second
	// DefaultMaxInflight bounds a queue's unacked messages, and a plain
	// subscription's buffer, when SubOptions leave it 0: NATS
	// Streaming's default, so both brokers behave alike.
	DefaultMaxInflight = 1024
	// queueAckPending bounds a queue consumer's unacked messages, over
	// all its subscribers (MaxAckPending). Each subscriber holds at most
	// its own MaxInflight (a slot per message until it is settled or its
	// AckWait passes), and asks for no more than its free slots; the
	// consumer's bound is only a backstop, wide enough for many
	// subscribers, at least 16 times one subscriber's.
	queueAckPending = 4096
	// pullExpiry and pullHeartbeat: a pull request lives pullExpiry, and
	// the server sends a heartbeat every pullHeartbeat while it has
	// nothing to deliver; two missed heartbeats (a server gone, a consumer
	// deleted while the link was down) re-issue the request, or re-create
	// an ordered consumer after the last message delivered, and have a
	// queue's consumer looked up. nats.go's defaults (30 s, 15 s) would
	// take 30 s to notice.
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
	// orderedResetAttempts bounds the attempts at re-creating a plain
	// subscription's ordered consumer under the same name (nats.go's
	// recovery cycle; its default is without end). The next cycle, at the
	// next missed heartbeat, uses a new name. In a cluster, a consumer
	// re-made just after a server was killed can be placed on that server
	// before the cluster has noticed it is gone; every later attempt at
	// the same name then waits on the dead server, and the subscription
	// delivered nothing more, for good. Three attempts take up to half a
	// minute there (10 s each without an answer, 1 s and 2 s apart).
	orderedResetAttempts = 3
	// closeWait bounds how long Close waits for a queue's pull loop.
	closeWait = 2 * time.Second
	// checkTimeout bounds a look-up of a queue's consumer, to tell
	// whether it is still the one joined.
	checkTimeout = 10 * time.Second
	// removalConfirm is how long a consumer reported not found is given
	// before it counts as removed: a leader election of its replicas takes
	// a few seconds.
	removalConfirm = 10 * time.Second
	// pullRetryWait is the pause before a queue's next pull request after
	// one that ended at once with nothing (refused, or its consumer being
	// deleted or changing leader): short next to a leader election, and
	// no busy loop.
	pullRetryWait = time.Second
	// forgetTimeout bounds the removal of an ended subscription's ordered
	// consumer; one not removed goes after its InactiveThreshold.
	forgetTimeout = 10 * time.Second
	// startRetryWait is the pause between attempts at starting, in the
	// background, a subscription made while the link was down, after one
	// failed for another reason than the link (each is logged).
	startRetryWait = time.Second
)

// sub is a running subscription.
type sub struct {
	l       *Log
	stream  string
	queue   string
	kind    *kind
	subj    string
	o       eventlog.SubOptions
	handler func(*eventlog.Msg)
	name    string // the durable consumer's, for a queue

	closed atomic.Bool
	mu     sync.Mutex
	stop   func() // stops the consumer loop once it runs
	// pulled is closed when a queue's pull loop has ended (nil until it
	// runs); inHandler, while the loop is in the handler.
	pulled    chan struct{}
	inHandler atomic.Bool
	created   time.Time // the queue consumer's, when this subscriber joined it
	// deleted: the server said the queue's consumer was deleted; check:
	// look it up (the link came back, heartbeats were missed).
	deleted atomic.Bool
	check   chan struct{}
	stopped chan struct{} // closed by Close
	// slots holds a token per message of a queue asked for and not yet
	// delivered (a pull request's free room), or delivered to the handler
	// and not yet settled (acked, nakked, or past its AckWait).
	slots chan struct{}
}

// Subscribe starts delivering a stream's messages to handler, on one
// goroutine, in sequence order. Without SubOptions.Queue it is an
// ordered consumer; with it, a durable pull consumer shared by every
// subscriber of that queue. While the link is down it returns the
// subscription at once and starts it when the link is back (a start
// position New or Last is then taken at that time).
func (l *Log) Subscribe(stream string, o eventlog.SubOptions, handler func(*eventlog.Msg)) (eventlog.Subscription, error) {
	if !eventlog.ValidName(stream) {
		return nil, fmt.Errorf("subscribe to %q: %w", stream, eventlog.ErrInvalidName)
	}
	if o.Queue != "" && !eventlog.ValidName(o.Queue) {
		return nil, fmt.Errorf("subscribe to %s: queue %q: %w", stream, o.Queue, eventlog.ErrInvalidName)
	}
	if o.Family && o.Queue != "" {
		return nil, fmt.Errorf("subscribe to the family %s with queue %s: a family has plain subscriptions only: %w", stream, o.Queue, eventlog.ErrUnsupported)
	}
	if l.isClosed() {
		return nil, eventlog.ErrClosed
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	s := &sub{
		l: l, stream: stream, queue: o.Queue, kind: kindOf(stream), subj: subject(stream),
		o: o, handler: handler, check: make(chan struct{}, 1), stopped: make(chan struct{}),
		slots: make(chan struct{}, o.MaxInflight),
	}
	if o.Queue != "" {
		s.name = consumerName(stream, o.Queue)
	}
	later := !l.Connected()
	if !later {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		err := s.start(ctx)
		cancel()
		if err != nil && !errors.Is(err, eventlog.ErrNotConnected) {
			s.Close()
			return nil, fmt.Errorf("subscribe to %s: %w", stream, err)
		}
		later = err != nil // the link went down meanwhile
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		s.Close()
		return nil, eventlog.ErrClosed
	}
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	if o.Queue != "" {
		go s.supervise()
	}
	if later {
		go s.startLater()
	}
	return s, nil
}

// start starts delivery: an ordered consumer, or the pull loop of a
// queue's consumer.
func (s *sub) start(ctx context.Context) error {
	if s.queue == "" {
		return s.startOrdered(ctx)
	}
	return s.l.retry(ctx, s.startQueue)
}

// startLater starts a subscription made while the link was down, once it
// is back, until the subscription is closed.
func (s *sub) startLater() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.l.log.Info("subscribing when the link is back", "stream", s.stream, "queue", s.queue)
	for {
		err := s.start(ctx)
		if err == nil || errors.Is(err, eventlog.ErrClosed) || ctx.Err() != nil {
			return
		}
		s.l.log.Warn("subscription not started; retrying", "stream", s.stream, "queue", s.queue, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(startRetryWait):
		}
	}
}

// consumerName names a queue's durable consumer: readable, and unique
// per stream and queue (JetStream names allow no '.').
func consumerName(stream, queue string) string {
	h := sha256.Sum256([]byte(stream + "\x00" + queue))
	readable := strings.ReplaceAll(queue, ".", "_")
	if len(readable) > 40 {
		readable = readable[:40]
	}
	return "sluice_" + readable + "_" + hex.EncodeToString(h[:6])
}

// startOrdered starts a plain subscription: an ordered consumer. StartNew
// and StartLast are turned into a sequence now, so that the consumer,
// which nats.go re-creates after a fault from the start it was given
// until it delivered a message, does not skip what was published
// meanwhile.
func (s *sub) startOrdered(ctx context.Context) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.subj}, MaxResetAttempts: orderedResetAttempts}
	if s.o.Family {
		// The JetStream stream's own subjects, not the family's: with a
		// filter that is the stream's whole, the server reads the stream
		// unfiltered; with the family's two it matched every message
		// against the subjects of its block (a hundred seconds of CPU
		// in a run of 40,000 invocations). plain drops what is not of
		// the family.
		cfg.FilterSubjects = []string{s.kind.subjects()}
	}
	switch s.o.Start.Kind {
	case eventlog.StartFirst:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case eventlog.StartSeq:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = max(s.o.Start.Seq, 1)
	case eventlog.StartTime:
		t := s.o.Start.Time
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &t
	case eventlog.StartNew, eventlog.StartLast:
		var next uint64
		err := s.l.retry(ctx, func(ctx context.Context) error {
			st, err := s.l.js.Stream(ctx, s.kind.stream)
			if err != nil {
				return err
			}
			next = st.CachedInfo().State.LastSeq + 1
			if s.o.Start.Kind == eventlog.StartLast && s.o.Family {
				last, err := s.l.lastOf(ctx, st, familySubjects(s.stream)...)
				if err != nil {
					return err
				}
				next = max(last, 1)
			} else if s.o.Start.Kind == eventlog.StartLast {
				m, err := st.GetLastMsgForSubject(ctx, s.subj)
				switch {
				case err == nil:
					next = m.Sequence
				case !errors.Is(err, jetstream.ErrMsgNotFound):
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = next
	default:
		return fmt.Errorf("unknown start kind %d", s.o.Start.Kind)
	}
	return s.l.retry(ctx, func(ctx context.Context) error {
		c, err := s.l.js.OrderedConsumer(ctx, s.kind.stream, cfg)
		if err != nil {
			return err
		}
		cc, err := c.Consume(s.plain,
			jetstream.PullMaxMessages(s.o.MaxInflight),
			jetstream.PullExpiry(pullExpiry),
			jetstream.PullHeartbeat(pullHeartbeat),
			jetstream.ConsumeErrHandler(s.consumeErr))
		if err != nil {
			return err
		}
		return s.running(func() {
			cc.Stop()
			s.l.forgetOrdered(s.kind.stream, c)
		}, nil)
	})
}

// forgetOrdered removes an ordered consumer from the server once its
// subscription ends, in the background (Close does not wait for the
// server). Left alone, the server keeps it for its InactiveThreshold (5
// minutes), and a stream takes at most 1,000 consumers by default: a
// burst of short reads (a topic's tail, wf events, a publish read back)
// ran into that limit.
func (l *Log) forgetOrdered(stream string, c jetstream.Consumer) {
	info := c.CachedInfo()
	if info == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), forgetTimeout)
		defer cancel()
		if err := l.js.DeleteConsumer(ctx, stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			l.log.Debug("an ended subscription's consumer stays until the server drops it", "stream", stream, "consumer", info.Name, "err", err)
		}
	}()
}

// running keeps the consumer loop just started, or stops it if the
// subscription was closed meanwhile (it would pull and drop messages).
// pulled, if not nil, is closed when the loop has ended.
func (s *sub) running(stop func(), pulled chan struct{}) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		stop()
		return eventlog.ErrClosed
	}
	s.stop, s.pulled = stop, pulled
	return nil
}

// plain hands a plain subscription's message to the handler.
func (s *sub) plain(m jetstream.Msg) {
	if s.closed.Load() {
		return
	}
	if s.o.Family && !inFamily(m.Subject(), s.subj) {
		return
	}
	em, _ := s.convert(m)
	s.handler(eventlog.NewMsg(em, nil))
}

// convert turns a JetStream message into the contract's.
func (s *sub) convert(m jetstream.Msg) (eventlog.Msg, *jetstream.MsgMetadata) {
	em := eventlog.Msg{Stream: s.stream, Data: m.Data(), Deliveries: 1}
	if s.o.Family {
		em.Stream = streamOf(m.Subject())
	}
	md, err := m.Metadata()
	if err == nil {
		em.Sequence = md.Sequence.Stream
		em.Time = md.Timestamp
	}
	if h := m.Headers(); len(h) > 0 {
		for k, vs := range h {
			if k == jetstream.MsgIDHeader {
				v := h.Get(k)
				if id, ok := strings.CutPrefix(v, em.Stream+":"); ok {
					em.ID = id
				} else if !strings.HasPrefix(v, "!") { // not one of Publish's own (ownID)
					em.ID = v
				}
				continue
			}
			if len(vs) > 0 {
				if em.Header == nil {
					em.Header = make(map[string]string, len(h))
				}
				em.Header[k] = vs[0]
			}
		}
	}
	return em, md
}

// queueConfig is the durable consumer of a queue, as it is created.
func (s *sub) queueConfig() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       s.name,
		Description:   fmt.Sprintf("sluice queue %s on stream %s", s.queue, s.stream),
		FilterSubject: s.subj,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.o.AckWait,
		MaxAckPending: s.ackPending(),
		// sluice counts deliveries itself and sends a message that failed
		// too often to the error topic: the server never gives up on one.
		MaxDeliver: -1,
		Replicas:   s.l.opts.Replicas,
	}
	switch s.o.Start.Kind {
	case eventlog.StartFirst:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case eventlog.StartLast:
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	case eventlog.StartSeq:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = max(s.o.Start.Seq, 1)
	case eventlog.StartTime:
		t := s.o.Start.Time
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &t
	default:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	return cfg
}

// startQueue finds or creates the queue's durable consumer and starts
// pulling from it. An existing consumer keeps where it is; its AckWait
// and MaxAckPending follow this subscriber's.
func (s *sub) startQueue(ctx context.Context) error {
	c, err := s.l.js.Consumer(ctx, s.kind.stream, s.name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		c, err = s.l.js.CreateConsumer(ctx, s.kind.stream, s.queueConfig())
		if errors.Is(err, jetstream.ErrConsumerExists) { // another subscriber was first
			c, err = s.l.js.Consumer(ctx, s.kind.stream, s.name)
		}
		if err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		cfg := c.CachedInfo().Config
		if cfg.AckWait != s.o.AckWait || cfg.MaxAckPending < s.ackPending() {
			cfg.AckWait, cfg.MaxAckPending = s.o.AckWait, s.ackPending()
			if u, err := s.l.js.UpdateConsumer(ctx, s.kind.stream, cfg); err != nil {
				s.l.log.Warn("queue keeps its AckWait and MaxInflight", "stream", s.stream, "queue", s.queue, "err", err)
			} else {
				c = u
			}
		}
	}
	s.mu.Lock()
	s.created = c.CachedInfo().Created
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	pulled := make(chan struct{})
	if err := s.running(cancel, pulled); err != nil {
		return err
	}
	go func() {
		defer close(pulled)
		s.pull(ctx, c)
	}()
	return nil
}

// pull is a queue subscription's consumer loop: it asks the server for
// as many messages as the subscriber has free slots (at least one), hands
// each to the handler as it comes, and asks again when the request is
// filled or expires. A subscriber never holds a message it has no slot
// for: a message the server hands out goes to a subscriber that can start
// it now, so a busy or stalled subscriber (its function still compiling,
// its calls slow) leaves the queue to the others, and a message does not
// age against its AckWait in a client's buffer (nats.go's Consume keeps a
// batch requested ahead of the handler: see docs/RATIONALE.md).
func (s *sub) pull(ctx context.Context, c jetstream.Consumer) {
	for {
		n, ok := s.reserve(ctx)
		if !ok {
			return
		}
		fctx, cancel := context.WithTimeout(ctx, pullExpiry)
		began, got := time.Now(), 0
		batch, err := c.Fetch(n, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(pullHeartbeat))
		if err == nil {
			for m := range batch.Messages() {
				got++
				s.queued(m)
			}
			err = batch.Error()
		}
		cancel()
		s.unreserve(n - got)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil || errors.Is(err, context.DeadlineExceeded):
			// filled, or expired (the server's 408 or fctx's deadline)
		case transient(err):
			if s.l.WaitUp(ctx) != nil {
				return
			}
		default:
			// missed heartbeats (a request lost with the link or the
			// server; the next one goes at once), a consumer deleted, a
			// leader being elected
			s.consumeErr(nil, err)
		}
		if got == 0 && time.Since(began) < pullHeartbeat {
			// ended at once with nothing: asking again at once would spin
			select {
			case <-ctx.Done():
				return
			case <-time.After(pullRetryWait):
			}
		}
	}
}

// reserve waits for a free slot and takes every free one, for a pull
// request of that many messages. false: the subscription was closed.
func (s *sub) reserve(ctx context.Context) (int, bool) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	n := 1
	for {
		select {
		case s.slots <- struct{}{}:
			n++
		default:
			return n, true
		}
	}
}

// unreserve frees the slots of a pull request that delivered fewer
// messages than it asked for.
func (s *sub) unreserve(n int) {
	for range n {
		<-s.slots
	}
}

// ackPending is the MaxAckPending of the queue's consumer.
func (s *sub) ackPending() int { return max(queueAckPending, 16*s.o.MaxInflight) }

// queued hands a queue subscription's message, for which pull holds a
// slot, to the handler, and acks it when the handler returns unless
// ManualAck.
func (s *sub) queued(m jetstream.Msg) {
	if s.closed.Load() {
		s.giveBack(m)
		<-s.slots
		return
	}
	em, md := s.convert(m)
	if md != nil {
		em.Deliveries = int(md.NumDelivered)
	}
	// The slot is freed when the message is settled, or when its AckWait
	// passes unsettled: the server then delivers it again, and this
	// subscriber must have room to take it.
	a := &acker{m: m, free: func() { <-s.slots }}
	a.mu.Lock()
	a.timer = time.AfterFunc(s.o.AckWait, a.release)
	a.mu.Unlock()
	s.inHandler.Store(true)
	s.handler(eventlog.NewMsg(em, a))
	s.inHandler.Store(false)
	if !s.o.ManualAck {
		if err := a.Ack(); err != nil {
			s.l.log.Debug("ack failed; the message will be delivered again", "stream", s.stream, "queue", s.queue, "seq", em.Sequence, "err", err)
		}
	}
}

// giveBack returns to the queue at once a message that reached a
// subscription closed meanwhile (its pull request was in flight), rather
// than after its AckWait.
func (s *sub) giveBack(m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		s.l.log.Debug("nak of a message dropped at close failed; it comes back after its AckWait", "stream", s.stream, "queue", s.queue, "err", err)
	}
}

// acker settles a queue subscription's message and frees its slot.
type acker struct {
	m    jetstream.Msg
	free func()

	mu    sync.Mutex
	timer *time.Timer
	done  bool
}

func (a *acker) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	a.timer.Stop()
	a.free()
}

func (a *acker) Ack() error {
	defer a.release()
	return a.m.Ack()
}

func (a *acker) Nak(delay time.Duration) error {
	defer a.release()
	if delay <= 0 {
		return a.m.Nak()
	}
	return a.m.NakWithDelay(delay)
}

// consumeErr takes what nats.go reports about a consumer; nats.go deals
// with the link (re-issuing pull requests, re-creating ordered
// consumers). A queue's consumer deleted on the server (another
// subscriber's Unsubscribe, a Log.Delete) ends the subscription: the queue
// is gone, and re-creating it would start it afresh, from Start. Other
// errors (missed heartbeats among them) have the consumer looked up, for
// one deleted while the link was down: nats.go cannot tell that.
func (s *sub) consumeErr(_ jetstream.ConsumeContext, err error) {
	if s.closed.Load() || errors.Is(err, nats.ErrConnectionClosed) {
		return
	}
	if s.queue != "" {
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			s.deleted.Store(true)
		}
		s.poke()
	}
	s.l.log.Debug("consumer error", "stream", s.stream, "queue", s.queue, "err", err)
}

// poke has a queue subscription check that its consumer is still there.
func (s *sub) poke() {
	select {
	case s.check <- struct{}{}:
	default:
	}
}

// supervise ends a queue subscription whose consumer is gone from the
// server, or was replaced by a new queue of the same name (created after
// a deletion this subscriber missed).
func (s *sub) supervise() {
	for {
		select {
		case <-s.stopped:
			return
		case <-s.check:
		}
		if s.deleted.Load() {
			s.removed("its consumer was deleted on the server")
			return
		}
		s.mu.Lock()
		joined := s.created
		s.mu.Unlock()
		if joined.IsZero() {
			continue // not started yet (see startLater)
		}
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		c, err := s.l.js.Consumer(ctx, s.kind.stream, s.name)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound) && s.goneAgain():
			s.removed("its consumer is gone from the server")
			return
		case err != nil: // the next missed heartbeat or reconnect asks again
			s.l.log.Debug("queue consumer look-up failed", "stream", s.stream, "queue", s.queue, "err", err)
		case !c.CachedInfo().Created.Equal(joined):
			s.removed("its consumer was deleted and a new queue of the same name created")
			return
		}
	}
}

// goneAgain looks the queue's consumer up again after removalConfirm:
// in a cluster, a consumer whose leader was just lost is reported not
// found until its replicas elect another (seen: both surviving daemons of
// three ended their queue subscriptions when the third was killed).
func (s *sub) goneAgain() bool {
	select {
	case <-time.After(removalConfirm):
	case <-s.stopped:
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	_, err := s.l.js.Consumer(ctx, s.kind.stream, s.name)
	return errors.Is(err, jetstream.ErrConsumerNotFound)
}

// removed ends a subscription whose queue was removed on the server.
func (s *sub) removed(why string) {
	if s.closed.Load() {
		return
	}
	s.l.log.Warn("queue removed by another subscriber's Unsubscribe or a Delete; this subscription ends",
		"stream", s.stream, "queue", s.queue, "consumer", s.name, "why", why)
	s.Close()
}

// Close stops delivery; a queue's consumer stays on the server.
func (s *sub) Close() error {
	// under mu: a consumer loop started meanwhile (running) sees it
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	close(s.stopped)
	if s.stop != nil {
		s.stop()
	}
	pulled := s.pulled
	s.mu.Unlock()
	s.l.mu.Lock()
	delete(s.l.subs, s)
	s.l.mu.Unlock()
	// A queue's pull request in flight is ended by its fetch, which
	// unsubscribes the request's inbox on a goroutine of its own: wait
	// for it, so that the server, which drops a request nobody listens
	// to, gives what comes next to another subscriber rather than to this
	// one (where it would wait out its AckWait, counted as delivered).
	// Not from inside the handler, whose return the loop waits for, and
	// not for long.
	if pulled != nil && !s.inHandler.Load() {
		select {
		case <-pulled:
		case <-time.After(closeWait):
		}
	}
	return nil
}

// Unsubscribe stops delivery and deletes a queue's consumer.
func (s *sub) Unsubscribe() error {
	s.Close()
	if s.queue == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	err := s.l.retry(ctx, func(ctx context.Context) error {
		err := s.l.js.DeleteConsumer(ctx, s.kind.stream, s.name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("unsubscribe queue %s of %s: %w", s.queue, s.stream, err)
	}
	return nil
}
