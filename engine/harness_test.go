package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/memlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

// The tests run the engine on a real embedded NATS Streaming server (one
// stream of events, checkpoints) and real wasm guests: wfguest
// (engine/testdata/wfguest) and echo-wat. Those about a stream per
// invocation run on memlog (fast) and on a real embedded JetStream server.

// The logs a rig runs on.
const (
	natsStreaming = "nats-streaming"
	memory        = "memory"
	jetStream     = "jetstream"
)

// familyLogs are the logs with families and Delete: each invocation has a
// stream of its own.
var familyLogs = []string{memory, jetStream}

var (
	hostOnce sync.Once
	testHost *host.Host
	testFns  map[string]*host.Function
	hostErr  error
)

// functions are the test's deployed functions, on one shared host.
type functions struct {
	mu      sync.Mutex
	calls   map[string]int // by function
	missing map[string]bool
	gates   map[string]chan struct{} // by task: its calls return once the gate is closed
	panics  map[string]bool          // by task: its calls panic (a bug in the registry)
}

// gate holds the calls of a workflow task, once they have run, until the
// returned function is called.
func (f *functions) gate(task string) (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.gates[task] = ch
	f.mu.Unlock()
	return func() { close(ch) }
}

func loadFunctions(t testing.TB) *functions {
	t.Helper()
	hostOnce.Do(func() {
		ctx := context.Background()
		testHost, hostErr = host.New(ctx, host.NewConfig().WithCacheDir(os.TempDir()+"/sluice-engine-test-cache"))
		if hostErr != nil {
			return
		}
		testFns = map[string]*host.Function{}
		for _, name := range []string{"wfguest", "echo-wat"} {
			f, err := testHost.Load(ctx, host.Spec{Name: name, Version: 1, ABI: abi.Auto, Limits: host.Limits{Concurrency: 64}}, testutil.Wasm(t, name))
			if err != nil {
				hostErr = err
				return
			}
			testFns[name] = f
		}
	})
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	return &functions{calls: map[string]int{}, missing: map[string]bool{}, gates: map[string]chan struct{}{}, panics: map[string]bool{}}
}

func (f *functions) Invoke(ctx context.Context, t fn.Target, c fn.Call) (fn.Result, error) {
	name, input, meta := t.Name, c.Input, c.Meta
	f.mu.Lock()
	f.calls[name]++
	missing := f.missing[name]
	gate := f.gates[meta[abi.MetaWorkflowTask]]
	panics := f.panics[meta[abi.MetaWorkflowTask]]
	f.mu.Unlock()
	if panics {
		panic("the registry broke")
	}
	f0 := testFns[name]
	if f0 == nil || missing {
		return fn.Result{}, fmt.Errorf("no function %q", name)
	}
	res, err := f0.Invoke(ctx, host.Call{Input: input, Meta: meta})
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return fn.Result{}, ctx.Err()
		}
	}
	return res, err
}

func (f *functions) Exists(name string) bool { return testFns[name] != nil }

// defs is an in-memory catalog of workflow definitions.
type defs struct {
	mu      sync.Mutex
	current map[string]Revision
	revs    map[string]Revision
	// panics names workflows whose lookup panics (a bug in the catalog).
	panics map[string]bool
}

func newDefs() *defs {
	return &defs{current: map[string]Revision{}, revs: map[string]Revision{}, panics: map[string]bool{}}
}

// putRaw stores a definition as a catalog might hold it, unchecked (a
// forged event, a definition stored before a fix).
func (d *defs) putRaw(name, src string) Revision {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := Revision{Name: name, Revision: fmt.Sprintf("rev-%s-%d", name, len(d.revs)), Source: src}
	d.current[name] = r
	d.revs[r.Revision] = r
	return r
}

func (d *defs) put(t testing.TB, src string) Revision {
	t.Helper()
	def, err := ParseDefinition("", []byte(src), Known{Function: func(fn string) bool { return testFns[fn] != nil }})
	if err != nil {
		t.Fatalf("definition: %v", err)
	}
	r := Revision{Name: def.Name, Revision: fmt.Sprintf("rev-%s-%d", def.Name, len(d.revs)), Source: src}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.current[r.Name] = r
	d.revs[r.Revision] = r
	return r
}

func (d *defs) Current(name string) (Revision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.panics[name] {
		panic("the catalog broke")
	}
	r, ok := d.current[name]
	return r, ok
}

func (d *defs) Revision(rev string) (Revision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.revs[rev]
	return r, ok
}

