// Package memlog is an in-memory implementation of the event-log contract
// (package eventlog), for tests of logic that needs a log but not a
// server: the engine's fold and replay, the catalog, a trigger's
// redelivery rules.
//
// A Broker plays the server: it holds the streams, the durable queues with
// their delivery counts, the de-duplication window and the blobs, for as
// long as it lives. Connect returns a connection to it (an eventlog.Log);
// several connections to one Broker behave as several processes sharing a
// broker: they share queues and see each other's messages.
//
// It claims every feature of the contract (de-duplication within a window,
// negative acks with a delay, delivery counts that survive a restart,
// headers, Delete, families) and passes the conformance suite in
// eventlog/eventlogtest. Like JetStream, it numbers the messages of every
// stream in one sequence, so a stream's sequences have gaps: code that
// assumes consecutive sequences fails on it as it would on JetStream; and
// like JetStream it reads a family of streams in that one order.
//
// Restart and Cut take connections down and let them come back by
// themselves, so that code can be tested against a lost connection:
// publishing waits, PublishAsync and acks fail with
// eventlog.ErrNotConnected, unacked queue messages come back after their
// AckWait, and subscriptions resume where they were.
package memlog

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// Defaults of a Broker. Each matches the brokers sluice runs on, so that
// code tested on memory meets the same bounds in production.
const (
	// DefaultMaxPayload is the largest message: NATS's default max payload
	// (1 MiB), which bounds messages on both NATS Streaming and JetStream.
	DefaultMaxPayload = 1 << 20
	// DefaultDedupWindow is how long a message ID is remembered:
	// JetStream's default duplicate window.
	DefaultDedupWindow = 2 * time.Minute
	// DefaultReconnectDelay is how long a connection stays down after
	// Restart, at least (at most twice that): long enough that a test can
	// see it down, short enough not to slow a suite that restarts often.
	DefaultReconnectDelay = 20 * time.Millisecond
	// DefaultAckWait is how long a queue waits for an ack when
	// SubOptions.AckWait is zero (the contract's default).
	DefaultAckWait = 30 * time.Second
	// DefaultMaxInflight bounds a queue subscriber's unacked messages when
	// SubOptions.MaxInflight is zero: NATS Streaming's default.
	DefaultMaxInflight = 1024
)

// Option configures a Broker.
type Option func(*Broker)

// WithMaxPayload sets the largest Message.Data the broker accepts
// (Features.MaxPayload). n <= 0 keeps DefaultMaxPayload.
func WithMaxPayload(n int) Option {
	return func(b *Broker) {
		if n > 0 {
			b.maxPayload = n
		}
	}
}

// WithDedupWindow sets how long a message ID is remembered for
// de-duplication (Features.DedupWindow). d <= 0 keeps DefaultDedupWindow.
func WithDedupWindow(d time.Duration) Option {
	return func(b *Broker) {
		if d > 0 {
			b.dedupWindow = d
		}
	}
}

// WithReconnectDelay sets how long connections stay down after Restart
// (one to two times d, each its own).
// d <= 0 keeps DefaultReconnectDelay.
func WithReconnectDelay(d time.Duration) Option {
	return func(b *Broker) {
		if d > 0 {
			b.reconnectDelay = d
		}
	}
}

// Broker is an in-memory broker: the server side of memlog. Its methods
// are safe for concurrent use.
type Broker struct {
	maxPayload     int
	dedupWindow    time.Duration
	reconnectDelay time.Duration

	// mu guards everything below and the state of every connection and
	// subscription of the broker: one lock, never held while a handler or
	// a done callback runs.
	mu      sync.Mutex
	seq     uint64 // the last sequence given, to any stream
	streams map[string]*stream
	// all holds every message of every stream in sequence order, for
	// family subscriptions; a deleted stream's messages are marked gone
	// and dropped once they are half of it.
	all  []*stored
	gone int
	// changed is closed (and replaced) when any stream changes: family
	// subscriptions wait on it.
	changed chan struct{}
	blobs   map[string][]byte
	conns   map[*conn]struct{}
}

