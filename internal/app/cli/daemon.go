package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/egress"
)

func daemonCommand(e *env) *cobra.Command {
	o := daemon.DefaultOptions()
	cmd := withArgs(&cobra.Command{
		Use:   "daemon",
		Short: "run the daemon (embedded NATS Streaming by default, or JetStream)",
		Long: `Run the daemon: the HTTP API, the triggers and the workflow engine. With no
--nats it embeds a NATS server whose store is under --data (NATS Streaming's
in DATA/nats, or with --broker jetstream JetStream's in DATA/jetstream); other
applications reach it at --nats-listen. Every flag can be given as the
variable its help names instead.

With --broker jetstream, three daemons can be their own cluster: each is
given the same --cluster NAME and --cluster-password, its own
--cluster-listen, and the members' addresses as --peers; sluice's streams
then keep 3 replicas and survive the loss of any one daemon. Across
machines, make the routes mutual TLS with --cluster-cert, --cluster-key and
--cluster-ca (a certificate per member, one CA for all). A data dir
remembers its broker (DATA/broker): starting it with the other is refused
(sluice migrate copies the data over).

The API listens on loopback by default. On any other address it requires a
bearer token (--token-file, SLUICE_TOKEN_FILE or SLUICE_TOKEN; --token works
too, but a command line is visible to every user of the machine in ps),
unless --insecure is given.

` + brokerHelp,
		Example: `  # everything on this machine, in ./data
  sluice daemon

  # reachable from other machines, the token read from a file
  sluice daemon --listen 0.0.0.0:8080 --token-file /etc/sluice/token

  # against an external NATS Streaming cluster
  sluice daemon --nats nats://nats:4222 --cluster-id prod --log-format json

  # one of three daemons that are their own JetStream cluster
  SLUICE_CLUSTER_PASSWORD_FILE=/etc/sluice/cluster-password sluice daemon \
    --broker jetstream --cluster sluice --cluster-listen 10.0.0.1:6222 \
    --peers 10.0.0.1:6222,10.0.0.2:6222,10.0.0.3:6222 \
    --cluster-cert /etc/sluice/member.pem --cluster-key /etc/sluice/member-key.pem \
    --cluster-ca /etc/sluice/cluster-ca.pem`,
	})
	d := daemonFlags(cmd.Flags(), &o)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := d.finish(cmd.Flags(), &o, e.stderr); err != nil {
			return err
		}
		dm, err := daemon.Start(e.ctx, o)
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		return dm.Wait(e.ctx)
	}
	return cmd
}

// daemonCLI holds the daemon's settings that the command line resolves
// itself once the flags are parsed: the logger and the token file.
type daemonCLI struct {
	logFormat, logLevel, tokenFile, memoryBudget, maxValue string
	clusterPasswordFile, replicas                          string
	httpSecrets                                            []string
}

