package jslog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"

	"github.com/sluicehq/sluice/internal/broker"
)

// EmbeddedOptions configure an embedded nats-server with JetStream.
type EmbeddedOptions struct {
	// Dir is the daemon's data dir: the JetStream file store is
	// Dir/jetstream, and the server's name is kept in
	// Dir/jetstream/server-name. Required.
	Dir string
	// Listen is host:port for NATS clients; port 0 picks a free port.
	Listen string
	// Logger receives the server's log, at debug level but for warnings
	// and errors.
	Logger *slog.Logger
	// Auth is what clients must present: a user and password, or a token
	// (not a creds file). Without it the server lets anyone in, so Listen
	// must then be a loopback address.
	Auth broker.Auth
	// TLS, with a certificate and key, makes the server serve TLS to its
	// clients; CAFile is the CA that signed the certificate (empty if it
	// is self-signed), for ClientTLS.
	TLS broker.TLS
	// ServerName names the server in its cluster; "" is the name kept in
	// the data dir (made at the first start), so that a restarted daemon
	// is the same cluster member.
	ServerName string
	// Cluster, with a Name, makes the server a member of a JetStream
	// cluster of daemons.
	Cluster ClusterOptions
	// NoSync turns off the fsync of every message that a server outside
	// a cluster does (benchmarks): the store is then synced every two
	// minutes, JetStream's default.
	NoSync bool
}

// ClusterOptions make the embedded server a member of a cluster: the
// daemons' servers route to each other and run JetStream's Raft groups
// among themselves. Every member is given the same Name, User and
// Password, its own Listen, and the others' addresses as Peers (a list
// with its own address in it too is fine, so every member can be given
// the same list).
type ClusterOptions struct {
	// Name is the cluster's name (--cluster).
	Name string
	// Listen is host:port for the other members' routes
	// (--cluster-listen); port 0 picks a free port.
	Listen string
	// Peers are the other members' cluster addresses, host:port
	// (--peers).
	Peers []string
	// User and Password are what the members present to each other's
	// route port, and require of it: a route is a full member, which
	// reads and writes every stream. Required unless Listen is a
	// loopback address. User "" is "sluice".
	User, Password string
	// TLS, with a certificate, key and CA, makes routes mutual TLS: each
	// member presents its certificate and takes only members whose
	// certificate the CA signed, and a route dialed to a peer checks that
	// the peer's certificate names the address in Peers. Without it,
	// what the members exchange (every stream) crosses the network in
	// clear.
	TLS RouteTLS
}

// RouteTLS are the files of a cluster member's route TLS, all PEM:
// its certificate (for the names or addresses its peers dial), the key,
// and the CA that signed every member's certificate.
type RouteTLS struct {
	CertFile, KeyFile, CAFile string
}

// IsZero tells whether routes are plain.
func (t RouteTLS) IsZero() bool { return t == RouteTLS{} }

// Tunables of the embedded server.
const (
	// readyTimeout bounds the wait for the server to serve clients, which
	// includes recovering the JetStream store.
	readyTimeout = 2 * time.Minute
	// readyPoll is how often the wait for it looks for a fatal error.
	readyPoll = 100 * time.Millisecond
	// serverNameFile holds the server's name, under Dir/jetstream.
	serverNameFile = "server-name"
	// defaultRouteUser is the cluster user when none is given.
	defaultRouteUser = "sluice"
)

// Embedded is a nats-server with JetStream running in this process.
type Embedded struct {
	srv      *natsd.Server
	addr     string
	auth     broker.Auth
	tls      broker.TLS
	replicas int
}

// StartEmbedded starts an embedded server and waits until it serves
// clients. A store whose streams it cannot recover is a *StoreError that
// says what to do: the server would otherwise serve without those
// streams, and Connect would make them anew, empty.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	return StartEmbeddedContext(context.Background(), o)
}

