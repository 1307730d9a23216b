// Package logstream carries function logs through the event log, one
// stream per function (sluice.logs.NAME), so that `sluice fn logs` shows
// the logs of every daemon, not only of the one it asks. The streams are
// bounded by the store (NATS Streaming's embedded server keeps the last
// 10,000 messages of each, for a day): logs are recent history, not an
// archive.
package logstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/host"
)

// Channel is the log channel of a function.
func Channel(function string) string { return "sluice.logs." + function }

// message is what one log message carries: the records of one call, or a
// marker a reader uses to find the end of what is stored.
type message struct {
	Daemon  string        `json:"daemon,omitempty"`
	Records []host.Record `json:"records,omitempty"`
	Marker  string        `json:"marker,omitempty"`
}

// Publisher is a host.LogSink that publishes records in batches, off the
// calling goroutine: a call pays for appending its records to a buffer, not
// for a NATS round trip. Every flushInterval, or sooner when the buffer is
// large, the records go out as one message per function. If NATS Streaming
// is unreachable, or the buffer is full, records are dropped and counted:
// logs never slow down or fail a call.
type Publisher struct {
	conn   eventlog.Log
	daemon string
	log    *slog.Logger

	mu      sync.Mutex
	pending map[string][]host.Record // by function
	size    int
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	dropped atomic.Uint64
}

// Batching bounds.
const (
	flushInterval = 100 * time.Millisecond
	flushBytes    = 256 << 10 // flush early past this much message text
	maxPending    = 8 << 20   // drop beyond this much unflushed text
)

// NewPublisher starts a publisher for this daemon's function logs. Every
// record also goes to log at debug level. Close flushes and stops it.
func NewPublisher(conn eventlog.Log, daemon string, log *slog.Logger) *Publisher {
	p := &Publisher{
		conn: conn, daemon: daemon, log: log, pending: map[string][]host.Record{},
		kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{}),
	}
	go p.loop()
	return p
}

// Emit implements host.LogSink.
func (p *Publisher) Emit(recs []host.Record) {
	if len(recs) == 0 {
		return
	}
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		for _, r := range recs {
			p.mirror(r)
		}
	}
	n := 0
	for _, r := range recs {
		n += recordSize(r)
	}
	p.mu.Lock()
	if p.size+n > maxPending {
		p.mu.Unlock()
		p.dropped.Add(uint64(len(recs)))
		return
	}
	fn := recs[0].Function
	p.pending[fn] = append(p.pending[fn], recs...)
	p.size += n
	full := p.size >= flushBytes
	p.mu.Unlock()
	if full {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// mirror logs a record at debug level with the ids of what made its call
// (request_id, trigger and sequence, invocation and task: "invocation" is
// always a workflow's) and the call's own id as "call".
func (p *Publisher) mirror(r host.Record) {
	attrs := make([]slog.Attr, 0, 4+len(r.Origin))
	for _, k := range slices.Sorted(maps.Keys(r.Origin)) {
		attrs = append(attrs, slog.String(k, r.Origin[k]))
	}
	attrs = append(attrs, slog.String("function", r.Function), slog.Int("version", r.Version),
		slog.String("call", r.Invocation), slog.String("stream", r.Stream))
	p.log.LogAttrs(context.Background(), slog.LevelDebug, r.Message, attrs...)
}

// recordSize estimates a record's size in a log message.
func recordSize(r host.Record) int {
	n := len(r.Message) + len(r.Invocation) + 64
	for k, v := range r.Origin {
		n += len(k) + len(v) + 6
	}
	return n
}

func (p *Publisher) loop() {
	defer close(p.stopped)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			p.flush()
			return
		case <-t.C:
		case <-p.kick:
		}
		p.flush()
	}
}

func (p *Publisher) flush() {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.mu.Unlock()
		return
	}
	batch := p.pending
	p.pending = map[string][]host.Record{}
	p.size = 0
	p.mu.Unlock()
	for fn, recs := range batch {
		for len(recs) > 0 {
			// stay well under NATS's 1 MB max payload
			size, k := 0, 0
			for k < len(recs) && (k == 0 || size < maxMessageBytes) {
				size += recordSize(recs[k]) + recordJSON
				k++
			}
			p.publish(fn, recs[:k], size)
			recs = recs[k:]
		}
	}
}

// maxMessageBytes bounds one log message's records, before JSON.
const maxMessageBytes = 256 << 10

// recordJSON is about what a record's JSON adds to recordSize: its keys,
// its time, its function's name.
const recordJSON = 96