// daemonFlags defines every flag of sluice daemon on fs, filling o, each
// with the variable that sets its default.
func daemonFlags(fs *pflag.FlagSet, o *daemon.Options) *daemonCLI {
	var d daemonCLI
	fs.StringVar(&o.Listen, "listen", envOr("SLUICE_LISTEN", o.Listen), "the API's `host:port` (env SLUICE_LISTEN)")
	fs.StringVar(&o.Broker, "broker", envOr("SLUICE_BROKER", o.Broker), "the broker: "+daemon.BrokerNATSStreaming+" or "+daemon.BrokerJetStream+"; a data dir stays with the broker it was made for (env SLUICE_BROKER)")
	fs.StringVar(&o.DataDir, "data", envOr("SLUICE_DATA", o.DataDir), "data `dir`: the embedded broker's store and caches (env SLUICE_DATA)")
	fs.StringVar(&o.NATSListen, "nats-listen", envOr("SLUICE_NATS_LISTEN", o.NATSListen), "where the embedded NATS server listens (env SLUICE_NATS_LISTEN)")
	fs.Var(urlFlag{&o.NATSURL}.init("SLUICE_NATS"), "nats", "use this NATS server `URL` (NATS Streaming, or nats-server with JetStream for --broker jetstream) instead of an embedded one; nats://user:password@host:4222 carries credentials (env SLUICE_NATS)")
	fs.StringVar(&o.ClusterID, "cluster-id", envOr("SLUICE_CLUSTER_ID", o.ClusterID), "NATS Streaming cluster id; NATS Streaming only (env SLUICE_CLUSTER_ID)")
	clusterFlags(fs, o, &d)
	fs.StringVar(&o.Token, "token", "", "require this bearer token on every route but /healthz and /readyz (env SLUICE_TOKEN); visible to every user of the machine in ps: prefer --token-file or the variable")
	showEnvDefault(fs, "token", "SLUICE_TOKEN")
	fs.StringVar(&d.tokenFile, "token-file", os.Getenv("SLUICE_TOKEN_FILE"), "read the bearer token from this `file` (env SLUICE_TOKEN_FILE)")
	natsAuthFlags(fs, o)
	insecure, _ := strconv.ParseBool(os.Getenv("SLUICE_INSECURE"))
	fs.BoolVar(&o.Insecure, "insecure", insecure, "allow a non-loopback --listen without a token (env SLUICE_INSECURE)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long calls in flight may run on after SIGTERM")
	fs.DurationVar(&o.StartTimeout, "start-timeout", o.StartTimeout, "how long the start may take, the broker's recovery and the catalog's replay included, before the daemon gives up (an embedded NATS Streaming with thousands of channels takes minutes)")
	fs.StringVar(&d.memoryBudget, "memory-budget", envOr("SLUICE_MEMORY_BUDGET", host.FormatBytes(o.MemoryBudget)), "memory for compiled code and instances, all functions together; the least recently used are released to make room (default: half the memory available) (env SLUICE_MEMORY_BUDGET)")
	fs.StringVar(&d.maxValue, "max-value", envOr("SLUICE_MAX_VALUE", host.FormatBytes(uint64(o.MaxValue))), "largest value a workflow carries: an invocation's input, a task's input or output, an expression's result; values over 512KiB are stored in the broker's blob store (env SLUICE_MAX_VALUE)")
	var allow []string
	if v := os.Getenv("SLUICE_ALLOW_HTTP"); v != "" {
		allow = strings.Split(v, ",")
	}
	fs.StringSliceVar(&o.AllowHTTP, "allow-http", allow, "the hosts workflows may call with the http built-in, `HOST[:PORT],...` (a name, an IP address or *.DOMAIN; without a port, 80 for http and 443 for https); none: the built-in is off (env SLUICE_ALLOW_HTTP)")
	fs.StringArrayVar(&d.httpSecrets, "http-secret", nil, "a secret http tasks' headers may take, `NAME=@FILE` (repeatable): a header {secret: NAME} is sent with the file's content, read at each request, and recorded by name only (env "+egress.EnvSecretPrefix+"NAME=VALUE)")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", o.IdleTimeout, "release instances and compiled code unused for this long (0: only when the memory budget needs the room)")
	fs.StringVar(&d.logFormat, "log-format", envOr("SLUICE_LOG_FORMAT", "text"), "log format: text or json (env SLUICE_LOG_FORMAT)")
	fs.StringVar(&d.logLevel, "log-level", envOr("SLUICE_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env SLUICE_LOG_LEVEL)")
	return &d
}

// finish resolves what the flags name: the token, the memory budget, the
// logger.
func (d *daemonCLI) finish(fs *pflag.FlagSet, o *daemon.Options, logs io.Writer) error {
	tok, err := resolveToken(fs, o.Token, d.tokenFile)
	if err != nil {
		return err
	}
	o.Token = tok
	if o.Replicas, err = strconv.Atoi(d.replicas); err != nil {
		return usagef("--replicas %q: want a number of replicas, 1 to 5", d.replicas)
	}
	if o.ClusterPassword, err = resolveSecret(fs, "cluster-password", o.ClusterPassword, "SLUICE_CLUSTER_PASSWORD", d.clusterPasswordFile); err != nil {
		return err
	}
	if o.MemoryBudget, err = host.ParseBytes(d.memoryBudget); err != nil {
		return usagef("--memory-budget: %v", err)
	}
	if o.IdleTimeout < 0 {
		return usagef("--idle-timeout %s is negative", o.IdleTimeout)
	}
	mv, err := host.ParseBytes(d.maxValue)
	if err != nil || mv < daemon.MinMaxValue || mv > daemon.MaxMaxValue {
		return usagef("--max-value %q: want a size from %s to %s, e.g. 64MiB", d.maxValue,
			host.FormatBytes(daemon.MinMaxValue), host.FormatBytes(daemon.MaxMaxValue))
	}
	o.MaxValue = int(mv)
	if o.HTTPSecrets, err = egress.SecretsFromEnv(os.Environ()); err != nil {
		return usagef("%v", err)
	}
	for _, f := range d.httpSecrets {
		sec, err := egress.ParseSecret(f)
		if err != nil {
			return usagef("%v", err)
		}
		o.HTTPSecrets = append(o.HTTPSecrets, sec)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(d.logLevel)); err != nil {
		return usagef("--log-level %q: use debug, info, warn or error", d.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(d.logFormat) {
	case "text":
		o.Logger = slog.New(slog.NewTextHandler(logs, hopts))
	case "json":
		o.Logger = slog.New(slog.NewJSONHandler(logs, hopts))
	default:
		return usagef("--log-format %q: use text or json", d.logFormat)
	}
	return nil
}

// clusterFlags adds the flags that make daemons a JetStream cluster of
// their own.
func clusterFlags(fs *pflag.FlagSet, o *daemon.Options, d *daemonCLI) {
	fs.StringVar(&o.Cluster, "cluster", os.Getenv("SLUICE_CLUSTER"), "with --broker jetstream: make this daemon a member of the JetStream cluster of this `name`, with the daemons at --peers (env SLUICE_CLUSTER)")
	fs.StringVar(&o.ClusterListen, "cluster-listen", os.Getenv("SLUICE_CLUSTER_LISTEN"), "`host:port` where the other members' routes reach this daemon (env SLUICE_CLUSTER_LISTEN)")
	var peers []string
	if v := os.Getenv("SLUICE_PEERS"); v != "" {
		peers = strings.Split(v, ",")
	}
	fs.StringSliceVar(&o.Peers, "peers", peers, "the members' --cluster-listen addresses, `host:port,...` (this daemon's may be in the list) (env SLUICE_PEERS)")
	fs.Var(secretFlag{&o.ClusterPassword}.init("SLUICE_CLUSTER_PASSWORD"), "cluster-password", "the password the members present to each other, the same on each (env SLUICE_CLUSTER_PASSWORD); visible in ps: prefer --cluster-password-file or the variable")
	fs.StringVar(&d.replicas, "replicas", envOr("SLUICE_REPLICAS", "0"), "with --broker jetstream and --nats: the replicas of sluice's streams on that JetStream cluster (3 on a cluster of 3; the same on every daemon) (env SLUICE_REPLICAS)")
	fs.StringVar(&o.ClusterCertFile, "cluster-cert", os.Getenv("SLUICE_CLUSTER_CERT"), "PEM `file`: this member's certificate; with --cluster-key and --cluster-ca the members' routes are mutual TLS (env SLUICE_CLUSTER_CERT)")
	fs.StringVar(&o.ClusterKeyFile, "cluster-key", os.Getenv("SLUICE_CLUSTER_KEY"), "PEM `file`: that certificate's key (env SLUICE_CLUSTER_KEY)")
	fs.StringVar(&o.ClusterCAFile, "cluster-ca", os.Getenv("SLUICE_CLUSTER_CA"), "PEM `file`: the CA that signed every member's certificate; a route from or to a member it did not sign is refused (env SLUICE_CLUSTER_CA)")
	fs.StringVar(&d.clusterPasswordFile, "cluster-password-file", os.Getenv("SLUICE_CLUSTER_PASSWORD_FILE"), "read the cluster password from this `file` (env SLUICE_CLUSTER_PASSWORD_FILE)")
}

// resolveSecret picks a secret as resolveToken picks the token: the flag
// name, else its file flag (name-file), else the variable env, else the
// variable env_FILE.
func resolveSecret(fs *pflag.FlagSet, name, value, env, file string) (string, error) {
	switch {
	case fs.Changed(name) && fs.Changed(name+"-file"):
		return "", usagef("give --%s or --%s-file, not both", name, name)
	case fs.Changed(name):
		return value, nil
	case fs.Changed(name + "-file"):
		return readTokenFile("--"+name+"-file", file)
	}
	envValue, envFile := os.Getenv(env), os.Getenv(env+"_FILE")
	switch {
	case envValue != "" && envFile != "":
		return "", usagef("%s and %s_FILE are both set: unset one", env, env)
	case envValue != "":
		return envValue, nil
	case envFile != "":
		return readTokenFile(env+"_FILE", envFile)
	}
	return "", nil
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
