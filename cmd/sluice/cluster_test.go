package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

// Fault tests against a real three-node NATS Streaming cluster (Raft): each
// node a nats-streaming-server process with its own ports and data dirs,
// configured by the file users deploy (deploy/kubernetes/nats-streaming.conf,
// addresses overridden on the command line), and sluice daemons as
// processes pointed at all three nodes. What dies dies by SIGKILL.

var (
	nssOnce sync.Once
	nssPath string
	nssErr  error
)

// natsStreamingServer builds nats-streaming-server from the module cache,
// at the version sluice depends on.
func natsStreamingServer(t *testing.T) string {
	t.Helper()
	nssOnce.Do(func() {
		nssPath = filepath.Join(filepath.Dir(binary), "nats-streaming-server")
		out, err := exec.Command("go", "build", "-o", nssPath, "github.com/nats-io/nats-streaming-server").CombinedOutput()
		if err != nil {
			nssErr = fmt.Errorf("build nats-streaming-server: %v\n%s", err, out)
		}
	})
	if nssErr != nil {
		t.Fatal(nssErr)
	}
	return nssPath
}

type natsNode struct {
	name                      string
	port, routePort, httpPort int
	dir                       string
	cmd                       *exec.Cmd
	exited                    chan struct{}
}

// natsCluster is a NATS Streaming cluster of processes on loopback.
type natsCluster struct {
	id    string
	nodes []*natsNode
}

// startNATSCluster starts n clustered nodes and waits for a leader.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{id: "sluice-faults"}
	for i := 0; i < n; i++ {
		c.nodes = append(c.nodes, &natsNode{
			name: fmt.Sprintf("n%d", i), port: testutil.FreePort(t), routePort: testutil.FreePort(t), httpPort: testutil.FreePort(t),
			dir: t.TempDir(),
		})
	}
	for _, node := range c.nodes {
		c.start(t, node)
	}
	t.Cleanup(func() {
		for _, node := range c.nodes {
			c.kill(node)
		}
		if t.Failed() {
			for _, node := range c.nodes {
				out, _ := os.ReadFile(filepath.Join(node.dir, "server.log"))
				t.Logf("NATS Streaming node %s (last lines):\n%s", node.name, tail(string(out), 40))
			}
		}
	})
	c.leader(t)
	return c
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs a node's process; a restarted node keeps its ports and data.
func (c *natsCluster) start(t *testing.T, node *natsNode) {
	t.Helper()
	var routes, peers []string
	for _, o := range c.nodes {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.routePort))
		peers = append(peers, o.name)
	}
	logf, err := os.OpenFile(filepath.Join(node.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(natsStreamingServer(t),
		"-c", filepath.Join(testutil.Root(t), "deploy", "kubernetes", "nats-streaming.conf"),
		"-a", "127.0.0.1", "-p", strconv.Itoa(node.port), "-m", strconv.Itoa(node.httpPort),
		"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", node.routePort), "--routes", strings.Join(routes, ","),
		"-cid", c.id, "--dir", filepath.Join(node.dir, "store"), "--cluster_log_path", filepath.Join(node.dir, "log"),
		"--cluster_node_id", node.name, "--cluster_peers", strings.Join(peers, ","))
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	node.cmd, node.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(node.exited)
}

// kill sends SIGKILL to a node and waits for it to be gone.
func (c *natsCluster) kill(node *natsNode) {
	if node.cmd == nil {
		return
	}
	node.cmd.Process.Signal(syscall.SIGKILL)
	<-node.exited
	node.cmd = nil
}

// URLs is what a client is given: every node.
func (c *natsCluster) URLs() string {
	var urls []string
	for _, node := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", node.port))
	}
	return strings.Join(urls, ",")
}

// serverz is what a node's monitoring endpoint says of it.
type serverz struct {
	Role    string `json:"role"` // Leader, Follower, Candidate
	Clients int    `json:"clients"`
}

