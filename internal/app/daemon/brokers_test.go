package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	brokerpkg "github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
)

// testBroker is the broker the package's tests run on: SLUICE_TEST_BROKER
// (make test runs them on both), else the default.
func testBroker() string {
	if b := os.Getenv("SLUICE_TEST_BROKER"); b != "" {
		return b
	}
	return DefaultBroker
}

// otherBroker is the broker the tests do not run on.
func otherBroker() string {
	if testBroker() == BrokerJetStream {
		return BrokerNATSStreaming
	}
	return BrokerJetStream
}

// TestDataDirRemembersItsBroker: a data dir made by one broker is refused
// by the other, with what to do, rather than started with an empty
// catalog; its functions are still there for its own broker.
func TestDataDirRemembersItsBroker(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	d, c := start(t, o)
	deploy(t, c, "echo", "echo-wat", nil)
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(o.DataDir, BrokerFile)); strings.TrimSpace(string(b)) != o.Broker {
		t.Fatalf("%s says %q, want %s", BrokerFile, b, o.Broker)
	}

	other := o
	other.Broker = otherBroker()
	_, err := Start(ctx, other)
	var mm *BrokerMismatchError
	if !errors.As(err, &mm) || mm.Made != o.Broker || mm.Want != other.Broker {
		t.Fatalf("start with --broker %s on a %s data dir: %v", other.Broker, o.Broker, err)
	}
	for _, says := range []string{"--broker " + o.Broker, "sluice migrate", "empty catalog"} {
		if !strings.Contains(err.Error(), says) {
			t.Fatalf("error %q does not say %q", err, says)
		}
	}

	_, c = start(t, o)
	if out := invoke(t, c, "echo", "still here"); out != "still here" {
		t.Fatalf("echo after the refused start: %q", out)
	}
}

// TestDataDirWithoutBrokerFile: a data dir made before the daemon wrote
// DATA/broker holds a NATS Streaming store; JetStream refuses it.
func TestDataDirWithoutBrokerFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "nats"), 0o700); err != nil {
		t.Fatal(err)
	}
	if b, err := brokerOf(dir); err != nil || b != BrokerNATSStreaming {
		t.Fatalf("brokerOf(an old data dir) = %q, %v", b, err)
	}
	err := claimDataDir(dir, BrokerJetStream)
	var mm *BrokerMismatchError
	if !errors.As(err, &mm) || mm.Made != BrokerNATSStreaming {
		t.Fatalf("claim an old NATS Streaming data dir for JetStream: %v", err)
	}
	if err := claimDataDir(dir, BrokerNATSStreaming); err != nil {
		t.Fatal(err)
	}
	if b, err := brokerOf(dir); err != nil || b != BrokerNATSStreaming {
		t.Fatalf("brokerOf after the claim = %q, %v", b, err)
	}
	os.WriteFile(filepath.Join(dir, BrokerFile), []byte("kafka\n"), 0o600)
	if _, err := brokerOf(dir); err == nil || !strings.Contains(err.Error(), "kafka") {
		t.Fatalf("a broker file naming no broker: %v", err)
	}
}

// TestBrokerOptions: flags of one broker are refused with the other, and
// a cluster needs its name, address and peers.
func TestBrokerOptions(t *testing.T) {
	t.Parallel()
	js := func(f func(o *Options)) Options {
		o := DefaultOptions()
		o.Broker = BrokerJetStream
		f(&o)
		return o
	}
	tests := []struct {
		name string
		o    Options
		says string
	}{
		{"unknown broker", js(func(o *Options) { o.Broker = "kafka" }), `--broker "kafka"`},
		{"cluster id with JetStream", js(func(o *Options) { o.ClusterID = "prod" }), "--cluster-id prod is NATS Streaming's"},
		{"cluster with NATS Streaming", js(func(o *Options) { o.Broker = BrokerNATSStreaming; o.Cluster = "c" }), "add --broker jetstream"},
		{"cluster with --nats", js(func(o *Options) {
			o.NATSURL = "nats://x:4222"
			o.Cluster = "c"
			o.ClusterListen = "127.0.0.1:6222"
			o.Peers = []string{"a:1"}
		}), "with --nats there is none"},
		{"peers without cluster", js(func(o *Options) { o.Peers = []string{"a:1"} }), "need --cluster NAME"},
		{"cluster without listen", js(func(o *Options) { o.Cluster = "c"; o.Peers = []string{"a:1"} }), "needs --cluster-listen"},
		{"cluster without peers", js(func(o *Options) { o.Cluster = "c"; o.ClusterListen = "127.0.0.1:6222" }), "needs --peers"},
		{"replicas embedded", js(func(o *Options) { o.Replicas = 3 }), "--replicas is for a JetStream cluster at --nats"},
		{"replicas with NATS Streaming", js(func(o *Options) { o.Broker = BrokerNATSStreaming; o.NATSURL = "nats://x:4222"; o.Replicas = 3 }), "--replicas is JetStream's"},
		{"too many replicas", js(func(o *Options) { o.NATSURL = "nats://x:4222"; o.Replicas = 7 }), "1 to 5"},
		{"bad cluster listen", js(func(o *Options) { o.Cluster = "c"; o.ClusterListen = "6222"; o.Peers = []string{"a:1"} }), "want host:port"},
		{"route TLS without cluster", js(func(o *Options) { o.ClusterCertFile = "m.pem" }), "need --cluster NAME"},
		{"route TLS with NATS Streaming", js(func(o *Options) { o.Broker = BrokerNATSStreaming; o.ClusterCAFile = "ca.pem" }), "add --broker jetstream"},
		{"route TLS without its CA", js(func(o *Options) {
			o.Cluster = "c"
			o.ClusterListen = "127.0.0.1:6222"
			o.Peers = []string{"a:1"}
			o.ClusterCertFile, o.ClusterKeyFile = "m.pem", "m-key.pem"
		}), "--cluster-cert, --cluster-key and --cluster-ca go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("Validate() = %v, want ErrOptions saying %q", err, tt.says)
			}
		})
	}
	ok := js(func(o *Options) {
		o.Cluster = "c"
		o.ClusterListen = "127.0.0.1:6222"
		o.Peers = []string{"127.0.0.1:6222", "127.0.0.1:6223"}
	})
	if err := ok.Validate(); err != nil {
		t.Fatalf("a good cluster: %v", err)
	}
}