// rig is one test's broker, connection and engine.
type rig struct {
	t       testing.TB
	dir     string
	backend string
	srv     *broker.Embedded // NATS Streaming
	js      *jslog.Embedded
	mem     *memlog.Broker
	conn    eventlog.Log
	fns     *functions
	defs    *defs
	e       *Engine
	node    string
	// retain is Options.Retain of the engines open opens, maxValue their
	// Options.MaxValue.
	retain, maxValue int
}

func newRig(t testing.TB, fileStore bool) *rig {
	t.Helper()
	return newRigOn(t, natsStreaming, fileStore)
}

// newRigOn makes a rig on one of the logs (the JetStream server always
// has a file store).
func newRigOn(t testing.TB, backend string, fileStore bool) *rig {
	t.Helper()
	r := &rig{t: t, fns: loadFunctions(t), defs: newDefs(), node: "node-a", backend: backend}
	if fileStore || backend == jetStream {
		r.dir = t.TempDir()
	}
	switch backend {
	case natsStreaming:
		r.startServer("127.0.0.1:0")
	case memory:
		r.mem = memlog.NewBroker()
		r.conn = r.mem.Connect()
	case jetStream:
		js, err := jslog.StartEmbedded(jslog.EmbeddedOptions{Dir: r.dir, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		r.js = js
		r.conn = r.connect()
	default:
		t.Fatalf("no log %q", backend)
	}
	r.open()
	t.Cleanup(r.close)
	return r
}

// connect makes another connection to the rig's broker (another process).
func (r *rig) connect() eventlog.Log {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var l eventlog.Log
	var err error
	switch r.backend {
	case memory:
		return r.mem.Connect()
	case jetStream:
		l, err = jslog.Connect(ctx, jslog.Options{URL: r.js.URL(), Name: "engine-test"})
	default:
		l, err = natslog.Connect(ctx, broker.Options{URL: r.srv.URL(), ClusterID: "test", Name: "engine-test"})
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return l
}

// crash stops the engine as kill -9 would: no goodbye to the other
// nodes, its connection dropped; a new connection replaces it.
func (r *rig) crash() {
	r.t.Helper()
	r.e.halt()
	r.e = nil
	r.conn.Close()
	r.conn = r.connect()
}

func (r *rig) startServer(listen string) {
	r.t.Helper()
	r.serve(listen)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	r.conn, err = natslog.Connect(ctx, broker.Options{URL: r.srv.URL(), ClusterID: "test", Name: "engine-test"})
	if err != nil {
		r.t.Fatal(err)
	}
}

// serve starts the server on the rig's store.
func (r *rig) serve(listen string) {
	r.t.Helper()
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: r.dir, Listen: listen, ClusterID: "test"})
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
}

// stopServer stops the server, as an outage; restart brings it back at
// the same address, where the connections find it again.
func (r *rig) stopServer() (restart func()) {
	listen := strings.TrimPrefix(r.srv.URL(), "nats://")
	r.srv.Shutdown()
	return func() { r.serve(listen) }
}

func (r *rig) open() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: r.node, Retain: r.retain, MaxValue: r.maxValue})
	if err != nil {
		r.t.Fatal(err)
	}
	r.e = e
}

// restart closes the engine and opens a new one on the same log.
func (r *rig) restart() {
	r.t.Helper()
	r.e.Close(context.Background())
	r.open()
}

func (r *rig) close() {
	if r.e != nil {
		r.e.Close(context.Background())
	}
	if r.conn != nil {
		r.conn.Close()
	}
	if r.srv != nil {
		r.srv.Shutdown()
	}
	if r.js != nil {
		r.js.Shutdown()
	}
}

// run invokes a workflow and waits for its end.
func (r *rig) run(workflow, input string) *Invocation {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inv, err := r.e.Invoke(ctx, workflow, []byte(input), InvokeOptions{Input: InputAuto})
	if err != nil {
		r.t.Fatalf("invoke %s: %v", workflow, err)
	}
	inv, err = r.e.Wait(ctx, inv.ID)
	if err != nil {
		r.t.Fatalf("wait %s: %v", workflow, err)
	}
	return inv
}

func (r *rig) events(id string) []*Event {
	r.t.Helper()
	evs, err := r.e.Events(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return evs
}

// types lists event types as "Type task" strings.
func types(evs []*Event) []string {
	var out []string
	for _, e := range evs {
		s := e.Type
		if e.Task != "" {
			s += " " + e.Task
		}
		out = append(out, s)
	}
	return out
}

func wantJSON(t testing.TB, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s is not JSON: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("output = %s, want %s", gb, wb)
	}
}

func wantStatus(t testing.TB, inv *Invocation, status string) {
	t.Helper()
	if inv.Status != status {
		b, _ := json.MarshalIndent(inv, "", "  ")
		t.Fatalf("status %s, want %s:\n%s", inv.Status, status, b)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