func (node *natsNode) serverz() (z serverz) {
	client := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/streaming/serverz", node.httpPort))
	if err != nil {
		return z
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&z)
	return z
}

// role is a node's Raft role, "" if it does not answer.
func (node *natsNode) role() string { return node.serverz().Role }

// leaderNow is the running node that says it is the leader, or nil.
func (c *natsCluster) leaderNow() *natsNode {
	for _, node := range c.nodes {
		if node.cmd != nil && node.role() == "Leader" {
			return node
		}
	}
	return nil
}

// leader waits for a running node to say it is the leader.
func (c *natsCluster) leader(t *testing.T) *natsNode {
	t.Helper()
	var leader *natsNode
	testutil.Eventually(t, 60*time.Second, "a NATS Streaming leader", func() bool {
		leader = c.leaderNow()
		return leader != nil
	})
	return leader
}

// settle waits until the leader counts exactly clients registered clients
// (the dead and the replaced ones removed), then for the messages it
// handed from their queue memberships to the living to be processed. One
// fault at a time: nats-streaming-server 0.25.6 reassigns a removed queue
// member's unacknowledged messages on the leader only (since
// nats-streaming-server#936), so a leader that dies before those are
// acknowledged takes the reassignment with it, and a new leader never
// delivers them again. See deploy/README.md.
func (c *natsCluster) settle(t *testing.T, clients int, ackWait time.Duration) {
	t.Helper()
	testutil.Eventually(t, time.Minute, fmt.Sprintf("the cluster to count %d clients", clients), func() bool {
		leader := c.leaderNow()
		return leader != nil && leader.serverz().Clients == clients
	})
	time.Sleep(ackWait)
}

// startClusterDaemon runs a daemon on the cluster, with its own data dir.
func startClusterDaemon(t *testing.T, c *natsCluster, data string) *daemonProc {
	t.Helper()
	return launchDaemon(t, "daemon", "--data", data, "--listen", "127.0.0.1:0", "--nats", c.URLs(), "--cluster-id", c.id)
}

