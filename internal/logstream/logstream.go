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

// Publisher is a host.LogSink that publishes records without blocking the
// call that wrote them: if NATS Streaming is unreachable the records are
// dropped and counted.
type Publisher struct {
	conn    *broker.Conn
	daemon  string
	log     *slog.Logger
	dropped atomic.Uint64
}

// NewPublisher returns a publisher for this daemon's function logs. Every
// record also goes to log at debug level.
func NewPublisher(conn *broker.Conn, daemon string, log *slog.Logger) *Publisher {
	return &Publisher{conn: conn, daemon: daemon, log: log}
}

// Emit implements host.LogSink.
func (p *Publisher) Emit(recs []host.Record) {
	if len(recs) == 0 {
		return
	}
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		for _, r := range recs {
			p.log.Debug(r.Message, "function", r.Function, "version", r.Version, "invocation", r.Invocation, "stream", r.Stream)
		}
	}
	data, err := json.Marshal(message{Daemon: p.daemon, Records: recs})
	if err != nil {
		return
	}
	err = p.conn.PublishAsync(Channel(recs[0].Function), data, func(err error) {
		if err != nil {
			p.dropped.Add(uint64(len(recs)))
		}
	})
	if err != nil {
		p.dropped.Add(uint64(len(recs)))
	}
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
	for {
		select {
		case batch := <-recs:
			for _, r := range batch {
				if err := out(r); err != nil {
					return err
				}
			}
		case <-end:
			for {
				select {
				case batch := <-recs:
					for _, r := range batch {
						if err := out(r); err != nil {
							return err
						}
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
