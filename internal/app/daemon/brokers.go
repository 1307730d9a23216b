package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
)

// The brokers a daemon runs on (--broker).
const (
	// BrokerNATSStreaming is NATS Streaming: embedded, its file store in
	// DATA/nats, or an external server (--nats, --cluster-id).
	BrokerNATSStreaming = "nats-streaming"
	// BrokerJetStream is NATS JetStream: embedded, its file store in
	// DATA/jetstream, alone or clustered with other daemons (--cluster),
	// or an external nats-server with JetStream (--nats).
	BrokerJetStream = "jetstream"
	// DefaultBroker stays NATS Streaming: today's data dirs are its
	// stores, and a daemon must not start on one with an empty catalog
	// (docs/RATIONALE.md has the measurements of both).
	DefaultBroker = BrokerNATSStreaming
	// BrokerFile, in the data dir, names the broker whose store the data
	// dir holds (one line: nats-streaming or jetstream). A daemon writes
	// it at its first start on the data dir; sluice migrate rewrites it.
	BrokerFile = "broker"
)

// brokerOf tells which broker's store the data dir holds: its
// BrokerFile, else what is in it (a data dir made before the file was
// written has DATA/nats only), "" for a new data dir.
func brokerOf(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, BrokerFile))
	if err == nil {
		name := strings.TrimSpace(string(b))
		if name != BrokerNATSStreaming && name != BrokerJetStream {
			return "", fmt.Errorf("%w: %s says %q; it should say %s or %s (the broker whose store this data dir holds)",
				ErrOptions, filepath.Join(dir, BrokerFile), name, BrokerNATSStreaming, BrokerJetStream)
		}
		return name, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nats")); err == nil {
		return BrokerNATSStreaming, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err == nil {
		return BrokerJetStream, nil
	}
	return "", nil
}

// claimDataDir refuses a data dir made for another broker than want, and
// marks a new one as want's.
func claimDataDir(dir, want string) error {
	made, err := brokerOf(dir)
	if err != nil {
		return err
	}
	if made != "" && made != want {
		return &BrokerMismatchError{Dir: dir, Made: made, Want: want}
	}
	if _, err := os.Stat(filepath.Join(dir, BrokerFile)); err == nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, BrokerFile), []byte(want+"\n"), 0o600); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}

// MarkDataDir records that the data dir holds the broker's store (its
// BrokerFile): what sluice migrate does once it has copied a NATS
// Streaming deployment into the data dir's JetStream store, so that a
// daemon with --broker jetstream starts on it and one with NATS
// Streaming is refused.
func MarkDataDir(dir, broker string) error {
	if broker != BrokerNATSStreaming && broker != BrokerJetStream {
		return fmt.Errorf("%w: broker %q: use %s or %s", ErrOptions, broker, BrokerNATSStreaming, BrokerJetStream)
	}
	tmp := filepath.Join(dir, BrokerFile+".tmp")
	if err := os.WriteFile(tmp, []byte(broker+"\n"), 0o600); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, BrokerFile)); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	return nil
}

