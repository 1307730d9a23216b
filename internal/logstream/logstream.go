// Package logstream carries function logs through NATS Streaming, one
// channel per function (sluice.logs.NAME), so that `sluice fn logs` shows
// the logs of every daemon, not only of the one it asks. The channels are
// bounded (see broker.LogChannels): logs are recent history, not an archive.
package logstream

import (
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

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/broker"
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
	conn   *broker.Conn
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
func NewPublisher(conn *broker.Conn, daemon string, log *slog.Logger) *Publisher {
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
				size += recordSize(recs[k]) + 96
				k++
			}
			p.publish(fn, recs[:k])
			recs = recs[k:]
		}
	}
}

// maxMessageBytes bounds one log message's records, before JSON.
const maxMessageBytes = 256 << 10

func (p *Publisher) publish(fn string, recs []host.Record) {
	data, err := json.Marshal(message{Daemon: p.daemon, Records: recs})
	if err != nil {
		return
	}
	n := uint64(len(recs))
	if err := p.conn.PublishAsync(Channel(fn), data, func(err error) {
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

// Read sends a function's log records stored since the given time to out,
// oldest first. Without follow it returns once it has sent everything
// stored when it was called; with follow it goes on with new records until
// ctx ends.
func Read(ctx context.Context, conn *broker.Conn, function string, since time.Duration, follow bool, out func(host.Record) error) error {
	marker := ""
	if !follow {
		marker = nuid.Next()
	}
	recs := make(chan []host.Record, 256)
	end := make(chan struct{})
	sub, err := conn.Subscribe(Channel(function), broker.SubOptions{Start: broker.StartSince(since)}, func(m *broker.Msg) {
		var msg message
		if json.Unmarshal(m.Data, &msg) != nil {
			return
		}
		if msg.Marker != "" {
			if msg.Marker == marker {
				close(end)
			}
			return
		}
		select {
		case recs <- msg.Records:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("read logs of %q: %w", function, err)
	}
	defer sub.Close()
	if marker != "" {
		data, _ := json.Marshal(message{Marker: marker})
		if err := conn.Publish(ctx, Channel(function), data); err != nil {
			return fmt.Errorf("read logs of %q: %w", function, err)
		}
	}
	send := func(batch []host.Record) error {
		for _, r := range batch {
			if err := out(r); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		select {
		case batch := <-recs:
			if err := send(batch); err != nil {
				return err
			}
		case <-end:
			for { // what arrived before the marker is still queued
				select {
				case batch := <-recs:
					if err := send(batch); err != nil {
						return err
					}
				default:
					return nil
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
