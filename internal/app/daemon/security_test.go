package daemon

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/logstream"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
	"github.com/sluicehq/sluice/triggers"
)

// withLog makes the daemon log JSON into the returned buffer.
func withLog(o *Options) *logBuffer {
	b := &logBuffer{}
	o.Logger = slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return b
}

func readPasswordFile(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "nats-password")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s is %v, want -rw-------", path, fi.Mode())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestBrokerCredentials: the embedded server requires the credentials the
// daemon generated into its data dir; other applications get in with
// them, nobody without; a restart keeps them; no log line shows them.
func TestBrokerCredentials(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	logs := withLog(&o)
	d, c := start(t, o)
	password := readPasswordFile(t, o.DataDir)
	if len(password) < 32 {
		t.Fatalf("generated password %q: want 32 characters or more", password)
	}
	bare := "nats://" + d.NATSAddr()
	if nc, err := nats.Connect(bare, nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect without credentials: %v, want %v", err, nats.ErrAuthorization)
	}
	if _, err := stan.Connect(DefaultClusterID, "x-"+nuid.Next(), stan.NatsURL("nats://sluice:wrong@"+d.NATSAddr())); err == nil {
		t.Fatal("connected with a wrong password")
	}
	// What the docs tell other applications to use.
	app := newApp(t, "nats://sluice:"+password+"@"+d.NATSAddr())
	deploy(t, c, "echo", "echo-wat", url.Values{"env": {"SECRET=hunter2"}})
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "q", Function: "echo", Queue: &api.QueueRequest{Topic: "in", RespTopic: "out"}}); err != nil {
		t.Fatal(err)
	}
	out := app.collect("out")
	app.publish("in", "from an app")
	testutil.Eventually(t, 10*time.Second, "the app's result", func() bool { return len(out.all()) == 1 })

	line := logs.waitLine(t, "the embedded server's start", func(l map[string]any) bool { return l["msg"] == "embedded "+brokerName(o.Broker)+" started" })
	if line["password"] != filepath.Join(o.DataDir, "nats-password") || line["user"] != "sluice" {
		t.Fatalf("start line %v: want the user and where the password is", line)
	}
	logs.waitLine(t, "ready", func(l map[string]any) bool { return l["msg"] == "sluice daemon ready" })

	// A restart on the data dir keeps the password.
	addr := d.NATSAddr()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	o.NATSListen = addr
	start(t, o)
	if got := readPasswordFile(t, o.DataDir); got != password {
		t.Fatalf("password changed across a restart: %q, then %q", password, got)
	}
	newApp(t, "nats://sluice:"+password+"@"+addr)

	logs.mu.Lock()
	all := logs.buf.String()
	logs.mu.Unlock()
	if strings.Contains(all, password) {
		t.Fatalf("a log line shows the password:\n%s", all)
	}
}

// TestExternalBrokerCredentials: a daemon with --nats presents the
// credentials given by flag; without them, or with wrong ones, it stops
// at once and says which flags to check.
func TestExternalBrokerCredentials(t *testing.T) {
	t.Parallel()
	a, ca := start(t, testOptions(t))
	password := readPasswordFile(t, a.opts.DataDir)
	bare := "nats://" + a.NATSAddr()

	ob := testOptions(t)
	ob.NATSURL, ob.NATSUser, ob.NATSPassword = bare, "sluice", password
	_, cb := start(t, ob)
	deploy(t, ca, "echo", "echo-wat", nil)
	waitForFunction(t, cb, "echo")
	if got := invoke(t, cb, "echo", "through --nats"); got != "through --nats" {
		t.Fatal(got)
	}

	for _, tc := range []struct {
		name           string
		user, password string
	}{{"no credentials", "", ""}, {"wrong password", "sluice", "guess"}} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			o.NATSURL, o.NATSUser, o.NATSPassword = bare, tc.user, tc.password
			_, err := Start(ctx, o)
			if !errors.Is(err, broker.ErrRefused) || !strings.Contains(err.Error(), "--nats-password") {
				t.Fatalf("start: %v, want ErrRefused naming the flags", err)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestNATSOptionsThatDoNotGoTogether(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  func(o *Options)
		says string
	}{
		{"token and user", func(o *Options) { o.NATSToken, o.NATSUser = "t", "u" }, "not both"},
		{"user without password for --nats", func(o *Options) { o.NATSURL, o.NATSUser = "nats://h:4222", "u" }, "without --nats-password"},
		{"creds file for the embedded server", func(o *Options) { o.NATSCredsFile = "x.creds" }, "--nats-creds is for an external server"},
		{"client certificate for the embedded server", func(o *Options) { o.NATSCertFile, o.NATSKeyFile = "c", "k" }, "client certificate for --nats"},
		{"listen certificate with --nats", func(o *Options) { o.NATSURL, o.NATSListenCertFile = "nats://h:4222", "c" }, "with --nats there is none"},
		{"listen certificate without key", func(o *Options) { o.NATSListenCertFile = "c" }, "go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.set(&o)
			if err := o.Validate(); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Validate: %v, want ErrOptions saying %q", err, tc.says)
			}
		})
	}
}

