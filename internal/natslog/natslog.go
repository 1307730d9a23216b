// Package natslog is the event-log contract (package eventlog) on NATS
// Streaming: a stream is a channel, a sequence is the channel's, a durable
// queue is a durable queue group, and blobs are two channels, whatever
// their number: sluice.blobs.data holds every value's chunks and
// sluice.blobs.index a small record per value saying where its chunks
// are (see BlobDataChannel; earlier versions' channel per blob is still
// read).
//
// It is built on internal/broker's Conn, which re-establishes itself after
// losing the server and resumes every subscription: a plain subscription
// right after the last message it delivered, a durable queue where the
// server says. A plain subscription that sees a gap in the sequences
// (messages lost in flight on a link that dropped and came back within
// the client's pings) starts again from the one it expected (plain.go).
//
// What NATS Streaming does not offer, and what that costs:
//
//   - Publish returns sequence 0: the server's acknowledgement does not
//     carry it. A caller that needs it reads the message back (the HTTP
//     API's publish does), and the engine and the function logs publish a
//     marker and read up to it.
//   - Last has no query to ask: it subscribes from the last message and
//     takes that message's sequence, a subscription's round trip (0.2 ms
//     on loopback: BenchmarkLast). On an empty stream nothing comes, and
//     Last answers 0 after emptyWait, if the connection stayed up
//     meanwhile (else ErrNotConnected). Blobs need no such wait: the
//     index says what exists.
//   - No negative ack: Nak does nothing, and the message comes again
//     after the queue's AckWait, as it always did.
//   - Delivery counts are the server's RedeliveryCount, kept in its memory
//     only: a server restart or a leader change starts them again.
//   - A durable queue is a durable queue group, which lives while it has
//     members: one subscriber's Unsubscribe removes only that member, and
//     the others, on other connections, go on where the queue was; the
//     last one's removes the queue (Features.UnsubscribeEndsQueue is
//     false: NATS Streaming tells the others nothing).
//   - No headers, no de-duplication, no deletion (Delete and Blobs.Delete
//     return eventlog.ErrUnsupported): channels stay until the store's
//     limits age them out (broker.StoreLimits), and the blob channels
//     have none: every value stored keeps its bytes on disk (1 MiB for a
//     1 MiB value; the same bytes under the same name are stored once).
//     A store of many values that are no longer needed is reclaimed only
//     by moving to JetStream, or to a new store.
package natslog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// Name is the implementation's name (Features.Name).
const Name = "nats-streaming"

const (
	// payloadOverhead is what a publication adds around Data in NATS
	// Streaming's protocol (client id, a GUID, the channel name up to 255
	// bytes, the connection id, field tags): under 600 bytes, rounded up
	// so that Features.MaxPayload is a size that always goes through. The
	// NATS client itself refuses what is over the server's max_payload.
	payloadOverhead = 1024
	// emptyWait is how long Last waits for a stream's last message before
	// answering that the stream is empty. The server sends it right after
	// the subscription's reply, within a millisecond on loopback; a
	// second covers a loaded machine and a remote server, and is what
	// Last costs on an empty stream (a wait on an empty topic starts that
	// late). Nothing shorter tells "empty" from "not yet": the protocol
	// has no query for a channel's last sequence, the subscription's
	// reply carries no position, and the server sends the last message
	// after the reply, from a goroutine that takes subscription starts
	// off a queue (v0.25.6: processSubscriptionsStart), so neither that
	// reply nor another request's is ordered after it. The server's
	// monitoring endpoint (channelsz) knows, where it is enabled and
	// reachable.
	emptyWait = time.Second
	// notFoundWait is how long Blobs.Get waits a second time before it
	// calls a blob of the old layout missing (a channel of its own: see
	// legacyGet): a module that exists must not be reported gone because
	// a loaded machine was slow once. Such a look costs emptyWait and
	// this, 4 s, and is made only on stores of earlier versions for a
	// name the index does not hold.
	notFoundWait = 3 * time.Second
)

// Log is an eventlog.Log on NATS Streaming.
type Log struct {
	c     *broker.Conn
	blobs *blobs
	// channelsz answers the server's channel list (topics.go).
	channelsz http.Handler
}

var _ eventlog.Log = (*Log)(nil)

// Connect connects to NATS Streaming (see broker.Connect: it retries until
// ctx ends, and a server that refuses the credentials is
// broker.ErrRefused).
func Connect(ctx context.Context, o broker.Options) (*Log, error) {
	c, err := broker.Connect(ctx, o)
	if err != nil {
		return nil, err
	}
	return New(c), nil
}