// publish publishes recs, whose JSON is about size bytes, as one message.
func (p *Publisher) publish(fn string, recs []host.Record, size int) {
	// sized at once: grown from nothing, a message of thousands of
	// records was allocated and copied again at every growth
	data := appendMessage(make([]byte, 0, size+len(p.daemon)+64), p.daemon, recs)
	n := uint64(len(recs))
	if err := p.conn.PublishAsync(Channel(fn), eventlog.Message{Data: data}, func(_ uint64, err error) {
		if err != nil {
			p.dropped.Add(n)
		}
	}); err != nil {
		p.dropped.Add(n)
	}
}

// Close publishes what is buffered and stops the publisher.
func (p *Publisher) Close() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.stopped
}

// Dropped counts records that could not be published.
func (p *Publisher) Dropped() uint64 { return p.dropped.Load() }

// ReadOptions say which log records Read sends.
type ReadOptions struct {
	// Tail is how many of the last records stored (of those since
	// Since) to send first, at most MaxTail; 0 sends none of them.
	Tail int
	// Since, if positive, leaves out records stored longer ago.
	Since time.Duration
	// Follow goes on with new records until ctx ends.
	Follow bool
}

// Tail bounds.
const (
	// DefaultTail is what `sluice fn logs` shows: a screenful or two.
	DefaultTail = 100
	// MaxTail bounds a read: a log channel holds up to 10,000 messages of
	// many records each (311,000 lines were seen), and a reader asking for
	// all of them at once had the daemon hold them all.
	MaxTail = 10000
)

// Reading bounds: a reader holds at most readInflight messages
// delivered and not yet sent on (each at most ~300 KB), however slowly
// its client reads.
const (
	readInflight  = 16
	countInflight = 16
	// firstWindow is how many messages are counted first when looking for
	// where the last Tail records start (one message may hold thousands);
	// each further window is 4 times larger.
	firstWindow = 1
)

// Read sends a function's last o.Tail log records to out, oldest first,
// then with o.Follow the new ones until ctx ends. It holds no more than a
// few messages at a time, whatever the channel holds: it finds where the
// tail starts by counting records backwards from the end, in windows,
// then streams from there.
func Read(ctx context.Context, conn eventlog.Log, function string, o ReadOptions, out func(host.Record) error) error {
	if o.Tail < 0 || o.Tail > MaxTail {
		return fmt.Errorf("tail %d: want 0 to %d", o.Tail, MaxTail)
	}
	if o.Tail == 0 && !o.Follow {
		return nil
	}
	channel := Channel(function)
	end, err := mark(ctx, conn, channel)
	if err != nil {
		return fmt.Errorf("read logs of %q: %w", function, err)
	}
	var cutoff int64 // oldest message timestamp wanted, in ns
	if o.Since > 0 {
		cutoff = time.Now().Add(-o.Since).UnixNano()
	}
	from, skip := end, 0
	if o.Tail > 0 {
		if from, skip, err = findTail(ctx, conn, channel, end, o.Tail, cutoff); err != nil {
			return fmt.Errorf("read logs of %q: %w", function, err)
		}
	}
	return stream(ctx, conn, channel, from, skip, end, cutoff, o.Follow, out)
}