// TestDataDirLock: a second daemon on a data dir in use refuses to start,
// naming the dir and the process; the first serves on; once it is gone
// the dir is free.
func TestDataDirLock(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	a, ca := start(t, o)
	deploy(t, ca, "echo", "echo-wat", nil)
	second := o // other ports, same data dir
	_, err := Start(ctx, second)
	var le *LockedError
	if !errors.As(err, &le) || le.Dir != o.DataDir || le.PID != os.Getpid() {
		t.Fatalf("second daemon on %s: %v, want a LockedError naming this process", o.DataDir, err)
	}
	for _, s := range []string{o.DataDir, "process " + strconv.Itoa(os.Getpid()), "--data"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
	if got := invoke(t, ca, "echo", "still here"); got != "still here" {
		t.Fatalf("the first daemon after the second was refused: %q", got)
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	second.NATSListen = a.NATSAddr()
	_, cb := start(t, second)
	if got := invoke(t, cb, "echo", "next"); got != "next" {
		t.Fatal(got)
	}
}

// TestDataIsOwnerOnly: the data dir and everything the daemon (and the
// libraries it uses) writes in it are the owner's only: the store holds
// every function's environment.
func TestDataIsOwnerOnly(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.CompileCacheDir = "" // in the data dir, as by default
	if err := os.Chmod(o.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, c := start(t, o)
	deploy(t, c, "echo", "echo-wat", url.Values{"env": {"SECRET=hunter2"}})
	invoke(t, c, "echo", "x")
	if _, _, err := c.CreateWorkflow(ctx, "wf", []byte("apiVersion: sluice/v1\nkind: Workflow\nname: wf\ntasks:\n  a: { run: echo, inputs: hi }\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InvokeWorkflow(ctx, "wf", nil, client.InvokeOptions{Wait: true}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(o.DataDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: others may read it", path, fi.Mode())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	store := "nats/sluice.catalog/msgs.1.dat"
	if o.Broker == BrokerJetStream {
		store = filepath.Join("jetstream", "jetstream", "$G", "streams", "SLUICE_CATALOG", "meta.inf")
	}
	for _, want := range []string{store, BrokerFile, "cache/compiled", "cache/modules", "node-id", "nats-password", "sluice.lock"} {
		if _, err := os.Stat(filepath.Join(o.DataDir, want)); err != nil {
			t.Errorf("the walk did not see %s: %v", want, err)
		}
	}
	if n < 10 {
		t.Fatalf("walked %d entries", n)
	}
}

// TestDamagedCatalogStopsTheStart: a catalog message the store cannot
// read back ends the start at once with what to do, instead of a replay
// that waits for it until the start timeout.
func TestDamagedCatalogStopsTheStart(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.Broker = BrokerNATSStreaming // its store's files (jslog tests JetStream's)
	d, c := start(t, o)
	for _, fn := range []string{"a", "b", "c", "d"} {
		deploy(t, c, fn, "echo-wat", nil)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	dat := filepath.Join(o.DataDir, "nats", catalog.Channel, "msgs.1.dat")
	fi, err := os.Stat(dat)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dat, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage garbage garbage"), fi.Size()/2)
	f.Close()
	_, err = Start(ctx, o)
	var se *broker.StoreError
	if !errors.As(err, &se) || se.Channel != catalog.Channel || !strings.Contains(err.Error(), "every function, trigger and workflow definition") {
		t.Fatalf("start on a damaged catalog: %v, want a StoreError on %s", err, catalog.Channel)
	}
}

// TestWhatMovingAChannelAsideLoses: broker.Loses knows the channels by
// the names their owners give them.
func TestWhatMovingAChannelAsideLoses(t *testing.T) {
	t.Parallel()
	for ch, says := range map[string]string{
		catalog.Channel:             "function, trigger and workflow",
		natslog.BlobStream("ab12"):  "module",
		natslog.BlobDataChannel:     "bytes of every module and every large workflow value",
		natslog.BlobIndexChannel:    "where every module and large workflow value is",
		engine.EventsChannel:        "workflow invocation",
		engine.CheckpointChannel:    "nothing that matters",
		engine.NodesChannel:         "nothing that matters",
		triggers.TickChannel("t"):   "timer claims",
		logstream.Channel("resize"): "logs of function resize",
		"orders":                    "messages of topic orders",
	} {
		if got := broker.Loses(ch); !strings.Contains(got, says) {
			t.Errorf("Loses(%q) = %q, want it to say %q", ch, got, says)
		}
	}
}

// TestStoreLimitsNameTheComponentsChannels: the embedded server's channel
// limits (broker.StoreLimits) are keyed by the names the channels' owners
// give them: a limit under another name would keep every heartbeat,
// checkpoint, tick and log line for ever.
func TestStoreLimitsNameTheComponentsChannels(t *testing.T) {
	t.Parallel()
	limits := broker.StoreLimits().PerChannel
	for _, c := range []struct{ owner, limit string }{
		{engine.CheckpointChannel, broker.CheckpointChannel},
		{engine.NodesChannel, broker.NodesChannel},
		{strings.TrimSuffix(logstream.Channel("x"), "x") + ">", broker.LogChannels},
		{strings.TrimSuffix(triggers.TickChannel("x"), "x") + ">", broker.TickChannels},
	} {
		if c.owner != c.limit {
			t.Errorf("the store limits %q, its owner names it %q", c.limit, c.owner)
		}
		if l := limits[c.limit]; l == nil || (l.MaxMsgs == 0 && l.MaxAge == 0) {
			t.Errorf("no limit on %s", c.limit)
		}
	}
}

// TestBrokerTLS: the embedded server serves TLS with a certificate, and a
// daemon with --nats trusts it with --nats-ca; without the CA it stops at
// once.
func TestBrokerTLS(t *testing.T) {
	t.Parallel()
	cert, key := testutil.SelfSigned(t, t.TempDir())
	oa := testOptions(t)
	oa.NATSListenCertFile, oa.NATSListenKeyFile = cert, key
	a, ca := start(t, oa)
	deploy(t, ca, "echo", "echo-wat", nil)

	ob := testOptions(t)
	ob.NATSURL = "nats://localhost:" + strings.Split(a.NATSAddr(), ":")[1]
	ob.NATSUser, ob.NATSPassword = "sluice", readPasswordFile(t, oa.DataDir)
	_, err := Start(ctx, ob)
	if !errors.Is(err, broker.ErrRefused) || !strings.Contains(err.Error(), "--nats-ca") {
		t.Fatalf("--nats to a server whose certificate it does not trust: %v, want ErrRefused naming --nats-ca", err)
	}
	ob.NATSCAFile = cert
	_, cb := start(t, ob)
	waitForFunction(t, cb, "echo")
	if got := invoke(t, cb, "echo", "over TLS"); got != "over TLS" {
		t.Fatal(got)
	}
}
