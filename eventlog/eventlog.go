// Package eventlog is the contract between sluice and the broker that keeps
// everything durable: an append-only log of named streams, read in order
// from any position, by plain and by durable queue subscriptions, and a
// store of large values (blobs).
//
// It is a leaf: it imports nothing of sluice and nothing of a broker's
// client library. The components (engine, triggers, the catalog, the
// function logs, the HTTP API's topics) depend on it and nothing else of
// the broker; the implementations live apart:
//
//   - internal/natslog: NATS Streaming (a stream is a channel),
//   - internal/jslog: JetStream (streams are subjects of a few JetStream
//     streams; blobs are an Object Store),
//   - eventlog/memlog: in memory, for tests of pure logic.
//
// Every implementation passes the conformance suite in
// eventlog/eventlogtest, which is the contract's executable definition:
// ordering, at-least-once delivery, redelivery with counts, negative acks,
// de-duplication where the implementation offers it, replay from a
// position, and the behaviour across a lost connection.
//
// # Streams
//
// A stream is named by a string of letters, digits and ".", "-", "_"
// (no spaces, no wildcards; see ValidName): "sluice.catalog",
// "sluice.wf.events", a user's topic "orders". A stream comes into being
// with its first message. Each message gets a sequence, from 1, that
// grows with every message of the stream; an implementation that keeps
// several streams in one store (JetStream keeps them as subjects of one
// JetStream stream) numbers them in that store, so a stream's sequences
// may have gaps: never compute with them beyond comparing.
//
// # Delivery
//
// A Subscription delivers a stream's messages in sequence order on one
// goroutine, starting where SubOptions.Start says. A plain subscription
// that loses its connection resumes after the last message it handed to
// its handler; nothing is skipped and nothing is delivered twice to it. A
// durable queue subscription (SubOptions.Queue) is shared by every
// subscriber of the same queue name, across processes: each message goes
// to one of them, and is delivered again (to any of them) until one acks
// it. The number of deliveries is counted by the server and, where
// Features.DurableDeliveries, survives server restarts and failovers.
//
// # Families
//
// Where Features.Families, the streams named by a prefix form a family:
// the stream named prefix itself and every stream whose name begins with
// prefix + "." ("sluice.wf.inv" holds "sluice.wf.inv.a" and
// "sluice.wf.inv.a.b.1"). A plain subscription with SubOptions.Family
// delivers the messages of the whole family in the order the store holds
// them, their sequences growing across it, each with Msg.Stream naming its
// own stream; Log.LastOfFamily says where that order ends now. A family
// lets a writer give each of many short-lived things (a workflow
// invocation) a stream of its own, read alone or all together, and
// deleted when it is no longer needed.
package eventlog

import (
	"context"
	"time"
)

// Log is a connection to a broker that keeps streams. It re-establishes
// itself after a loss: publishing waits for it (until the context ends),
// and every subscription resumes. Its methods are safe for concurrent
// use.
type Log interface {
	// Publish appends a message to a stream and waits until the broker has
	// stored it; it returns the message's sequence where
	// Features.Sequences, else 0 (NATS Streaming's acknowledgement does
	// not carry it: a caller that needs it reads the message back, from a
	// subscription made before publishing). While the connection
	// is down it waits for it, until ctx ends (the error then wraps
	// ErrNotConnected). With Message.ID set and Features.Dedup, a message
	// whose ID was published to the stream within the de-duplication
	// window is not stored again: Publish returns the sequence of the
	// first and a nil error.
	Publish(ctx context.Context, stream string, m Message) (uint64, error)
	// PublishAsync appends a message without waiting: done is called, on
	// another goroutine, with the outcome (the sequence as Publish returns
	// it). While the connection is down it
	// returns ErrNotConnected at once and done is not called. Messages
	// published asynchronously from one goroutine are stored in the order
	// of the calls.
	PublishAsync(stream string, m Message, done func(seq uint64, err error)) error
	// Subscribe starts delivering the messages of a stream to handler, on
	// one goroutine, in sequence order. See SubOptions.
	Subscribe(stream string, o SubOptions, handler func(*Msg)) (Subscription, error)
	// Last returns the sequence of the last message stored in a stream (0
	// for a stream that holds nothing), as the broker knows it now:
	// every message published before the call returned has a sequence at
	// most this.
	Last(ctx context.Context, stream string) (uint64, error)
	// LastOfFamily is Last for a family (see Families): the highest
	// sequence stored in any stream of the family named by prefix (0 if
	// they hold nothing). Without Features.Families it returns
	// ErrUnsupported.
	LastOfFamily(ctx context.Context, prefix string) (uint64, error)
	// Delete removes a stream with every message in it, and every
	// durable queue subscription on it. Deleting a stream that does not
	// exist is not an error. Without Features.Delete it returns
	// ErrUnsupported and the stream stays (it ages out by the broker's
	// limits).
	Delete(ctx context.Context, stream string) error
	// Blobs is the store of large values (function modules, workflow
	// values too large for an event).
	Blobs() Blobs
	// Features says what this implementation guarantees beyond the
	// common contract.
	Features() Features
	// Connected tells whether the connection is up now.
	Connected() bool
	// WaitUp waits until the connection is up, or ctx ends.
	WaitUp(ctx context.Context) error
	// UpSince is when the connection was last (re-)established; zero while
	// it is down.
	UpSince() time.Time
	// Close ends every subscription (durable queues stay on the broker)
	// and the connection.
	Close() error
}