// mark stores a marker at the end of a channel and returns its sequence:
// what was stored before it is the past.
func mark(ctx context.Context, conn eventlog.Log, channel string) (uint64, error) {
	marker := nuid.Next()
	found := make(chan uint64, 1)
	sub, err := conn.Subscribe(channel, eventlog.SubOptions{Start: eventlog.New, MaxInflight: countInflight}, func(m *eventlog.Msg) {
		var msg message
		if bytes.Contains(m.Data, []byte(marker)) && json.Unmarshal(m.Data, &msg) == nil && msg.Marker == marker {
			select {
			case found <- m.Sequence:
			default:
			}
		}
	})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	data, _ := json.Marshal(message{Marker: marker})
	if _, err := conn.Publish(ctx, channel, eventlog.Message{Data: data}); err != nil {
		return 0, err
	}
	select {
	case seq := <-found:
		return seq, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// findTail returns where the last tail records before sequence end (of
// messages stored since cutoff) start: the message's sequence and how
// many of its records to skip. It counts backwards from end in windows of
// sequences; a stream's sequences may have gaps (eventlog), so a window
// may hold fewer messages than it spans, and each message counted is
// known by its own sequence.
func findTail(ctx context.Context, conn eventlog.Log, channel string, end uint64, tail int, cutoff int64) (from uint64, skip int, err error) {
	var counts []counted // from end-1 backwards
	var start uint64     // the stream's first sequence, once known
	total := 0
	hi := end // the window is [lo, hi)
	for w := uint64(firstWindow); hi > 1; w *= 4 {
		lo := uint64(1)
		if hi > w {
			lo = hi - w
		}
		got, first, horizon, err := countWindow(ctx, conn, channel, lo, hi, cutoff)
		if err != nil {
			return 0, 0, err
		}
		if first > lo && !horizon {
			// Nothing at lo: the stream starts after it, or its sequences
			// have a gap there. Its first sequence tells which.
			if start == 0 {
				if start, err = firstSeq(ctx, conn, channel); err != nil {
					return 0, 0, err
				}
			}
			horizon = start >= lo
		}
		for i := len(got) - 1; i >= 0; i-- {
			counts = append(counts, got[i])
			total += got[i].records
		}
		hi = lo
		if total >= tail || horizon {
			break
		}
	}
	acc := 0
	for _, c := range counts {
		acc += c.records
		if acc >= tail {
			return c.seq, acc - tail, nil
		}
	}
	return hi, 0, nil // fewer than tail: all of them
}

// counted is a message's sequence and the number of records it holds.
type counted struct {
	seq     uint64
	records int
}

// firstSeq returns the sequence of the first message a stream holds (it
// holds one).
func firstSeq(ctx context.Context, conn eventlog.Log, channel string) (uint64, error) {
	found := make(chan uint64, 1)
	sub, err := conn.Subscribe(channel, eventlog.SubOptions{Start: eventlog.First, MaxInflight: 1}, func(m *eventlog.Msg) {
		select {
		case found <- m.Sequence:
		default:
		}
	})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	select {
	case seq := <-found:
		return seq, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// countWindow counts the records of the messages in [lo, hi), of those
// stored since cutoff, in sequence order. first is the sequence of the
// first message delivered (at lo or after); horizon tells that nothing
// before lo is wanted (messages there are older than cutoff, or lo is 1).
func countWindow(ctx context.Context, conn eventlog.Log, channel string, lo, hi uint64, cutoff int64) (counts []counted, first uint64, horizon bool, err error) {
	var (
		mu   sync.Mutex
		done = make(chan struct{})
	)
	sub, err := conn.Subscribe(channel, eventlog.SubOptions{Start: eventlog.At(lo), MaxInflight: countInflight}, func(m *eventlog.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if first == 0 {
			first = m.Sequence
		}
		if m.Sequence >= lo && m.Sequence < hi {
			if m.Time.UnixNano() < cutoff {
				horizon = true
			} else {
				var msg struct{ Records []struct{} } // counted, not kept
				if json.Unmarshal(m.Data, &msg) == nil && len(msg.Records) > 0 {
					counts = append(counts, counted{m.Sequence, len(msg.Records)})
				}
			}
		}
		// hi is end (the marker, stored) or the start of the window
		// counted before: a message at or past it is always delivered
		if m.Sequence >= hi-1 {
			select {
			case <-done:
			default:
				close(done)
			}
		}
	})
	if err != nil {
		return nil, 0, false, err
	}
	defer sub.Close()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, 0, false, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	return counts, first, horizon || lo == 1, nil
}

// stream sends the records of the messages from sequence from on (less
// the first skip of that message, and those of messages stored before
// cutoff), until the marker at end, or with follow until ctx ends.
func stream(ctx context.Context, conn eventlog.Log, channel string, from uint64, skip int, end uint64, cutoff int64, follow bool, out func(host.Record) error) error {
	type delivered struct {
		seq  uint64
		at   int64
		data []byte
	}
	msgs := make(chan delivered, readInflight/4)
	stop := make(chan struct{})
	sub, err := conn.Subscribe(channel, eventlog.SubOptions{Start: eventlog.At(from), MaxInflight: readInflight}, func(m *eventlog.Msg) {
		select {
		case msgs <- delivered{m.Sequence, m.Time.UnixNano(), m.Data}:
		case <-stop:
		}
	})
	if err != nil {
		return fmt.Errorf("read logs: %w", err)
	}
	defer func() {
		close(stop) // a delivery waiting for the reader gives up
		sub.Close()
	}()
	for {
		select {
		case m := <-msgs:
			if m.seq < from {
				continue
			}
			if m.seq >= end && !follow {
				return nil // the marker: what was stored before the call is sent
			}
			var msg message
			if m.at < cutoff || json.Unmarshal(m.data, &msg) != nil || msg.Marker != "" {
				continue
			}
			recs := msg.Records
			if m.seq == from {
				recs = recs[min(skip, len(recs)):]
			}
			for _, r := range recs {
				if err := out(r); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			if follow {
				return nil
			}
			return ctx.Err()
		}
	}
}
