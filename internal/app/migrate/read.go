package migrate

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/eventlog"
)

// readBuffer is how many messages a read holds ahead of its consumer: a
// replay delivers ~180k messages/s, and the consumer publishes each to
// the target, so a deep buffer only holds memory.
const readBuffer = 256

// readAll calls fn with every message of a stream, in order, up to the
// last one stored when it started (later ones are left: the source's
// daemons are stopped, and on the target they are what this run wrote).
// It returns that last sequence (0 for an empty stream).
func readAll(ctx context.Context, l eventlog.Log, stream string, fn func(*eventlog.Msg) error) (uint64, error) {
	last, err := l.Last(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	if last == 0 {
		return 0, nil
	}
	msgs := make(chan *eventlog.Msg, readBuffer)
	stop := make(chan struct{})
	sub, err := l.Subscribe(stream, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		select {
		case msgs <- m:
		case <-stop:
		}
	})
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", stream, err)
	}
	defer func() {
		close(stop) // first: a handler blocked on msgs returns, and Close does not wait for it
		sub.Close()
	}()
	for {
		select {
		case m := <-msgs:
			if m.Sequence > last {
				return last, nil
			}
			if err := fn(m); err != nil {
				return last, err
			}
			if m.Sequence == last {
				return last, nil
			}
		case <-ctx.Done():
			return last, fmt.Errorf("read %s (up to sequence %d): %w", stream, last, ctx.Err())
		}
	}
}