// New returns the Log of a connection; closing the Log closes it.
func New(c *broker.Conn) *Log {
	l := &Log{c: c}
	l.blobs = newBlobs(l)
	return l
}

func checkName(what, name string) error {
	if !eventlog.ValidName(name) {
		return fmt.Errorf("%w: %s %q: want 1 to 255 letters, digits, '.', '-' and '_', not starting or ending with '.', without \"..\"", eventlog.ErrInvalidName, what, name)
	}
	return nil
}

// tooLarge marks the NATS client's refusal of a message over the
// server's max_payload (Data and the protocol around it) as
// eventlog.ErrTooLarge. Features.MaxPayload leaves room for the protocol,
// so a message of that size always goes through (checkSize refuses more).
func (l *Log) tooLarge(stream string, size int, err error) error {
	if !errors.Is(err, nats.ErrMaxPayload) {
		return err
	}
	return fmt.Errorf("publish to %s: %w: %d bytes and the protocol around them are over the %d the NATS server accepts (its max_payload)",
		stream, eventlog.ErrTooLarge, size, l.c.MaxPayload())
}

// Publish implements eventlog.Log. The sequence it returns is 0: NATS
// Streaming's acknowledgement does not carry it.
func (l *Log) Publish(ctx context.Context, stream string, m eventlog.Message) (uint64, error) {
	if err := checkName("stream", stream); err != nil {
		return 0, err
	}
	if err := l.checkSize(stream, m.Data); err != nil {
		return 0, err
	}
	return 0, l.tooLarge(stream, len(m.Data), l.c.Publish(ctx, stream, m.Data))
}

// checkSize refuses Data over Features.MaxPayload, as the contract says,
// though the server might take a little more.
func (l *Log) checkSize(stream string, data []byte) error {
	if max := l.maxPayload(); len(data) > max {
		return fmt.Errorf("publish to %s: %w: %d bytes, over the %d a message may hold (the NATS server's max_payload less %d for the protocol)",
			stream, eventlog.ErrTooLarge, len(data), max, payloadOverhead)
	}
	return nil
}

// PublishAsync implements eventlog.Log; done is given sequence 0.
func (l *Log) PublishAsync(stream string, m eventlog.Message, done func(seq uint64, err error)) error {
	if err := checkName("stream", stream); err != nil {
		return err
	}
	if err := l.checkSize(stream, m.Data); err != nil {
		return err
	}
	return l.tooLarge(stream, len(m.Data), l.c.PublishAsync(stream, m.Data, func(err error) { done(0, err) }))
}

