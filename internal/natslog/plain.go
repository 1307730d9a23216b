package natslog

import (
	"sync"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// plain is a plain subscription: it delivers each message of its stream
// once, in order, from where it started.
//
// The server delivers a channel's messages in order and sends again
// those its subscriber has not acked within AckWait (the handler was that
// slow). A sequence already delivered is dropped. When the link drops and
// comes back before the client gives the server up (its pings, about
// 3 s), the messages the server sent meanwhile are lost in flight, and
// the next one arrives first, past a gap: a channel's sequences are
// consecutive, so the subscription starts again from the sequence it
// expected, on a fresh subscription that delivers the missing messages in
// order (the server sends the lost ones only after AckWait, 30 s, and
// after messages newer than them). The first message of a fresh
// subscription is taken as it comes: where it starts later than asked,
// the store aged the messages before it out. A subscription from a
// sequence expects that one first; a subscription from elsewhere, any.
// A gap costs one more subscription's round trip.
type plain struct {
	l       *Log
	stream  string
	so      broker.SubOptions
	handler func(*eventlog.Msg)

	mu     sync.Mutex
	sub    *broker.Sub
	gen    int    // sub's generation: messages of an older one are dropped
	next   uint64 // the sequence expected next; 0: any
	closed bool
}

func (l *Log) subscribePlain(stream string, so broker.SubOptions, from uint64, handler func(*eventlog.Msg)) (eventlog.Subscription, error) {
	p := &plain{l: l, stream: stream, so: so, handler: handler, next: from}
	p.mu.Lock()
	defer p.mu.Unlock()
	sub, err := l.c.Subscribe(stream, so, p.receive(0, false))
	if err != nil {
		return nil, err
	}
	p.sub = sub
	return p, nil
}

// receive returns the handler of a generation's subscription; fresh
// tells that its first message is taken as it comes. Each generation's
// messages come on one goroutine, in order; a generation starts within
// its predecessor's handler, after the last message it delivered.
func (p *plain) receive(gen int, fresh bool) func(*broker.Msg) {
	return func(m *broker.Msg) {
		p.mu.Lock()
		if p.closed || gen != p.gen {
			p.mu.Unlock()
			return
		}
		want := p.next
		switch {
		case want != 0 && m.Sequence < want:
			p.mu.Unlock()
			return // delivered already
		case want != 0 && m.Sequence > want && !fresh:
			if old := p.restart(want); old != nil {
				p.mu.Unlock()
				old.Close()
				return
			}
			// could not subscribe again: deliver what came
		}
		fresh = false
		p.next = m.Sequence + 1
		p.mu.Unlock()
		p.handler(eventlog.NewMsg(msg(m), nil))
	}
}

// restart subscribes again from a sequence (under p.mu) and returns the
// subscription it replaces, to be closed; nil if it could not.
func (p *plain) restart(from uint64) *broker.Sub {
	so := p.so
	so.Start = broker.StartAt(from)
	sub, err := p.l.c.Subscribe(p.stream, so, p.receive(p.gen+1, true))
	if err != nil {
		return nil
	}
	old := p.sub
	p.gen++
	p.sub = sub
	return old
}

// Close implements eventlog.Subscription.
func (p *plain) Close() error { return p.end().Close() }

// Unsubscribe implements eventlog.Subscription.
func (p *plain) Unsubscribe() error { return p.end().Unsubscribe() }

func (p *plain) end() *broker.Sub {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return p.sub
}
