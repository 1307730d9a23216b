package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/internal/app/migrate"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
)

// migrateConnectTimeout bounds connecting to either side: a broker that
// answers connects in milliseconds, so a wrong address or a server that
// is down is reported rather than retried forever.
const migrateConnectTimeout = 30 * time.Second

// migrateFlags are the flags of sluice migrate.
type migrateFlags struct {
	from, fromData, clusterID       string
	fromAuth                        broker.Auth
	fromTLS                         broker.TLS
	to                              string
	toAuth                          broker.Auth
	toTLS                           broker.TLS
	replicas                        int
	data                            string
	history, dryRun, force, verbose bool
	output                          string
}

func migrateCommand(e *env) *cobra.Command {
	var f migrateFlags
	cmd := withArgs(&cobra.Command{
		Use:   "migrate",
		Short: "copy functions, triggers, workflows and unfinished invocations from NATS Streaming to JetStream",
		Long: `Copy what a NATS Streaming deployment keeps into JetStream, for daemons started
with --broker jetstream: the catalog (functions with every version, triggers,
workflows), the modules it references, and the events of every workflow
invocation that has not finished (running, sleeping, waiting), with the
child workflows of their trees. Finished invocations are history and stay
behind unless --history. Never copied: function logs, users' topics and
their messages, queue positions and delivery counts, timer claims, node
heartbeats, replay checkpoints.

Stop the daemons first (the source is only read; what they write meanwhile
is not copied), and drain queue triggers: messages not yet acknowledged stay
on NATS Streaming. The target is an external JetStream (--to) or a data dir
(--data) that migrate opens with an embedded JetStream, as "sluice daemon
--broker jetstream --data DIR" will; the daemon must be stopped on it (migrate
takes its lock).

Running it again, or after an interruption at any point, copies only what
is missing: each event is in the target once. A target whose catalog was
written by anything else is refused unless --force.`,
		Example: `  # a single daemon: from its embedded NATS Streaming into a new data dir
  sluice migrate --from-nats-streaming nats://sluice:$(cat data/nats-password)@127.0.0.1:4222 \
      --cluster-id sluice --data ./data-js
  sluice daemon --broker jetstream --data ./data-js

  # what it would copy, as JSON
  sluice migrate --from-nats-streaming nats://nats:4222 --cluster-id prod \
      --to nats://js-0:4222,nats://js-1:4222 --replicas 3 --dry-run -o json`,
	})
	fs := cmd.Flags()
	fs.StringVar(&f.from, "from-nats-streaming", "", "the NATS Streaming server `URL` to copy from; nats://user:password@host:4222 carries credentials")
	fs.StringVar(&f.fromData, "from-data", "", "a stopped daemon's data `dir` to copy from, with an embedded NATS Streaming (instead of --from-nats-streaming); it may be --data too")
	fs.StringVar(&f.clusterID, "cluster-id", "sluice", "its NATS Streaming cluster id (the embedded server's is sluice)")
	fs.StringVar(&f.fromAuth.User, "from-nats-user", "", "NATS user for --from-nats-streaming")
	fs.Var(secretFlag{&f.fromAuth.Password}.init("SLUICE_MIGRATE_FROM_PASSWORD"), "from-nats-password", "NATS password for --from-nats-streaming (env SLUICE_MIGRATE_FROM_PASSWORD)")
	fs.Var(secretFlag{&f.fromAuth.Token}.init("SLUICE_MIGRATE_FROM_TOKEN"), "from-nats-token", "NATS token for --from-nats-streaming (env SLUICE_MIGRATE_FROM_TOKEN)")
	fs.StringVar(&f.fromAuth.CredsFile, "from-creds", "", "NATS credentials `file` (.creds) for --from-nats-streaming")
	fs.StringVar(&f.fromTLS.CAFile, "from-nats-ca", "", "PEM `file` of the CA that signed the source server's certificate")
	fs.StringVar(&f.fromTLS.CertFile, "from-nats-cert", "", "PEM `file`: a client certificate for the source")
	fs.StringVar(&f.fromTLS.KeyFile, "from-nats-key", "", "PEM `file`: that certificate's key")
	fs.StringVar(&f.to, "to", "", "the JetStream server `URL` to copy into (several separated by commas); or --data")
	fs.StringVar(&f.toAuth.User, "to-nats-user", "", "NATS user for --to")
	fs.Var(secretFlag{&f.toAuth.Password}.init("SLUICE_MIGRATE_TO_PASSWORD"), "to-nats-password", "NATS password for --to (env SLUICE_MIGRATE_TO_PASSWORD)")
	fs.Var(secretFlag{&f.toAuth.Token}.init("SLUICE_MIGRATE_TO_TOKEN"), "to-nats-token", "NATS token for --to (env SLUICE_MIGRATE_TO_TOKEN)")
	fs.StringVar(&f.toAuth.CredsFile, "to-creds", "", "NATS credentials `file` (.creds) for --to")
	fs.StringVar(&f.toTLS.CAFile, "to-nats-ca", "", "PEM `file` of the CA that signed the target server's certificate")
	fs.StringVar(&f.toTLS.CertFile, "to-nats-cert", "", "PEM `file`: a client certificate for the target")
	fs.StringVar(&f.toTLS.KeyFile, "to-nats-key", "", "PEM `file`: that certificate's key")
	fs.IntVar(&f.replicas, "replicas", 1, "replicas of sluice's JetStream streams when migrate creates them on --to (3 on a 3-server cluster)")
	fs.StringVar(&f.data, "data", "", "a stopped daemon's data `dir` to copy into, with an embedded JetStream (instead of --to)")
	fs.BoolVar(&f.history, "history", false, "copy finished invocations too")
	fs.BoolVar(&f.dryRun, "dry-run", false, "count what would be copied; write nothing")
	fs.BoolVar(&f.force, "force", false, "copy into a target whose catalog holds events from elsewhere, after them")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log progress on stderr")
	fs.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range []string{"from-creds", "from-nats-ca", "from-nats-cert", "from-nats-key", "to-creds", "to-nats-ca", "to-nats-cert", "to-nats-key"} {
		_ = cmd.MarkFlagFilename(name)
	}
	_ = cmd.MarkFlagDirname("data")
	_ = cmd.MarkFlagDirname("from-data")
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return f.run(e) }
	return cmd
}

