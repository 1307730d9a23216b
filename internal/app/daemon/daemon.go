// Package daemon wires sluice together: the broker (NATS Streaming or
// JetStream, embedded or external; embedded JetStream can cluster with
// other daemons), the host, the catalog and its registry of
// loaded functions, the triggers and the HTTP API.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/metrics"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/egress"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/logstream"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/internal/registry"
	"github.com/sluicehq/sluice/logctx"
	"github.com/sluicehq/sluice/triggers"
)

// Options configure a daemon. Fill them from DefaultOptions.
type Options struct {
	// Listen is the API's address.
	Listen string
	// Broker is BrokerNATSStreaming or BrokerJetStream; "" is
	// DefaultBroker.
	Broker string
	// DataDir holds the embedded broker's store (DATA/nats or
	// DATA/jetstream) and the caches.
	DataDir string
	// CompileCacheDir holds compiled code; "" means DataDir/cache/compiled.
	// Daemons may share one.
	CompileCacheDir string
	// CompileTimeout bounds compiling one module (0:
	// host.DefaultCompileTimeout).
	CompileTimeout time.Duration
	// NATSListen is where the embedded NATS server listens.
	NATSListen string
	// NATSURL, if set, uses that NATS Streaming server (or nats-server
	// with JetStream) and embeds none. It may carry credentials
	// (nats://user:password@host:4222).
	NATSURL string
	// ClusterID is the NATS Streaming cluster id (NATS Streaming only).
	ClusterID string
	// Cluster, with JetStream embedded, makes this daemon a member of the
	// JetStream cluster of that name, with the daemons at Peers: its
	// server routes to theirs at ClusterListen, and sluice's streams
	// have 3 replicas. ClusterPassword is what the members present to
	// each other (required unless ClusterListen is loopback).
	Cluster, ClusterListen string
	Peers                  []string
	ClusterPassword        string
	// ClusterCertFile, ClusterKeyFile and ClusterCAFile make the
	// members' routes mutual TLS: this member's certificate and key, and
	// the CA that signed every member's (all three, or none).
	ClusterCertFile, ClusterKeyFile, ClusterCAFile string
	// Replicas, with JetStream at NATSURL, is how many replicas sluice's
	// streams keep on that server's cluster (3 on a cluster of 3); 0 is
	// 1. Every daemon of the cluster must be given the same: connecting
	// sets the streams to it. Embedded, the cluster decides (1 or 3).
	Replicas int
	// NATSUser and NATSPassword, or NATSToken, are the NATS credentials:
	// with NATSURL, what the daemon presents to that server; without,
	// what the embedded server requires of every client. The embedded
	// server always requires some: without these, the user
	// DefaultNATSUser and a password generated into DataDir/nats-password.
	NATSUser, NATSPassword string
	NATSToken              string
	// NATSCredsFile is a NATS .creds file (user JWT and nkey seed) to
	// present to NATSURL's server.
	NATSCredsFile string
	// NATSCAFile is the CA that signed the NATS server's certificate;
	// NATSCertFile and NATSKeyFile a client certificate, for NATSURL's
	// server.
	NATSCAFile, NATSCertFile, NATSKeyFile string
	// NATSListenCertFile and NATSListenKeyFile make the embedded server
	// serve TLS with that certificate (NATSCAFile: the CA that signed it,
	// if it is not self-signed).
	NATSListenCertFile, NATSListenKeyFile string
	// Token, if set, is required as a bearer token on every route but
	// /healthz and /readyz.
	Token string
	// Insecure allows a non-loopback Listen without a token.
	Insecure bool
	// MemoryStore runs the embedded server on a memory store (tests and
	// benchmarks only: nothing survives a restart). With JetStream it
	// keeps the file store but does not fsync each message.
	MemoryStore bool
	// ShutdownTimeout bounds a graceful shutdown: calls still running then
	// are abandoned.
	ShutdownTimeout time.Duration
	// StartTimeout bounds the start: connecting to the broker and
	// replaying the catalog and the workflow events. A start that runs
	// past it fails, whichever step ran over.
	StartTimeout time.Duration
	// NodeID names this daemon as the owner of the workflow invocations
	// it starts; "" reads it from (or makes it in) DataDir/node-id.
	NodeID string
	// MaxValue is the largest value a workflow carries (engine.Options.
	// MaxValue): an invocation's input through the API and the triggers,
	// a task's input or output, an expression's result.
	MaxValue int
	// AllowHTTP lists the hosts workflows may call with the http
	// built-in (--allow-http): "HOST[:PORT]", "[IPV6]:PORT",
	// "*.DOMAIN[:PORT]"; without a port, 80 for http and 443 for https.
	// None turns the built-in off.
	AllowHTTP []string
	// HTTPSecrets are the values http tasks' headers may take by name,
	// {secret: NAME}, never recorded (--http-secret NAME=@FILE, env
	// SLUICE_HTTP_SECRET_NAME).
	HTTPSecrets []egress.Secret
	// MemoryBudget bounds the memory of compiled code and instances
	// (host.Config.WithMemoryBudget); 0 means none.
	MemoryBudget uint64
	// IdleTimeout is how long an idle instance, and compiled code no call
	// uses, are kept (host.Config.WithIdleTimeout); 0 keeps them until the
	// budget needs the room.
	IdleTimeout time.Duration
	// Logger is the daemon's logger. Start wraps its handler with
	// logctx.NewHandler, so that lines logged with a context carry the
	// ids it holds.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultListen     = "127.0.0.1:8080"
	DefaultDataDir    = "./data"
	DefaultNATSListen = "127.0.0.1:4222"
	DefaultClusterID  = "sluice"
	// DefaultShutdownTimeout leaves calls in flight up to their own
	// default timeout to finish.
	DefaultShutdownTimeout = 35 * time.Second
	// DefaultStartTimeout is how long a daemon waits for NATS Streaming
	// before giving up at start (after that it reconnects by itself).
	DefaultStartTimeout = time.Minute
)

