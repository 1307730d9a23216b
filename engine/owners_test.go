package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

// crash stops an engine the way kill -9 would: no goodbye, no more events.
func (e *Engine) crash() { e.halt() }

func (r *rig) engine(node string) *Engine {
	r.t.Helper()
	return r.engineWith(node, time.Second)
}

// engineWith opens an engine with its own connection and a node timeout.
func (r *rig) engineWith(node string, timeout time.Duration) *Engine {
	r.t.Helper()
	if r.backend != natsStreaming {
		return r.engineOn(node, timeout, r.connect())
	}
	return r.engineAt(node, timeout, r.srv.URL())
}

// engineAt is engineWith connecting to the server at url.
func (r *rig) engineAt(node string, timeout time.Duration, url string) *Engine {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := natslog.Connect(ctx, broker.Options{URL: url, ClusterID: "test", Name: node, ConnectWait: time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	return r.engineOn(node, timeout, conn)
}

// engineOn opens an engine on a connection of its own.
func (r *rig) engineOn(node string, timeout time.Duration, conn eventlog.Log) *Engine {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := Options{Log: conn, Functions: r.fns, Definitions: r.defs, Node: node, NodeTimeout: timeout}
	if os.Getenv("ENGINE_DEBUG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", node)
	}
	e, err := Open(ctx, o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { e.Close(context.Background()); conn.Close() })
	return e
}

const takeoverWorkflow = `
apiVersion: sluice/v1
kind: Workflow
name: takeover
output: ${ [tasks.after.output.n, tasks.sub.output] }
tasks:
  first: { run: wfguest, inputs: { op: double, n: "${ input }" } }
  nap:   { run: sleep, requires: [first], inputs: 6s }
  work:  { run: wfguest, requires: [first], inputs: { op: sleep, ms: 6000 } }
  sub:   { run: workflow, requires: [first], inputs: { workflow: napper, input: "${ input }" } }
  after: { run: wfguest, requires: [nap, work, sub], inputs: { op: add, n: "${ tasks.first.output.n }" } }
`

func startTakeoverRun(t *testing.T, r *rig, a *Engine, n int) []string {
	t.Helper()
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: napper\ntasks:\n  z: { run: sleep, inputs: 1s }\n  y: { run: noop, requires: [z], inputs: \"${ input }\" }\n")
	r.defs.put(t, takeoverWorkflow)
	var ids []string
	for i := 0; i < n; i++ {
		inv, err := a.Invoke(context.Background(), "takeover", []byte(fmt.Sprint(i)), InvokeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, inv.ID)
	}
	// every invocation past its first task and none finished; its 6 s
	// tasks under way (not all running at once: on a loaded machine the
	// first invocation's can end before the last's start). They last 6 s
	// so that a loaded machine, which starts the last invocation's tasks
	// seconds after the first's, still sees all eight at once: with 3 s,
	// a run at load 15 under the race detector never did.
	testutil.Eventually(t, 20*time.Second, "every invocation to be sleeping and working", func() bool {
		working := 0
		for _, id := range ids {
			inv, _ := a.Get(id)
			if inv.Status != StatusRunning || inv.Tasks["nap"] == nil || inv.Tasks["work"] == nil || inv.Tasks["sub"] == nil {
				return false
			}
			if inv.Tasks["work"].Status == TaskRunning {
				working++
			}
		}
		return working > 0
	})
	return ids
}

func checkTakenOver(t *testing.T, b *Engine, ids []string, from string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, id := range ids {
		inv, err := b.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, inv, StatusSucceeded)
		wantJSON(t, inv.Output, fmt.Sprintf("[%d, %d]", 2*i+1, i))
		if inv.Owner == from {
			t.Fatalf("invocation %s still owned by %s", id, from)
		}
		evs, err := b.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var changed bool
		for _, ev := range evs {
			changed = changed || ev.Type == eventOwnerChanged
		}
		if !changed {
			t.Fatalf("invocation %s: no OwnerChanged in %v", id, types(evs))
		}
	}
}

// TestTakeoverAfterCrash: node a dies while its invocations sleep, run a
// function and wait for a child workflow; node b notices the silence and
// finishes them.
func TestTakeoverAfterCrash(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	a, b := r.engine("node-1"), r.engine("node-2")
	ids := startTakeoverRun(t, r, a, 8)
	a.crash()
	checkTakenOver(t, b, ids, "node-1")
}