// startJetStream starts the embedded JetStream server, alone or as a
// member of the daemons' cluster, and waits for the cluster to elect its
// meta leader. It returns how to connect to it.
func (d *Daemon) startJetStream(ctx context.Context) (jslog.Options, error) {
	o := d.opts
	auth, source, err := brokerAuth(o)
	if err != nil {
		return jslog.Options{}, err
	}
	var tls broker.TLS
	if o.NATSListenCertFile != "" {
		tls = broker.TLS{CAFile: o.NATSCAFile, CertFile: o.NATSListenCertFile, KeyFile: o.NATSListenKeyFile}
	}
	eo := jslog.EmbeddedOptions{
		Dir: o.DataDir, Listen: o.NATSListen, Logger: d.log, Auth: auth, TLS: tls,
		NoSync: o.MemoryStore,
	}
	if o.Cluster != "" {
		eo.Cluster = jslog.ClusterOptions{Name: o.Cluster, Listen: o.ClusterListen, Peers: o.Peers, Password: o.ClusterPassword,
			TLS: jslog.RouteTLS{CertFile: o.ClusterCertFile, KeyFile: o.ClusterKeyFile, CAFile: o.ClusterCAFile}}
	}
	d.js, err = jslog.StartEmbeddedContext(ctx, eo)
	if err != nil {
		return jslog.Options{}, err
	}
	host, _, _ := net.SplitHostPort(d.js.Addr())
	attrs := []any{"url", broker.Redact(d.js.URL()), "store", "file " + filepath.Join(o.DataDir, "jetstream"), "server", d.js.Name(), "tls", !tls.IsZero()}
	if auth.Token != "" {
		attrs = append(attrs, "credentials", source)
	} else {
		attrs = append(attrs, "user", auth.User, "password", source)
	}
	if o.Cluster != "" {
		attrs = append(attrs, "cluster", o.Cluster, "cluster_listen", d.js.ClusterAddr(), "peers", strings.Join(o.Peers, ","), "route_tls", o.ClusterCertFile != "")
	}
	d.log.Info("embedded JetStream started", attrs...)
	if !broker.IsLoopback(host) && tls.IsZero() {
		d.log.Warn("NATS clients from other machines send the password in clear: serve TLS (--nats-listen-cert, --nats-listen-key) or keep --nats-listen on a private network", "nats_listen", o.NATSListen)
	}
	if chost, _, _ := net.SplitHostPort(o.ClusterListen); o.Cluster != "" && !broker.IsLoopback(chost) && o.ClusterCertFile == "" {
		d.log.Warn("the members' routes carry every stream in clear: make them mutual TLS (--cluster-cert, --cluster-key, --cluster-ca) or keep --cluster-listen on a private network", "cluster_listen", o.ClusterListen)
	}
	if o.Cluster != "" {
		d.log.Info("waiting for the JetStream cluster to elect its leader", "cluster", o.Cluster, "peers", strings.Join(o.Peers, ","))
		if err := d.js.WaitClustered(ctx); err != nil {
			return jslog.Options{}, err
		}
		st, _ := d.js.Cluster()
		d.log.Info("JetStream cluster formed", "cluster", o.Cluster, "leader", st.Leader, "members", strings.Join(st.Members, ","))
	}
	return jslog.Options{URL: d.js.URL(), TLS: d.js.ClientTLS(), Replicas: d.js.Replicas()}, nil
}

// connectJetStream connects the daemon's event log to JetStream: the
// embedded server, or --nats.
func (d *Daemon) connectJetStream(ctx context.Context) error {
	o := d.opts
	var jo jslog.Options
	if o.NATSURL == "" {
		var err error
		if jo, err = d.startJetStream(ctx); err != nil {
			return err
		}
		d.natsURL = jo.URL
	} else {
		jo.URL, jo.Replicas = o.NATSURL, o.Replicas
		jo.Auth = broker.Auth{User: o.NATSUser, Password: o.NATSPassword, Token: o.NATSToken, CredsFile: o.NATSCredsFile}
		jo.TLS = broker.TLS{CAFile: o.NATSCAFile, CertFile: o.NATSCertFile, KeyFile: o.NATSKeyFile}
		d.natsURL = broker.URLWithAuth(o.NATSURL, jo.Auth)
	}
	jo.Name, jo.Logger = "sluice-"+d.id, d.log.With("component", "broker")
	l, err := jslog.Connect(ctx, jo)
	if err != nil {
		switch {
		case errors.Is(err, broker.ErrRefused):
			err = fmt.Errorf("%w (check the credentials: --nats-user and --nats-password, --nats-token or --nats-creds, or SLUICE_NATS_USER, SLUICE_NATS_PASSWORD...; and --nats-ca if the server's certificate is not signed by a CA this machine trusts)", err)
		case errors.Is(err, jslog.ErrNoJetStream):
			err = fmt.Errorf("%w: --broker jetstream needs a nats-server run with JetStream (-js); for a NATS Streaming server, use --broker %s", err, BrokerNATSStreaming)
		}
		return err
	}
	d.events = l
	return nil
}

// BrokerStatus is what /readyz shows of the broker.
type BrokerStatus struct {
	// Broker is nats-streaming or jetstream.
	Broker string `json:"broker"`
	// Connected tells whether the daemon is connected to it.
	Connected bool `json:"connected"`
	// Cluster is the JetStream cluster of daemons this one is a member
	// of, if any.
	Cluster *jslog.ClusterStatus `json:"cluster,omitempty"`
}

// brokerStatus reports the broker, and an error while the daemon cannot
// use it: disconnected, or a member of a cluster with no meta leader.
func (d *Daemon) brokerStatus() (any, error) {
	// the triggers' results need their connection too (d.results)
	st := BrokerStatus{Broker: d.opts.Broker, Connected: d.events.Connected() && (d.results == nil || d.results.Connected())}
	if d.js != nil {
		if cs, ok := d.js.Cluster(); ok {
			st.Cluster = &cs
			if cs.Leader == "" {
				return st, fmt.Errorf("JetStream cluster %s has no leader: %d of %d members seen (%s); it needs a majority up and routed to each other (--peers, --cluster-listen)",
					cs.Name, len(cs.Members), cs.Size, strings.Join(cs.Members, ", "))
			}
		}
	}
	if !st.Connected {
		return st, fmt.Errorf("not connected to %s (reconnecting)", brokerName(d.opts.Broker))
	}
	return st, nil
}

