// Package jslog is the event log (eventlog.Log) on NATS JetStream, with
// nats.go's jetstream package, and an embedded nats-server with JetStream
// that several daemons can form into a cluster of their own.
//
// # Layout
//
// A sluice stream is a subject; seven JetStream streams hold them by kind
// of retention, so the server keeps seven streams however many functions,
// topics and invocations there are:
//
//	JetStream stream  subjects              holds (sluice stream names)            retention
//	SLUICE_CATALOG    sluice.catalog.>      sluice.catalog                         for good
//	SLUICE_WF         sluice.wf.>           sluice.wf.* (events, per invocation)   until Delete
//	SLUICE_CKPT       sluice.ckpt.>         sluice.wf.checkpoints, sluice.ckpt.*   newest 1,000 per stream
//	SLUICE_SHORT      sluice.short.>        sluice.wf.nodes, sluice.nodes*, sluice.ticks.*  one hour
//	SLUICE_LOGS       sluice.logs.>         sluice.logs.*                          10,000 per function, 24 h, 1 GiB in all
//	SLUICE_SYS        sluice.sys.>          any other sluice.* name                for good
//	SLUICE_TOPICS     sluice.topic.>        any name not under sluice. (users' topics)  for good
//
// The subject of "sluice.X" is sluice.<kind>.X and that of a topic T is
// sluice.topic.T: the kinds never overlap and no topic can reach one of
// sluice's own streams. Every stream de-duplicates message IDs over
// DedupWindow. A stream's sequences are its JetStream stream's, so they
// have gaps (the contract allows it). Blobs (module bytes, large workflow
// values) are in the Object Store bucket sluice-modules. Connect creates the streams and the bucket, or
// updates them to this layout, idempotently: daemons that connect at once
// agree.
//
// # Delivery
//
// A plain subscription is an ordered consumer (ephemeral, in memory, on
// the stream's subject): nats.go re-creates it after a reconnect, a
// server restart or a leader change, starting after the last sequence it
// handed to the handler. A durable queue subscription is a durable pull
// consumer named after the queue and the stream; each subscriber runs its
// own pull loop on it, so subscribers share the messages. A subscriber
// asks for no more messages than it has free slots (MaxInflight less the
// messages it holds unsettled), and the server hands each message to the
// next waiting request: a queue's messages go to the subscribers that can
// start them now, in turn, and a subscriber whose slots are full (a
// function compiling on its first call, slow calls) takes nothing until
// one is free, so the others carry the queue meanwhile. Nothing waits in
// a client's buffer, ageing against its AckWait and kept from the other
// subscribers. Unsubscribe (or
// Delete) deletes the consumer: the queue's other subscribers, on any
// connection, then end (told by the server, or, if their link was down,
// by looking the consumer up when it is back: a consumer of the same name
// created meanwhile is a new queue, which they do not join). Delivery counts
// are the consumer's, kept by the server across restarts and failovers;
// Nak(d) is a negative ack with delay d. A family subscription
// (eventlog.Families) is an ordered consumer on two subjects, the prefix's
// and the prefix's ".>", in its kind's JetStream stream, so it delivers in
// that stream's order: the workflow engine's invocation streams
// sluice.wf.inv.<id> are subjects of SLUICE_WF.
//
// # What a fault costs
//
// Publish returns once the stream's leader (and, with 3 replicas, a
// majority) stored the message, fsync'd per JetStream's sync interval:
// with one server, a machine crash can lose the last seconds that the
// operating system had not written (a process crash loses nothing); with
// 3 replicas a message survives any one server. A publish that times out
// is retried with the same ID, so it is stored once (Publish gives a
// message without an ID one of its own for its retries).
// Plain subscriptions neither skip nor repeat across faults; queue
// subscriptions redeliver what was not acked (at least once).
package jslog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// Options configure a connection.
type Options struct {
	// URL of the NATS server, e.g. nats://127.0.0.1:4222; several may be
	// given separated by commas (a cluster's). It may hold credentials;
	// logs and errors show it redacted.
	URL string
	// Auth is the credentials to present, if not in the URL.
	Auth broker.Auth
	// TLS is the CA to trust and the client certificate, if any.
	TLS broker.TLS
	// Name names the connection on the server (its monitoring).
	Name string
	// Logger receives connection events.
	Logger *slog.Logger
	// Replicas of each JetStream stream and of the blob bucket: 1, or 3
	// in a 3-server cluster. 0 is 1.
	Replicas int
	// PingInterval and PingMaxOut detect a lost server: after PingMaxOut
	// unanswered pings PingInterval apart, the client reconnects.
	PingInterval time.Duration
	PingMaxOut   int
	// ConnectWait bounds one connection attempt.
	ConnectWait time.Duration
	// PubAckWait bounds the wait for one publish acknowledgement; a
	// synchronous publish is then retried (with the same ID), an
	// asynchronous one fails.
	PubAckWait time.Duration
	// MaxPubAcksInflight bounds asynchronous publishes awaiting their
	// ack; further ones wait.
	MaxPubAcksInflight int
}