// DefaultOptions returns the options of `sluice daemon` with no flags:
// a memory budget of half the memory available (host.SystemMemoryBudget).
func DefaultOptions() Options {
	return Options{
		Broker: DefaultBroker, Listen: DefaultListen, DataDir: DefaultDataDir, NATSListen: DefaultNATSListen,
		ClusterID: DefaultClusterID, ShutdownTimeout: DefaultShutdownTimeout, StartTimeout: DefaultStartTimeout,
		MemoryBudget: host.SystemMemoryBudget(), IdleTimeout: host.DefaultIdleTimeout,
		MaxValue: engine.DefaultMaxValue,
	}
}

// Bounds of Options.MaxValue (--max-value).
const (
	// MinMaxValue: what an event holds inline; a smaller limit would
	// refuse values the engine has always taken.
	MinMaxValue = engine.MaxData
	// MaxMaxValue: a value is held whole in memory where it is used (a
	// function's input, an expression), and NATS Streaming's blob store
	// takes at most 256 MiB in one value: 4 times the default, far past
	// what a function takes by default (its --max-input).
	MaxMaxValue = 256 << 20
)

// Validate checks the options, refusing an unprotected public listener
// and NATS settings that do not go together.
func (o Options) Validate() error {
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want host:port: %w", o.Listen, err)
	}
	if o.Token == "" && !o.Insecure && !broker.IsLoopback(host) {
		return fmt.Errorf("refusing to listen on %s without --token: anyone who can reach it could deploy and run code; set --token (or SLUICE_TOKEN), or pass --insecure on a trusted network", o.Listen)
	}
	if err := o.validateBroker(); err != nil {
		return err
	}
	if _, err := egress.ParseAllowList(o.AllowHTTP); err != nil {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if o.NATSToken != "" && (o.NATSUser != "" || o.NATSPassword != "") {
		return fmt.Errorf("%w: give --nats-token or --nats-user and --nats-password, not both", ErrOptions)
	}
	if o.NATSURL != "" {
		if o.NATSUser != "" && o.NATSPassword == "" {
			return fmt.Errorf("%w: --nats-user %s without --nats-password (or SLUICE_NATS_PASSWORD): set the NATS server's password", ErrOptions, o.NATSUser)
		}
		if o.NATSListenCertFile != "" || o.NATSListenKeyFile != "" {
			return fmt.Errorf("%w: --nats-listen-cert and --nats-listen-key are the embedded server's; with --nats there is none (--nats-ca trusts the server's certificate)", ErrOptions)
		}
		return nil
	}
	if o.NATSCredsFile != "" {
		return fmt.Errorf("%w: --nats-creds is for an external server (--nats); the embedded one takes --nats-user and --nats-password, or --nats-token", ErrOptions)
	}
	if o.NATSCertFile != "" || o.NATSKeyFile != "" {
		return fmt.Errorf("%w: --nats-cert and --nats-key are a client certificate for --nats; the embedded server serves TLS with --nats-listen-cert and --nats-listen-key", ErrOptions)
	}
	if (o.NATSListenCertFile == "") != (o.NATSListenKeyFile == "") {
		return fmt.Errorf("%w: --nats-listen-cert and --nats-listen-key go together", ErrOptions)
	}
	if _, _, err := net.SplitHostPort(o.NATSListen); err != nil {
		return fmt.Errorf("%w: --nats-listen %q: want host:port: %w", ErrOptions, o.NATSListen, err)
	}
	return nil
}

