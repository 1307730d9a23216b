package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/testutil"
)

// A self-clustered trio: three daemons with --broker jetstream --cluster,
// each with its own data dir, routing to each other on loopback over
// mutual TLS.

// member is one daemon of the trio.
type member struct {
	data, clusterListen, natsListen string
	// cert and key are its route TLS certificate, signed by the trio's CA
	cert, key string
	proc      *proc
	// server is its JetStream server's name, kept in its data dir.
	server string
	// d is its API and broker URLs, set when it is ready.
	d *daemonProc
}

type selfCluster struct {
	t       *testing.T
	members []*member
	peers   string
	ca      *testutil.CA // the routes are mutual TLS
	// wf, if set, is told of each kill (its workflow audit excuses the
	// tasks a killed daemon was running).
	wf *wfAudit
	// procs are every daemon process launched, killed ones included.
	procs []*proc
}

var (
	serverLine   = regexp.MustCompile(`msg="embedded JetStream started" .*server=(\S+)`)
	routeTLSLine = regexp.MustCompile(`msg="embedded JetStream started" .*route_tls=true`)
)

// startSelfCluster starts three clustered daemons and waits until each is
// ready (which is after the cluster elected its meta leader).
func startSelfCluster(t *testing.T) *selfCluster {
	t.Helper()
	c := &selfCluster{t: t, ca: testutil.NewCA(t, "sluice-test cluster CA")}
	var peers []string
	for i := range 3 {
		m := &member{data: t.TempDir(), clusterListen: testutil.FreeAddr(t), natsListen: testutil.FreeAddr(t)}
		m.cert, m.key = c.ca.Issue(t, "member-"+strconv.Itoa(i))
		c.members = append(c.members, m)
		peers = append(peers, m.clusterListen)
	}
	c.peers = strings.Join(peers, ",")
	for _, m := range c.members {
		c.launch(m)
	}
	for _, m := range c.members {
		c.waitReady(m)
	}
	return c
}

// The members' secrets. Every member is given the same NATS credentials:
// a client may then fail over from one to another, and with a password
// of its own on each, JetStream's API answers to a member's clients were
// seen to time out while the cluster formed.
const (
	clusterPassword = "route-secret-for-the-test"
	natsPassword    = "nats-secret-for-the-test"
)

// launch starts a member's daemon (again, after a kill: same data dir
// and cluster address), without waiting for it.
func (c *selfCluster) launch(m *member) {
	m.d = nil
	m.proc = launch(c.t, "daemon", "--broker", "jetstream", "--data", m.data, "--listen", "127.0.0.1:0", "--nats-listen", m.natsListen,
		"--cluster", "sluice-test", "--cluster-listen", m.clusterListen, "--peers", c.peers, "--cluster-password", clusterPassword, "--nats-password", natsPassword,
		"--cluster-cert", m.cert, "--cluster-key", m.key, "--cluster-ca", c.ca.File)
	c.procs = append(c.procs, m.proc)
}

// logText is the log of every daemon process launched so far.
func (c *selfCluster) logText() string {
	var b strings.Builder
	for _, p := range c.procs {
		b.WriteString(p.logText())
	}
	return b.String()
}

func (c *selfCluster) waitReady(m *member) {
	c.t.Helper()
	server, shown := m.proc.waitReady(c.t)
	u, err := url.Parse(shown)
	if err != nil {
		c.t.Fatalf("the ready line's nats=%q: %v", shown, err)
	}
	u.User = url.UserPassword("sluice", natsPassword)
	sm, rm := serverLine.FindStringSubmatch(m.proc.logText()), readyLine.FindStringSubmatch(m.proc.logText())
	if sm == nil || rm == nil {
		c.t.Fatalf("no server name or workflow node id in the log:\n%s", m.proc.logText())
	}
	m.server = sm[1]
	m.d = &daemonProc{server: server, nats: u.String(), node: rm[3]}
	if !routeTLSLine.MatchString(m.proc.logText()) {
		c.t.Fatalf("the members' routes are not TLS:\n%s", m.proc.logText())
	}
}