func (f *migrateFlags) check() error {
	switch {
	case f.from == "" && f.fromData == "":
		return usagef("migrate: give the NATS Streaming server to copy from: --from-nats-streaming URL, or --from-data DIR (a stopped daemon's data dir)")
	case f.from != "" && f.fromData != "":
		return usagef("migrate: give --from-nats-streaming or --from-data, not both")
	case f.to == "" && f.data == "":
		return usagef("migrate: give the target: --to URL (a JetStream server) or --data DIR (a stopped daemon's data dir)")
	case f.to != "" && f.data != "":
		return usagef("migrate: give --to or --data, not both")
	case f.output != "table" && f.output != "json":
		return usagef("-o %q: use table or json", f.output)
	case f.replicas < 1:
		return usagef("--replicas %d: want 1 or more", f.replicas)
	case f.data != "" && (!f.toAuth.IsZero() || !f.toTLS.IsZero() || f.replicas != 1):
		return usagef("migrate: --to-nats-* and --replicas are for --to; --data opens its own embedded JetStream")
	}
	return nil
}

func (f *migrateFlags) run(e *env) error {
	if err := f.check(); err != nil {
		return err
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	ctx := e.ctx
	cctx, cancel := context.WithTimeout(ctx, migrateConnectTimeout)
	defer cancel()
	locks := map[string]func(){}
	defer func() {
		for _, release := range locks {
			release()
		}
	}()
	source, closeSource, err := f.source(cctx, logger, locks)
	if err != nil {
		return fmt.Errorf("migrate: source: %w", err)
	}
	defer closeSource()
	target, closeTarget, err := f.target(cctx, logger, locks)
	if err != nil {
		return fmt.Errorf("migrate: target: %w", err)
	}
	defer closeTarget()
	rep, err := migrate.Run(ctx, migrate.Options{
		Source: source, Target: target, History: f.history, DryRun: f.dryRun, Force: f.force, Logger: logger,
	})
	if err != nil {
		if rep != nil && rep.Took > 0 && !f.dryRun {
			fmt.Fprintf(e.stderr, "migrate stopped after copying %d modules, %d catalog events and %d workflow events; run it again to go on\n",
				rep.Modules.Copied, rep.CatalogEvents.Copied, rep.Events.Copied)
		}
		return fmt.Errorf("migrate: %w", err)
	}
	if f.data != "" && !f.dryRun {
		// the data dir is now JetStream's: a daemon started on it with
		// --broker jetstream takes it, one with NATS Streaming refuses
		if err := daemon.MarkDataDir(f.data, daemon.BrokerJetStream); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if f.output == "json" {
		return printJSON(e.stdout, rep)
	}
	printReport(e, rep)
	return nil
}

// target connects to --to, or opens --data with an embedded JetStream
// (locking the data dir as a daemon does).
func (f *migrateFlags) target(ctx context.Context, logger *slog.Logger, locks map[string]func()) (eventlog.Log, func(), error) {
	if f.to != "" {
		l, err := jslog.Connect(ctx, jslog.Options{URL: f.to, Auth: f.toAuth, TLS: f.toTLS, Replicas: f.replicas, Name: "sluice-migrate", Logger: logger})
		if err != nil {
			return nil, nil, err
		}
		return l, func() { l.Close() }, nil
	}
	if err := lockData(f.data, logger, locks); err != nil {
		return nil, nil, err
	}
	// the embedded server lives as long as the migration, on loopback,
	// with a password made for it alone
	auth, err := oneTimeAuth()
	if err != nil {
		return nil, nil, err
	}
	srv, err := jslog.StartEmbedded(jslog.EmbeddedOptions{
		Dir: f.data, Listen: "127.0.0.1:0", Logger: logger,
		Auth: auth,
	})
	if err != nil {
		return nil, nil, err
	}
	l, err := jslog.Connect(ctx, jslog.Options{URL: srv.URL(), TLS: srv.ClientTLS(), Replicas: srv.Replicas(), Name: "sluice-migrate", Logger: logger})
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	return l, func() { l.Close(); srv.Shutdown() }, nil
}

// source connects to --from-nats-streaming, or opens --from-data with an
// embedded NATS Streaming (locking the data dir as a daemon does).
func (f *migrateFlags) source(ctx context.Context, logger *slog.Logger, locks map[string]func()) (eventlog.Log, func(), error) {
	o := broker.Options{URL: f.from, ClusterID: f.clusterID, Auth: f.fromAuth, TLS: f.fromTLS, Name: "sluice-migrate", Logger: logger}
	stop := func() {}
	if f.fromData != "" {
		if _, err := os.Stat(f.fromData); err != nil {
			return nil, nil, fmt.Errorf("--from-data: %w", err)
		}
		if err := lockData(f.fromData, logger, locks); err != nil {
			return nil, nil, err
		}
		auth, err := oneTimeAuth()
		if err != nil {
			return nil, nil, err
		}
		srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: f.fromData, Listen: "127.0.0.1:0", ClusterID: f.clusterID, Logger: logger, Auth: auth})
		if err != nil {
			return nil, nil, err
		}
		o = broker.Options{URL: srv.URL(), ClusterID: f.clusterID, TLS: srv.ClientTLS(), Name: "sluice-migrate", Logger: logger}
		stop = srv.Shutdown
	}
	l, err := natslog.Connect(ctx, o)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return l, func() { l.Close(); stop() }, nil
}

