package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/daemon"
)

func runDaemon(e *env, args []string) error {
	o := daemon.DefaultOptions()
	fs := newFlags("daemon", nil, e)
	fs.StringVar(&o.Listen, "listen", envOr("SLUICE_LISTEN", o.Listen), "the API's `host:port` (env SLUICE_LISTEN)")
	fs.StringVar(&o.DataDir, "data", envOr("SLUICE_DATA", o.DataDir), "data `dir`: the embedded NATS Streaming store and caches (env SLUICE_DATA)")
	fs.StringVar(&o.NATSListen, "nats-listen", envOr("SLUICE_NATS_LISTEN", o.NATSListen), "where the embedded NATS Streaming server listens (env SLUICE_NATS_LISTEN)")
	fs.Var(urlFlag{&o.NATSURL}.init("SLUICE_NATS"), "nats", "use this NATS Streaming server `URL` instead of an embedded one; nats://user:password@host:4222 carries credentials (env SLUICE_NATS)")
	fs.StringVar(&o.ClusterID, "cluster-id", envOr("SLUICE_CLUSTER_ID", o.ClusterID), "NATS Streaming cluster id (env SLUICE_CLUSTER_ID)")
	natsAuthFlags(fs, &o)
	fs.Usage = func() { fmt.Fprintf(e.stderr, "Usage of sluice daemon:\n%s\n%s", fs.FlagUsages(), brokerHelp) }
	fs.StringVar(&o.Token, "token", os.Getenv("SLUICE_TOKEN"), "require this bearer token on every route but /healthz and /readyz (env SLUICE_TOKEN)")
	insecure, _ := strconv.ParseBool(os.Getenv("SLUICE_INSECURE"))
	fs.BoolVar(&o.Insecure, "insecure", insecure, "allow a non-loopback --listen without --token")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long calls in flight may run on after SIGTERM")
	logFormat := fs.String("log-format", envOr("SLUICE_LOG_FORMAT", "text"), "log format: text or json (env SLUICE_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr("SLUICE_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env SLUICE_LOG_LEVEL)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log-level %q: use debug, info, warn or error", *logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(*logFormat) {
	case "text":
		o.Logger = slog.New(slog.NewTextHandler(e.stderr, hopts))
	case "json":
		o.Logger = slog.New(slog.NewJSONHandler(e.stderr, hopts))
	default:
		return usagef("--log-format %q: use text or json", *logFormat)
	}
	d, err := daemon.Start(e.ctx, o)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	return d.Wait(e.ctx)
}

// brokerHelp tells how other applications reach the embedded server.
const brokerHelp = `The embedded NATS Streaming server (cluster id sluice) requires credentials
of every client: other applications use any NATS Streaming client with the
user sluice and the password the daemon generates into DATA/nats-password at
its first start (owner-only; never logged), e.g.
  nats://sluice:$(cat ./data/nats-password)@127.0.0.1:4222
or those given with --nats-user and --nats-password (or --nats-token).
A data dir is locked by the daemon that uses it: a second one refuses to start.
`

// natsAuthFlags adds the NATS credentials and TLS flags: those the daemon
// presents to --nats, or, without --nats, those its embedded server
// requires (by default a user and a password generated into the data
// dir). Secrets are best given by environment: flags show in ps.
func natsAuthFlags(fs *pflag.FlagSet, o *daemon.Options) {
	fs.StringVar(&o.NATSUser, "nats-user", os.Getenv("SLUICE_NATS_USER"), "NATS user: for --nats, or the embedded server's ("+daemon.DefaultNATSUser+" if unset) (env SLUICE_NATS_USER)")
	fs.Var(secretFlag{&o.NATSPassword}.init("SLUICE_NATS_PASSWORD"), "nats-password", "NATS password: for --nats, or the embedded server's instead of the one generated into DATA/nats-password (env SLUICE_NATS_PASSWORD)")
	fs.Var(secretFlag{&o.NATSToken}.init("SLUICE_NATS_TOKEN"), "nats-token", "NATS token, instead of a user and password (env SLUICE_NATS_TOKEN)")
	fs.StringVar(&o.NATSCredsFile, "nats-creds", os.Getenv("SLUICE_NATS_CREDS"), "NATS credentials `file` (.creds: user JWT and nkey seed) for --nats (env SLUICE_NATS_CREDS)")
	fs.StringVar(&o.NATSCAFile, "nats-ca", os.Getenv("SLUICE_NATS_CA"), "PEM `file` of the CA that signed the NATS server's certificate (env SLUICE_NATS_CA)")
	fs.StringVar(&o.NATSCertFile, "nats-cert", os.Getenv("SLUICE_NATS_CERT"), "PEM `file`: a client certificate for --nats (env SLUICE_NATS_CERT)")
	fs.StringVar(&o.NATSKeyFile, "nats-key", os.Getenv("SLUICE_NATS_KEY"), "PEM `file`: the client certificate's key (env SLUICE_NATS_KEY)")
	fs.StringVar(&o.NATSListenCertFile, "nats-listen-cert", os.Getenv("SLUICE_NATS_LISTEN_CERT"), "PEM `file`: the embedded server serves TLS with this certificate (env SLUICE_NATS_LISTEN_CERT)")
	fs.StringVar(&o.NATSListenKeyFile, "nats-listen-key", os.Getenv("SLUICE_NATS_LISTEN_KEY"), "PEM `file`: that certificate's key (env SLUICE_NATS_LISTEN_KEY)")
}

// secretFlag is a string flag whose value --help never shows: its
// default, from the environment, shows as "(set)".
type secretFlag struct{ p *string }

func (f secretFlag) init(env string) secretFlag {
	*f.p = os.Getenv(env)
	return f
}

func (f secretFlag) String() string {
	if f.p == nil || *f.p == "" {
		return ""
	}
	return "(set)"
}

func (f secretFlag) Set(v string) error { *f.p = v; return nil }
func (f secretFlag) Type() string       { return "string" }

// urlFlag is a NATS URL flag whose --help shows it redacted.
type urlFlag struct{ p *string }

func (f urlFlag) init(env string) urlFlag {
	*f.p = os.Getenv(env)
	return f
}

func (f urlFlag) String() string {
	if f.p == nil {
		return ""
	}
	return broker.Redact(*f.p)
}

func (f urlFlag) Set(v string) error { *f.p = v; return nil }
func (f urlFlag) Type() string       { return "string" }