// StartEmbeddedContext is StartEmbedded whose wait for the server to
// serve ends with ctx (a start timeout, a signal to stop).
func StartEmbeddedContext(ctx context.Context, o EmbeddedOptions) (*Embedded, error) {
	if o.Dir == "" {
		return nil, errors.New("the embedded JetStream server needs a data dir for its file store")
	}
	host, port, err := splitListen("--nats-listen", o.Listen)
	if err != nil {
		return nil, err
	}
	if err := o.Auth.Check(); err != nil {
		return nil, err
	}
	if o.Auth.CredsFile != "" {
		return nil, fmt.Errorf("%w: the embedded server takes a user and password or a token, not a creds file (that is for an external server with --nats)", broker.ErrCredentials)
	}
	if o.Auth.IsZero() && !broker.IsLoopback(host) {
		return nil, fmt.Errorf("%w: %s is reachable from other machines, and whoever reaches it could read every function's environment and replace its code; give the server credentials, or listen on 127.0.0.1", broker.ErrOpenListen, o.Listen)
	}
	if err := o.TLS.Check(); err != nil {
		return nil, err
	}
	storeDir := filepath.Join(o.Dir, "jetstream")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return nil, fmt.Errorf("JetStream store: %w", err)
	}
	name := o.ServerName
	if name == "" {
		if name, err = serverName(storeDir); err != nil {
			return nil, err
		}
	}

	nopts := &natsd.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   storeDir,
		// One server alone fsyncs every message, as NATS Streaming's file
		// store does: JetStream's default (every 2 minutes) would let a
		// machine crash lose acknowledged messages. In a cluster a message
		// is acknowledged once a majority of machines hold it.
		SyncAlways: o.Cluster.Name == "" && !o.NoSync,
		Username:   o.Auth.User, Password: o.Auth.Password, Authorization: o.Auth.Token,
	}
	replicas := 1
	if o.Cluster.Name != "" {
		if replicas, err = cluster(nopts, o.Cluster); err != nil {
			return nil, err
		}
	}
	clientTLS := broker.TLS{}
	if o.TLS.CertFile != "" {
		if clientTLS, err = serveTLS(nopts, o.TLS); err != nil {
			return nil, err
		}
	}
	if err := broker.CheckListen("--nats-listen", o.Listen); err != nil {
		return nil, err
	}
	if o.Cluster.Name != "" {
		if err := broker.CheckListen("--cluster-listen", o.Cluster.Listen); err != nil {
			return nil, err
		}
	}
	srv, err := natsd.NewServer(nopts)
	if err != nil {
		return nil, fmt.Errorf("start embedded JetStream on %s: %w", o.Listen, err)
	}
	var l *slog.Logger
	if o.Logger != nil {
		l = o.Logger.With("component", "jetstream")
	}
	rec := &recovery{dir: storeDir}
	fatal := broker.NewFatalLines()
	srv.SetLoggerV2(broker.ServerLogger{L: l, OnWarn: rec.report, OnError: rec.report, OnFatal: fatal.Report}, true, false, false)
	srv.Start()
	if err := serving(ctx, srv, fatal); err != nil {
		srv.Shutdown()
		if se := rec.damage(); se != nil {
			return nil, se
		}
		return nil, fmt.Errorf("start embedded JetStream on %s: %w", o.Listen, err)
	}
	if se := rec.damage(); se != nil {
		srv.Shutdown()
		return nil, se
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("start embedded JetStream on %s: JetStream could not be enabled on store %s (the server's log says why)", o.Listen, storeDir)
	}
	rec.started()
	return &Embedded{srv: srv, addr: srv.ClientURL(), auth: o.Auth, tls: clientTLS, replicas: replicas}, nil
}

// serving waits until srv serves clients, for at most readyTimeout. It
// ends at once on a fatal error of the server (a port taken since
// CheckListen: the server would wait without serving) or when ctx ends.
func serving(ctx context.Context, srv *natsd.Server, fatal *broker.FatalLines) error {
	deadline := time.Now().Add(readyTimeout)
	for !srv.ReadyForConnections(readyPoll) {
		select {
		case line := <-fatal.First():
			return errors.New(line)
		case <-ctx.Done():
			return context.Cause(ctx)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after %s", readyTimeout)
		}
	}
	return nil
}

// splitListen parses a host:port listen address.
func splitListen(flag, listen string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: want host:port: %w", flag, listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%s %q: bad port", flag, listen)
	}
	if port == 0 {
		port = natsd.RANDOM_PORT
	}
	return host, port, nil
}