// connectApp connects to a daemon's broker at natsURL as another
// application would, with the broker's event log.
func connectApp(t *testing.T, broker, natsURL string) eventlog.Log {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		l   eventlog.Log
		err error
	)
	if broker == BrokerJetStream {
		l, err = jslog.Connect(cctx, jslog.Options{URL: natsURL, Name: "test-app"})
	} else {
		l, err = natslog.Connect(cctx, brokerpkg.Options{URL: natsURL, ClusterID: DefaultClusterID, Name: "test-app"})
	}
	if err != nil {
		t.Fatalf("connect to the daemon's %s: %v", broker, err)
	}
	return l
}

// startBroker starts an embedded server of the tests' broker, without
// credentials, on its own: what a daemon with --nats uses. It is stopped
// at the end of the test, or by stop.
func startBroker(t *testing.T, dir, listen string) (natsURL string, stop func()) {
	t.Helper()
	if testBroker() == BrokerJetStream {
		srv, err := jslog.StartEmbedded(jslog.EmbeddedOptions{Dir: dir, Listen: listen})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		return srv.URL(), srv.Shutdown
	}
	srv, err := brokerpkg.StartEmbedded(brokerpkg.EmbeddedOptions{Dir: dir, Listen: listen, ClusterID: DefaultClusterID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.URL(), srv.Shutdown
}

// TestReadyzShowsTheBroker: /readyz names the broker and says the daemon
// is connected to it; a daemon on its own shows no cluster.
func TestReadyzShowsTheBroker(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	d, _ := start(t, o)
	resp, err := http.Get("http://" + d.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string        `json:"status"`
		Broker *BrokerStatus `json:"broker"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %s %v", resp.Status, err)
	}
	if body.Status != "ready" || body.Broker == nil || body.Broker.Broker != o.Broker || !body.Broker.Connected || body.Broker.Cluster != nil {
		t.Fatalf("readyz: %+v, broker %+v", body, body.Broker)
	}
}

// TestMarkDataDir: once sluice migrate marks a NATS Streaming data dir as
// JetStream's, JetStream takes it and NATS Streaming is refused.
func TestMarkDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "nats"), 0o700)
	if err := claimDataDir(dir, BrokerNATSStreaming); err != nil {
		t.Fatal(err)
	}
	if err := MarkDataDir(dir, BrokerJetStream); err != nil {
		t.Fatal(err)
	}
	if err := claimDataDir(dir, BrokerJetStream); err != nil {
		t.Fatalf("JetStream on a data dir migrated to it: %v", err)
	}
	var mm *BrokerMismatchError
	if err := claimDataDir(dir, BrokerNATSStreaming); !errors.As(err, &mm) || mm.Made != BrokerJetStream {
		t.Fatalf("NATS Streaming on a migrated data dir: %v", err)
	}
	if err := MarkDataDir(dir, "kafka"); !errors.Is(err, ErrOptions) {
		t.Fatalf("MarkDataDir(kafka): %v", err)
	}
}

// TestTopicPublishBurst: a client publishing through the API as fast as
// it can gets every message stored, each with its own sequence, in order,
// on either broker (on JetStream each publish once made and removed a
// consumer to read its message back, and a burst ran into the server's
// consumer limit).
func TestTopicPublishBurst(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	const n = 1500
	var last uint64
	for i := range n {
		seq, err := c.PublishSeq(ctx, "burst", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("publish %d of %d: %v", i+1, n, err)
		}
		if seq <= last {
			t.Fatalf("publish %d: sequence %d after %d", i+1, seq, last)
		}
		last = seq
	}
}

// TestStartTimeoutIsNamed: a start that runs out of --start-timeout says
// so, and which flag gives it more, rather than a bare deadline.
func TestStartTimeoutIsNamed(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.StartTimeout = time.Millisecond
	d, err := Start(ctx, o)
	if err == nil {
		d.Shutdown(ctx)
		t.Fatal("a daemon started within a millisecond")
	}
	if !strings.Contains(err.Error(), "--start-timeout 1ms") {
		t.Fatalf("start error %q does not name --start-timeout", err)
	}
}

// TestTakenBrokerPortIsNamed: a daemon whose --nats-listen address another
// process holds fails to start at once, naming the flag and the cause
// (NATS Streaming waited 10 s to say it was "unable to start a NATS
// Server", JetStream two minutes to say it was "not serving"), and the
// data dir is free for the next start.
func TestTakenBrokerPortIsNamed(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := testOptions(t)
	o.NATSListen = ln.Addr().String()
	d, err := Start(ctx, o)
	if err == nil {
		d.Shutdown(ctx)
		t.Fatalf("a daemon started on %s, which another listener holds", o.NATSListen)
	}
	if msg := err.Error(); !strings.Contains(msg, "--nats-listen "+o.NATSListen) || !strings.Contains(msg, "address already in use") {
		t.Fatalf("start error %q does not name --nats-listen and the cause", err)
	}
	o.NATSListen = "127.0.0.1:0"
	start(t, o)
}
