package jslog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/eventlog"
)

// natsMsg makes the NATS message for a stream, checking the name and the
// size.
func (l *Log) natsMsg(stream string, m eventlog.Message) (*nats.Msg, error) {
	if !eventlog.ValidName(stream) {
		return nil, fmt.Errorf("publish to %q: %w", stream, eventlog.ErrInvalidName)
	}
	nm := nats.NewMsg(subject(stream))
	nm.Data = m.Data
	for k, v := range m.Header {
		nm.Header.Set(k, v)
	}
	if m.ID != "" {
		// JetStream de-duplicates per JetStream stream, which holds many
		// of sluice's streams: the ID is made unique to the sluice stream.
		nm.Header.Set(jetstream.MsgIDHeader, msgID(stream, m.ID))
	}
	if len(m.Data) > l.maxPayload-headerReserve {
		return nil, fmt.Errorf("publish to %s: %d bytes: %w (at most %d bytes: the server's max_payload less %d for headers)",
			stream, len(m.Data), eventlog.ErrTooLarge, l.maxPayload-headerReserve, headerReserve)
	}
	size := len(m.Data)
	if len(nm.Header) > 0 {
		size += headerSize(nm.Header)
	}
	if size > l.maxPayload {
		return nil, fmt.Errorf("publish to %s: %d bytes with headers: %w (the server's max_payload is %d bytes)", stream, size, eventlog.ErrTooLarge, l.maxPayload)
	}
	return nm, nil
}

// msgID is the Nats-Msg-Id of a message published to a stream with an
// ID: stream names hold no ':', so the stream is told apart from the ID.
func msgID(stream, id string) string { return stream + ":" + id }

// ownID is the Nats-Msg-Id that Publish gives a message without an ID, so
// that its own retries are stored once. It starts with '!', which no
// stream name holds: it never meets an ID of msgID's, and it is not
// delivered as Msg.ID.
func ownID() string { return "!" + nuid.Next() }

// headerSize is the size of the headers on the wire (NATS/1.0 line, "K:
// V" lines, blank line).
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// Publish appends a message to a stream and waits until JetStream has
// stored it (on a majority of replicas). While the connection is down,
// or the stream has no leader, it waits, until ctx ends; a publish whose
// acknowledgement is lost is sent again with the same ID, and JetStream
// stores it once. A message without an ID is given one for this call
// (a NUID): the server then remembers it over DedupWindow like any ID,
// about 150 bytes each (its de-duplication map entry), so 1,000
// publishes a second hold some 18 MB.
func (l *Log) Publish(ctx context.Context, stream string, m eventlog.Message) (uint64, error) {
	nm, err := l.natsMsg(stream, m)
	if err != nil {
		return 0, err
	}
	if m.ID == "" {
		nm.Header.Set(jetstream.MsgIDHeader, ownID())
	}
	var seq uint64
	err = l.retry(ctx, func(ctx context.Context) error {
		ack, err := l.js.PublishMsg(ctx, nm, jetstream.WithRetryAttempts(0))
		if err != nil {
			return err
		}
		seq = ack.Sequence
		return nil
	})
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			err = fmt.Errorf("%w: %w", eventlog.ErrTooLarge, err)
		}
		return 0, fmt.Errorf("publish to %s: %w", stream, err)
	}
	return seq, nil
}

// asyncPub is an asynchronous publish awaiting its ack.
type asyncPub struct {
	f    jetstream.PubAckFuture
	done func(uint64, error)
}

// PublishAsync appends a message without waiting: done is called, on
// another goroutine, with the outcome, in the order of the calls. While
// the connection is down it returns ErrNotConnected at once.
func (l *Log) PublishAsync(stream string, m eventlog.Message, done func(seq uint64, err error)) error {
	nm, err := l.natsMsg(stream, m)
	if err != nil {
		return err
	}
	if l.isClosed() {
		return eventlog.ErrClosed
	}
	if !l.nc.IsConnected() {
		return fmt.Errorf("publish to %s: %w", stream, eventlog.ErrNotConnected)
	}
	// One goroutine at a time sends, so that the futures queue in the
	// order the messages were sent. Close closes done under asyncMu: a
	// message sent before is queued, and settleAsync settles it before
	// Close returns (it drains the queue after done); none is sent after.
	l.asyncMu.Lock()
	defer l.asyncMu.Unlock()
	select {
	case <-l.done:
		return eventlog.ErrClosed
	default:
	}
	// No retry after "no responders": nats.go would send the message
	// again later, after ones sent since (outage makes it ErrNotConnected).
	f, err := l.js.PublishMsgAsync(nm, jetstream.WithStallWait(l.opts.PubAckWait), jetstream.WithRetryAttempts(0))
	if err != nil {
		return fmt.Errorf("publish to %s: %w", stream, outage(err))
	}
	l.async <- asyncPub{f: f, done: done} // settleAsync takes it until done is closed
	return nil
}

