package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/daemon"
)

func runDaemon(e *env, args []string) error {
	o := daemon.DefaultOptions()
	fs := newFlags("daemon", nil, e)
	fs.StringVar(&o.Listen, "listen", envOr("SLUICE_LISTEN", o.Listen), "the API's `host:port` (env SLUICE_LISTEN)")
	fs.StringVar(&o.DataDir, "data", envOr("SLUICE_DATA", o.DataDir), "data `dir`: the embedded NATS Streaming store and caches (env SLUICE_DATA)")
	fs.StringVar(&o.NATSListen, "nats-listen", envOr("SLUICE_NATS_LISTEN", o.NATSListen), "where the embedded NATS Streaming server listens (env SLUICE_NATS_LISTEN)")
	fs.StringVar(&o.NATSURL, "nats", os.Getenv("SLUICE_NATS"), "use this NATS Streaming server `URL` instead of an embedded one (env SLUICE_NATS)")
	fs.StringVar(&o.ClusterID, "cluster-id", envOr("SLUICE_CLUSTER_ID", o.ClusterID), "NATS Streaming cluster id (env SLUICE_CLUSTER_ID)")
	fs.StringVar(&o.Token, "token", os.Getenv("SLUICE_TOKEN"), "require this bearer token on every route but /healthz and /readyz (env SLUICE_TOKEN)")
	insecure, _ := strconv.ParseBool(os.Getenv("SLUICE_INSECURE"))
	fs.BoolVar(&o.Insecure, "insecure", insecure, "allow a non-loopback --listen without --token")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "how long calls in flight may run on after SIGTERM")
	budget := fs.String("memory-budget", envOr("SLUICE_MEMORY_BUDGET", host.FormatBytes(o.MemoryBudget)), "memory for compiled code and instances, all functions together; the least recently used are released to make room (default: half the memory available) (env SLUICE_MEMORY_BUDGET)")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", o.IdleTimeout, "release instances and compiled code unused for this long (0: only when the memory budget needs the room)")
	logFormat := fs.String("log-format", envOr("SLUICE_LOG_FORMAT", "text"), "log format: text or json (env SLUICE_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr("SLUICE_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env SLUICE_LOG_LEVEL)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if o.MemoryBudget, err = host.ParseBytes(*budget); err != nil {
		return usagef("--memory-budget: %v", err)
	}
	if o.IdleTimeout < 0 {
		return usagef("--idle-timeout %s is negative", o.IdleTimeout)
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
