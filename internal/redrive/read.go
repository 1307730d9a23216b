package redrive

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/triggers"
)

// readInflight bounds the messages a reading subscription is sent ahead of
// its reader: a dead letter carries a payload of up to 1 MiB.
const readInflight = 16

// readRange calls fn with each message of a stream from start, in order,
// until the one at sequence last (which is stored) or fn returns false.
// A stream's sequences may have gaps (eventlog), so it stops at the first
// message at or past last rather than counting.
func readRange(ctx context.Context, l eventlog.Log, stream string, start eventlog.Start, last uint64, fn func(*eventlog.Msg) bool) error {
	if last == 0 {
		return nil
	}
	msgs := make(chan *eventlog.Msg, readInflight)
	stop := make(chan struct{})
	defer close(stop)
	sub, err := l.Subscribe(stream, eventlog.SubOptions{Start: start, MaxInflight: readInflight}, func(m *eventlog.Msg) {
		select {
		case msgs <- m:
		case <-stop:
		}
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	defer sub.Close()
	for {
		select {
		case m := <-msgs:
			if m.Sequence > last {
				return nil
			}
			if !fn(m) || m.Sequence == last {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("read %s: %w", stream, ctx.Err())
		}
	}
}

// DeadLetter is a dead letter as it is stored on its error topic, with
// its place there.
type DeadLetter struct {
	// Sequence and Time are the letter's own on the error topic.
	Sequence uint64
	Time     time.Time
	triggers.DeadLetter
	// Problem says why the message is not a dead letter (another
	// application published to the error topic); the other fields are
	// then empty.
	Problem string
}

func parseLetter(m *eventlog.Msg) DeadLetter {
	d := DeadLetter{Sequence: m.Sequence, Time: m.Time.UTC()}
	if err := json.Unmarshal(m.Data, &d.DeadLetter); err != nil || d.DeadLetter.Topic == "" {
		d.DeadLetter = triggers.DeadLetter{}
		d.Problem = "not a dead letter: no JSON object with a source topic (something other than a trigger published it)"
	}
	return d
}

// ReadLetters returns up to limit dead letters of an error topic, oldest
// first, from the first one after sequence after; next is the sequence to
// give as after for the following page, 0 when there is none.
func ReadLetters(ctx context.Context, l eventlog.Log, topic string, after uint64, limit int) (letters []DeadLetter, next uint64, err error) {
	last, err := l.Last(ctx, topic)
	if err != nil || last <= after {
		return nil, 0, err
	}
	err = readRange(ctx, l, topic, eventlog.At(after+1), last, func(m *eventlog.Msg) bool {
		if len(letters) == limit {
			next = letters[len(letters)-1].Sequence
			return false
		}
		letters = append(letters, parseLetter(m))
		return true
	})
	return letters, next, err
}

// readLetter returns the dead letter at a sequence of an error topic;
// found is false if the topic has no message there.
func readLetter(ctx context.Context, l eventlog.Log, topic string, seq uint64) (d DeadLetter, found bool, err error) {
	last, err := l.Last(ctx, topic)
	if err != nil || seq > last || seq == 0 {
		return d, false, err
	}
	err = readRange(ctx, l, topic, eventlog.At(seq), last, func(m *eventlog.Msg) bool {
		if m.Sequence == seq {
			d, found = parseLetter(m), true
		}
		return false
	})
	return d, found, err
}
