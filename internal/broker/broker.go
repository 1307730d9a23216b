// Package broker is sluice's narrow wrapper around NATS Streaming: one
// connection that survives losing the server (it reconnects and resumes
// every subscription, never exits the process), publishing that waits for a
// connection, and an embedded server for the single-command setup.
//
// The embedded server lets in only clients with its credentials (Auth)
// unless it listens on loopback alone, and may serve TLS. A damaged file
// store is a *StoreError that says what to do and what it costs, never a
// panic: docs/RATIONALE.md has which damage does what.
//
// Components do not use this package: they use the event-log contract
// (package eventlog), which internal/natslog implements on Conn. What
// stays here is shared by every implementation and the daemon: the
// embedded server, credentials (Auth), TLS, Redact and the store's
// channel limits.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"
)

// Msg is a message delivered to a subscription.
type Msg = stan.Msg

// Options configure a connection.
type Options struct {
	// URL of the NATS server, e.g. nats://127.0.0.1:4222; several may be
	// given separated by commas. It may hold credentials
	// (nats://user:password@host:4222); logs and errors show it redacted.
	URL string
	// Auth is the credentials to present, if not in the URL.
	Auth Auth
	// TLS is the CA to trust and the client certificate, if any; a
	// tls:// URL uses TLS with the system's CAs.
	TLS TLS
	// ClusterID is the NATS Streaming cluster id.
	ClusterID string
	// Name prefixes the client ids this connection registers: each
	// (re)connection registers a fresh unique id, so several daemons, and
	// one daemon across reconnects, never collide.
	Name string
	// Logger receives connection events.
	Logger *slog.Logger
	// PingInterval and PingMaxOut detect a lost server: after PingMaxOut
	// unanswered pings PingInterval apart, the connection is re-made.
	PingInterval time.Duration
	PingMaxOut   int
	// ConnectWait bounds one connection attempt.
	ConnectWait time.Duration
	// PubAckWait bounds the wait for a publish acknowledgement.
	PubAckWait time.Duration
	// MaxPubAcksInflight bounds asynchronous publishes awaiting their ack;
	// further ones block.
	MaxPubAcksInflight int
}

// Defaults of Options. A lost server is noticed within about 3 s; the
// stan.go default (5 s x 88 pings) would take over 7 minutes.
const (
	DefaultPingInterval       = time.Second
	DefaultPingMaxOut         = 3
	DefaultConnectWait        = 5 * time.Second
	DefaultPubAckWait         = 10 * time.Second
	DefaultMaxPubAcksInflight = 16384
)

func (o *Options) setDefaults() {
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = "sluice-" + host
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PingMaxOut <= 0 {
		o.PingMaxOut = DefaultPingMaxOut
	}
	if o.ConnectWait <= 0 {
		o.ConnectWait = DefaultConnectWait
	}
	if o.PubAckWait <= 0 {
		o.PubAckWait = DefaultPubAckWait
	}
	if o.MaxPubAcksInflight <= 0 {
		o.MaxPubAcksInflight = DefaultMaxPubAcksInflight
	}
}

// Conn is a connection to NATS Streaming that re-establishes itself.
type Conn struct {
	opts Options
	log  *slog.Logger
	nc   *nats.Conn

	mu        sync.Mutex
	sc        stan.Conn     // nil while reconnecting
	up        chan struct{} // closed while sc is usable
	subs      map[*Sub]struct{}
	closed    bool
	attempts  int
	upSince   time.Time     // when sc was registered
	reconnect chan struct{} // wakes the reconnect loop
	done      chan struct{} // closed by Close
	loopDone  chan struct{}
	connects  atomic.Int64
}

