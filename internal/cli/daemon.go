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

	"github.com/sluicehq/sluice/internal/daemon"
)

func daemonCommand(e *env) *cobra.Command {
	o := daemon.DefaultOptions()
	cmd := withArgs(&cobra.Command{
		Use:   "daemon",
		Short: "run the daemon (embedded NATS Streaming by default)",
		Long: `Run the daemon: the HTTP API, the triggers and the workflow engine. With no
--nats it embeds a NATS Streaming server whose store is under --data; other
applications reach it at --nats-listen. Every flag can be given as the
variable its help names instead.

The API listens on loopback by default. On any other address it requires a
bearer token (--token-file, SLUICE_TOKEN_FILE or SLUICE_TOKEN; --token works
too, but a command line is visible to every user of the machine in ps),
unless --insecure is given.`,
		Example: `  # everything on this machine, in ./data
  sluice daemon

  # reachable from other machines, the token read from a file
  sluice daemon --listen 0.0.0.0:8080 --token-file /etc/sluice/token

  # against an external NATS Streaming cluster
  sluice daemon --nats nats://nats:4222 --cluster-id prod --log-format json`,
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
	logFormat, logLevel, tokenFile string
}

// daemonFlags defines every flag of sluice daemon on fs, filling o, each
// with the variable that sets its default.
func daemonFlags(fs *pflag.FlagSet, o *daemon.Options) *daemonCLI {
	var d daemonCLI
	fs.StringVar(&o.Listen, "listen", envOr("SLUICE_LISTEN", o.Listen), "the API's `host:port` (env SLUICE_LISTEN)")
	fs.StringVar(&o.DataDir, "data", envOr("SLUICE_DATA", o.DataDir), "data `dir`: the embedded NATS Streaming store and caches (env SLUICE_DATA)")
	fs.StringVar(&o.NATSListen, "nats-listen", envOr("SLUICE_NATS_LISTEN", o.NATSListen), "where the embedded NATS Streaming server listens (env SLUICE_NATS_LISTEN)")
	fs.StringVar(&o.NATSURL, "nats", os.Getenv("SLUICE_NATS"), "use this NATS Streaming server `URL` instead of an embedded one (env SLUICE_NATS)")
	fs.StringVar(&o.ClusterID, "cluster-id", envOr("SLUICE_CLUSTER_ID", o.ClusterID), "NATS Streaming cluster id (env SLUICE_CLUSTER_ID)")
	fs.StringVar(&o.Token, "token", "", "require this bearer token on every route but /healthz and /readyz (env SLUICE_TOKEN); visible to every user of the machine in ps: prefer --token-file or the variable")
	showEnvDefault(fs, "token", "SLUICE_TOKEN")
	fs.StringVar(&d.tokenFile, "token-file", os.Getenv("SLUICE_TOKEN_FILE"), "read the bearer token from this `file` (env SLUICE_TOKEN_FILE)")
	insecure, _ := strconv.ParseBool(os.Getenv("SLUICE_INSECURE"))
	fs.BoolVar(&o.Insecure, "insecure", insecure, "allow a non-loopback --listen without a token (env SLUICE_INSECURE)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long calls in flight may run on after SIGTERM")
	fs.StringVar(&d.logFormat, "log-format", envOr("SLUICE_LOG_FORMAT", "text"), "log format: text or json (env SLUICE_LOG_FORMAT)")
	fs.StringVar(&d.logLevel, "log-level", envOr("SLUICE_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env SLUICE_LOG_LEVEL)")
	return &d
}

// finish resolves what the flags name: the token, the logger.
func (d *daemonCLI) finish(fs *pflag.FlagSet, o *daemon.Options, logs io.Writer) error {
	tok, err := resolveToken(fs, o.Token, d.tokenFile)
	if err != nil {
		return err
	}
	o.Token = tok
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