func (p *daemonProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

const faultWorkflow = `apiVersion: sluice/v1
kind: Workflow
name: fault
output: ${ tasks.last.output }
tasks:
  first: { run: work, inputs: { op: double, n: "${ input }" } }
  nap:   { run: sleep, requires: [first], inputs: 2s }
  each:
    run: foreach
    requires: [first]
    inputs:
      foreach: ${ [1, 2, 3] }
      do: { run: work, inputs: { op: sleep, ms: 1500 } }
  last:  { run: work, requires: [nap, each], inputs: { op: add, n: "${ tasks.first.output.n }" } }
`

// faultPlan says how hard a fault run pushes.
type faultPlan struct {
	rate    int  // messages published per second, all through the run
	wfRate  int  // messages per second to a queue trigger running the workflow
	rounds  int  // each kills the NATS Streaming leader, then a daemon
	batch   int  // invocations started before each kill
	restart bool // restart what was killed (a second round needs it)
}

// faultRun is the state of one run on NATS Streaming: what went in, what
// came out. Its workflows are its wfAudit's.
type faultRun struct {
	*wfAudit
	nats    *natsCluster
	daemons []*daemonProc
	data    []string
	client  *natslog.Log

	mu        sync.Mutex
	results   map[string]int // result -> times seen
	delivered int
}

func (r *faultRun) live() []*daemonProc {
	var out []*daemonProc
	for _, p := range r.daemons {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

func (r *faultRun) resultCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.results)
}

// wfAudit runs workflows through a fault run and audits them at its end:
// invocations started over HTTP on the live daemons, and a queue trigger
// running the workflow for each message. Every invocation must succeed
// with its output, and its event log must show no task succeeding twice,
// or scheduled or started after it succeeded, and a task run again only
// where a daemon owning the invocation died while it ran.
type wfAudit struct {
	t    *testing.T
	live func() []*daemonProc // the daemons running now

	invMu     sync.Mutex
	invs      map[string]int        // invocation started over HTTP -> its input
	wfResults map[int]int           // the workflow's output n -> times seen
	deaths    map[string][]killSpan // node id -> when its daemon was killed
}

// killSpan is when a daemon was killed: from just before the signal to
// the end of its process.
type killSpan struct{ from, to time.Time }

func newWFAudit(t *testing.T, live func() []*daemonProc) *wfAudit {
	return &wfAudit{t: t, live: live, invs: map[string]int{}, wfResults: map[int]int{}, deaths: map[string][]killSpan{}}
}

// killed records that the daemon with node id node was killed between
// from and to.
func (a *wfAudit) killed(node string, from, to time.Time) {
	a.invMu.Lock()
	a.deaths[node] = append(a.deaths[node], killSpan{from, to})
	a.invMu.Unlock()
}

// diedDuring tells whether the daemon with node id node was killed while
// the invocation ran (between its creation and its end).
func (a *wfAudit) diedDuring(node string, inv invocation) bool {
	a.invMu.Lock()
	defer a.invMu.Unlock()
	end := time.Now()
	if inv.Finished != nil {
		end = *inv.Finished
	}
	for _, k := range a.deaths[node] {
		if k.from.Before(end) && inv.Created.Before(k.to) {
			return true
		}
	}
	return false
}

// deployFaultWorkflow deploys faultWorkflow and its function through
// daemon a, and waits until every daemon knows the workflow and has
// compiled its function.
func deployFaultWorkflow(t *testing.T, a *daemonProc, all []*daemonProc) {
	t.Helper()
	a.mustSluice(t, "", "fn", "deploy", "work", testutil.WasmPath(t, "wfguest"))
	a.mustSluice(t, "", "wf", "create", "fault", "-f", writeFile(t, "fault.yaml", faultWorkflow))
	for _, p := range all {
		testutil.Eventually(t, 30*time.Second, "every daemon to know the workflow", func() bool {
			code, _ := apiCall(t, "GET", p.server+"/v1/workflows/fault", "")
			return code == http.StatusOK
		})
		// compiled before the clock starts
		p.mustSluice(t, "", "fn", "invoke", "work", "--data", `{"op": "add", "n": 1}`)
	}
}

// setupFaultWorkflow is deployFaultWorkflow and the queue trigger qw
// running the workflow for each message of wfin (outputs to wfout); it
// returns the trigger's queue group, which names the invocations it
// starts.
func setupFaultWorkflow(t *testing.T, a *daemonProc, all []*daemonProc) string {
	t.Helper()
	deployFaultWorkflow(t, a, all)
	a.mustSluice(t, "", "trigger", "create", "qw", "--workflow", "fault", "--topic", "wfin", "--resp-topic", "wfout", "--ack-wait", "5s", "--max-inflight", "16")
	var qw struct {
		Group string `json:"group"`
	}
	if err := json.Unmarshal([]byte(a.mustSluice(t, "", "trigger", "get", "qw", "-o", "json")), &qw); err != nil || qw.Group == "" {
		t.Fatalf("trigger get qw: %v %+v", err, qw)
	}
	return qw.Group
}

// collect counts the outputs of the workflow's trigger on topic.
func (a *wfAudit) collect(l eventlog.Log, topic string) eventlog.Subscription {
	a.t.Helper()
	sub, err := l.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		var out struct{ N int }
		if json.Unmarshal(m.Data, &out) != nil {
			a.t.Errorf("a workflow output that is not {\"n\": N}: %q", m.Data)
			return
		}
		a.invMu.Lock()
		a.wfResults[out.N]++
		a.invMu.Unlock()
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return sub
}

// invoke starts n invocations, alternating between the live daemons.
func (a *wfAudit) invoke(n int) []string {
	t := a.t
	t.Helper()
	live := a.live()
	var ids []string
	for i := 0; i < n; i++ {
		p := live[i%len(live)]
		a.invMu.Lock()
		input := len(a.invs)
		a.invMu.Unlock()
		// As a client should: a 503 (the daemon's connection to its
		// broker is being re-made) is retried, under an idempotency
		// key so that a retry never starts a second invocation.
		var inv invocation
		for attempt := 1; ; attempt++ {
			req, _ := http.NewRequest("POST", p.server+"/v1/workflows/fault/invoke", strings.NewReader(strconv.Itoa(input)))
			req.Header.Set("Idempotency-Key", fmt.Sprintf("fault-%d", input))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && attempt < 10 {
				t.Logf("invoke on %s: %d %s; retrying", p.server, resp.StatusCode, bytes.TrimSpace(body))
				time.Sleep(time.Second)
				continue
			}
			if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &inv) != nil || inv.ID == "" {
				t.Fatalf("invoke on %s: %d %s", p.server, resp.StatusCode, body)
			}
			break
		}
		a.invMu.Lock()
		a.invs[inv.ID] = input
		a.invMu.Unlock()
		ids = append(ids, inv.ID)
	}
	return ids
}

