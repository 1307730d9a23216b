package memlog

import (
	"fmt"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// queue is a durable queue subscription as the broker keeps it: how far
// it has gone in its stream and the messages delivered and not yet acked,
// with their delivery counts. It outlives its subscribers.
type queue struct {
	name   string
	stream *stream
	// next is the first sequence not yet delivered to the queue: every
	// message below it was delivered at least once, and is acked unless it
	// is in pending.
	next    uint64
	pending map[uint64]*pending
	removed bool // deleted with its stream, or unsubscribed
}

// pending is a message delivered to a queue and not acked.
type pending struct {
	msg        *stored
	deliveries int
	// due is when it may be delivered again: its AckWait after the last
	// delivery, or the delay of a nak.
	due time.Time
	// holder is the subscriber it was last delivered to and that has not
	// settled it, nil after a nak or once the holder is gone. A holder's
	// inflight counts the messages it holds.
	holder *sub
}

func (p *pending) setHolderLocked(s *sub) {
	if p.holder != nil {
		p.holder.inflight--
	}
	p.holder = s
	if s != nil {
		s.inflight++
	}
}

// queueLocked returns the queue named name on a stream, creating it at
// start if there is none.
func (b *Broker) queueLocked(s *stream, name string, start eventlog.Start) *queue {
	q := s.queues[name]
	if q == nil {
		q = &queue{name: name, stream: s, next: b.startLocked(s, start), pending: map[uint64]*pending{}}
		s.queues[name] = q
	}
	return q
}

// removeLocked forgets the queue: its subscribers stop receiving and its
// pending messages are never delivered again.
func (q *queue) removeLocked() {
	for _, p := range q.pending {
		p.setHolderLocked(nil)
	}
	q.pending = nil
	q.removed = true
	if q.stream.queues[q.name] == q {
		delete(q.stream.queues, q.name)
	}
}

// takeLocked picks the next message of the queue for subscriber s: the
// oldest one due again, else the next new one. A subscriber holding
// MaxInflight messages gets only those of them that fall due again. With
// nothing to deliver it returns nil and when something falls due (zero:
// only a change of the stream will tell).
func (q *queue) takeLocked(s *sub, now time.Time) (*pending, time.Time) {
	if q.removed {
		return nil, time.Time{}
	}
	full := s.inflight >= s.maxInflight
	var (
		due  *pending
		wake time.Time
	)
	for _, p := range q.pending {
		if full && p.holder != s {
			continue // an ack or a nak frees a slot, and notifies
		}
		if !p.due.After(now) {
			if due == nil || p.msg.seq < due.msg.seq {
				due = p
			}
		} else if wake.IsZero() || p.due.Before(wake) {
			wake = p.due
		}
	}
	p := due
	if p == nil {
		if full {
			return nil, wake
		}
		m := q.stream.fromLocked(q.next)
		if m == nil {
			return nil, wake
		}
		q.next = m.seq + 1
		p = &pending{msg: m}
		q.pending[m.seq] = p
	}
	p.deliveries++
	p.due = now.Add(s.ackWait)
	p.setHolderLocked(s)
	return p, time.Time{}
}

// acker settles one delivery of a queue message.
type acker struct {
	c   *conn
	q   *queue
	seq uint64
}

// Ack removes the message from the queue's pending ones.
func (a *acker) Ack() error {
	return a.settle("ack", func(q *queue, p *pending) {
		p.setHolderLocked(nil)
		delete(q.pending, a.seq)
	})
}

// Nak makes the message due again after delay.
func (a *acker) Nak(delay time.Duration) error {
	if delay < 0 {
		delay = 0
	}
	return a.settle("nak", func(_ *queue, p *pending) {
		p.setHolderLocked(nil)
		p.due = time.Now().Add(delay)
	})
}

func (a *acker) settle(what string, f func(*queue, *pending)) error {
	b := a.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.c.closed {
		return fmt.Errorf("%s message %d of %s: %w", what, a.seq, a.q.stream.name, eventlog.ErrClosed)
	}
	if !a.c.up {
		return fmt.Errorf("%s message %d of %s: %w (it will be delivered again after its AckWait)", what, a.seq, a.q.stream.name, eventlog.ErrNotConnected)
	}
	if p := a.q.pending[a.seq]; p != nil {
		// acked already, or the queue is gone, otherwise
		f(a.q, p)
		a.q.stream.notifyLocked()
	}
	return nil
}