// url is every member's NATS server, with the credentials: a client of it
// moves to another member when its own dies.
func (c *selfCluster) url() string {
	var urls []string
	for _, m := range c.members {
		urls = append(urls, "nats://sluice:"+natsPassword+"@"+m.natsListen)
	}
	return strings.Join(urls, ",")
}

// kill kills a member's daemon with SIGKILL, and its JetStream server
// with it.
func (c *selfCluster) kill(m *member) {
	from := time.Now()
	m.proc.cmd.Process.Kill()
	<-m.proc.eof
	m.proc.cmd.Wait()
	if c.wf != nil && m.d != nil {
		c.wf.killed(m.d.node, from, time.Now())
	}
	m.d = nil
}

// live are the members whose daemons run.
func (c *selfCluster) live() []*member {
	var out []*member
	for _, m := range c.members {
		if m.d != nil {
			out = append(out, m)
		}
	}
	return out
}

// daemons are the live members' daemons.
func (c *selfCluster) daemons() []*daemonProc {
	var out []*daemonProc
	for _, m := range c.live() {
		out = append(out, m.d)
	}
	return out
}

// readyz is a member's /readyz: its status code and the broker it shows.
type readyz struct {
	code   int
	Broker struct {
		Broker    string `json:"broker"`
		Connected bool   `json:"connected"`
		Cluster   *struct {
			Name    string   `json:"name"`
			Leader  string   `json:"leader"`
			Members []string `json:"members"`
			Size    int      `json:"size"`
		} `json:"cluster"`
	} `json:"broker"`
}

func (m *member) readyz() (r readyz) {
	resp, err := http.Get(m.d.server + "/readyz")
	if err != nil {
		return r
	}
	defer resp.Body.Close()
	r.code = resp.StatusCode
	json.NewDecoder(resp.Body).Decode(&r)
	return r
}

// leader is the member whose server leads the JetStream meta group, as
// the live members agree.
func (c *selfCluster) leader() *member {
	c.t.Helper()
	var leader *member
	testutil.Eventually(c.t, 60*time.Second, "a meta leader the live members agree on", func() bool {
		name := ""
		for _, m := range c.live() {
			r := m.readyz()
			if r.code != http.StatusOK || r.Broker.Cluster == nil || r.Broker.Cluster.Leader == "" {
				return false
			}
			if name != "" && r.Broker.Cluster.Leader != name {
				return false
			}
			name = r.Broker.Cluster.Leader
		}
		for _, m := range c.live() {
			if m.server == name {
				leader = m
				return true
			}
		}
		return false
	})
	return leader
}