// fetch GETs path from the first live daemon that answers 200 and decodes
// its JSON into v (any daemon knows every invocation).
func (a *wfAudit) fetch(path string, v any) bool {
	for _, p := range a.live() {
		if code, body := getBody(a.t, p.server+path); code == http.StatusOK && json.Unmarshal([]byte(body), v) == nil {
			return true
		}
	}
	return false
}

// get reads an invocation; ok is false if no daemon answered.
func (a *wfAudit) get(id string) (inv invocation, ok bool) {
	ok = a.fetch("/v1/invocations/"+id, &inv)
	return inv, ok
}

// waitRunning waits until each invocation is past its first task, with
// its sleep and function calls under way (or already finished: the
// machine may be slow), and returns how many are under way now.
func (a *wfAudit) waitRunning(ids []string) int {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		running, waiting := 0, ""
		for _, id := range ids {
			inv, ok := a.get(id)
			switch {
			case ok && inv.Tasks["nap"].Status == "running":
				running++
			case ok && inv.Status != "running":
			default:
				waiting = id
			}
		}
		if waiting == "" {
			return running
		}
		if time.Now().After(deadline) {
			inv, _ := a.get(waiting)
			b, _ := json.Marshal(inv)
			a.t.Fatalf("invocation %s not under way after 60s: %s", waiting, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wfCounts is what the end of a run counted of its workflows.
type wfCounts struct {
	http, triggered int // invocations started over HTTP, and by the trigger
	inputs, outputs int // messages to the trigger, and outputs delivered
	covered         int // messages to the trigger with an invocation
	takenOver       int // invocations that changed owner
	reran           int // tasks run again
	unexcused       int // of them, with no owner killed while it ran
	missing         []string
}

// finish waits for every invocation started over HTTP to end and for an
// output of each message published to the workflow's trigger (inputs),
// checks each invocation (succeeded, with its output, its log sound: audit)
// and the trigger's (one per stored message, named after the trigger's
// group and the message's sequence, each succeeded), and returns the
// counts. The inputs without an output are in missing. Without a group
// there is no trigger to check.
func (a *wfAudit) finish(group string, inputs []int) wfCounts {
	t := a.t
	t.Helper()
	var c wfCounts
	a.invMu.Lock()
	invs := maps.Clone(a.invs)
	a.invMu.Unlock()
	c.http, c.inputs = len(invs), len(inputs)

	// Every invocation succeeded, with its output, and its log is sound.
	for id, input := range invs {
		var inv invocation
		testutil.Eventually(t, 2*time.Minute, "invocation "+id+" to finish", func() bool {
			var ok bool
			inv, ok = a.get(id)
			return ok && inv.Status != "running"
		})
		if inv.Status != "succeeded" {
			t.Errorf("invocation %s: %s: %s", id, inv.Status, inv.Error)
			continue
		}
		if got, want := compact(inv.Output), fmt.Sprintf(`{"n":%d}`, 2*input+1); got != want {
			t.Errorf("invocation %s of %d: output %s, want %s", id, input, got, want)
		}
		a.count(&c, inv)
	}
	if group == "" {
		return c
	}
	// Every message to the workflow's trigger has its output, from one
	// invocation per stored message (named after its sequence), each
	// succeeded.
	outputs := func() (got int, missing []string) {
		a.invMu.Lock()
		defer a.invMu.Unlock()
		for _, in := range inputs {
			if n := a.wfResults[2*in+1]; n > 0 {
				got += n
			} else {
				missing = append(missing, strconv.Itoa(in))
			}
		}
		return got, missing
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if _, missing := outputs(); len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	c.outputs, c.missing = outputs()
	if len(c.missing) > 0 {
		t.Errorf("%d of %d messages to the workflow have no output after 2 minutes: %s", len(c.missing), len(inputs), strings.Join(c.missing[:min(len(c.missing), 20)], " "))
	}
	var all []invocation
	a.fetch("/v1/invocations?workflow=fault&limit=1000", &all) // every one: a listing shows 100 unless asked
	covered := map[int]bool{}
	for _, inv := range all {
		if !strings.HasPrefix(inv.ID, group+"-") {
			continue
		}
		c.triggered++
		var in int
		json.Unmarshal(inv.Input, &in)
		covered[in] = true
		if inv.Status != "succeeded" {
			t.Errorf("queue-triggered invocation %s: %s: %s", inv.ID, inv.Status, inv.Error)
			continue
		}
		a.count(&c, inv)
	}
	for _, in := range inputs {
		if covered[in] {
			c.covered++
		}
	}
	if c.covered != len(inputs) {
		t.Errorf("%d messages to the workflow, invocations for %d of them", len(inputs), c.covered)
	}
	return c
}

// count audits a finished invocation into c.
func (a *wfAudit) count(c *wfCounts, inv invocation) {
	moved, again, unexcused := a.audit(inv)
	if moved {
		c.takenOver++
	}
	c.reran += again
	c.unexcused += unexcused
}

// log logs the counts.
func (c wfCounts) log(t *testing.T) {
	if c.inputs == 0 && c.triggered == 0 {
		t.Logf("invocations: %d started over HTTP; %d taken over by another daemon, %d tasks run again (%d with no owner killed while it ran)",
			c.http, c.takenOver, c.reran, c.unexcused)
		return
	}
	t.Logf("messages to the workflow: %d in, %d with an output, %d outputs delivered, %d invocations (one per stored message) for %d of the messages",
		c.inputs, c.inputs-len(c.missing), c.outputs, c.triggered, c.covered)
	t.Logf("invocations: %d started over HTTP and %d by the trigger; %d taken over by another daemon, %d tasks run again (%d with no owner killed while it ran)",
		c.http, c.triggered, c.takenOver, c.reran, c.unexcused)
}

// audit checks a finished invocation's log (checkLog) and counts what it
// ran again. A call runs again only if the daemon making it died while
// the invocation ran: the death of a broker's leader, which every daemon
// lived through, re-runs nothing whose start was stored.
func (a *wfAudit) audit(inv invocation) (moved bool, reran, unexcused int) {
	owners, err := a.checkLog(inv.ID)
	if err != nil {
		a.t.Error(err)
	}
	survived := !slices.ContainsFunc(owners, func(n string) bool { return a.diedDuring(n, inv) })
	for name, task := range inv.Tasks {
		if task.Attempts > 1 {
			reran++
			if survived {
				unexcused++
			}
			if survived {
				a.t.Errorf("invocation %s: task %s ran %d times, though its owners %v never died while it ran", inv.ID, name, task.Attempts, owners)
			}
		}
	}
	return len(owners) > 1, reran, unexcused
}

// checkLog reads an invocation's events and checks them as the engine
// folds them: only the owner's events count (the creator, then whoever an
// OwnerChanged from the current owner names); no task succeeds twice or is
// scheduled or started after it succeeded. It returns the invocation's
// owners, in order.
func (a *wfAudit) checkLog(id string) (owners []string, err error) {
	var events []engine.Event
	a.fetch("/v1/invocations/"+id+"/events", &events)
	if len(events) == 0 || events[0].Type != "InvocationCreated" {
		return nil, fmt.Errorf("invocation %s: no events read, or not starting with InvocationCreated", id)
	}
	owner := events[0].Owner
	if owner == "" {
		owner = events[0].Node
	}
	owners = []string{owner}
	succeeded := map[string]bool{}
	var trace bytes.Buffer
	for _, ev := range events {
		fmt.Fprintf(&trace, " %s:%s@%s", ev.Type, ev.Task, ev.Node)
		switch {
		case ev.Type == "OwnerChanged":
			if ev.From == owner {
				owner = ev.Owner
				owners = append(owners, owner)
			}
			continue
		case ev.Node != owner:
			continue
		}
		switch ev.Type {
		case "TaskSucceeded":
			if succeeded[ev.Task] {
				return owners, fmt.Errorf("invocation %s: task %s succeeded twice:%s", id, ev.Task, trace.String())
			}
			succeeded[ev.Task] = true
		case "TaskScheduled", "TaskStarted":
			if succeeded[ev.Task] {
				return owners, fmt.Errorf("invocation %s: task %s: %s after it succeeded:%s", id, ev.Task, ev.Type, trace.String())
			}
		}
	}
	return owners, nil
}

// publish publishes body(0), body(1)... to topic at rate until stop is
// closed, each message until the cluster acknowledges it, and returns how
// many.
func (r *faultRun) publish(topic string, rate int, body func(int) []byte, stop <-chan struct{}) <-chan int {
	total := make(chan int, 1)
	next := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := r.client.Publish(ctx, topic, eventlog.Message{Data: body(i)})
				cancel()
				if err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		n := 0
	loop:
		for {
			select {
			case <-stop:
				break loop
			case <-tick.C:
				next <- n
				n++
			}
		}
		close(next)
		wg.Wait()
		if err := failed.Load(); err != nil {
			r.t.Errorf("publishing to the cluster: %v", err)
		}
		total <- n
	}()
	return total
}

// runClusterFaults runs two daemons on a three-node NATS Streaming cluster
// while a queue trigger works through a stream of messages and workflow
// invocations run; each round kills the NATS Streaming leader, then a
// daemon, with invocations under way at each kill. It then counts: every
// message has its result, every invocation succeeded with its output, and
// no invocation's log shows a task succeeding twice or running after it
// succeeded.
func runClusterFaults(t *testing.T, plan faultPlan) {
	nc := startNATSCluster(t, 3)
	r := &faultRun{nats: nc, results: map[string]int{}}
	r.wfAudit = newWFAudit(t, r.live)
	for i := 0; i < 2; i++ {
		r.data = append(r.data, t.TempDir())
		r.daemons = append(r.daemons, startClusterDaemon(t, nc, r.data[i]))
	}
	a := r.daemons[0]
	a.mustSluice(t, "", "fn", "deploy", "upper", testutil.WasmPath(t, "upper-go"))
	a.mustSluice(t, "", "trigger", "create", "q", "--fn", "upper", "--topic", "in", "--resp-topic", "out", "--ack-wait", "5s", "--max-inflight", "64")
	group := setupFaultWorkflow(t, a, r.daemons)
	for _, p := range r.daemons {
		p.mustSluice(t, "", "fn", "invoke", "upper", "--data", "warm")
	}

	var err error
	r.client, err = natslog.Connect(context.Background(), broker.Options{URL: nc.URLs(), ClusterID: nc.id, Name: "fault-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.client.Close()
	sub, err := r.client.Subscribe("out", eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		r.mu.Lock()
		r.results[string(m.Data)]++
		r.delivered++
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	wfSub := r.collect(r.client, "wfout")
	defer wfSub.Close()
	stop := make(chan struct{})
	published := r.publish("in", plan.rate, func(i int) []byte { return fmt.Appendf(nil, "m%06d", i) }, stop)
	wfPublished := r.publish("wfin", plan.wfRate, func(i int) []byte { return strconv.AppendInt(nil, int64(i), 10) }, stop)
	testutil.Eventually(t, 60*time.Second, "the stream to be under way", func() bool { return r.resultCount() >= plan.rate })

	start := time.Now()
	underWay := 0 // invocations under way at the kills
	for round := 0; round < plan.rounds; round++ {
		nc.settle(t, 2*len(r.live())+1, 5*time.Second) // the daemons' two each (events, results) and the test's client
		running := r.waitRunning(r.invoke(plan.batch))
		underWay += running
		leader := nc.leader(t)
		before := r.resultCount()
		nc.kill(leader)
		killed := time.Now()
		t.Logf("%5.1fs round %d: kill -9 NATS Streaming leader %s (%d results so far, %d invocations under way)",
			time.Since(start).Seconds(), round+1, leader.name, before, running)
		next := nc.leader(t)
		t.Logf("%5.1fs new leader %s elected after %.1fs", time.Since(start).Seconds(), next.name, time.Since(killed).Seconds())
		testutil.Eventually(t, 60*time.Second, "results to flow again after the leader's death", func() bool {
			return r.resultCount() > before+plan.rate
		})
		t.Logf("%5.1fs results flow again (%d so far)", time.Since(start).Seconds(), r.resultCount())
		if plan.restart {
			nc.start(t, leader)
			testutil.Eventually(t, 60*time.Second, "the restarted node to rejoin", func() bool { return leader.role() == "Follower" })
			t.Logf("%5.1fs restarted NATS Streaming node %s: a follower again", time.Since(start).Seconds(), leader.name)
		}

		ids := r.invoke(plan.batch)
		running = r.waitRunning(ids)
		underWay += running
		victim := round % len(r.daemons)
		node := r.daemons[victim].node
		from := time.Now()
		r.daemons[victim].kill()
		r.killed(node, from, time.Now())
		r.daemons[victim] = nil
		t.Logf("%5.1fs kill -9 daemon %d (%d results so far, %d invocations under way)",
			time.Since(start).Seconds(), victim, r.resultCount(), running)
		if plan.restart && round%2 == 1 {
			// this time the other daemon takes over before the restart
			testutil.Eventually(t, time.Minute, "the other daemon to take over", func() bool {
				for _, id := range ids {
					if inv, ok := r.get(id); !ok || inv.Status == "running" && inv.Owner == node {
						return false
					}
				}
				return true
			})
			t.Logf("%5.1fs the other daemon took over the dead one's invocations", time.Since(start).Seconds())
		}
		if plan.restart {
			r.daemons[victim] = startClusterDaemon(t, nc, r.data[victim])
			t.Logf("%5.1fs restarted daemon %d", time.Since(start).Seconds(), victim)
		}
	}
	if underWay == 0 {
		t.Fatal("no invocation was under way at any kill: the run tested nothing")
	}
	// the stream goes on a while on what is left
	time.Sleep(3 * time.Second)
	close(stop)
	n, wfN := <-published, <-wfPublished
	t.Logf("%5.1fs stopped publishing: %d messages in, and %d to the workflow", time.Since(start).Seconds(), n, wfN)

	// Every message has its result.
	for deadline := time.Now().Add(3 * time.Minute); r.resultCount() < n && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	var missing []string
	for i := 0; i < n; i++ {
		if m := fmt.Sprintf("M%06d", i); r.results[m] == 0 {
			missing = append(missing, m)
		}
	}
	results, delivered := len(r.results), r.delivered
	r.mu.Unlock()
	if len(missing) > 0 {
		t.Errorf("%d of %d messages have no result after 3 minutes: %s", len(missing), n, strings.Join(missing[:min(len(missing), 20)], " "))
		r.reread("in", "out", missing, func(b []byte) string { return strings.ToUpper(string(b)) }, func(b []byte) string { return string(b) })
	}

	// Every invocation succeeded with its output, its log sound; every
	// message to the workflow's trigger has its output.
	inputs := make([]int, wfN)
	for i := range inputs {
		inputs[i] = i
	}
	wf := r.finish(group, inputs)
	if len(wf.missing) > 0 {
		r.reread("wfin", "wfout", wf.missing, func(b []byte) string { return string(b) }, func(b []byte) string {
			var out struct{ N int }
			json.Unmarshal(b, &out)
			return strconv.Itoa((out.N - 1) / 2)
		})
	}

	t.Logf("messages: %d in, %d with a result, %d results delivered (%d duplicates)", n, results, delivered, delivered-results)
	wf.log(t)
}

// reread reads an input topic and its response topic again from the
// start, and says for each missing key (inKey of an input, outKey of a
// result) where it is: never published, or published and its result
// missing, or its result stored and not delivered to the test's reader.
// It also shows what the cluster's leader says of the topics'
// subscriptions (pending and stalled members).
func (r *faultRun) reread(inTopic, outTopic string, missing []string, inKey, outKey func([]byte) string) {
	want := map[string]bool{}
	for _, m := range missing {
		want[m] = true
	}
	var mu sync.Mutex
	out, in := map[string][]uint64{}, map[string][]uint64{}
	read := func(topic string, key func([]byte) string, into map[string][]uint64) {
		sub, err := r.client.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
			if k := key(m.Data); want[k] {
				mu.Lock()
				into[k] = append(into[k], m.Sequence)
				mu.Unlock()
			}
		})
		if err != nil {
			r.t.Error(err)
			return
		}
		time.Sleep(10 * time.Second)
		sub.Close()
	}
	read(outTopic, outKey, out)
	read(inTopic, inKey, in)
	mu.Lock()
	for _, m := range missing[:min(len(missing), 20)] {
		r.t.Errorf("%s: in %s at %v, in %s at %v", m, inTopic, in[m], outTopic, out[m])
	}
	mu.Unlock()
	r.nats.showSubs(r.t, inTopic, outTopic)
}

// showSubs logs what the leader says of channels and their subscribers.
func (c *natsCluster) showSubs(t *testing.T, channels ...string) {
	node := c.leaderNow()
	if node == nil {
		t.Log("no NATS Streaming leader to ask")
		return
	}
	code, body := getBody(t, fmt.Sprintf("http://127.0.0.1:%d/streaming/channelsz?subs=1", node.httpPort))
	var z struct {
		Channels []struct {
			Name    string `json:"name"`
			Msgs    int    `json:"msgs"`
			LastSeq uint64 `json:"last_seq"`
			Subs    []struct {
				Client  string `json:"client_id"`
				Queue   string `json:"queue_name"`
				Sent    uint64 `json:"last_sent"`
				Pending int    `json:"pending_count"`
				Stalled bool   `json:"is_stalled"`
				Offline bool   `json:"is_offline"`
			} `json:"subscriptions"`
		} `json:"channels"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &z) != nil {
		t.Logf("channelsz on %s: %d %s", node.name, code, body)
		return
	}
	for _, ch := range z.Channels {
		if !slices.Contains(channels, ch.Name) {
			continue
		}
		t.Logf("leader %s: channel %s: %d messages, last %d", node.name, ch.Name, ch.Msgs, ch.LastSeq)
		for _, sub := range ch.Subs {
			t.Logf("  %s %s: last sent %d, %d pending, stalled %v, offline %v", sub.Client, sub.Queue, sub.Sent, sub.Pending, sub.Stalled, sub.Offline)
		}
	}
}

// TestClusterFaults is the short fault run of `make test`: one round on a
// three-node NATS Streaming cluster with two daemons: kill the NATS
// Streaming leader, then one daemon, mid-stream and with workflows running.
// `make soak` runs more rounds, restarting what it kills.
func TestClusterFaults(t *testing.T) {
	runClusterFaults(t, faultPlan{rate: 200, wfRate: 5, rounds: 1, batch: 20})
}

// getBody GETs a URL and returns the status and the body.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