// TestTakeoverAfterCrashOnFamilies is TestTakeoverAfterCrash where each
// invocation has a stream of its own: the claim goes to the invocation's
// stream.
func TestTakeoverAfterCrashOnFamilies(t *testing.T) {
	t.Parallel()
	for _, backend := range familyLogs {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, false)
			a, b := r.engine("node-1"), r.engine("node-2")
			ids := startTakeoverRun(t, r, a, 8)
			a.crash()
			checkTakenOver(t, b, ids, "node-1")
		})
	}
}

// TestTakeoverOfACutOffNode: node a stops answering heartbeats but keeps
// running; b takes its invocations over. What a writes afterwards is
// ignored by every fold, a rebuilds the invocations from the log, and all
// three views (a, b, and a fresh replay) agree.
func TestTakeoverOfACutOffNode(t *testing.T) {
	r := newRig(t, true)
	a, b := r.engine("node-1"), r.engine("node-2")
	ids := startTakeoverRun(t, r, a, 8)
	a.silent.Store(true)
	checkTakenOver(t, b, ids, "node-1")
	c := r.engine("node-3")
	ctx := context.Background()
	for _, id := range ids {
		testutil.Eventually(t, 20*time.Second, "node a to agree on "+id, func() bool {
			inv, err := a.Get(id)
			return err == nil && inv.Status == StatusSucceeded
		})
		want := describeInv(t, b, id)
		for name, e := range map[string]*Engine{"node-1": a, "node-3": c} {
			if _, err := e.Wait(ctx, id); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for describeInv(t, e, id) != want {
				if time.Now().After(deadline) {
					t.Fatalf("%s shows invocation %s differently:\n%s", name, id, diff(want, describeInv(t, e, id)))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// describeInv renders one invocation's state, without the sequence
// bookkeeping that depends on which events a node saw back.
func describeInv(t *testing.T, e *Engine, id string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &state{invs: map[string]*invState{id: e.st.invs[id]}, live: e.st.live}
	if s.invs[id] == nil {
		return ""
	}
	out := dropFirstLine(s.describe())
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, " seqs="); i >= 0 {
			j := strings.Index(l[i+1:], " ")
			l = l[:i] + l[i+1+j:]
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// TestNoTakeoverAfterOutage: NATS Streaming goes away for longer than the
// node timeout and comes back (a cluster electing a new leader, a restart),
// and node-1 reconnects a little later than node-2. node-2 heard nobody
// while it was cut off: it must not count that silence, and takes over
// nothing, since node-1 is back within a timeout of node-2's return.
func TestNoTakeoverAfterOutage(t *testing.T) {
	r := newRig(t, true)
	const timeout = 8 * time.Second
	proxy := newGate(t, strings.TrimPrefix(r.srv.URL(), "nats://"))
	a := r.engineAt("node-1", timeout, "nats://"+proxy.addr())
	b := r.engineWith("node-2", timeout)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: long\ntasks:\n  z: { run: sleep, inputs: 16s }\n")
	ctx := context.Background()
	inv, err := a.Invoke(ctx, "long", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "node-2 to know the invocation", func() bool {
		got, err := b.Get(inv.ID)
		return err == nil && got.Tasks["z"] != nil
	})
	proxy.block(true)
	restart := r.stopServer()
	time.Sleep(timeout) // everybody silent for a whole timeout
	restart()
	testutil.Eventually(t, 20*time.Second, "node-2 to reconnect", func() bool { return b.o.Log.Connected() })
	time.Sleep(timeout / 4) // node-1 silent for longer still, back within a timeout of node-2
	proxy.block(false)
	testutil.Eventually(t, 20*time.Second, "node-1 to reconnect", func() bool { return a.o.Log.Connected() })
	t.Logf("node-1 reconnected %.1fs after node-2 (the timeout is %s)", a.o.Log.UpSince().Sub(b.o.Log.UpSince()).Seconds(), timeout)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done, err := b.Wait(wctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	if done.Owner != "node-1" {
		t.Errorf("owner %s, want node-1", done.Owner)
	}
	if got := strings.Join(types(r.events(inv.ID)), ","); contains(got, eventOwnerChanged) {
		t.Errorf("an owner changed though no node died: %s", got)
	}
}

// gate is a TCP proxy to the server that can refuse connections: a node
// behind it stays cut off while the others reconnect.
type gate struct {
	ln      net.Listener
	target  string
	blocked atomic.Bool
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if g.blocked.Load() {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }
func (g *gate) block(b bool) { g.blocked.Store(b) }

// TestCancelWhileTheOwnerIsDead: the owner of a sleeping invocation has
// died; another node is asked to cancel it before it has taken it over.
// The request is in the log, the node that takes the invocation over
// must act on it: the invocation ends canceled, it does not sleep on.
func TestCancelWhileTheOwnerIsDead(t *testing.T) {
	t.Parallel()
	for _, backend := range append([]string{natsStreaming}, familyLogs...) {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, false)
			r.e.crash() // only node-2 is left to take over
			r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: nap\ntasks:\n  z: { run: sleep, inputs: 1h }\n")
			a, b := r.engineWith("node-1", 2*time.Second), r.engineWith("node-2", 2*time.Second)
			ctx := context.Background()
			inv, err := a.Invoke(ctx, "nap", nil, InvokeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, "node-2 to see the sleep", func() bool {
				got, err := b.Get(inv.ID)
				return err == nil && got.Tasks["z"] != nil && got.Tasks["z"].Status == TaskRunning
			})
			a.crash()
			if _, err := b.Cancel(ctx, inv.ID); err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			got, err := b.Wait(wctx, inv.ID)
			if err != nil {
				t.Fatalf("the canceled invocation did not end: %v", err)
			}
			wantStatus(t, got, StatusCanceled)
			if got.Owner != "node-2" {
				t.Fatalf("owner %s, want node-2, the node that took it over", got.Owner)
			}
		})
	}
}

// deafLog is a log whose heartbeats fail while stalled is set, as a
// JetStream stream does while it elects a new leader: the connection is
// up, other streams take writes.
type deafLog struct {
	eventlog.Log
	stalled *atomic.Bool
}

var errStalled = errors.New("the stream has no leader: publish timed out")

func (l deafLog) Publish(ctx context.Context, stream string, m eventlog.Message) (uint64, error) {
	if stream == NodesChannel && l.stalled.Load() {
		return 0, errStalled
	}
	return l.Log.Publish(ctx, stream, m)
}

func (l deafLog) PublishAsync(stream string, m eventlog.Message, done func(uint64, error)) error {
	if stream == NodesChannel && l.stalled.Load() {
		go done(0, errStalled)
		return nil
	}
	return l.Log.PublishAsync(stream, m, done)
}

// TestNoTakeoverWhileHeartbeatsStall: the heartbeats' stream takes no
// writes for longer than the node timeout while the connections stay up
// and the invocations' streams take writes. Every node is then silent to
// every other; none may take the others' invocations over (that re-ran
// the calls in flight of live daemons in the self-clustered fault run).
// Once the heartbeats flow again, a node that then dies is still taken
// over.
func TestNoTakeoverWhileHeartbeatsStall(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.e.crash()
	const timeout = 2 * time.Second
	var stalled atomic.Bool
	a := r.engineOn("node-1", timeout, deafLog{r.connect(), &stalled})
	b := r.engineOn("node-2", timeout, deafLog{r.connect(), &stalled})
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: long\ntasks:\n  z: { run: sleep, inputs: 1h }\n")
	ctx := context.Background()
	inv, err := a.Invoke(ctx, "long", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "node-2 to know node-1 and the sleep", func() bool {
		got, err := b.Get(inv.ID)
		b.mu.Lock()
		_, known := b.nodes["node-1"]
		b.mu.Unlock()
		return err == nil && got.Tasks["z"] != nil && known
	})
	time.Sleep(timeout) // both heard each other for a whole timeout
	stalled.Store(true)
	time.Sleep(3 * timeout)
	stalled.Store(false)
	time.Sleep(timeout)
	for name, e := range map[string]*Engine{"node-1": a, "node-2": b} {
		got, err := e.Get(inv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != "node-1" {
			t.Fatalf("%s: the invocation moved to %s while the heartbeats stalled", name, got.Owner)
		}
	}
	evs, err := b.Events(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == eventOwnerChanged {
			t.Fatalf("an OwnerChanged was written while the heartbeats stalled: %v", types(evs))
		}
	}
	a.crash()
	testutil.Eventually(t, 30*time.Second, "node-2 to take over from the dead node-1", func() bool {
		got, err := b.Get(inv.ID)
		return err == nil && got.Owner == "node-2"
	})
}
