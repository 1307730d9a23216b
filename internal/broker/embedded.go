package broker

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	// Auth is what clients must present: a user and password, or a
	// token (not a creds file). Without it the server lets anyone in, so
	// Listen must then be a loopback address.
	Auth Auth
	// TLS, with a certificate and key, makes the server serve TLS; CAFile
	// is the CA that signed the certificate (empty if it is self-signed),
	// for the server's own connections and ClientTLS.
	TLS TLS
	// OnDamage, if set, is told of each part of the file store the server
	// reports damaged while it runs (a message it cannot read back, a
	// file it rebuilt at start), at most once per channel.
	OnDamage func(*StoreError)
}

// Embedded is a NATS Streaming server running in this process.
type Embedded struct {
	srv  *stand.StanServer
	addr string
	auth Auth
	tls  TLS
	log  *damageLog
}

// Channel limits of the embedded server. Nothing that sluice stores for
// good (catalog, modules, workflow events) or that users publish may be
// dropped silently, so messages are kept without limit; function logs are
// the exception: recent ones are what `sluice fn logs` shows. The channel
// names are those their owners give them (logstream, triggers, engine);
// a test in the daemon checks that they agree.
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

// StartEmbedded starts an embedded server and waits until it serves. A
// damaged file store is a *StoreError that says what to do, even when the
// server panics while recovering it.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: want host:port: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--nats-listen %q: bad port", o.Listen)
	}
	if err := o.Auth.check(); err != nil {
		return nil, err
	}
	if o.Auth.CredsFile != "" {
		return nil, fmt.Errorf("%w: the embedded server takes a user and password or a token, not a creds file (that is for an external server with --nats)", ErrCredentials)
	}
	if o.Auth.IsZero() && !IsLoopback(host) {
		return nil, fmt.Errorf("%w: %s is reachable from other machines, and whoever reaches it could read every function's environment and replace its code; give the server credentials, or listen on 127.0.0.1", ErrOpenListen, o.Listen)
	}
	if err := o.TLS.check(); err != nil {
		return nil, err
	}
	if port == 0 {
		port = natsd.RANDOM_PORT
	}
	nopts := stand.NewNATSOptions()
	nopts.Host, nopts.Port = host, port
	nopts.NoSigs, nopts.NoLog = true, true
	nopts.Username, nopts.Password, nopts.Authorization = o.Auth.User, o.Auth.Password, o.Auth.Token

	sopts := stand.GetDefaultOptions()
	sopts.ID = o.ClusterID
	sopts.HandleSignals = false
	// A daemon that dies is noticed within seconds, so that its queue
	// subscriptions stop holding messages (default: 30 s x 10).
	sopts.ClientHBInterval = clientHBInterval
	sopts.ClientHBTimeout = clientHBInterval
	sopts.ClientHBFailCount = clientHBFails
	sopts.StoreLimits = StoreLimits()
	storeDir := ""
	if o.Dir != "" {
		storeDir = filepath.Join(o.Dir, "nats")
		sopts.StoreType = stores.TypeFile
		sopts.FilestoreDir = storeDir
		sopts.FileStoreOpts.DoSync = !o.NoSync
	} else {
		sopts.StoreType = stores.TypeMemory
	}
	clientTLS := TLS{}
	if o.TLS.CertFile != "" {
		if clientTLS, err = serveTLS(nopts, sopts, o.TLS); err != nil {
			return nil, err
		}
	}
	dl := &damageLog{dir: storeDir, notify: o.OnDamage, seen: map[string]bool{}}
	var l *slog.Logger
	if o.Logger != nil {
		l = o.Logger.With("component", "nats-streaming")
	}
	sopts.EnableLogging = true
	fatal := NewFatalLines()
	sopts.CustomLogger = ServerLogger{L: l, OnError: dl.report, OnFatal: fatal.Report}
	// Messages that two servers wrote into one store at once are out of
	// order; the first subscription by time to such a channel panics in
	// the server, on its own goroutine. Refuse them: those indexed now,
	// before the server serves, and those it indexes while it starts.
	if err := checkOrder(storeDir); err != nil {
		return nil, err
	}
	missing := missingIndexes(storeDir)
	if err := CheckListen("--nats-listen", o.Listen); err != nil {
		return nil, err
	}
	srv, err := runServer(func() (*stand.StanServer, error) { return stand.RunServerWithOpts(sopts, nopts) })
	if err != nil {
		if se := storeError(storeDir, err); se != nil {
			return nil, se
		}
		select {
		case line := <-fatal.First(): // the port was taken after the check
			return nil, fmt.Errorf("start embedded NATS Streaming on %s: %s", o.Listen, line)
		default:
		}
		return nil, fmt.Errorf("start embedded NATS Streaming on %s: %w", o.Listen, err)
	}
	if rebuilt := append(missing, dl.rebuilt()...); len(rebuilt) > 0 {
		if err := checkOrder(storeDir, rebuilt...); err != nil {
			srv.Shutdown()
			return nil, err
		}
	}
	dl.started()
	return &Embedded{srv: srv, addr: srv.ClientURL(), auth: o.Auth, tls: clientTLS, log: dl}, nil
}

// runServer runs start, turning a panic (the server recovers its store
// on this goroutine) into an error.
func runServer(start func() (*stand.StanServer, error)) (srv *stand.StanServer, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the server failed while starting: %v", r)
		}
	}()
	return start()
}