// Message is what is published.
type Message struct {
	// Data is the payload. Its size is bounded by the broker
	// (Features.MaxPayload).
	Data []byte
	// ID, if set, identifies the message for de-duplication (see
	// Log.Publish). It is delivered as Msg.ID where Features.Headers.
	ID string
	// Header carries metadata beside the payload (trace context, the
	// content type). It is delivered where Features.Headers; elsewhere
	// it is dropped.
	Header map[string]string
}

// Msg is a delivered message.
type Msg struct {
	// Stream is the stream it was published to.
	Stream string
	// Sequence is its position in the stream, from 1.
	Sequence uint64
	// Time is when the broker stored it.
	Time time.Time
	// Data is the payload; the handler may keep it.
	Data []byte
	// ID and Header are those published, where Features.Headers.
	ID     string
	Header map[string]string
	// Deliveries counts the deliveries of this message to its durable
	// queue, this one included: 1 the first time. It is 1 for plain
	// subscriptions.
	Deliveries int

	acker Acker
}

// Acker settles a message delivered to a durable queue subscription. An
// implementation sets it with NewMsg; users call Msg.Ack and Msg.Nak.
type Acker interface {
	// Ack says the message is done with: it is not delivered again.
	Ack() error
	// Nak says it failed: deliver it again after delay (as soon as the
	// broker can, where !Features.Nak: then after the queue's AckWait).
	Nak(delay time.Duration) error
}

// NewMsg returns a message with the acker that settles it (nil for a
// plain subscription's messages). For implementations.
func NewMsg(m Msg, a Acker) *Msg {
	m.acker = a
	return &m
}

// Redelivered tells whether the message was delivered before.
func (m *Msg) Redelivered() bool { return m.Deliveries > 1 }

// Ack acknowledges a message of a durable queue subscription with
// ManualAck; a no-op otherwise.
func (m *Msg) Ack() error {
	if m.acker == nil {
		return nil
	}
	return m.acker.Ack()
}

// Nak asks for a message of a durable queue subscription with ManualAck
// to be delivered again after delay; a no-op otherwise.
func (m *Msg) Nak(delay time.Duration) error {
	if m.acker == nil {
		return nil
	}
	return m.acker.Nak(delay)
}

// SubOptions configure a subscription.
type SubOptions struct {
	// Queue, if set, makes it a durable queue subscription named Queue:
	// the broker remembers which messages of the stream the queue has
	// acked, across reconnects, restarts and processes, and shares the
	// messages among the subscribers of the same name. Start applies only
	// when the queue is created.
	Queue string
	// Start is where delivery begins.
	Start Start
	// ManualAck makes the handler settle each message with Msg.Ack or
	// Msg.Nak (queue subscriptions only); without it a message is acked
	// when the handler returns.
	ManualAck bool
	// AckWait is how long the broker waits for an ack before delivering
	// a message again (queue subscriptions; 0: 30 s).
	AckWait time.Duration
	// Family makes the subscription deliver the messages of every stream
	// of the family named by the stream (see Families), in the order the
	// store holds them, from Start (StartFirst, StartSeq, StartTime or
	// StartNew; StartLast is the family's last message). Plain
	// subscriptions only (with Queue it is ErrUnsupported); without
	// Features.Families it is ErrUnsupported.
	Family bool
	// MaxInflight bounds the messages delivered to this subscriber and not
	// yet acked (queue subscriptions), or buffered ahead of the handler
	// (plain ones). 0: the implementation's default.
	MaxInflight int
}

// Start says where a subscription starts in its stream.
type Start struct {
	// Kind is one of the Start kinds.
	Kind StartKind
	// Seq is the first sequence delivered, for StartSeq.
	Seq uint64
	// Time is the oldest message delivered, for StartTime.
	Time time.Time
}

// StartKind is where a subscription starts.
type StartKind int

// Start kinds.
const (
	// StartNew delivers only messages published after subscribing.
	StartNew StartKind = iota
	// StartFirst delivers every message the stream holds, then new ones.
	StartFirst
	// StartLast delivers the last message stored, then new ones.
	StartLast
	// StartSeq starts at a sequence (or at the first message the stream
	// still holds, if that is later).
	StartSeq
	// StartTime starts with the first message stored at or after a time.
	StartTime
)