// Daemon is a running sluice daemon.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	id       string
	lock     *dirLock
	embedded *broker.Embedded // NATS Streaming's
	js       *jslog.Embedded  // JetStream's
	events   eventlog.Log
	// results is where queue triggers publish results and dead letters:
	// with NATS Streaming a second connection (triggers.Queue.PublishOn),
	// nil with JetStream (events)
	results  eventlog.Log
	host     *host.Host
	cat      *catalog.Catalog
	engine   *engine.Engine
	egress   *egress.Client
	node     string
	metrics  *metrics.Metrics
	queue    *triggers.Queue
	reg      *registry.Registry
	logs     *logstream.Publisher
	triggers *triggerSet
	api      *api.Server
	srv      *http.Server
	ln       net.Listener
	natsURL  string
	serveErr chan error
	stopOnce sync.Once
	stopErr  error

	// figures are the live figures; stopFigures ends their sampler.
	figures     *metrics.Figures
	stopFigures context.CancelFunc
}

// Start starts a daemon: the API listens at once (answering /healthz), and
// Start returns when the catalog is replayed and the daemon is ready.
func Start(ctx context.Context, o Options) (*Daemon, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// every line logged with a context names the request, message or
	// workflow task it is about (request_id, trigger and sequence,
	// invocation and task)
	o.Logger = slog.New(logctx.NewHandler(o.Logger.Handler()))
	hostname, _ := os.Hostname()
	d := &Daemon{opts: o, log: o.Logger, id: sanitize(hostname) + "-" + nuid.Next()[:8], serveErr: make(chan error, 1)}
	ok := false
	defer func() {
		if !ok {
			d.shutdown(context.Background())
		}
	}()
	ownerOnly()
	if err := makeDataDir(o.DataDir, d.log); err != nil {
		return nil, err
	}
	lock, err := lockDir(o.DataDir)
	if errors.Is(err, ErrLockUnsupported) {
		d.log.Warn("the data dir is not locked: never start two daemons on it", "data", o.DataDir, "err", err)
	} else if err != nil {
		return nil, err
	}
	d.lock = lock

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	d.ln = ln
	d.api = api.New(o.Token, d.log.With("component", "api"))
	d.srv, ln = api.NewHTTPServer(d.api, ln)
	go func() { d.serveErr <- d.srv.Serve(ln) }()

	// Damage the embedded server finds in the channels the start reads
	// ends the start at once, with what to do, rather than at
	// StartTimeout with a replay that never finishes.
	causeCtx, stopStart := context.WithCancelCause(ctx)
	defer stopStart(nil)
	startCtx, cancel := context.WithTimeout(causeCtx, o.StartTimeout)
	defer cancel()
	if o.NATSURL == "" {
		if err := claimDataDir(o.DataDir, o.Broker); err != nil {
			return nil, err
		}
	}
	if o.Broker == BrokerJetStream {
		err = d.connectJetStream(startCtx)
	} else {
		err = d.connectNATSStreaming(startCtx, stopStart)
	}
	if err != nil {
		return nil, d.startError(startCtx, err)
	}
	pub := logstream.NewPublisher(d.events, d.id, d.log.With("component", "guest"))
	cacheDir := o.CompileCacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(o.DataDir, "cache", "compiled")
	}
	d.logs = pub
	d.host, err = host.New(ctx, host.NewConfig().
		WithCacheDir(cacheDir).
		WithLogSink(pub).
		WithLogger(d.log.With("component", "host")).
		WithMemoryBudget(o.MemoryBudget).
		WithIdleTimeout(o.IdleTimeout).
		WithCompileTimeout(o.CompileTimeout).
		WithHTTP(d.pluginHTTP))
	if err != nil {
		return nil, err
	}
	d.cat, err = catalog.Open(startCtx, d.events, catalog.Options{
		Dir: filepath.Join(o.DataDir, "cache", "modules"), Daemon: d.id, Logger: d.log.With("component", "catalog"),
	})
	if err != nil {
		return nil, d.startError(startCtx, err)
	}
	d.reg = registry.New(d.host, d.cat, d.log.With("component", "registry"))
	if d.egress, err = newEgress(o, d.maxValue(), ln.Addr().String(), o.NATSListen); err != nil {
		return nil, err
	}
	d.metrics = metrics.New(metrics.Sources{
		Functions: d.reg.Stats,
		Triggers:  func() map[string]triggers.QueueStats { return d.triggerStats() },
		Invocations: func() map[string]int {
			if d.engine == nil {
				return nil
			}
			return d.engine.Running()
		},
		Host:        d.host.Stats,
		Loaded:      d.reg.Counts,
		LogsDropped: d.logs.Dropped,
		HTTPRequests: func() map[string]uint64 {
			st := d.egress.Stats()
			return map[string]uint64{"answered": st.Answered, "refused": st.Refused, "failed": st.Failed}
		},
	})
	d.reg.SetObserver(d.metrics.Call)
	d.api.SetMetrics(d.metrics.Handler(), d.metrics.HTTP)
	d.node = o.NodeID
	if d.node == "" {
		if d.node, err = nodeID(o.DataDir, hostname); err != nil {
			return nil, err
		}
	}
	d.engine, err = engine.Open(startCtx, engine.Options{
		Log: d.events, Functions: wfFunctions{d}, Definitions: wfDefinitions{d.cat}, Node: d.node,
		Observer: d.metrics, Logger: d.log.With("component", "engine"), MaxValue: d.opts.MaxValue,
		HTTP: wfHTTP{d.egress},
	})
	if err == nil {
		// The steps above stop at the deadline only where they wait: one
		// whose work was done past it (a select with its result and the
		// deadline both ready) returns it. A start longer than
		// --start-timeout fails all the same, whichever step ran over.
		err = startCtx.Err()
	}
	if err != nil {
		return nil, d.startError(startCtx, err)
	}
	httpTriggers := triggers.NewHTTP(d, d.maxInput)
	queue := triggers.NewQueue(d.events, d, d.log.With("component", "queue"))
	if d.results != nil {
		queue.PublishOn(d.results)
	}
	queue.ObserveLag(d.metrics.Lag)
	d.queue = queue
	d.triggers = newTriggerSet(httpTriggers, queue,
		triggers.NewTimers(d.events, queue, d.id, d.log.With("component", "timer")), d.log.With("component", "triggers"))
	_, trigs := d.cat.Watch(d.triggers.onChange)
	for _, t := range trigs {
		d.triggers.add(change{t: t})
	}
	d.figures = d.metrics.NewFigures(d.node)
	var figuresCtx context.Context
	figuresCtx, d.stopFigures = context.WithCancel(context.Background())
	go d.figures.Run(figuresCtx)
	d.api.SetBackend(&api.Backend{Host: d.host, Log: d.events, Broker: d.brokerStatus, Catalog: d.cat, Registry: d.reg, HTTP: httpTriggers, Queue: queue, Engine: d.engine,
		Figures: d.figures})
	ok = true
	d.log.Info("sluice daemon ready", "listen", ln.Addr().String(), "nats", broker.Redact(d.natsURL), "daemon", d.id, "node", d.node,
		"broker", o.Broker, "functions", len(d.cat.Functions()), "triggers", len(trigs), "allow_http", d.egress.Allowed())
	return d, nil
}