// serveTLS configures the server to serve TLS with the certificate, and
// its own connections to trust it; it returns what a client in this
// process needs to trust it too.
func serveTLS(nopts *natsd.Options, sopts *stand.Options, t TLS) (TLS, error) {
	cfg, err := natsd.GenTLSConfig(&natsd.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile})
	if err != nil {
		return TLS{}, fmt.Errorf("%w: --nats-listen-cert: %w", ErrTLS, err)
	}
	name, err := certName(t.CertFile)
	if err != nil {
		return TLS{}, fmt.Errorf("%w: --nats-listen-cert: %w", ErrTLS, err)
	}
	nopts.TLS, nopts.TLSConfig, nopts.TLSTimeout = true, cfg, tlsTimeout.Seconds()
	ca := t.CAFile
	if ca == "" {
		ca = t.CertFile
	}
	sopts.Secure, sopts.ClientCA, sopts.TLSServerName = true, ca, name
	return TLS{CAFile: ca, ServerName: name}, nil
}

// tlsTimeout bounds a client's TLS handshake: the server's default, half
// a second, fails on a loaded machine.
const tlsTimeout = 5 * time.Second

// certName returns a name the certificate is valid for, to verify it by
// when connecting to a loopback address it may not name.
func certName(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("%s holds no PEM certificate", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	switch {
	case len(c.DNSNames) > 0:
		return c.DNSNames[0], nil
	case len(c.IPAddresses) > 0:
		return c.IPAddresses[0].String(), nil
	}
	return "", fmt.Errorf("%s names no host (no DNS or IP subject alternative name)", file)
}

// URL is where NATS clients connect, with the server's credentials in it
// (for callers in this process; log Redact(URL())).
func (e *Embedded) URL() string { return URLWithAuth(e.addr, e.auth) }

// Addr is the host:port the server listens on.
func (e *Embedded) Addr() string {
	u, err := url.Parse(e.addr)
	if err != nil {
		return e.addr
	}
	return u.Host
}

// ClientTLS is what a client in this process needs to trust the server's
// certificate; zero if it does not serve TLS.
func (e *Embedded) ClientTLS() TLS { return e.tls }

// Damage returns the store damage the server reported while it ran.
func (e *Embedded) Damage() []*StoreError { return e.log.all() }

// Channelsz is the server's monitoring handler of /streaming/channelsz
// (its channels, with ?channel=NAME one channel's counts), answered in
// the process: no monitoring port is opened.
func (e *Embedded) Channelsz() http.HandlerFunc { return e.srv.HandleChannelsz }

// Shutdown stops the server.
func (e *Embedded) Shutdown() { e.srv.Shutdown() }

// ServerLogger routes a nats-server's logger to slog (L may be nil: no
// log). The server's warnings and errors also go to OnWarn and OnError, if
// set: that is how a damaged store is recognised. The server's advice to
// hash the passwords of its configuration file is a debug line: an
// embedded server has no such file, and its password is in the data dir.
type ServerLogger struct {
	L               *slog.Logger
	OnWarn, OnError func(line string)
	// OnFatal, if set, takes the server's fatal errors (a port it cannot
	// listen on): an embedded server logs them and carries on, not
	// serving.
	OnFatal func(line string)
}

func (a ServerLogger) log(level slog.Level, format string, v []any) string {
	line := fmt.Sprintf(format, v...)
	if a.L != nil {
		a.L.Log(context.Background(), level, line)
	}
	return line
}

// Noticef implements the server's Logger.
func (a ServerLogger) Noticef(format string, v ...any) { a.log(slog.LevelDebug, format, v) }

// Warnf implements the server's Logger.
func (a ServerLogger) Warnf(format string, v ...any) {
	level := slog.LevelWarn
	if strings.Contains(format, "Plaintext passwords detected") {
		level = slog.LevelDebug
	}
	line := a.log(level, format, v)
	if a.OnWarn != nil {
		a.OnWarn(line)
	}
}

// Errorf implements the server's Logger.
func (a ServerLogger) Errorf(format string, v ...any) {
	line := a.log(slog.LevelError, format, v)
	if a.OnError != nil {
		a.OnError(line)
	}
}

// Debugf implements the server's Logger.
func (a ServerLogger) Debugf(format string, v ...any) { a.log(slog.LevelDebug, format, v) }

// Tracef implements the server's Logger: traces are dropped.
func (a ServerLogger) Tracef(format string, v ...any) {}

// Fatalf implements the server's Logger.
func (a ServerLogger) Fatalf(format string, v ...any) {
	line := a.log(slog.LevelError, format, v)
	if a.OnFatal != nil {
		a.OnFatal(line)
	}
}

// CheckListen tells whether addr (host:port, given by flag) can be
// listened on now. A server started on an address another process holds
// logs it and waits, not serving (NATS Streaming for 10 s, JetStream
// until its start times out): checked first, the start fails at once and
// says why. Port 0 is always free.
func CheckListen(flag, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is another process, or another daemon, listening there?)", flag, addr, err)
	}
	return ln.Close()
}

// FatalLines keeps the first fatal line of a server's log, for the error
// that ends its start.
type FatalLines struct{ first chan string }

// NewFatalLines returns an empty FatalLines.
func NewFatalLines() *FatalLines { return &FatalLines{first: make(chan string, 1)} }

// Report is a ServerLogger's OnFatal: it keeps a line until it is taken
// from First, and drops those that come meanwhile.
func (f *FatalLines) Report(line string) {
	select {
	case f.first <- line:
	default:
	}
}

// First returns the first fatal line, once one is reported.
func (f *FatalLines) First() <-chan string { return f.first }