// Defaults of Options.
const (
	// DefaultPingInterval, DefaultPingMaxOut: a lost server is noticed
	// within about 3 s, as with NATS Streaming (internal/broker).
	DefaultPingInterval = broker.DefaultPingInterval
	DefaultPingMaxOut   = broker.DefaultPingMaxOut
	DefaultConnectWait  = broker.DefaultConnectWait
	// DefaultPubAckWait: an acknowledgement waits for a majority of
	// replicas to store the message; 10 s covers a busy disk and a
	// leader election (JetStream's default of 5 s gave timeouts on a
	// loaded 2-core machine during elections).
	DefaultPubAckWait = 10 * time.Second
	// DefaultMaxPubAcksInflight bounds a burst's publishes awaiting their
	// ack, so that a long burst waits for room rather than failing its
	// tail. A server alone stores one message at a time, each synced to
	// disk (EmbeddedOptions.NoSync), and PubAckWait runs from the send:
	// the last of n messages sent at once waits n times the time of one
	// store. NATS Streaming syncs the messages in flight together, which
	// is why its client allows 16,384 (internal/broker); here 2,000 sent
	// at once overran the 10 s on a loaded machine (5 ms or more a
	// message). 256 keeps that wait near a second at 5 ms, and a further
	// publish waits for room: up to PubAckWait, failing only if no ack
	// comes meanwhile.
	DefaultMaxPubAcksInflight = 256
	// reconnectWait is the pause between reconnection attempts.
	reconnectWait = 250 * time.Millisecond
	// setupTimeout bounds one attempt at creating the layout at Connect;
	// attempts repeat until Connect's context ends.
	setupTimeout = 10 * time.Second
	// layoutRequestTimeout bounds one request of the layout's setup at
	// Connect. When the daemons of a new cluster start at once, they
	// create the same streams at once, and the meta leader may leave the
	// second request for a stream unanswered (seen: every daemon but one
	// waited out a 10 s attempt, some once per stream); the retry finds
	// the stream made. A request answered takes milliseconds.
	layoutRequestTimeout = 2 * time.Second
)

