package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/stan.go"
	"github.com/nats-io/stan.go/pb"
)

// Start says where a new subscription starts in its channel.
type Start struct {
	kind  pb.StartPosition
	seq   uint64
	at    time.Time
	delta time.Duration
}

// Start positions.
var (
	// StartNew delivers only messages published after subscribing.
	StartNew = Start{kind: pb.StartPosition_NewOnly}
	// StartAll delivers every message the channel holds, then new ones.
	StartAll = Start{kind: pb.StartPosition_First}
	// StartLast delivers the last message stored, then new ones.
	StartLast = Start{kind: pb.StartPosition_LastReceived}
)

// StartAt starts at a sequence number.
func StartAt(seq uint64) Start { return Start{kind: pb.StartPosition_SequenceStart, seq: seq} }

// StartSince starts with the messages of the last d.
func StartSince(d time.Duration) Start { return Start{kind: pb.StartPosition_TimeDeltaStart, delta: d} }

// StartTime starts with the messages stored since t.
func StartTime(t time.Time) Start { return Start{kind: pb.StartPosition_TimeDeltaStart, at: t} }

// SubOptions configure a subscription.
type SubOptions struct {
	// Queue makes it a queue subscription: members of the group share the
	// messages.
	Queue string
	// Durable makes the server remember the subscription's position across
	// reconnects and restarts.
	Durable string
	// Start is where a new subscription begins (ignored by a durable the
	// server already knows).
	Start Start
	// ManualAck makes the handler responsible for Msg.Ack.
	ManualAck bool
	// AckWait is how long the server waits for an ack before redelivering.
	AckWait time.Duration
	// MaxInflight bounds messages delivered and not yet acked.
	MaxInflight int
}

// Sub is a subscription that survives reconnection. A non-durable one
// resumes right after the last message it received; a durable one where
// the server says.
type Sub struct {
	c       *Conn
	subject string
	opts    SubOptions
	handler func(*Msg)

	mu      sync.Mutex
	sub     stan.Subscription
	closed  bool
	lastSeq atomic.Uint64
}

// Subscribe subscribes to subject. The handler runs on one goroutine per
// subscription, in delivery order. While the connection is down the
// subscription is resumed when it comes back.
func (c *Conn) Subscribe(subject string, opts SubOptions, handler func(*Msg)) (*Sub, error) {
	s := &Sub{c: c, subject: subject, opts: opts, handler: handler}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	err := s.attach()
	// The NATS link may be down under a streaming client that is still
	// up: the subscription request cannot be sent (there is no reconnect
	// buffer), and the client may never be declared lost (the server can
	// come back before its pings run out), so the reconnect loop would not
	// resume it. Wait for the link, as Publish does, for as long as one
	// connection attempt may take.
	for deadline := time.Now().Add(c.opts.ConnectWait); err != nil && retryable(err) && time.Now().Before(deadline); {
		select {
		case <-c.done:
			err = ErrClosed
		case <-time.After(25 * time.Millisecond):
			err = s.attach()
		}
	}
	if err != nil {
		if err == ErrNotConnected {
			return s, nil // resumed by the reconnect loop
		}
		if retryable(err) {
			// The outage outlasted the wait (a subscribe request in flight
			// when the server went away waits out the whole ConnectWait):
			// resume it in the background, as the reconnect loop does.
			c.log.Warn("subscription not made yet; retrying in the background", "subject", subject, "err", err)
			c.retryAttach(s)
			return s, nil
		}
		c.mu.Lock()
		delete(c.subs, s)
		c.mu.Unlock()
		return nil, outage(err)
	}
	return s, nil
}

// attach subscribes on the current streaming client.
func (s *Sub) attach() error {
	sc, err := s.c.current(nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.sub != nil {
		return nil
	}
	o := []stan.SubscriptionOption{}
	start := s.opts.Start
	if last := s.lastSeq.Load(); last > 0 && s.opts.Durable == "" {
		start = StartAt(last + 1)
	}
	switch start.kind {
	case pb.StartPosition_First:
		o = append(o, stan.DeliverAllAvailable())
	case pb.StartPosition_LastReceived:
		o = append(o, stan.StartWithLastReceived())
	case pb.StartPosition_SequenceStart:
		o = append(o, stan.StartAtSequence(start.seq))
	case pb.StartPosition_TimeDeltaStart:
		if !start.at.IsZero() {
			o = append(o, stan.StartAtTime(start.at))
		} else {
			o = append(o, stan.StartAtTimeDelta(start.delta))
		}
	}
	if s.opts.Durable != "" {
		o = append(o, stan.DurableName(s.opts.Durable))
	}
	if s.opts.ManualAck {
		o = append(o, stan.SetManualAckMode())
	}
	if s.opts.AckWait > 0 {
		o = append(o, stan.AckWait(s.opts.AckWait))
	}
	if s.opts.MaxInflight > 0 {
		o = append(o, stan.MaxInflight(s.opts.MaxInflight))
	}
	cb := func(m *stan.Msg) {
		s.lastSeq.Store(m.Sequence)
		s.handler(m)
	}
	var sub stan.Subscription
	if s.opts.Queue != "" {
		sub, err = sc.QueueSubscribe(s.subject, s.opts.Queue, cb, o...)
	} else {
		sub, err = sc.Subscribe(s.subject, cb, o...)
	}
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", s.subject, err)
	}
	s.sub = sub
	return nil
}

// detach forgets the subscription of a lost client.
func (s *Sub) detach() {
	s.mu.Lock()
	s.sub = nil
	s.mu.Unlock()
}

func (s *Sub) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops delivery. A durable subscription stays registered on the
// server and resumes where it left off when subscribed again.
func (s *Sub) Close() error { return s.end(false) }

// Unsubscribe stops delivery and, for a durable subscription, makes the
// server forget it.
func (s *Sub) Unsubscribe() error { return s.end(true) }

func (s *Sub) end(unsubscribe bool) error {
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.sub == nil {
		return nil
	}
	var err error
	if unsubscribe {
		err = s.sub.Unsubscribe()
	} else {
		err = s.sub.Close()
	}
	s.sub = nil
	return err
}