// cluster sets the server's cluster options and returns the replicas
// its streams should have.
func cluster(nopts *natsd.Options, c ClusterOptions) (int, error) {
	host, port, err := splitListen("--cluster-listen", c.Listen)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrCluster, err)
	}
	if c.User == "" {
		c.User = defaultRouteUser
	}
	if c.Password == "" && c.TLS.IsZero() && !broker.IsLoopback(host) {
		return 0, fmt.Errorf("%w: cluster listen %s is reachable from other machines, and a route there is a full member that reads and writes every stream; give every member the same cluster password (and route TLS), or listen on 127.0.0.1", broker.ErrOpenListen, c.Listen)
	}
	nopts.Cluster = natsd.ClusterOpts{Name: c.Name, Host: host, Port: port}
	if c.Password != "" {
		nopts.Cluster.Username, nopts.Cluster.Password = c.User, c.Password
	}
	if !c.TLS.IsZero() {
		if err := routeTLS(&nopts.Cluster, c.TLS); err != nil {
			return 0, err
		}
	}
	members := 1
	self := endpoints(c.Listen)
	seen := map[string]bool{}
	for _, p := range c.Peers {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return 0, fmt.Errorf("%w: peer %q: want host:port: %w", ErrCluster, p, err)
		}
		u := &url.URL{Scheme: "nats-route", Host: p}
		if c.Password != "" {
			u.User = url.UserPassword(c.User, c.Password)
		}
		nopts.Routes = append(nopts.Routes, u)
		// a member is counted once, however it is spelled (a name, an
		// address, this member itself among its peers)
		ends := endpoints(p)
		known := false
		for e := range ends {
			known = known || seen[e] || self[e]
		}
		for e := range ends {
			seen[e] = true
		}
		if !known {
			members++
		}
	}
	if members < 3 {
		// JetStream needs a majority: with 2 members, losing one stops
		// every stream; 1 member is no cluster.
		return 0, fmt.Errorf("%w: --peers names %d other members; a JetStream cluster needs 3 (or 5), so that it keeps a majority when one is lost", ErrCluster, members-1)
	}
	return min(members, 3), nil
}

// endpoints returns the addresses host:port stands for, as "ip:port": its
// host resolved (a host that does not resolve stands for itself). Every
// loopback address is one ("loopback:port"), and a listen on every
// interface (0.0.0.0, ::) is every address of this machine.
func endpoints(hostport string) map[string]bool {
	out := map[string]bool{hostport: true}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return out
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else if host != "" {
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		cancel()
		if err != nil {
			return out
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	if host == "" || len(ips) == 1 && ips[0].IsUnspecified() {
		ips = []net.IP{net.IPv4(127, 0, 0, 1)}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					ips = append(ips, n.IP)
				}
			}
		}
	}
	for _, ip := range ips {
		if ip.IsLoopback() {
			out["loopback:"+port] = true
		} else {
			out[net.JoinHostPort(ip.String(), port)] = true
		}
	}
	return out
}

// resolveTimeout bounds the look-up of a peer's name when counting the
// cluster's members.
const resolveTimeout = 5 * time.Second

// serverName returns the server name kept in dir, making one at the
// first start.
func serverName(dir string) (string, error) {
	file := filepath.Join(dir, serverNameFile)
	b, err := os.ReadFile(file)
	if err == nil {
		if name := strings.TrimSpace(string(b)); name != "" {
			return name, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("JetStream server name: %w", err)
	}
	host, _ := os.Hostname()
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	name := "sluice-" + sanitizeName(host) + "-" + hex.EncodeToString(r[:])
	if err := os.WriteFile(file, []byte(name+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("JetStream server name: %w", err)
	}
	return name, nil
}

// sanitizeName keeps what a server name may hold.
func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// routeTLS makes a cluster's routes mutual TLS: a member presents its
// certificate and requires one the CA signed, both ways.
func routeTLS(co *natsd.ClusterOpts, t RouteTLS) error {
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
		return fmt.Errorf("%w: route TLS needs --cluster-cert, --cluster-key and --cluster-ca together (the CA that signed every member's certificate)", broker.ErrTLS)
	}
	cfg, err := natsd.GenTLSConfig(&natsd.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile, CaFile: t.CAFile, Verify: true})
	if err != nil {
		return fmt.Errorf("%w: --cluster-cert, --cluster-key, --cluster-ca: %w", broker.ErrTLS, err)
	}
	// the CA verifies both sides: the members dialing in (ClientCAs) and
	// the peers this member dials (RootCAs, which GenTLSConfig leaves to
	// the system's)
	cfg.RootCAs = cfg.ClientCAs
	co.TLSConfig, co.TLSTimeout = cfg, broker.TLSTimeout.Seconds()
	return nil
}

// serveTLS configures the server to serve TLS to clients with the
// certificate; it returns what a client in this process needs to trust
// it.
func serveTLS(nopts *natsd.Options, t broker.TLS) (broker.TLS, error) {
	cfg, err := natsd.GenTLSConfig(&natsd.TLSConfigOpts{CertFile: t.CertFile, KeyFile: t.KeyFile})
	if err != nil {
		return broker.TLS{}, fmt.Errorf("%w: --nats-listen-cert: %w", broker.ErrTLS, err)
	}
	name, err := broker.CertName(t.CertFile)
	if err != nil {
		return broker.TLS{}, fmt.Errorf("%w: --nats-listen-cert: %w", broker.ErrTLS, err)
	}
	nopts.TLS, nopts.TLSConfig, nopts.TLSTimeout = true, cfg, broker.TLSTimeout.Seconds()
	ca := t.CAFile
	if ca == "" {
		ca = t.CertFile
	}
	return broker.TLS{CAFile: ca, ServerName: name}, nil
}