// Connect connects to NATS Streaming, retrying until ctx ends. The
// returned connection reconnects by itself after a loss. A server that
// refuses the credentials, or whose certificate is not trusted, is not
// retried: the error is ErrRefused.
func Connect(ctx context.Context, opts Options) (*Conn, error) {
	opts.setDefaults()
	if err := opts.Auth.check(); err != nil {
		return nil, err
	}
	if err := opts.TLS.check(); err != nil {
		return nil, err
	}
	shown := Redact(opts.URL)
	c := &Conn{
		opts: opts, log: opts.Logger,
		up: make(chan struct{}), subs: map[*Sub]struct{}{},
		reconnect: make(chan struct{}, 1), done: make(chan struct{}), loopDone: make(chan struct{}),
	}
	var err error
	for {
		no := append([]nats.Option{
			nats.Name(opts.Name),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(250 * time.Millisecond),
			// No reconnect buffer: a message published while the link is
			// down fails at once. Buffered, it would be sent when the link
			// comes back, on the same streaming client (a server with a
			// file store remembers it across a restart), and stored after
			// messages published before it that were lost in flight when
			// the link dropped: a later event stored while an earlier one
			// was not, a hole in a log that must be a prefix of what its
			// writer did.
			nats.ReconnectBufSize(-1),
			nats.Timeout(opts.ConnectWait),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					c.log.Warn("NATS connection lost; reconnecting", "err", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				c.log.Info("NATS connection re-established", "url", nc.ConnectedUrlRedacted())
			}),
		}, opts.Auth.natsOptions()...)
		c.nc, err = nats.Connect(opts.URL, append(no, opts.TLS.natsOptions()...)...)
		if err == nil {
			break
		}
		if refused(err) {
			return nil, fmt.Errorf("%w: connect to NATS at %s: %w", ErrRefused, shown, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS at %s: %w (last error: %v)", shown, ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	for {
		err = c.connectStreaming()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			c.nc.Close()
			return nil, fmt.Errorf("connect to NATS Streaming cluster %q at %s: %w (last error: %v)", opts.ClusterID, shown, ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	go c.reconnectLoop()
	return c, nil
}

// connectStreaming registers a new streaming client on the NATS connection.
func (c *Conn) connectStreaming() error {
	c.mu.Lock()
	c.attempts++
	id := c.opts.Name + "-" + nuid.Next() + "-" + strconv.Itoa(c.attempts)
	c.mu.Unlock()
	id = sanitizeClientID(id)
	sc, err := stan.Connect(c.opts.ClusterID, id,
		stan.NatsConn(c.nc),
		stan.ConnectWait(c.opts.ConnectWait),
		stan.PubAckWait(c.opts.PubAckWait),
		stan.MaxPubAcksInflight(c.opts.MaxPubAcksInflight),
		stan.Pings(pingSeconds(c.opts.PingInterval), c.opts.PingMaxOut),
		stan.SetConnectionLostHandler(func(lost stan.Conn, err error) { c.lost(lost, err) }),
	)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		sc.Close()
		return ErrClosed
	}
	c.sc = sc
	c.upSince = time.Now()
	close(c.up)
	c.connects.Add(1)
	c.mu.Unlock()
	c.log.Debug("connected to NATS Streaming", "cluster", c.opts.ClusterID, "client", id)
	return nil
}

func pingSeconds(d time.Duration) int {
	if s := int(d / time.Second); s > 0 {
		return s
	}
	return 1
}

// sanitizeClientID keeps the characters NATS Streaming allows in a client
// id: letters, digits, '-' and '_'.
func sanitizeClientID(id string) string {
	b := []byte(id)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// lost runs when stan.go gives up on the current streaming client.
func (c *Conn) lost(sc stan.Conn, err error) {
	c.mu.Lock()
	if c.sc != sc || c.closed {
		c.mu.Unlock()
		return
	}
	c.sc = nil
	c.up = make(chan struct{})
	subs := make([]*Sub, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.detach()
	}
	c.log.Warn("NATS Streaming connection lost; reconnecting and resuming subscriptions", "err", err)
	select {
	case c.reconnect <- struct{}{}:
	default:
	}
}

// reconnectLoop re-creates the streaming client after a loss and resumes
// every subscription.
func (c *Conn) reconnectLoop() {
	defer close(c.loopDone)
	for {
		select {
		case <-c.done:
			return
		case <-c.reconnect:
		}
		wait := 100 * time.Millisecond
		for {
			err := c.connectStreaming()
			if err == nil {
				break
			}
			if errors.Is(err, ErrClosed) {
				return
			}
			c.log.Debug("reconnect to NATS Streaming failed; retrying", "err", err, "in", wait)
			select {
			case <-c.done:
				return
			case <-time.After(wait):
			}
			if wait < 2*time.Second {
				wait *= 2
			}
		}
		c.mu.Lock()
		subs := make([]*Sub, 0, len(c.subs))
		for s := range c.subs {
			subs = append(subs, s)
		}
		c.mu.Unlock()
		for _, s := range subs {
			if err := s.attach(); err != nil {
				c.log.Error("resume subscription failed; retrying", "subject", s.subject, "err", err)
				c.retryAttach(s)
			}
		}
		// heard from others only now that every subscription is back
		c.mu.Lock()
		if c.sc != nil {
			c.upSince = time.Now()
		}
		c.mu.Unlock()
		c.log.Info("NATS Streaming connection restored", "subscriptions", len(subs))
	}
}

// retryAttach keeps trying to resume one subscription in the background.
func (c *Conn) retryAttach(s *Sub) {
	go func() {
		for {
			select {
			case <-c.done:
				return
			case <-time.After(500 * time.Millisecond):
			}
			if s.isClosed() || s.attach() == nil {
				return
			}
		}
	}()
}

// current returns the live streaming client, waiting for one until ctx
// ends.
func (c *Conn) current(ctx context.Context) (stan.Conn, error) {
	for {
		c.mu.Lock()
		sc, up, closed := c.sc, c.up, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if sc != nil {
			return sc, nil
		}
		if ctx == nil {
			return nil, ErrNotConnected
		}
		select {
		case <-up:
		case <-c.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		}
	}
}

// Connected tells whether the streaming client is up now.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sc != nil && c.nc.IsConnected()
}

// WaitUp waits until the connection is up (at once if it is), or ctx ends.
func (c *Conn) WaitUp(ctx context.Context) error {
	_, err := c.current(ctx)
	return err
}

// UpSince tells when the connection was last made or restored, its
// subscriptions included: how long it has been able to hear others. It is
// the zero time while the connection is down.
func (c *Conn) UpSince() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sc == nil {
		return time.Time{}
	}
	return c.upSince
}

// Publish publishes data and waits for the server's acknowledgement; while
// the connection is down it waits for it to come back, until ctx ends.
func (c *Conn) Publish(ctx context.Context, subject string, data []byte) error {
	for {
		sc, err := c.current(ctx)
		if err != nil {
			return err
		}
		if !c.nc.IsConnected() {
			// A message published now would sit in the reconnect buffer and
			// may reach a server not yet serving streaming, to be lost and
			// retried only after PubAckWait: wait for the connection instead.
			select {
			case <-ctx.Done():
				return fmt.Errorf("publish to %s: %w: %w", subject, ErrNotConnected, ctx.Err())
			case <-time.After(25 * time.Millisecond):
			}
			continue
		}
		err = sc.Publish(subject, data)
		if err == nil {
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("publish to %s: %w", subject, err)
		}
		// the client was lost under us: wait for the next one
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish to %s: %w", subject, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PublishAsync publishes data and calls ack (on another goroutine) with the
// outcome. It does not wait for a connection: while it is down it returns
// ErrNotConnected.
func (c *Conn) PublishAsync(subject string, data []byte, ack func(error)) error {
	sc, err := c.current(nil)
	if err != nil {
		return err
	}
	_, err = sc.PublishAsync(subject, data, func(_ string, err error) { ack(outage(err)) })
	return outage(err)
}

// outage marks an error of a lost or unanswered connection as
// ErrNotConnected: NATS Streaming was out of reach, nothing was wrong with
// what was published.
func outage(err error) error {
	if err == nil || errors.Is(err, ErrNotConnected) || !retryable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNotConnected, err)
}

func retryable(err error) bool {
	return errors.Is(err, stan.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, stan.ErrTimeout) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || // the link is down (no reconnect buffer)
		// stan.go's answer to a subscribe request that timed out or that
		// nobody listens to: the link is back but the restarted server does
		// not serve streaming yet
		errors.Is(err, stan.ErrSubReqTimeout)
}

// Close unsubscribes nothing (durable subscriptions stay registered on the
// server), closes the streaming client and the NATS connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	sc := c.sc
	c.sc = nil
	subs := make([]*Sub, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	close(c.done)
	<-c.loopDone
	for _, s := range subs {
		s.Close()
	}
	var err error
	if sc != nil {
		err = sc.Close()
	}
	c.nc.Close()
	return err
}

// MaxPayload is the largest message the NATS server accepts (its
// max_payload), as it said when the connection was made.
func (c *Conn) MaxPayload() int64 { return c.nc.MaxPayload() }

// Connects counts the streaming clients this connection has registered:
// 1 plus the number of reconnections.
func (c *Conn) Connects() int64 { return c.connects.Load() }
