package broker

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats-streaming-server/stores"
)

// EmbeddedOptions configure an embedded NATS Streaming server.
type EmbeddedOptions struct {
	// Dir holds the file store. "" runs a memory store (for tests and
	// benchmarks only: nothing survives a restart).
	Dir string
	// Listen is host:port for NATS clients; port 0 picks a free port.
	Listen string
	// ClusterID is the NATS Streaming cluster id.
	ClusterID string
	// Logger receives the server's log, at debug level but for warnings
	// and errors.
	Logger *slog.Logger
	// NoSync turns fsync off in the file store (benchmarks).
	NoSync bool
}

// Embedded is a NATS Streaming server running in this process.
type Embedded struct {
	srv *stand.StanServer
	url string
}

// Channel limits of the embedded server. Nothing that sluice stores for
// good (catalog, modules, workflow events) or that users publish may be
// dropped silently, so messages are kept without limit; function logs are
// the exception: recent ones are what `sluice fn logs` shows.
const (
	LogChannels = "sluice.logs.>"
	// TickChannels hold timer claims; only the last minutes matter.
	TickChannels = "sluice.ticks.>"
	tickMaxAge   = time.Hour
	// CheckpointChannel holds the workflow engine's replay checkpoints;
	// readers take the highest, so the last thousand are plenty.
	CheckpointChannel = "sluice.wf.checkpoints"
	checkpointMaxMsgs = 1000
	// NodesChannel holds the engines' heartbeats; only the last seconds
	// matter.
	NodesChannel     = "sluice.wf.nodes"
	nodesMaxAge      = time.Hour
	logMaxMsgs       = 10000
	logMaxAge        = 24 * time.Hour
	logMaxBytes      = 64 << 20
	clientHBInterval = 2 * time.Second
	clientHBFails    = 3
)

// StoreLimits are the embedded server's channel limits: none (0 is
// unlimited) but on LogChannels, TickChannels, CheckpointChannel and
// NodesChannel. An external server must have the same, or it drops what
// sluice stores for good (deploy/kubernetes/nats-streaming.conf has them).
func StoreLimits() stores.StoreLimits {
	return stores.StoreLimits{
		PerChannel: map[string]*stores.ChannelLimits{
			LogChannels:  {MsgStoreLimits: stores.MsgStoreLimits{MaxMsgs: logMaxMsgs, MaxBytes: logMaxBytes, MaxAge: logMaxAge}},
			TickChannels: {MsgStoreLimits: stores.MsgStoreLimits{MaxAge: tickMaxAge}},
			// Checkpoints: only the newest matter (readers take the highest).
			CheckpointChannel: {MsgStoreLimits: stores.MsgStoreLimits{MaxMsgs: checkpointMaxMsgs}},
			NodesChannel:      {MsgStoreLimits: stores.MsgStoreLimits{MaxAge: nodesMaxAge}},
		},
	}
}

// StartEmbedded starts an embedded server and waits until it serves.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: want host:port: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--nats-listen %q: bad port", o.Listen)
	}
	if port == 0 {
		port = natsd.RANDOM_PORT
	}
	nopts := stand.NewNATSOptions()
	nopts.Host, nopts.Port = host, port
	nopts.NoSigs, nopts.NoLog = true, true

	sopts := stand.GetDefaultOptions()
	sopts.ID = o.ClusterID
	sopts.HandleSignals = false
	// A daemon that dies is noticed within seconds, so that its queue
	// subscriptions stop holding messages (default: 30 s x 10).
	sopts.ClientHBInterval = clientHBInterval
	sopts.ClientHBTimeout = clientHBInterval
	sopts.ClientHBFailCount = clientHBFails
	sopts.StoreLimits = StoreLimits()
	if o.Dir != "" {
		sopts.StoreType = stores.TypeFile
		sopts.FilestoreDir = filepath.Join(o.Dir, "nats")
		sopts.FileStoreOpts.DoSync = !o.NoSync
	} else {
		sopts.StoreType = stores.TypeMemory
	}
	if o.Logger != nil {
		sopts.EnableLogging = true
		sopts.CustomLogger = slogAdapter{o.Logger.With("component", "nats-streaming")}
	}
	srv, err := stand.RunServerWithOpts(sopts, nopts)
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS Streaming on %s: %w", o.Listen, err)
	}
	return &Embedded{srv: srv, url: srv.ClientURL()}, nil
}

// URL is where NATS clients connect.
func (e *Embedded) URL() string { return e.url }

// Shutdown stops the server.
func (e *Embedded) Shutdown() { e.srv.Shutdown() }

// slogAdapter routes the server's logger to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  {}
func (a slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...))
}