// lockData takes a data dir's lock, once however many sides use the dir
// (--from-data and --data may be one dir: the stores are apart in it).
func lockData(dir string, logger *slog.Logger, locks map[string]func()) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if _, ok := locks[abs]; ok {
		return nil
	}
	release, err := daemon.LockDataDir(dir)
	switch {
	case errors.Is(err, daemon.ErrLockUnsupported):
		logger.Warn("the data dir is not locked: make sure no daemon runs on it", "data", dir, "err", err)
	case err != nil:
		return err
	}
	locks[abs] = release
	return nil
}

// oneTimeAuth is a password for an embedded server that lives as long as
// the migration.
func oneTimeAuth() (broker.Auth, error) {
	var rnd [24]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return broker.Auth{}, err
	}
	return broker.Auth{User: "sluice-migrate", Password: base64.RawURLEncoding.EncodeToString(rnd[:])}, nil
}

func printReport(e *env, r *migrate.Report) {
	did := "copied"
	if r.DryRun {
		did = "to copy"
	}
	count := func(c migrate.Count) string { return fmt.Sprintf("%d %s, %d already there", c.Copied, did, c.Skipped) }
	rows := [][2]string{
		{"source:", r.Source + " (NATS Streaming; read only)"},
		{"target:", r.Target},
		{"catalog:", fmt.Sprintf("%d functions, %d triggers, %d workflows", r.Functions, r.Triggers, r.Workflows)},
		{"catalog events:", count(r.CatalogEvents)},
		{"modules:", count(r.Modules) + ", " + host.FormatBytes(uint64(r.ModuleBytes)) + " " + did},
		{"invocations:", count(r.Invocations) + fmt.Sprintf("; %d finished left behind (--history copies them)", r.Finished)},
		{"workflow events:", count(r.Events)},
		{"took:", time.Duration(r.Took).String()},
	}
	if len(r.MissingModules) > 0 {
		rows = append(rows, [2]string{"missing:", strings.Join(r.MissingModules, "; ") + " (not in the source: not copied)"})
	}
	fields(e.stdout, 17, rows)
	fmt.Fprintln(e.stdout, "not copied:")
	for _, s := range r.NotCopied {
		fmt.Fprintln(e.stdout, "  - "+s)
	}
}
