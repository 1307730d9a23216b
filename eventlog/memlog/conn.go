package memlog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// Connect returns a new connection to the broker, up at once.
func (b *Broker) Connect() eventlog.Log {
	c := &conn{b: b, upCh: make(chan struct{}), subs: map[*sub]struct{}{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	c.up = true
	c.upSince = time.Now()
	close(c.upCh)
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	go c.callbacks()
	return c
}

// conn is a connection to a Broker: an eventlog.Log. Its state is guarded
// by the broker's lock.
type conn struct {
	b *Broker

	closed  bool
	up      bool
	upCh    chan struct{} // closed while up
	upSince time.Time
	relink  *time.Timer // brings the link back after a drop
	subs    map[*sub]struct{}

	// The done callbacks of PublishAsync, called in order on one
	// goroutine.
	dmu     sync.Mutex
	pending []func()
	wake    chan struct{} // one token: pending has callbacks
	done    chan struct{} // closed by Close: the goroutine drains and ends
}

// dropLocked takes the link down for d and schedules its return. The
// messages the connection's queue subscribers hold are released: they
// come back, to any subscriber, when their AckWait ends, as they would
// after a real broker lost the client.
func (c *conn) dropLocked(d time.Duration) {
	if c.closed {
		return
	}
	if c.up {
		c.up = false
		c.upCh = make(chan struct{})
		c.upSince = time.Time{}
		for s := range c.subs {
			s.releaseLocked()
		}
	}
	if c.relink != nil {
		c.relink.Stop()
	}
	c.relink = time.AfterFunc(d, c.linkUp)
}

// linkUp re-establishes the link.
func (c *conn) linkUp() {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.closed || c.up {
		return
	}
	c.up = true
	c.upSince = time.Now()
	close(c.upCh)
}

// waitUp returns once the link is up, with the broker locked; on an error
// the broker is not locked.
func (c *conn) waitUp(ctx context.Context) error {
	for {
		c.b.mu.Lock()
		if c.closed {
			c.b.mu.Unlock()
			return eventlog.ErrClosed
		}
		if c.up {
			return nil
		}
		ch := c.upCh
		c.b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", eventlog.ErrNotConnected, ctx.Err())
		}
	}
}

// check refuses a name the contract does not allow and a message over the
// broker's limit.
func (c *conn) check(stream string, m eventlog.Message) error {
	if !eventlog.ValidName(stream) {
		return fmt.Errorf("publish to %q: %w", stream, eventlog.ErrInvalidName)
	}
	if len(m.Data) > c.b.maxPayload {
		return fmt.Errorf("publish to %s: a message of %d bytes: %w (the limit is %d bytes, set by memlog.WithMaxPayload)",
			stream, len(m.Data), eventlog.ErrTooLarge, c.b.maxPayload)
	}
	return nil
}

// Publish stores a message, waiting for the link while it is down.
func (c *conn) Publish(ctx context.Context, stream string, m eventlog.Message) (uint64, error) {
	if err := c.check(stream, m); err != nil {
		return 0, err
	}
	if err := c.waitUp(ctx); err != nil {
		return 0, fmt.Errorf("publish to %s: %w", stream, err)
	}
	defer c.b.mu.Unlock()
	return c.b.appendLocked(stream, m), nil
}

// PublishAsync stores a message now and reports it to done on the
// connection's callback goroutine, in the order of the calls.
func (c *conn) PublishAsync(stream string, m eventlog.Message, done func(uint64, error)) error {
	if err := c.check(stream, m); err != nil {
		return err
	}
	if done == nil {
		done = func(uint64, error) {}
	}
	c.b.mu.Lock()
	if c.closed {
		c.b.mu.Unlock()
		return fmt.Errorf("publish to %s: %w", stream, eventlog.ErrClosed)
	}
	if !c.up {
		c.b.mu.Unlock()
		return fmt.Errorf("publish to %s: %w", stream, eventlog.ErrNotConnected)
	}
	seq := c.b.appendLocked(stream, m)
	// queued under the broker's lock, so that callbacks keep the order of
	// the messages
	c.dmu.Lock()
	c.pending = append(c.pending, func() { done(seq, nil) })
	c.dmu.Unlock()
	c.b.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// callbacks calls the done callbacks of PublishAsync in order, until the
// connection is closed and every one was called.
func (c *conn) callbacks() {
	for {
		c.dmu.Lock()
		fs := c.pending
		c.pending = nil
		c.dmu.Unlock()
		for _, f := range fs {
			f()
		}
		if len(fs) > 0 {
			continue
		}
		select {
		case <-c.wake:
		case <-c.done:
			c.dmu.Lock()
			n := len(c.pending)
			c.dmu.Unlock()
			if n == 0 {
				return
			}
		}
	}
}

// Last returns the sequence of the stream's last message.
func (c *conn) Last(ctx context.Context, stream string) (uint64, error) {
	if !eventlog.ValidName(stream) {
		return 0, fmt.Errorf("last of %q: %w", stream, eventlog.ErrInvalidName)
	}
	if err := c.waitUp(ctx); err != nil {
		return 0, fmt.Errorf("last of %s: %w", stream, err)
	}
	defer c.b.mu.Unlock()
	if s := c.b.streams[stream]; s != nil {
		return s.lastLocked(), nil
	}
	return 0, nil
}

// LastOfFamily returns the sequence of the last message of a family.
func (c *conn) LastOfFamily(ctx context.Context, prefix string) (uint64, error) {
	if !eventlog.ValidName(prefix) {
		return 0, fmt.Errorf("last of the family %q: %w", prefix, eventlog.ErrInvalidName)
	}
	if err := c.waitUp(ctx); err != nil {
		return 0, fmt.Errorf("last of the family %s: %w", prefix, err)
	}
	defer c.b.mu.Unlock()
	return c.b.familyLastLocked(prefix), nil
}

// Delete removes a stream's messages and queues.
func (c *conn) Delete(ctx context.Context, stream string) error {
	if !eventlog.ValidName(stream) {
		return fmt.Errorf("delete %q: %w", stream, eventlog.ErrInvalidName)
	}
	if err := c.waitUp(ctx); err != nil {
		return fmt.Errorf("delete %s: %w", stream, err)
	}
	defer c.b.mu.Unlock()
	c.b.deleteLocked(stream)
	return nil
}

// Blobs returns the broker's blob store, through this connection.
func (c *conn) Blobs() eventlog.Blobs { return blobs{c} }

// Features returns what the broker claims.
func (c *conn) Features() eventlog.Features { return c.b.Features() }

// Connected tells whether the link is up.
func (c *conn) Connected() bool {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	return c.up && !c.closed
}

// WaitUp waits for the link.
func (c *conn) WaitUp(ctx context.Context) error {
	if err := c.waitUp(ctx); err != nil {
		return err
	}
	c.b.mu.Unlock()
	return nil
}

// UpSince is when the link was last established.
func (c *conn) UpSince() time.Time {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if !c.up || c.closed {
		return time.Time{}
	}
	return c.upSince
}

// Close ends every subscription (their queues stay) and the connection.
// It does not wait for a handler that is running: its subscription's
// goroutine ends when it returns. Done callbacks of PublishAsync not yet
// called are called.
func (c *conn) Close() error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.up = false
	if c.relink != nil {
		c.relink.Stop()
	}
	for s := range c.subs {
		s.endLocked(false)
	}
	delete(c.b.conns, c)
	close(c.done)
	return nil
}

// blobs is the broker's blob store seen through a connection.
type blobs struct{ c *conn }

func (bl blobs) Put(ctx context.Context, name string, data []byte) error {
	if !eventlog.ValidName(name) {
		return fmt.Errorf("put blob %q: %w", name, eventlog.ErrInvalidName)
	}
	if err := bl.c.waitUp(ctx); err != nil {
		return fmt.Errorf("put blob %s: %w", name, err)
	}
	defer bl.c.b.mu.Unlock()
	bl.c.b.blobs[name] = clone(data)
	return nil
}

func (bl blobs) Get(ctx context.Context, name string) ([]byte, error) {
	if !eventlog.ValidName(name) {
		return nil, fmt.Errorf("get blob %q: %w", name, eventlog.ErrInvalidName)
	}
	if err := bl.c.waitUp(ctx); err != nil {
		return nil, fmt.Errorf("get blob %s: %w", name, err)
	}
	defer bl.c.b.mu.Unlock()
	data, ok := bl.c.b.blobs[name]
	if !ok {
		return nil, fmt.Errorf("get blob %s: %w", name, eventlog.ErrNotFound)
	}
	return clone(data), nil
}

func (bl blobs) Delete(ctx context.Context, name string) error {
	if !eventlog.ValidName(name) {
		return fmt.Errorf("delete blob %q: %w", name, eventlog.ErrInvalidName)
	}
	if err := bl.c.waitUp(ctx); err != nil {
		return fmt.Errorf("delete blob %s: %w", name, err)
	}
	defer bl.c.b.mu.Unlock()
	delete(bl.c.b.blobs, name)
	return nil
}