// Subscribe implements eventlog.Log. A queue subscription is a durable
// queue group whose durable name is the queue's; ManualAck, AckWait and
// MaxInflight are NATS Streaming's own.
func (l *Log) Subscribe(stream string, o eventlog.SubOptions, handler func(*eventlog.Msg)) (eventlog.Subscription, error) {
	if err := checkName("stream", stream); err != nil {
		return nil, err
	}
	if o.Family {
		return nil, fmt.Errorf("subscribe to the family %s: NATS Streaming reads one channel at a time: %w", stream, eventlog.ErrUnsupported)
	}
	so := broker.SubOptions{Start: start(o.Start), AckWait: o.AckWait, MaxInflight: o.MaxInflight}
	var cb func(*broker.Msg)
	if o.Queue != "" {
		if err := checkName("queue", o.Queue); err != nil {
			return nil, err
		}
		so.Queue, so.Durable, so.ManualAck = o.Queue, o.Queue, o.ManualAck
		cb = func(m *broker.Msg) {
			var a eventlog.Acker
			if o.ManualAck {
				a = acker{m}
			}
			handler(eventlog.NewMsg(msg(m), a))
		}
	} else {
		var from uint64 // the sequence expected first; 0: any
		if o.Start.Kind == eventlog.StartSeq {
			from = max(o.Start.Seq, 1)
		}
		return l.subscribePlain(stream, so, from, handler)
	}
	sub, err := l.c.Subscribe(stream, so, cb)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

func start(s eventlog.Start) broker.Start {
	switch s.Kind {
	case eventlog.StartFirst:
		return broker.StartAll
	case eventlog.StartLast:
		return broker.StartLast
	case eventlog.StartSeq:
		return broker.StartAt(max(s.Seq, 1))
	case eventlog.StartTime:
		return broker.StartTime(s.Time)
	}
	return broker.StartNew
}

func msg(m *broker.Msg) eventlog.Msg {
	deliveries := int(m.RedeliveryCount) + 1
	if m.Redelivered && deliveries == 1 {
		deliveries = 2 // a server that does not count says it all the same
	}
	return eventlog.Msg{
		Stream: m.Subject, Sequence: m.Sequence, Time: time.Unix(0, m.Timestamp).UTC(),
		Data: m.Data, Deliveries: deliveries,
	}
}

// acker settles a message of a queue subscription with ManualAck.
type acker struct{ m *broker.Msg }

func (a acker) Ack() error { return a.m.Ack() }

// Nak does nothing: NATS Streaming has no negative ack, and the message
// comes again after the queue's AckWait.
func (a acker) Nak(time.Duration) error { return nil }

// LastOfFamily is not offered: NATS Streaming reads one channel at a
// time (Features.Families is false).
func (l *Log) LastOfFamily(ctx context.Context, prefix string) (uint64, error) {
	return 0, fmt.Errorf("last of the family %s: NATS Streaming reads one channel at a time: %w", prefix, eventlog.ErrUnsupported)
}

// Last implements eventlog.Log: the sequence of the message a
// subscription starting at the last one receives first, or 0 if none
// comes within emptyWait (the stream is empty). The connection must stay
// up the whole wait: otherwise the subscription may not have reached the
// server, and Last fails with ErrNotConnected rather than say "empty".
func (l *Log) Last(ctx context.Context, stream string) (uint64, error) {
	return l.last(ctx, stream, emptyWait)
}

func (l *Log) last(ctx context.Context, stream string, wait time.Duration) (uint64, error) {
	if err := checkName("stream", stream); err != nil {
		return 0, err
	}
	if err := l.c.WaitUp(ctx); err != nil {
		return 0, fmt.Errorf("last of %s: %w", stream, err)
	}
	up := l.c.UpSince()
	got := make(chan uint64, 1)
	sub, err := l.c.Subscribe(stream, broker.SubOptions{Start: broker.StartLast, MaxInflight: 1}, func(m *broker.Msg) {
		select {
		case got <- m.Sequence:
		default:
		}
	})
	if err != nil {
		if errors.Is(err, stan.ErrSubReqTimeout) { // the server did not answer
			err = fmt.Errorf("%w: %w", eventlog.ErrNotConnected, err)
		}
		return 0, fmt.Errorf("last of %s: %w", stream, err)
	}
	defer sub.Close()
	empty := time.NewTimer(wait)
	defer empty.Stop()
	select {
	case seq := <-got:
		return seq, nil
	case <-empty.C:
		if up.IsZero() || !l.c.Connected() || !l.c.UpSince().Equal(up) {
			return 0, fmt.Errorf("last of %s: %w: the connection was lost while waiting for the last message", stream, eventlog.ErrNotConnected)
		}
		return 0, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("last of %s: %w", stream, ctx.Err())
	}
}

// Delete implements eventlog.Log: NATS Streaming's clients cannot delete a
// channel, so it is eventlog.ErrUnsupported.
func (l *Log) Delete(_ context.Context, stream string) error {
	if err := checkName("stream", stream); err != nil {
		return err
	}
	return fmt.Errorf("delete %s: %w: NATS Streaming channels stay until the store's limits age them out", stream, eventlog.ErrUnsupported)
}

// Blobs implements eventlog.Log.
func (l *Log) Blobs() eventlog.Blobs { return l.blobs }

// Features implements eventlog.Log.
func (l *Log) Features() eventlog.Features {
	return eventlog.Features{Name: Name, MaxPayload: l.maxPayload()}
}

func (l *Log) maxPayload() int {
	return max(int(l.c.MaxPayload())-payloadOverhead, 0)
}

// Connected implements eventlog.Log.
func (l *Log) Connected() bool { return l.c.Connected() }

// WaitUp implements eventlog.Log.
func (l *Log) WaitUp(ctx context.Context) error { return l.c.WaitUp(ctx) }

// UpSince implements eventlog.Log.
func (l *Log) UpSince() time.Time { return l.c.UpSince() }

// Close implements eventlog.Log.
func (l *Log) Close() error {
	err := l.c.Close()
	if errors.Is(err, broker.ErrClosed) {
		return nil
	}
	return err
}
