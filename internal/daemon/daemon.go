// Package daemon wires sluice together: the broker (embedded NATS
// Streaming or an external one), the host, the catalog and its registry of
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
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/logctx"
	"github.com/sluicehq/sluice/internal/logstream"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/internal/registry"
	"github.com/sluicehq/sluice/triggers"
)

// Options configure a daemon. Fill them from DefaultOptions.
type Options struct {
	// Listen is the API's address.
	Listen string
	// DataDir holds the embedded NATS Streaming store and the caches.
	DataDir string
	// CompileCacheDir holds compiled code; "" means DataDir/cache/compiled.
	// Daemons may share one.
	CompileCacheDir string
	// NATSListen is where the embedded NATS Streaming server listens.
	NATSListen string
	// NATSURL, if set, uses that NATS Streaming server and embeds none.
	NATSURL string
	// ClusterID is the NATS Streaming cluster id.
	ClusterID string
	// Token, if set, is required as a bearer token on every route but
	// /healthz and /readyz.
	Token string
	// Insecure allows a non-loopback Listen without a token.
	Insecure bool
	// MemoryStore runs the embedded server on a memory store (tests and
	// benchmarks only: nothing survives a restart).
	MemoryStore bool
	// ShutdownTimeout bounds a graceful shutdown: calls still running then
	// are abandoned.
	ShutdownTimeout time.Duration
	// StartTimeout bounds connecting to NATS Streaming and replaying the
	// catalog at start.
	StartTimeout time.Duration
	// NodeID names this daemon as the owner of the workflow invocations
	// it starts; "" reads it from (or makes it in) DataDir/node-id.
	NodeID string
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
		Listen: DefaultListen, DataDir: DefaultDataDir, NATSListen: DefaultNATSListen,
		ClusterID: DefaultClusterID, ShutdownTimeout: DefaultShutdownTimeout, StartTimeout: DefaultStartTimeout,
		MemoryBudget: host.SystemMemoryBudget(), IdleTimeout: host.DefaultIdleTimeout,
	}
}

// Validate checks the options, refusing an unprotected public listener.
func (o Options) Validate() error {
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: want host:port: %w", o.Listen, err)
	}
	if o.Token == "" && !o.Insecure && !isLoopback(host) {
		return fmt.Errorf("refusing to listen on %s without --token: anyone who can reach it could deploy and run code; set --token (or SLUICE_TOKEN), or pass --insecure on a trusted network", o.Listen)
	}
	if o.ClusterID == "" {
		return errors.New("--cluster-id is empty")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Daemon is a running sluice daemon.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	id       string
	embedded *broker.Embedded
	conn     *broker.Conn
	host     *host.Host
	cat      *catalog.Catalog
	engine   *engine.Engine
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
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", o.Listen, err)
	}
	d.ln = ln
	d.api = api.New(o.Token, d.log.With("component", "api"))
	d.srv = &http.Server{Handler: d.api, ReadHeaderTimeout: 10 * time.Second}
	go func() { d.serveErr <- d.srv.Serve(ln) }()

	d.natsURL = o.NATSURL
	if d.natsURL == "" {
		dir := o.DataDir
		if o.MemoryStore {
			dir = ""
		}
		d.embedded, err = broker.StartEmbedded(broker.EmbeddedOptions{
			Dir: dir, Listen: o.NATSListen, ClusterID: o.ClusterID, Logger: d.log,
		})
		if err != nil {
			return nil, err
		}
		d.natsURL = d.embedded.URL()
		d.log.Info("embedded NATS Streaming started", "url", d.natsURL, "cluster_id", o.ClusterID, "store", storeName(dir))
	}

	startCtx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	d.conn, err = broker.Connect(startCtx, broker.Options{
		URL: d.natsURL, ClusterID: o.ClusterID, Name: "sluice-" + d.id, Logger: d.log.With("component", "broker"),
	})
	if err != nil {
		if o.NATSURL != "" {
			err = fmt.Errorf("%w (is --cluster-id right? nats-streaming-server's default is test-cluster)", err)
		}
		return nil, err
	}
	pub := logstream.NewPublisher(d.conn, d.id, d.log.With("component", "guest"))
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
		WithIdleTimeout(o.IdleTimeout))
	if err != nil {
		return nil, err
	}
	d.cat, err = catalog.Open(startCtx, d.conn, catalog.Options{
		Dir: filepath.Join(o.DataDir, "cache", "modules"), Daemon: d.id, Logger: d.log.With("component", "catalog"),
	})
	if err != nil {
		return nil, err
	}
	d.reg = registry.New(d.host, d.cat, d.log.With("component", "registry"))
	d.metrics = metrics.New(metrics.Sources{
		Functions: d.reg.Stats,
		Triggers:  func() map[string]triggers.QueueStats { return d.triggerStats() },
		Invocations: func() map[string]int {
			if d.engine == nil {
				return nil
			}
			return d.engine.Running()
		},
		Host:   d.host.Stats,
		Loaded: d.reg.Counts,
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
		Conn: d.conn, Functions: wfFunctions{d}, Definitions: wfDefinitions{d.cat}, Node: d.node,
		Observer: d.metrics, Logger: d.log.With("component", "engine"),
	})
	if err != nil {
		return nil, err
	}
	httpTriggers := triggers.NewHTTP(triggers.InvokerFunc(d.Invoke), d.maxInput)
	queue := triggers.NewQueue(d.conn, triggers.InvokerFunc(d.Invoke), d.log.With("component", "queue"))
	queue.ObserveLag(d.metrics.Lag)
	d.queue = queue
	d.triggers = newTriggerSet(httpTriggers, queue,
		triggers.NewTimers(d.conn, queue, d.id, d.log.With("component", "timer")), d.log.With("component", "triggers"))
	_, trigs := d.cat.Watch(d.triggers.onChange)
	for _, t := range trigs {
		d.triggers.add(change{t: t})
	}
	d.api.SetBackend(&api.Backend{Host: d.host, Conn: d.conn, Catalog: d.cat, Registry: d.reg, HTTP: httpTriggers, Queue: queue, Engine: d.engine})
	ok = true
	d.log.Info("sluice daemon ready", "listen", ln.Addr().String(), "nats", d.natsURL, "daemon", d.id, "node", d.node,
		"functions", len(d.cat.Functions()), "triggers", len(trigs))
	return d, nil
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

// Invoke calls a function by name: what triggers use.
func (d *Daemon) Invoke(ctx context.Context, name string, c host.Call) (host.Result, error) {
	if wf, ok := strings.CutPrefix(name, workflowTarget); ok {
		return d.invokeWorkflow(ctx, wf, c)
	}
	res, _, err := d.reg.Invoke(ctx, name, c)
	return res, err
}

func (d *Daemon) maxInput(name string) int {
	if strings.HasPrefix(name, workflowTarget) {
		return engine.MaxData
	}
	fn, ok := d.cat.Function(name)
	if !ok {
		return host.DefaultMaxInput
	}
	return registry.Spec(fn).Limits.WithDefaults().MaxInput
}

// Addr is the API's address.
func (d *Daemon) Addr() string { return d.ln.Addr().String() }

// NATSURL is the NATS server the daemon uses (its embedded one, or
// --nats).
func (d *Daemon) NATSURL() string { return d.natsURL }

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
	if d.conn != nil {
		d.conn.Close()
	}
	if d.embedded != nil {
		d.embedded.Shutdown()
	}
	d.log.Info("sluice daemon stopped", "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}
