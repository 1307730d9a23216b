package memlog

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// sub is a subscription: one goroutine that takes the next message from
// the broker and runs the handler, so that there is nothing buffered
// ahead of it. Its state is guarded by the broker's lock.
type sub struct {
	c       *conn
	stream  *stream
	queue   *queue // nil for a plain subscription
	family  bool   // a plain subscription to stream's family
	handler func(*eventlog.Msg)

	manualAck   bool
	ackWait     time.Duration
	maxInflight int

	next     uint64 // a plain subscription's next sequence
	inflight int    // queue messages held (see pending.holder)
	ended    bool
	stop     chan struct{} // closed when ended
}

// Subscribe starts a subscription. A plain one's start is resolved now,
// even while the link is down; a queue's when the queue is created.
func (c *conn) Subscribe(stream string, o eventlog.SubOptions, handler func(*eventlog.Msg)) (eventlog.Subscription, error) {
	if !eventlog.ValidName(stream) {
		return nil, fmt.Errorf("subscribe to %q: %w", stream, eventlog.ErrInvalidName)
	}
	if o.Queue != "" && !eventlog.ValidName(o.Queue) {
		return nil, fmt.Errorf("subscribe to %s with queue %q: %w", stream, o.Queue, eventlog.ErrInvalidName)
	}
	if handler == nil {
		return nil, fmt.Errorf("subscribe to %s: no handler", stream)
	}
	if o.Family && o.Queue != "" {
		return nil, fmt.Errorf("subscribe to the family %s with queue %s: a family has plain subscriptions only: %w", stream, o.Queue, eventlog.ErrUnsupported)
	}
	s := &sub{c: c, handler: handler, family: o.Family, manualAck: o.ManualAck, ackWait: o.AckWait, maxInflight: o.MaxInflight, stop: make(chan struct{})}
	if s.ackWait <= 0 {
		s.ackWait = DefaultAckWait
	}
	if s.maxInflight <= 0 {
		s.maxInflight = DefaultMaxInflight
	}
	b := c.b
	b.mu.Lock()
	if c.closed {
		b.mu.Unlock()
		return nil, fmt.Errorf("subscribe to %s: %w", stream, eventlog.ErrClosed)
	}
	s.stream = b.streamLocked(stream)
	switch {
	case o.Queue != "":
		s.queue = b.queueLocked(s.stream, o.Queue, o.Start)
	case o.Family:
		s.next = b.familyStartLocked(stream, o.Start)
	default:
		s.next = b.startLocked(s.stream, o.Start)
	}
	c.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.run()
	return s, nil
}

// run delivers messages until the subscription ends.
func (s *sub) run() {
	b := s.c.b
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if s.ended {
			b.mu.Unlock()
			return
		}
		if !s.c.up {
			up := s.c.upCh
			b.mu.Unlock()
			select {
			case <-up:
			case <-s.stop:
			}
			continue
		}
		m, wake := s.takeLocked()
		changed := s.stream.changed
		if s.family {
			changed = b.changed
		}
		b.mu.Unlock()
		if m != nil {
			s.handler(m)
			if s.queue != nil && !s.manualAck {
				m.Ack() // a failed ack (link down) means a redelivery: at least once
			}
			continue
		}
		var due <-chan time.Time
		if !wake.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(wake))
			} else {
				timer.Reset(time.Until(wake))
			}
			due = timer.C
		}
		select {
		case <-changed:
		case <-due:
		case <-s.stop:
		}
		if due != nil {
			timer.Stop() // since Go 1.23 no stale tick is left to drain
		}
	}
}

// takeLocked returns the next message to hand to the handler, or nil and
// when to look again (zero: when the stream changes).
func (s *sub) takeLocked() (*eventlog.Msg, time.Time) {
	if s.family {
		st := s.c.b.familyFromLocked(s.stream.name, s.next)
		if st == nil {
			return nil, time.Time{}
		}
		s.next = st.seq + 1
		return eventlog.NewMsg(s.msg(st, 1), nil), time.Time{}
	}
	if s.queue == nil {
		st := s.stream.fromLocked(s.next)
		if st == nil {
			return nil, time.Time{}
		}
		s.next = st.seq + 1
		return eventlog.NewMsg(s.msg(st, 1), nil), time.Time{}
	}
	p, wake := s.queue.takeLocked(s, time.Now())
	if p == nil {
		return nil, wake
	}
	return eventlog.NewMsg(s.msg(p.msg, p.deliveries), &acker{c: s.c, q: s.queue, seq: p.msg.seq}), time.Time{}
}

// msg makes a delivered message of a stored one, with copies of what a
// handler may change.
func (s *sub) msg(st *stored, deliveries int) eventlog.Msg {
	m := eventlog.Msg{
		Stream: st.stream.name, Sequence: st.seq, Time: st.time,
		Data: clone(st.data), ID: st.id, Deliveries: deliveries,
	}
	if st.header != nil {
		m.Header = make(map[string]string, len(st.header))
		for k, v := range st.header {
			m.Header[k] = v
		}
	}
	return m
}

// releaseLocked lets go of the queue messages the subscriber holds: they
// stay pending and come back when due.
func (s *sub) releaseLocked() {
	if s.queue == nil || s.inflight == 0 {
		return
	}
	for _, p := range s.queue.pending {
		if p.holder == s {
			p.setHolderLocked(nil)
		}
	}
}

// Close stops delivery; the queue stays.
func (s *sub) Close() error {
	s.c.b.mu.Lock()
	defer s.c.b.mu.Unlock()
	s.endLocked(false)
	return nil
}

// Unsubscribe stops delivery and removes the queue from the broker: its
// other subscribers, if any, stop receiving too.
func (s *sub) Unsubscribe() error {
	s.c.b.mu.Lock()
	defer s.c.b.mu.Unlock()
	s.endLocked(true)
	return nil
}

// endLocked ends the subscription. It does not wait for a handler that is
// running (it may be the caller).
func (s *sub) endLocked(unsubscribe bool) {
	if !s.ended {
		s.ended = true
		close(s.stop)
		delete(s.c.subs, s)
		if s.queue != nil {
			s.releaseLocked()
			s.stream.notifyLocked()
		}
	}
	if unsubscribe && s.queue != nil && !s.queue.removed {
		s.queue.removeLocked()
		s.stream.notifyLocked()
	}
}