func (o *Options) setDefaults() {
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = "sluice-" + host
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
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

// Log is the event log on JetStream. It implements eventlog.Log.
type Log struct {
	opts  Options
	log   *slog.Logger
	nc    *nats.Conn
	js    jetstream.JetStream
	blobs *blobs
	// maxPayload is the server's limit on a message, headers included.
	maxPayload int

	asyncMu   sync.Mutex    // held while sending asynchronously
	async     chan asyncPub // awaiting their ack, in publish order
	asyncDone chan struct{}

	mu      sync.Mutex
	up      chan struct{} // closed while connected
	upSince time.Time
	subs    map[*sub]struct{}
	closed  bool
	done    chan struct{} // closed by Close
}

var _ eventlog.Log = (*Log)(nil)

// Connect connects to a NATS server with JetStream, retrying until ctx
// ends, and creates (or updates) sluice's streams and blob bucket. The
// returned Log reconnects by itself after a loss. A server that refuses
// the credentials, or whose certificate is not trusted, is not retried
// (broker.ErrRefused); nor is a server without JetStream (ErrNoJetStream)
// or streams that cannot be made to match the layout (ErrLayout).
func Connect(ctx context.Context, opts Options) (*Log, error) {
	opts.setDefaults()
	if err := opts.Auth.Check(); err != nil {
		return nil, err
	}
	if err := opts.TLS.Check(); err != nil {
		return nil, err
	}
	if opts.Replicas > 5 {
		return nil, fmt.Errorf("%w: %d replicas: JetStream keeps at most 5", ErrCluster, opts.Replicas)
	}
	shown := broker.Redact(opts.URL)
	l := &Log{
		opts: opts, log: opts.Logger,
		up: make(chan struct{}), subs: map[*sub]struct{}{}, done: make(chan struct{}),
		async: make(chan asyncPub, opts.MaxPubAcksInflight), asyncDone: make(chan struct{}),
	}
	no := append([]nats.Option{
		nats.Name(opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.Timeout(opts.ConnectWait),
		nats.PingInterval(opts.PingInterval),
		nats.MaxPingsOutstanding(opts.PingMaxOut),
		// Publishes wait for the connection rather than sit in a buffer
		// that a reconnect to a server not yet serving JetStream loses.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { l.down(err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { l.reconnected(nc) }),
	}, opts.Auth.NATSOptions()...)
	no = append(no, opts.TLS.NATSOptions()...)
	var err error
	for {
		l.nc, err = nats.Connect(opts.URL, no...)
		if err == nil {
			break
		}
		if broker.Refused(err) {
			return nil, fmt.Errorf("%w: connect to NATS at %s: %w", broker.ErrRefused, shown, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS at %s: %w (last error: %v)", shown, ctx.Err(), err)
		case <-time.After(reconnectWait):
		}
	}
	l.js, err = jetstream.New(l.nc,
		jetstream.WithPublishAsyncMaxPending(opts.MaxPubAcksInflight),
		jetstream.WithPublishAsyncTimeout(opts.PubAckWait),
		jetstream.WithDefaultTimeout(setupTimeout))
	if err != nil {
		l.nc.Close()
		return nil, fmt.Errorf("JetStream on %s: %w", shown, err)
	}
	l.maxPayload = int(l.nc.MaxPayload())
	if err := l.setup(ctx); err != nil {
		l.nc.Close()
		return nil, fmt.Errorf("JetStream on %s: %w", shown, err)
	}
	// The link may have dropped and come back during setup: the
	// reconnect handler then marked the Log up already.
	l.mu.Lock()
	if l.nc.IsConnected() {
		select {
		case <-l.up:
		default:
			close(l.up)
			l.upSince = time.Now()
		}
	}
	l.mu.Unlock()
	go l.settleAsync()
	return l, nil
}

// setup creates or updates the layout's streams and the blob bucket,
// retrying what a starting server or cluster answers until ctx ends.
func (l *Log) setup(ctx context.Context) error {
	var last error
	for {
		last = l.setupOnce(ctx)
		if last == nil {
			return nil
		}
		if !transient(last) {
			return last
		}
		l.log.Debug("JetStream not ready; retrying", "err", last)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create sluice's streams: %w (last error: %v)", ctx.Err(), last)
		case <-time.After(reconnectWait):
		}
	}
}

func (l *Log) setupOnce(ctx context.Context) error {
	actx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if _, err := l.js.AccountInfo(actx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("%w: %w (start nats-server with -js, or let the daemon embed one)", ErrNoJetStream, err)
		}
		return err
	}
	for _, k := range kinds {
		cfg := k.config(l.opts.Replicas)
		rctx, cancel := context.WithTimeout(actx, layoutRequestTimeout)
		err := l.ensureStream(rctx, cfg)
		cancel()
		if err != nil {
			if transient(err) {
				return err
			}
			return fmt.Errorf("%w: stream %s (subjects %v): %w", ErrLayout, cfg.Name, cfg.Subjects, err)
		}
	}
	// An existing bucket is left as it is (see ensureStream).
	obs, err := l.js.ObjectStore(actx, blobBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = l.js.CreateOrUpdateObjectStore(actx, jetstream.ObjectStoreConfig{
			Bucket:      blobBucket,
			Description: "sluice: function modules",
			Storage:     jetstream.FileStorage,
			Replicas:    l.opts.Replicas,
		})
	}
	if err != nil {
		if transient(err) {
			return err
		}
		return fmt.Errorf("%w: object store %s: %w", ErrLayout, blobBucket, err)
	}
	l.blobs = &blobs{l: l, obs: obs}
	return nil
}

// ensureStream creates a stream, or updates it if its configuration is
// not what sluice wants; a stream already as wanted is left alone. An
// update is not free: nats-server v2.15 updating a stream's store while
// another client creates a consumer on it is a data race inside the
// server, and every daemon connects at start
// (TestConnectLeavesStreamsAlone).
func (l *Log) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	st, err := l.js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = l.js.CreateStream(ctx, cfg)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return err
		}
		st, err = l.js.Stream(ctx, cfg.Name) // another daemon was first
	}
	if err != nil {
		return err
	}
	if streamAsWanted(st.CachedInfo().Config, cfg) {
		return nil
	}
	_, err = l.js.UpdateStream(ctx, cfg)
	return err
}

// streamAsWanted tells whether a stream's configuration has every setting
// sluice gives it. The server answers -1 for a limit left at 0: both
// mean none.
func streamAsWanted(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Replicas == want.Replicas &&
		have.MaxAge == want.MaxAge && orUnlimited(have.MaxMsgsPerSubject) == orUnlimited(want.MaxMsgsPerSubject) &&
		orUnlimited(have.MaxBytes) == orUnlimited(want.MaxBytes) && orUnlimited(have.MaxMsgs) == orUnlimited(want.MaxMsgs) &&
		have.Discard == want.Discard && have.Duplicates == want.Duplicates && have.AllowDirect == want.AllowDirect
}

// down runs when the connection is lost.
func (l *Log) down(err error) {
	l.mu.Lock()
	if !l.closed {
		select {
		case <-l.up:
			l.up = make(chan struct{})
		default:
		}
		l.upSince = time.Time{}
	}
	l.mu.Unlock()
	if err != nil {
		l.log.Warn("NATS connection lost; reconnecting", "err", err)
	}
}