// settleAsync calls each asynchronous publish's done with its outcome, in
// publish order, until the Log is closed and every pending one is settled.
func (l *Log) settleAsync() {
	defer close(l.asyncDone)
	for {
		var p asyncPub
		select {
		case p = <-l.async:
		case <-l.done:
			for {
				select {
				case p = <-l.async:
					l.settle(p)
				default:
					return
				}
			}
		}
		l.settle(p)
	}
}

func (l *Log) settle(p asyncPub) {
	select {
	case ack := <-p.f.Ok():
		p.done(ack.Sequence, nil)
	case err := <-p.f.Err():
		p.done(0, fmt.Errorf("publish to %s: %w", p.f.Msg().Subject, outage(err)))
	}
}

// Last returns the sequence of the last message of a stream (0 if it
// holds none), read from the stream's leader.
func (l *Log) Last(ctx context.Context, stream string) (uint64, error) {
	if !eventlog.ValidName(stream) {
		return 0, fmt.Errorf("last of %q: %w", stream, eventlog.ErrInvalidName)
	}
	k := kindOf(stream)
	var seq uint64
	err := l.retry(ctx, func(ctx context.Context) error {
		s, err := l.js.Stream(ctx, k.stream)
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(ctx, subject(stream))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			seq = 0
			return nil
		case err != nil:
			return err
		}
		seq = m.Sequence
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("last of %s: %w", stream, err)
	}
	return seq, nil
}

// LastOfFamily returns the sequence of the last message of a family
// (0 if it holds none), read from the leader of its JetStream stream.
func (l *Log) LastOfFamily(ctx context.Context, prefix string) (uint64, error) {
	if !eventlog.ValidName(prefix) {
		return 0, fmt.Errorf("last of the family %q: %w", prefix, eventlog.ErrInvalidName)
	}
	k := kindOf(prefix)
	var seq uint64
	err := l.retry(ctx, func(ctx context.Context) error {
		s, err := l.js.Stream(ctx, k.stream)
		if err != nil {
			return err
		}
		seq, err = l.lastOf(ctx, s, familySubjects(prefix)...)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("last of the family %s: %w", prefix, err)
	}
	return seq, nil
}

// lastOf returns the highest sequence of the last messages of subjects
// (wildcards allowed), 0 if they hold none.
func (l *Log) lastOf(ctx context.Context, s jetstream.Stream, subjects ...string) (uint64, error) {
	var last uint64
	for _, subj := range subjects {
		m, err := s.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return 0, err
		default:
			last = max(last, m.Sequence)
		}
	}
	return last, nil
}

// Delete purges a stream's subject (its storage is reclaimed) and deletes
// the durable queue consumers on it.
func (l *Log) Delete(ctx context.Context, stream string) error {
	if !eventlog.ValidName(stream) {
		return fmt.Errorf("delete %q: %w", stream, eventlog.ErrInvalidName)
	}
	k, subj := kindOf(stream), subject(stream)
	l.mu.Lock()
	var local []*sub
	for s := range l.subs {
		if s.stream == stream && s.queue != "" {
			local = append(local, s)
		}
	}
	l.mu.Unlock()
	for _, s := range local {
		s.Close() // ended now, not when the server tells of the deletion
	}
	err := l.retry(ctx, func(ctx context.Context) error {
		s, err := l.js.Stream(ctx, k.stream)
		if err != nil {
			return err
		}
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return err
		}
		names := s.ListConsumers(ctx)
		var doomed []string
		for ci := range names.Info() {
			if ci.Config.Durable != "" && ci.Config.FilterSubject == subj {
				doomed = append(doomed, ci.Name)
			}
		}
		if err := names.Err(); err != nil {
			return err
		}
		for _, name := range doomed {
			if err := s.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", stream, err)
	}
	return nil
}