// connectNATSStreaming connects the daemon's event log to NATS
// Streaming: its embedded server, or --nats.
func (d *Daemon) connectNATSStreaming(ctx context.Context, stopStart context.CancelCauseFunc) error {
	o := d.opts
	conn := broker.Options{URL: o.NATSURL, ClusterID: o.ClusterID, Name: "sluice-" + d.id, Logger: d.log.With("component", "broker")}
	if o.NATSURL == "" {
		if err := d.startEmbedded(stopStart); err != nil {
			return err
		}
		conn.URL, conn.TLS = d.embedded.URL(), d.embedded.ClientTLS()
		d.natsURL = conn.URL
	} else {
		conn.Auth = broker.Auth{User: o.NATSUser, Password: o.NATSPassword, Token: o.NATSToken, CredsFile: o.NATSCredsFile}
		conn.TLS = broker.TLS{CAFile: o.NATSCAFile, CertFile: o.NATSCertFile, KeyFile: o.NATSKeyFile}
		d.natsURL = broker.URLWithAuth(o.NATSURL, conn.Auth)
	}
	l, err := natslog.Connect(ctx, conn)
	if err != nil {
		switch {
		case errors.Is(err, broker.ErrRefused):
			err = fmt.Errorf("%w (check the credentials: --nats-user and --nats-password, --nats-token or --nats-creds, or SLUICE_NATS_USER, SLUICE_NATS_PASSWORD...; and --nats-ca if the server's certificate is not signed by a CA this machine trusts)", err)
		case o.NATSURL != "":
			err = fmt.Errorf("%w (is --cluster-id right? nats-streaming-server's default is test-cluster)", err)
		}
		return err
	}
	if d.embedded != nil {
		l.SetChannelsz(d.embedded.Channelsz()) // the topic list
	}
	d.events = l
	// the queue triggers' results go out on a connection of their own
	// (triggers.Queue.PublishOn); its client ids are told apart by name
	conn.Name += "-results"
	conn.Logger = d.log.With("component", "broker", "connection", "results")
	if d.results, err = natslog.Connect(ctx, conn); err != nil {
		return fmt.Errorf("connect for the triggers' results: %w", err)
	}
	return nil
}