// Positions, for SubOptions.Start.
var (
	New   = Start{Kind: StartNew}
	First = Start{Kind: StartFirst}
	Last  = Start{Kind: StartLast}
)

// At starts at a sequence.
func At(seq uint64) Start { return Start{Kind: StartSeq, Seq: seq} }

// Since starts with the messages stored since t.
func Since(t time.Time) Start { return Start{Kind: StartTime, Time: t} }

// Subscription is a running subscription.
type Subscription interface {
	// Close stops delivery; a durable queue stays on the broker and
	// resumes where it was when subscribed again.
	Close() error
	// Unsubscribe stops delivery and removes a durable queue from the
	// broker (its unacked messages are not delivered again to it). Where
	// Features.UnsubscribeEndsQueue, the queue's other subscribers, on
	// any connection, stop receiving too (their subscriptions end; a
	// subscriber of the same name makes a new queue). Otherwise the queue
	// lives on while it has subscribers, who go on receiving where it
	// was, and the last one's Unsubscribe removes it.
	Unsubscribe() error
}

// Features are what an implementation guarantees beyond the common
// contract. The conformance suite checks each one it claims.
type Features struct {
	// Name names the implementation ("nats-streaming", "jetstream",
	// "memory").
	Name string
	// Sequences: Publish and PublishAsync return the stored message's
	// sequence (else 0).
	Sequences bool
	// Dedup: a message published with the ID of one published in the
	// last DedupWindow is not stored twice.
	Dedup       bool
	DedupWindow time.Duration
	// Nak: a negative ack redelivers after its delay rather than after
	// the queue's AckWait.
	Nak bool
	// DurableDeliveries: delivery counts survive broker restarts and
	// failovers.
	DurableDeliveries bool
	// Headers: Message.ID and Message.Header are delivered.
	Headers bool
	// Delete: Log.Delete removes a stream and reclaims its storage, and
	// Blobs.Delete a value.
	Delete bool
	// UnsubscribeEndsQueue: one subscriber's Unsubscribe removes a durable
	// queue for all its subscribers (see Subscription.Unsubscribe).
	UnsubscribeEndsQueue bool
	// Families: SubOptions.Family and LastOfFamily read a family of
	// streams in the order the store holds them (see Families).
	Families bool
	// MaxPayload is the largest Message.Data the broker accepts.
	MaxPayload int
}

// IsContentHash tells whether s is a SHA-256 in lower-case hex: the form
// of the content hashes that name blobs (a module's, a workflow value's)
// and that the catalog and the engine check when they read one back.
func IsContentHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Blobs is a store of named values too large for one message: a
// function's module, a large workflow value. Values are written whole and
// read whole, and a store holds tens of thousands of them.
type Blobs interface {
	// Put stores a value under a name, replacing what was there. When it
	// returns nil the value is durable and every connection's Get finds
	// it; a Put that fails or is cut short leaves the old value or none,
	// never part of the new one.
	Put(ctx context.Context, name string, data []byte) error
	// Get returns a value. A name with no value is ErrNotFound, known
	// without waiting for the value to appear.
	Get(ctx context.Context, name string) ([]byte, error)
	// Delete removes a value; a name with no value is not an error.
	// Without Features.Delete it returns ErrUnsupported and the value
	// stays.
	Delete(ctx context.Context, name string) error
}

// TopicLister is an optional capability of a Log (test for it with a type
// assertion): it lists the topics, the streams that are not sluice's own.
// sluice's own streams are those under "sluice." (the catalog, workflow
// events, function logs, blobs: see OwnStream); they are left out, as are
// the streams a broker keeps for itself.
type TopicLister interface {
	// Topics returns every topic the broker holds, sorted by name, with
	// its message count and last sequence as the broker knows them now.
	// Where the implementation cannot ask its broker (an external server
	// it has no view into), it returns an error wrapping ErrUnsupported
	// that says why.
	Topics(ctx context.Context) ([]TopicInfo, error)
}

// TopicInfo describes a topic.
type TopicInfo struct {
	// Name is the topic's stream name.
	Name string `json:"name"`
	// Messages is how many messages it holds now (after the broker's
	// limits dropped any).
	Messages uint64 `json:"messages"`
	// Last is the sequence of its last message (0: none), comparable
	// with Msg.Sequence (see Streams: it may have gaps).
	Last uint64 `json:"last_sequence"`
}

// OwnStream tells whether a stream is one of sluice's own (named under
// "sluice."), not a user's topic.
func OwnStream(name string) bool {
	return len(name) > len(ownPrefix) && name[:len(ownPrefix)] == ownPrefix
}

// ownPrefix begins the name of every stream of sluice's own.
const ownPrefix = "sluice."