// brokerName is how messages name the broker.
func brokerName(b string) string {
	if b == BrokerJetStream {
		return "JetStream"
	}
	return "NATS Streaming"
}

// validateBroker checks the broker options: flags of one broker are
// refused with the other, rather than silently ignored.
func (o Options) validateBroker() error {
	routeTLS := o.ClusterCertFile != "" || o.ClusterKeyFile != "" || o.ClusterCAFile != ""
	clustered := o.Cluster != "" || o.ClusterListen != "" || len(o.Peers) > 0 || o.ClusterPassword != "" || routeTLS
	switch o.Broker {
	case BrokerNATSStreaming, "":
		if o.ClusterID == "" {
			return fmt.Errorf("%w: --cluster-id is empty", ErrOptions)
		}
		if o.Replicas != 0 {
			return fmt.Errorf("%w: --replicas is JetStream's: add --broker %s, or drop it (NATS Streaming's cluster replicates everything)", ErrOptions, BrokerJetStream)
		}
		if clustered {
			return fmt.Errorf("%w: --cluster, --cluster-listen, --peers, --cluster-password and --cluster-cert/-key/-ca make daemons a JetStream cluster: add --broker %s (a NATS Streaming cluster is run as its own servers, given to --nats)", ErrOptions, BrokerJetStream)
		}
		return nil
	case BrokerJetStream:
	default:
		return fmt.Errorf("%w: --broker %q: use %s or %s", ErrOptions, o.Broker, BrokerNATSStreaming, BrokerJetStream)
	}
	if o.Replicas != 0 && o.NATSURL == "" {
		return fmt.Errorf("%w: --replicas is for a JetStream cluster at --nats; embedded, sluice's streams keep 3 replicas with --cluster, else 1", ErrOptions)
	}
	if o.Replicas < 0 || o.Replicas > 5 {
		return fmt.Errorf("%w: --replicas %d: JetStream keeps 1 to 5 (3 on a cluster of 3)", ErrOptions, o.Replicas)
	}
	if o.ClusterID != "" && o.ClusterID != DefaultClusterID {
		return fmt.Errorf("%w: --cluster-id %s is NATS Streaming's; JetStream has no cluster id: drop it (or SLUICE_CLUSTER_ID), or use --broker %s", ErrOptions, o.ClusterID, BrokerNATSStreaming)
	}
	if !clustered {
		return nil
	}
	if o.NATSURL != "" {
		return fmt.Errorf("%w: --cluster makes the daemons' embedded servers a cluster; with --nats there is none (the servers at --nats form their own cluster)", ErrOptions)
	}
	switch {
	case o.Cluster == "":
		return fmt.Errorf("%w: --cluster-listen, --peers, --cluster-password and --cluster-cert/-key/-ca need --cluster NAME (the same on every member)", ErrOptions)
	case o.ClusterListen == "":
		return fmt.Errorf("%w: --cluster %s needs --cluster-listen HOST:PORT, where the other members' routes reach this daemon", ErrOptions, o.Cluster)
	case len(o.Peers) == 0:
		return fmt.Errorf("%w: --cluster %s needs --peers HOST:PORT,...: the other members' --cluster-listen addresses (a JetStream cluster needs 3 members)", ErrOptions, o.Cluster)
	}
	if _, _, err := net.SplitHostPort(o.ClusterListen); err != nil {
		return fmt.Errorf("%w: --cluster-listen %q: want host:port: %w", ErrOptions, o.ClusterListen, err)
	}
	if routeTLS && (o.ClusterCertFile == "" || o.ClusterKeyFile == "" || o.ClusterCAFile == "") {
		return fmt.Errorf("%w: --cluster-cert, --cluster-key and --cluster-ca go together: this member's certificate, its key, and the CA that signed every member's", ErrOptions)
	}
	return nil
}

// ClusterAddr is the host:port the embedded JetStream server takes the
// other members' routes on; "" if the daemon is not clustered.
func (d *Daemon) ClusterAddr() string {
	if d.js == nil {
		return ""
	}
	return d.js.ClusterAddr()
}