// triggerStats reads this daemon's queue and timer trigger counters.
func (d *Daemon) triggerStats() map[string]triggers.QueueStats {
	out := map[string]triggers.QueueStats{}
	if d.queue == nil {
		return out
	}
	for _, t := range d.cat.Triggers() {
		if st, ok := d.queue.Stats(t.Name); ok {
			out[t.Name] = st
		}
	}
	return out
}

// startEmbedded starts the embedded NATS Streaming server with its
// credentials. Damage to the channels the start reads ends the start
// (stopStart); any damage is logged with what to do.
func (d *Daemon) startEmbedded(stopStart context.CancelCauseFunc) error {
	o := d.opts
	auth, source, err := brokerAuth(o)
	if err != nil {
		return err
	}
	dir := o.DataDir
	if o.MemoryStore {
		dir = ""
	}
	var tls broker.TLS
	if o.NATSListenCertFile != "" {
		tls = broker.TLS{CAFile: o.NATSCAFile, CertFile: o.NATSListenCertFile, KeyFile: o.NATSListenKeyFile}
	}
	d.embedded, err = broker.StartEmbedded(broker.EmbeddedOptions{
		Dir: dir, Listen: o.NATSListen, ClusterID: o.ClusterID, Logger: d.log, Auth: auth, TLS: tls,
		OnDamage: func(se *broker.StoreError) {
			if se.Repaired {
				d.log.Warn("NATS Streaming repaired its store", "channel", se.Channel, "err", se)
				return
			}
			d.log.Error("NATS Streaming store damaged", "channel", se.Channel, "err", se)
			if se.Channel == catalog.Channel || se.Channel == engine.EventsChannel {
				stopStart(se)
			}
		},
	})
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(d.embedded.Addr())
	attrs := []any{"url", broker.Redact(d.embedded.URL()), "cluster_id", o.ClusterID, "store", storeName(dir), "tls", !tls.IsZero()}
	if auth.Token != "" {
		attrs = append(attrs, "credentials", source)
	} else {
		attrs = append(attrs, "user", auth.User, "password", source)
	}
	d.log.Info("embedded NATS Streaming started", attrs...)
	if !broker.IsLoopback(host) && tls.IsZero() {
		d.log.Warn("NATS clients from other machines send the password in clear: serve TLS (--nats-listen-cert, --nats-listen-key) or keep --nats-listen on a private network", "nats_listen", o.NATSListen)
	}
	return nil
}

// startError returns the error that ended the start: the store damage
// that stopped it if that is what happened.
func (d *Daemon) startError(ctx context.Context, err error) error {
	var se *broker.StoreError
	if cause := context.Cause(ctx); errors.As(cause, &se) {
		return se
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (the start took longer than --start-timeout %s: an embedded NATS Streaming recovering thousands of channels can take minutes; give it more)", err, d.opts.StartTimeout)
	}
	return err
}

// makeDataDir makes the data dir, owner-only: it holds the store (every
// function's environment) and the broker's password. A dir that exists
// and is open to others is closed if it is ours; if it is not, what the
// daemon writes in it is owner-only all the same.
func makeDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, perm&^0o077); err != nil {
			log.Info("the data dir is open to other users and not ours to change; what the daemon writes in it is owner-only", "data", dir, "mode", fi.Mode().String())
		} else {
			log.Info("made the data dir owner-only", "data", dir, "was", fi.Mode().String())
		}
	}
	return nil
}