// TestSelfClusterKill9MidStream: three daemons that are their own
// JetStream cluster share a queue trigger; one is killed with SIGKILL
// while they work through the messages and workflow invocations run on
// each. Every message gets its result (at least once), every invocation
// succeeds with its output and no recorded success runs again, and
// the other two serve on: /readyz shows the cluster with its leader, and
// calls are answered.
func TestSelfClusterKill9MidStream(t *testing.T) {
	c := startSelfCluster(t)
	for _, m := range c.members {
		r := m.readyz()
		if r.code != http.StatusOK || r.Broker.Broker != "jetstream" || !r.Broker.Connected || r.Broker.Cluster == nil ||
			r.Broker.Cluster.Name != "sluice-test" || r.Broker.Cluster.Leader == "" || r.Broker.Cluster.Size != 3 {
			t.Fatalf("readyz of %s: %+v", m.server, r)
		}
	}
	a := c.members[0].d
	a.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	a.mustSluice(t, "", "trigger", "create", "q", "--fn", "echo", "--topic", "in", "--resp-topic", "out", "--ack-wait", "2s", "--max-inflight", "64")
	for _, m := range c.members {
		testutil.Eventually(t, 30*time.Second, "the trigger on every member", func() bool {
			return m.d.sluice(t, "", "trigger", "get", "q").code == 0
		})
	}
	// the trio answers calls on every member
	for _, m := range c.members {
		if out := m.d.mustSluice(t, "", "fn", "invoke", "echo", "--data", "hi "+m.server); out != "hi "+m.server {
			t.Fatalf("invoke on %s: %q", m.server, out)
		}
	}
	wf := newWFAudit(t, c.daemons)
	c.wf = wf
	deployFaultWorkflow(t, a, c.daemons())
	running := wf.waitRunning(wf.invoke(len(c.members))) // one on each member

	const n = 3000
	victim := c.members[2]
	pub := publishTo(t, connectLog(t, "jetstream", c.url(), 3), "in", "m%05d", n)
	seen, sub := countTopic(t, pub, "out")
	defer sub.Close()
	testutil.Eventually(t, 60*time.Second, "the stream to be under way", func() bool { return seen.distinct() >= n/10 })
	c.kill(victim)
	before := seen.distinct()
	if before >= n {
		t.Fatalf("all %d results were out before the kill: the test did not kill mid-stream", n)
	}
	if !testutil.Within(3*time.Minute, func() bool { return seen.distinct() == n }) {
		c.explainMissing(seen, n)
		t.Fatalf("timed out waiting for a result for every message: %d of %d", seen.distinct(), n)
	}
	for i := range n {
		if seen.count(fmt.Sprintf("m%05d", i)) == 0 {
			t.Fatalf("message m%05d has no result", i)
		}
	}
	c.leader()
	for _, m := range c.live() {
		if out := m.d.mustSluice(t, "", "fn", "invoke", "echo", "--data", "after"); out != "after" {
			t.Fatalf("invoke on %s after the kill: %q", m.server, out)
		}
	}
	t.Logf("%d messages: %d results before the kill, %d in all (%d duplicates)", n, before, seen.all(), seen.all()-n)
	t.Logf("%d invocations under way before the stream", running)
	wf.finish("", nil).log(t)
}

// explainMissing logs what a stream of messages with results missing
// left behind: which messages lack one, the queue's JetStream consumer,
// the topics' counts, each live member's trigger figures, and whether a
// fresh reader of the results topic finds more than the test's own.
func (c *selfCluster) explainMissing(seen *counter, n int) {
	t := c.t
	var missing []string
	for i := range n {
		if id := fmt.Sprintf("m%05d", i); seen.count(id) == 0 {
			missing = append(missing, id)
		}
	}
	t.Logf("%d messages without a result, from %v", len(missing), missing[:min(len(missing), 20)])
	for _, m := range c.live() {
		code, body := m.d.api(t, http.MethodGet, "/metrics", "", nil)
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "sluice_trigger_") || strings.HasPrefix(l, "sluice_function_calls_active") {
				lines = append(lines, l)
			}
		}
		t.Logf("member %s /metrics (%d, %d bytes):\n%s", m.server, code, len(body), strings.Join(lines, "\n"))
	}
	nc, err := nats.Connect(c.url())
	if err != nil {
		t.Logf("connect to the cluster: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Logf("jetstream: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "SLUICE_TOPICS")
	if err != nil {
		t.Logf("stream SLUICE_TOPICS: %v", err)
		return
	}
	if info, err := st.Info(ctx, jetstream.WithSubjectFilter("sluice.topic.>")); err == nil {
		b, _ := json.Marshal(info.State)
		c2, _ := json.Marshal(info.Cluster)
		t.Logf("SLUICE_TOPICS: %s cluster %s", b, c2)
	} else {
		t.Logf("stream info: %v", err)
	}
	for name := range st.ConsumerNames(ctx).Name() {
		cons, err := st.Consumer(ctx, name)
		if err != nil {
			t.Logf("consumer %s: %v", name, err)
			continue
		}
		b, _ := json.Marshal(cons.CachedInfo())
		t.Logf("consumer %s", b)
	}
	fresh, sub := countTopic(t, connectLog(t, "jetstream", c.url(), 3), "out")
	defer sub.Close()
	testutil.Within(20*time.Second, func() bool { return fresh.distinct() == n })
	t.Logf("a fresh reader of out: %d distinct of %d, %d in all (the test's reader: %d distinct)", fresh.distinct(), n, fresh.all(), seen.distinct())
}