// URL is where NATS clients connect, with the server's credentials in it
// (for callers in this process; log broker.Redact(URL())).
func (e *Embedded) URL() string { return broker.URLWithAuth(e.addr, e.auth) }

// Addr is the host:port the server listens on for clients.
func (e *Embedded) Addr() string {
	u, err := url.Parse(e.addr)
	if err != nil {
		return e.addr
	}
	return u.Host
}

// ClusterAddr is the host:port the server listens on for routes; "" if
// it is not clustered.
func (e *Embedded) ClusterAddr() string {
	if a := e.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Name is the server's name in its cluster.
func (e *Embedded) Name() string { return e.srv.Name() }

// Replicas is what Options.Replicas should be for a Log on this server:
// 3 in a cluster, else 1.
func (e *Embedded) Replicas() int { return e.replicas }

// ClientTLS is what a client in this process needs to trust the server's
// certificate; zero if it does not serve TLS.
func (e *Embedded) ClientTLS() broker.TLS { return e.tls }

// IsMetaLeader tells whether this server leads the cluster's JetStream
// meta group (true for a server on its own).
func (e *Embedded) IsMetaLeader() bool {
	if e.replicas == 1 {
		return true
	}
	return e.srv.JetStreamIsLeader()
}

// ClusterStatus is what a member knows of its JetStream cluster.
type ClusterStatus struct {
	// Name is the cluster's name (--cluster).
	Name string `json:"name"`
	// Leader is the server name of the meta leader, "" while none is
	// known (an election, or a majority of the members lost).
	Leader string `json:"leader,omitempty"`
	// Members are the server names of the members this one sees up,
	// itself included, sorted.
	Members []string `json:"members"`
	// Size is how many members the cluster has.
	Size int `json:"size"`
}

// Cluster is what the server knows of its cluster; ok is false if it is
// not clustered.
func (e *Embedded) Cluster() (st ClusterStatus, ok bool) {
	if e.replicas == 1 {
		return ClusterStatus{}, false
	}
	st = ClusterStatus{Name: e.srv.ClusterName(), Members: []string{e.srv.Name()}}
	jsz, err := e.srv.Jsz(&natsd.JSzOptions{})
	if err != nil || jsz.Meta == nil {
		return st, true
	}
	st.Leader, st.Size = jsz.Meta.Leader, jsz.Meta.Size
	seen := map[string]bool{e.srv.Name(): true}
	add := func(name string) {
		if name != "" && !seen[name] {
			seen[name] = true
			st.Members = append(st.Members, name)
		}
	}
	add(st.Leader)
	for _, p := range jsz.Meta.Replicas {
		if !p.Offline {
			add(p.Name)
		}
	}
	slices.Sort(st.Members)
	return st, true
}

// WaitClustered waits until the cluster has elected a meta leader and
// this server follows it, or ctx ends.
func (e *Embedded) WaitClustered(ctx context.Context) error {
	for {
		if e.replicas == 1 || e.srv.JetStreamIsCurrent() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("JetStream cluster %s: no meta leader yet: %w (are the other members up, and do --peers reach their --cluster-listen?)", e.srv.ClusterName(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Shutdown stops the server.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// recovery collects what the server says while it recovers the store.
type recovery struct {
	dir string

	mu        sync.Mutex
	first     *StoreError
	isStarted bool
}

var (
	// "  Error recreating stream "NAME": ..."
	badStream = regexp.MustCompile(`Error recreating stream "([^"]+)": (.*)$`)
	// "  Missing stream metafile for "…/streams/NAME/meta.inf"", checksum
	// and unmarshalling errors of a stream's or a consumer's files.
	streamFile = regexp.MustCompile(`streams[/\\]([^/\\"]+)`)
	badFile    = regexp.MustCompile(`(?i)missing|error|checksums do not match|corrupt`)
)

// report takes one warning or error line of the server's log.
func (r *recovery) report(line string) {
	var se *StoreError
	if m := badStream.FindStringSubmatch(line); m != nil {
		se = &StoreError{Dir: r.dir, Stream: m[1], Err: errors.New(strings.TrimSpace(m[2]))}
	} else if m := streamFile.FindStringSubmatch(line); m != nil && badFile.MatchString(line) {
		se = &StoreError{Dir: r.dir, Stream: m[1], Err: errors.New(strings.TrimSpace(line))}
	} else {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.isStarted && r.first == nil {
		r.first = se
	}
}

func (r *recovery) damage() *StoreError {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

func (r *recovery) started() {
	r.mu.Lock()
	r.isStarted = true
	r.mu.Unlock()
}