func storeName(dir string) string {
	if dir == "" {
		return "memory"
	}
	return "file " + filepath.Join(dir, "nats")
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
	if s == "" {
		return "sluice"
	}
	return s
}

// Invoke runs a function (the version t names, or the current one) or a
// workflow (fn.Invoker): what triggers and the workflow engine use.
func (d *Daemon) Invoke(ctx context.Context, t fn.Target, c fn.Call) (fn.Result, error) {
	if _, ok := logctx.TraceFrom(ctx); !ok {
		// every caller gives its call a span (triggers, the engine's
		// tasks); one that did not gets a new trace rather than none
		ctx = logctx.WithTrace(ctx, logctx.NewTrace())
	}
	if t.Kind == fn.KindWorkflow {
		return d.invokeWorkflow(ctx, t.Name, c)
	}
	res, _, err := d.reg.InvokeVersion(ctx, t.Name, t.Version, c)
	return res, err
}

// maxValue is the largest value a workflow takes (--max-value).
func (d *Daemon) maxValue() int {
	if d.opts.MaxValue <= 0 {
		return engine.DefaultMaxValue
	}
	return d.opts.MaxValue
}

// maxInput is the largest input a target takes.
func (d *Daemon) maxInput(t fn.Target) int {
	if t.Kind == fn.KindWorkflow {
		return d.maxValue()
	}
	f, ok := d.cat.Function(t.Name)
	if !ok {
		return host.DefaultMaxInput
	}
	return registry.Spec(f).Limits.WithDefaults().MaxInput
}

// Addr is the API's address.
func (d *Daemon) Addr() string { return d.ln.Addr().String() }

// NATSURL is the NATS server the daemon uses (its embedded one, or
// --nats), with the credentials in it: what another client in this
// process connects with. Log broker.Redact(NATSURL()), never NATSURL().
func (d *Daemon) NATSURL() string { return d.natsURL }

// NATSAddr is the host:port of the embedded NATS server, "" with --nats:
// what a restart on the same data dir listens on again.
func (d *Daemon) NATSAddr() string {
	switch {
	case d.embedded != nil:
		return d.embedded.Addr()
	case d.js != nil:
		return d.js.Addr()
	}
	return ""
}

// ID is the daemon's id in logs and events.
func (d *Daemon) ID() string { return d.id }

// Node is the daemon's stable node id (the owner of its invocations).
func (d *Daemon) Node() string { return d.node }

// Engine is the daemon's workflow engine.
func (d *Daemon) Engine() *engine.Engine { return d.engine }

// Wait blocks until ctx ends (a signal), then shuts down gracefully.
func (d *Daemon) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case err := <-d.serveErr:
		d.shutdown(context.Background())
		return fmt.Errorf("API server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), d.opts.ShutdownTimeout)
	defer cancel()
	return d.shutdown(sctx)
}

// Shutdown stops the daemon gracefully: it stops taking requests, lets
// calls in flight finish (until ctx ends), then closes everything.
func (d *Daemon) Shutdown(ctx context.Context) error { return d.shutdown(ctx) }

func (d *Daemon) shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() { d.stopErr = d.stop(ctx) })
	return d.stopErr
}

func (d *Daemon) stop(ctx context.Context) error {
	start := time.Now()
	var errs []error
	if d.api != nil {
		d.api.Drain()
	}
	if d.stopFigures != nil {
		d.stopFigures()
	}
	if d.srv != nil {
		if err := d.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("API server: %w", err))
			d.srv.Close()
		}
	}
	if d.triggers != nil {
		d.triggers.close(ctx) // stop taking messages, finish and ack those in flight
	}
	if d.engine != nil {
		d.engine.Close(ctx) // unfinished invocations resume at the next start
	}
	if d.egress != nil {
		d.egress.Close()
	}
	if d.reg != nil {
		d.reg.Close(ctx)
	}
	if d.host != nil {
		if err := d.host.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if d.logs != nil {
		d.logs.Close() // after the host: the last calls' logs go out
	}
	if d.cat != nil {
		d.cat.Close()
	}
	if d.results != nil {
		d.results.Close() // after the triggers: their results are stored
	}
	if d.events != nil {
		d.events.Close()
	}
	if d.embedded != nil {
		d.embedded.Shutdown()
	}
	if d.js != nil {
		d.js.Shutdown()
	}
	d.lock.release() // last: the next daemon may start on the data dir
	d.log.Info("sluice daemon stopped", "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}