// reconnected runs when the connection is back. nats.go resumes the
// consumers' pull requests and re-creates ordered consumers by itself;
// each queue subscription checks that its consumer was not deleted
// meanwhile (it then ends).
func (l *Log) reconnected(nc *nats.Conn) {
	l.mu.Lock()
	if !l.closed {
		select {
		case <-l.up:
		default:
			close(l.up)
		}
		l.upSince = time.Now()
		for s := range l.subs {
			if s.queue != "" {
				s.poke()
			}
		}
	}
	l.mu.Unlock()
	l.log.Info("NATS connection re-established", "url", nc.ConnectedUrlRedacted())
}

// Connected tells whether the connection is up now.
func (l *Log) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed && l.nc.IsConnected()
}

// WaitUp waits until the connection is up, or ctx ends.
func (l *Log) WaitUp(ctx context.Context) error {
	for {
		l.mu.Lock()
		up, closed := l.up, l.closed
		l.mu.Unlock()
		if closed {
			return eventlog.ErrClosed
		}
		select {
		case <-up:
			if l.nc.IsConnected() {
				return nil
			}
			// the handler has not run yet: poll until it has
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: %w", eventlog.ErrNotConnected, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		case <-l.done:
			return eventlog.ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", eventlog.ErrNotConnected, ctx.Err())
		}
	}
}

// UpSince is when the connection was last (re-)established; zero while
// it is down.
func (l *Log) UpSince() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || !l.nc.IsConnected() {
		return time.Time{}
	}
	return l.upSince
}

// Features says what JetStream guarantees beyond the contract.
func (l *Log) Features() eventlog.Features {
	return eventlog.Features{
		Sequences:         true,
		Name:              "jetstream",
		Dedup:             true,
		DedupWindow:       DedupWindow,
		Nak:               true,
		DurableDeliveries: true,
		Headers:           true,
		Delete:            true,
		Families:          true,
		MaxPayload:        l.maxPayload - headerReserve,

		UnsubscribeEndsQueue: true,
	}
}

// headerReserve is the part of the server's max payload kept for the
// headers (ID, trace context), so that Data of Features.MaxPayload bytes
// is accepted with them.
const headerReserve = 4 << 10

// Blobs is the store of modules: the Object Store bucket sluice-modules.
func (l *Log) Blobs() eventlog.Blobs { return l.blobs }

// Close ends every subscription (durable queues stay on the server) and
// the connection, after the acknowledgements of asynchronous publishes
// already sent have arrived (or timed out).
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	subs := make([]*sub, 0, len(l.subs))
	for s := range l.subs {
		subs = append(subs, s)
	}
	l.mu.Unlock()
	l.asyncMu.Lock() // no PublishAsync is sending (see there)
	close(l.done)
	l.asyncMu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	<-l.asyncDone
	l.nc.Close()
	return nil
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// retry runs op until it succeeds, fails for good, or ctx ends: while
// the connection is down it waits for it, and it retries what a server
// that is starting or electing a leader answers.
func (l *Log) retry(ctx context.Context, op func(ctx context.Context) error) error {
	for {
		if l.isClosed() {
			return eventlog.ErrClosed
		}
		if err := l.WaitUp(ctx); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, l.opts.PubAckWait)
		err := op(actx)
		cancel()
		if err == nil || !transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w (last error: %v)", eventlog.ErrNotConnected, ctx.Err(), err)
		}
		l.log.Debug("JetStream not answering; retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w (last error: %v)", eventlog.ErrNotConnected, ctx.Err(), err)
		case <-l.done:
			return eventlog.ErrClosed
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// transient tells whether an error is one of a server out of reach, not
// ready, or electing a leader: trying again is the cure. With no
// reconnect buffer (nats.ReconnectBufSize(-1)), what is sent while the
// link is down fails with ErrReconnectBufExceeded.
func transient(err error) bool {
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoServers) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		// 503: JetStream temporarily unavailable, no leader, no quorum.
		// 10005 "no suitable peers for placement, peer offline": a
		// cluster still forming (or a peer restarting) has not yet heard
		// from enough servers to place a stream's replicas; the same code
		// for another reason (more replicas than servers) is for good.
		return api.Code == 503 || api.Code == 408 ||
			api.ErrorCode == jsNoPeers && strings.Contains(api.Description, "offline")
	}
	return false
}

// jsNoPeers is JetStream's error code for a stream it cannot place.
const jsNoPeers = 10005

// outage marks an error of a lost or unanswering server as
// ErrNotConnected: nothing was wrong with what was asked.
func outage(err error) error {
	if err == nil || errors.Is(err, eventlog.ErrNotConnected) || !transient(err) {
		return err
	}
	return fmt.Errorf("%w: %w", eventlog.ErrNotConnected, err)
}