// NewBroker returns an empty broker.
func NewBroker(opts ...Option) *Broker {
	b := &Broker{
		maxPayload:     DefaultMaxPayload,
		dedupWindow:    DefaultDedupWindow,
		reconnectDelay: DefaultReconnectDelay,
		streams:        map[string]*stream{},
		blobs:          map[string][]byte{},
		conns:          map[*conn]struct{}{},
		changed:        make(chan struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Features returns what the broker's connections claim.
func (b *Broker) Features() eventlog.Features {
	return eventlog.Features{
		Sequences:         true,
		Name:              "memory",
		Dedup:             true,
		DedupWindow:       b.dedupWindow,
		Nak:               true,
		DurableDeliveries: true,
		Headers:           true,
		Delete:            true,
		Families:          true,
		MaxPayload:        b.maxPayload,

		UnsubscribeEndsQueue: true,
	}
}

// Restart simulates a restart of the server: every open connection loses
// its link at once and re-establishes it by itself after one to two
// reconnect delays (WithReconnectDelay). What the broker holds is kept: messages,
// queues with their acks and delivery counts, blobs. Messages delivered to
// a queue and not acked are delivered again after their AckWait.
func (b *Broker) Restart() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		// with jitter, as clients of a real broker: the connections come
		// back one after the other, and one may publish before another
		// has resumed its subscriptions
		c.dropLocked(b.reconnectDelay + rand.N(b.reconnectDelay))
	}
}

// Cut drops the link of one connection (a Log returned by this broker's
// Connect) for d; it re-establishes it by itself. Cutting a connection
// that is down already extends the outage to d from now. It panics if l
// is not a connection to this broker.
func (b *Broker) Cut(l eventlog.Log, d time.Duration) {
	c, ok := l.(*conn)
	if !ok || c.b != b {
		panic("memlog: Cut of a Log that is not a connection to this broker")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c.dropLocked(d)
}

// Connections returns the number of open connections.
func (b *Broker) Connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// stream is a named stream: its messages in sequence order, its
// de-duplication window and its durable queues.
type stream struct {
	name   string
	msgs   []*stored
	ids    map[string]*stored // message ID -> the message stored under it
	window []*stored          // the messages with an ID, oldest first
	queues map[string]*queue
	// changed is closed (and replaced) whenever a subscriber of the stream
	// may find something new to deliver: a message, an ack, a nak, a
	// subscriber gone, a deletion.
	changed chan struct{}
}

// stored is a message as the broker keeps it.
type stored struct {
	stream *stream
	gone   bool // its stream was deleted
	seq    uint64
	time   time.Time
	data   []byte
	id     string
	header map[string]string
}

// streamLocked returns the stream named name, making an empty one if
// there is none.
func (b *Broker) streamLocked(name string) *stream {
	s := b.streams[name]
	if s == nil {
		s = &stream{name: name, ids: map[string]*stored{}, queues: map[string]*queue{}, changed: make(chan struct{})}
		b.streams[name] = s
	}
	return s
}

// notifyLocked wakes every subscriber waiting on the stream.
func (s *stream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// notifyFamiliesLocked wakes every family subscriber.
func (b *Broker) notifyFamiliesLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// inFamily tells whether a stream belongs to the family named prefix.
func inFamily(name, prefix string) bool {
	return name == prefix || len(name) > len(prefix) && name[len(prefix)] == '.' && name[:len(prefix)] == prefix
}

// familyFromLocked returns the first message of the family named prefix
// with a sequence at least seq, nil if there is none.
func (b *Broker) familyFromLocked(prefix string, seq uint64) *stored {
	i, _ := slices.BinarySearchFunc(b.all, seq, func(m *stored, seq uint64) int { return cmp.Compare(m.seq, seq) })
	for ; i < len(b.all); i++ {
		if m := b.all[i]; !m.gone && inFamily(m.stream.name, prefix) {
			return m
		}
	}
	return nil
}

// familyLastLocked returns the sequence of the family's last message, 0
// if it holds none.
func (b *Broker) familyLastLocked(prefix string) uint64 {
	for i := len(b.all) - 1; i >= 0; i-- {
		if m := b.all[i]; !m.gone && inFamily(m.stream.name, prefix) {
			return m.seq
		}
	}
	return 0
}

// lastLocked returns the sequence of the stream's last message, 0 if it
// holds none.
func (s *stream) lastLocked() uint64 {
	if len(s.msgs) == 0 {
		return 0
	}
	return s.msgs[len(s.msgs)-1].seq
}

// fromLocked returns the first message with a sequence at least seq, nil
// if there is none.
func (s *stream) fromLocked(seq uint64) *stored {
	lo, hi := 0, len(s.msgs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.msgs[mid].seq < seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(s.msgs) {
		return nil
	}
	return s.msgs[lo]
}

// appendLocked stores a message (already checked) and returns its
// sequence, or the sequence of the message stored under the same ID
// within the de-duplication window.
func (b *Broker) appendLocked(name string, m eventlog.Message) uint64 {
	s := b.streamLocked(name)
	now := time.Now().Round(0)
	for len(s.window) > 0 && now.Sub(s.window[0].time) >= b.dedupWindow {
		old := s.window[0]
		s.window[0] = nil
		s.window = s.window[1:]
		if s.ids[old.id] == old {
			delete(s.ids, old.id)
		}
	}
	if m.ID != "" {
		if first := s.ids[m.ID]; first != nil {
			return first.seq
		}
	}
	b.seq++
	st := &stored{stream: s, seq: b.seq, time: now, data: clone(m.Data), id: m.ID}
	if len(m.Header) > 0 {
		st.header = make(map[string]string, len(m.Header))
		for k, v := range m.Header {
			st.header[k] = v
		}
	}
	s.msgs = append(s.msgs, st)
	b.all = append(b.all, st)
	if m.ID != "" {
		s.ids[m.ID] = st
		s.window = append(s.window, st)
	}
	s.notifyLocked()
	b.notifyFamiliesLocked()
	return st.seq
}

// startLocked resolves a start position in a stream to the first sequence
// to deliver.
func (b *Broker) startLocked(s *stream, st eventlog.Start) uint64 {
	switch st.Kind {
	case eventlog.StartFirst:
		return 0
	case eventlog.StartLast:
		return s.lastLocked()
	case eventlog.StartSeq:
		return st.Seq
	case eventlog.StartTime:
		for _, m := range s.msgs {
			if !m.time.Before(st.Time) {
				return m.seq
			}
		}
		return b.seq + 1
	default: // StartNew
		return b.seq + 1
	}
}

// familyStartLocked resolves a start position in a family to the first
// sequence to deliver.
func (b *Broker) familyStartLocked(prefix string, st eventlog.Start) uint64 {
	switch st.Kind {
	case eventlog.StartFirst:
		return 0
	case eventlog.StartLast:
		return b.familyLastLocked(prefix)
	case eventlog.StartSeq:
		return st.Seq
	case eventlog.StartTime:
		for _, m := range b.all {
			if !m.time.Before(st.Time) {
				return m.seq
			}
		}
		return b.seq + 1
	default: // StartNew
		return b.seq + 1
	}
}

// deleteLocked removes a stream's messages, IDs and queues. The stream
// itself stays as an empty one: subscriptions on it keep their place.
func (b *Broker) deleteLocked(name string) {
	s := b.streams[name]
	if s == nil {
		return
	}
	for _, q := range s.queues {
		q.removeLocked()
	}
	for _, m := range s.msgs {
		m.gone = true
	}
	b.gone += len(s.msgs)
	if b.gone > len(b.all)/2 {
		b.all = slices.DeleteFunc(b.all, func(m *stored) bool { return m.gone })
		b.gone = 0
	}
	s.msgs, s.window = nil, nil
	s.ids = map[string]*stored{}
	s.queues = map[string]*queue{}
	s.notifyLocked()
	b.notifyFamiliesLocked()
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
