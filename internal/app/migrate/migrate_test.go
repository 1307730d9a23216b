package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

const clusterID = "migrate-test"

// source is a NATS Streaming server that a real daemon filled and left.
type source struct {
	url string
	log *natslog.Log
	// sleeping are invocations left running (asleep, one with a child
	// workflow asleep), finished those that ended.
	sleeping, finished []string
	// large is the input of the last sleeping invocation: stored apart.
	large []byte
}

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

var (
	// cleanups are what TestMain undoes after every test: the shared
	// source's server and dirs.
	cleanups []func()
	shared   *source
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

func tempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "sluice-migrate-test-")
	if err != nil {
		t.Fatal(err)
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	return dir
}

// sharedSource is the source every test reads (a source is only read).
func sharedSource(t *testing.T) *source {
	if shared == nil {
		shared = newSource(t)
	}
	return shared
}

// newSource runs a daemon on an embedded NATS Streaming server: it
// deploys functions, triggers and workflows, starts invocations that sleep
// and others that finish, and stops. The server stays, as a source.
func newSource(t *testing.T) *source {
	t.Helper()
	ctx := context.Background()
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: tempDir(t), Listen: "127.0.0.1:0", ClusterID: clusterID})
	if err != nil {
		t.Fatal(err)
	}
	cleanups = append(cleanups, srv.Shutdown)
	o := daemon.DefaultOptions()
	o.Listen, o.NATSListen, o.DataDir = "127.0.0.1:0", "127.0.0.1:0", tempDir(t)
	o.NATSURL, o.ClusterID = srv.URL(), clusterID
	o.StartTimeout, o.ShutdownTimeout = 30*time.Second, 10*time.Second
	o.Logger = logger()
	d, err := daemon.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(d.Addr(), "")
	for _, fn := range [][2]string{{"echo", "echo-wat"}, {"echo", "echo-c"}, {"shout", "echo-c"}, {"wf", "wfguest"}} {
		if _, err := c.Deploy(ctx, fn[0], testutil.Wasm(t, fn[1]), nil); err != nil {
			t.Fatalf("deploy %s: %v", fn[0], err)
		}
	}
	for _, tr := range []api.TriggerRequest{
		{Name: "hello", Function: "echo", HTTP: &catalog.HTTPSpec{Path: "/hello"}},
		{Name: "shout", Function: "shout", Queue: &api.QueueRequest{Topic: "words", RespTopic: "shouts"}},
	} {
		if _, err := c.CreateTrigger(ctx, tr); err != nil {
			t.Fatalf("trigger %s: %v", tr.Name, err)
		}
	}
	for _, wf := range [][2]string{
		{"nap", "apiVersion: sluice/v1\nkind: Workflow\nname: nap\ntasks:\n  a: { run: echo, inputs: \"${ input }\" }\n  z: { run: sleep, inputs: 1h, requires: [a] }\n"},
		{"quick", "apiVersion: sluice/v1\nkind: Workflow\nname: quick\noutput: ${ tasks.a.output }\ntasks:\n  a: { run: wf, inputs: \"${ input }\" }\n"},
		{"parent", "apiVersion: sluice/v1\nkind: Workflow\nname: parent\ntasks:\n  q: { run: workflow, inputs: { workflow: quick, input: 1 } }\n  n: { run: workflow, inputs: { workflow: nap, input: 2 }, requires: [q] }\n"},
	} {
		if _, _, err := c.CreateWorkflow(ctx, wf[0], []byte(wf[1])); err != nil {
			t.Fatalf("workflow %s: %v", wf[0], err)
		}
	}
	s := &source{url: srv.URL()}
	// the last nap carries a value stored apart (over 512 KiB)
	s.large = []byte(`"` + strings.Repeat("x", 600<<10) + `"`)
	for i, name := range []string{"nap", "parent", "nap"} {
		in := []byte(`"x"`)
		if i == 2 {
			in = s.large
		}
		inv, err := c.InvokeWorkflow(ctx, name, in, client.InvokeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.sleeping = append(s.sleeping, inv.ID)
	}
	for range 3 {
		inv, err := c.InvokeWorkflow(ctx, "quick", []byte(`7`), client.InvokeOptions{Wait: true})
		if err != nil || inv.Status != engine.StatusSucceeded {
			t.Fatalf("quick: %v %+v", err, inv)
		}
		s.finished = append(s.finished, inv.ID)
	}
	testutil.Eventually(t, 30*time.Second, "three naps asleep", func() bool {
		invs, err := c.Invocations(ctx, "nap")
		if err != nil {
			return false
		}
		asleep := 0
		for _, inv := range invs {
			full, err := c.Invocation(ctx, inv.ID)
			if err != nil {
				return false
			}
			if z := full.Tasks["z"]; z != nil && z.Status == engine.TaskRunning {
				asleep++
			}
		}
		return asleep == 3
	})
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s.log, err = natslog.Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: clusterID, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	cleanups = append(cleanups, func() { s.log.Close() })
	return s
}

// newTarget starts an embedded JetStream server on a fresh data dir and
// connects to it.
func newTarget(t *testing.T) *jslog.Log {
	t.Helper()
	srv, err := jslog.StartEmbedded(jslog.EmbeddedOptions{Dir: t.TempDir(), Listen: "127.0.0.1:0", Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	l, err := jslog.Connect(context.Background(), jslog.Options{URL: srv.URL(), Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// contents reads a stream's payloads.
func contents(t *testing.T, l eventlog.Log, stream string) [][]byte {
	t.Helper()
	var out [][]byte
	if _, err := readAll(context.Background(), l, stream, func(m *eventlog.Msg) error {
		out = append(out, m.Data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// expected is what a complete migration writes: every catalog event, and
// the events of the sleeping invocations' trees, by target stream, in
// order.
func (s *source) expected(t *testing.T, target eventlog.Log) (cat [][]byte, events map[string][][]byte) {
	t.Helper()
	cat = contents(t, s.log, catalog.Channel)
	x := newIndex()
	all := contents(t, s.log, engine.EventsChannel)
	var evs []*engine.Event
	for _, data := range all {
		ev, ok := decode(&eventlog.Msg{Data: data})
		evs = append(evs, ev)
		if ok {
			x.apply(ev)
		}
	}
	sel, _ := x.selection(false)
	events = map[string][][]byte{}
	for i, ev := range evs {
		if ev != nil && sel[ev.Invocation] {
			stream := engine.EventStream(target.Features(), ev.Invocation)
			events[stream] = append(events[stream], all[i])
		}
	}
	return cat, events
}

// checkTarget fails unless the target holds exactly what one complete
// migration writes: each event once, in order.
func (s *source) checkTarget(t *testing.T, target eventlog.Log) {
	t.Helper()
	cat, events := s.expected(t, target)
	if got := contents(t, target, catalog.Channel); !equal(got, cat) {
		t.Fatalf("target catalog: %d events, want the source's %d, in order, each once", len(got), len(cat))
	}
	for stream, want := range events {
		if got := contents(t, target, stream); !equal(got, want) {
			t.Fatalf("target %s: %d events, want %d, in order, each once", stream, len(got), len(want))
		}
	}
}

func equal(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	s := sharedSource(t)
	target := newTarget(t)

	dry, err := Run(ctx, Options{Source: s.log, Target: target, DryRun: true, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, target, catalog.Channel); len(got) != 0 {
		t.Fatalf("a dry run wrote %d catalog events", len(got))
	}

	rep, err := Run(ctx, Options{Source: s.log, Target: target, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %+v", rep)
	if rep.Functions != 3 || rep.Triggers != 2 || rep.Workflows != 3 {
		t.Fatalf("catalog: %d functions, %d triggers, %d workflows; want 3, 2, 3", rep.Functions, rep.Triggers, rep.Workflows)
	}
	if rep.Modules.Copied != 3 || rep.Modules.Skipped != 0 || rep.ModuleBytes == 0 || len(rep.MissingModules) != 0 {
		t.Fatalf("modules: %+v, %d bytes, missing %v; want the 3 deployed copied", rep.Modules, rep.ModuleBytes, rep.MissingModules)
	}
	// the sleepers: nap twice, and parent with its two children (quick, finished; nap, asleep)
	if rep.Invocations.Copied != 5 || rep.Finished != 3 {
		t.Fatalf("invocations: %+v, %d finished left; want 5 copied, the 3 quick ones left", rep.Invocations, rep.Finished)
	}
	if dry.CatalogEvents.Copied != rep.CatalogEvents.Copied || dry.Events.Copied != rep.Events.Copied ||
		dry.Modules != rep.Modules || dry.ModuleBytes != rep.ModuleBytes || dry.Invocations != rep.Invocations {
		t.Fatalf("the dry run counted %+v, the run did %+v", dry, rep)
	}
	s.checkTarget(t, target)
	sum := sha256.Sum256(s.large)
	d := &engine.Data{Blob: hex.EncodeToString(sum[:])}
	if b, err := target.Blobs().Get(ctx, d.BlobName(s.sleeping[2])); err != nil || !bytes.Equal(b, s.large) {
		t.Fatalf("the value stored apart of invocation %s: %d bytes, %v", s.sleeping[2], len(b), err)
	}
	_, events := s.expected(t, target)
	for _, id := range s.finished {
		for _, data := range events[engine.EventStream(target.Features(), id)] {
			if ev, _ := decode(&eventlog.Msg{Data: data}); ev.Invocation == id {
				t.Fatalf("finished invocation %s was copied", id)
			}
		}
	}

	again, err := Run(ctx, Options{Source: s.log, Target: target, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	if again.CatalogEvents.Copied != 0 || again.Events.Copied != 0 || again.Modules.Copied != 0 || again.Invocations.Copied != 0 ||
		again.CatalogEvents.Skipped != rep.CatalogEvents.Copied || again.Events.Skipped != rep.Events.Copied {
		t.Fatalf("a second run: %+v; want everything skipped", again)
	}
	s.checkTarget(t, target)

	// a daemon's catalog on the target sees what the source's did
	cat, err := catalog.Open(ctx, target, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	for _, name := range []string{"echo", "shout", "wf"} {
		f, ok := cat.Function(name)
		if !ok {
			t.Fatalf("function %s is not in the target's catalog", name)
		}
		if _, err := cat.Module(ctx, f); err != nil {
			t.Fatalf("module of %s: %v", name, err)
		}
	}
	if f, _ := cat.Function("echo"); f.Version != 2 {
		t.Fatalf("echo is at version %d, want 2", f.Version)
	}
	if len(cat.Triggers()) != 2 || len(cat.Workflows()) != 3 {
		t.Fatalf("target catalog: %d triggers, %d workflows", len(cat.Triggers()), len(cat.Workflows()))
	}
}

// interrupting is a target whose context is canceled at its nth write
// (publish or blob put): a run killed at that point.
type interrupting struct {
	eventlog.Log
	n, at  int64
	cancel context.CancelFunc
}

func (l *interrupting) hit() bool {
	if atomic.AddInt64(&l.n, 1) == l.at {
		l.cancel()
		return true
	}
	return false
}

func (l *interrupting) Publish(ctx context.Context, stream string, m eventlog.Message) (uint64, error) {
	if l.hit() {
		// the message is stored, the run does not hear it: the worst case
		seq, _ := l.Log.Publish(context.Background(), stream, m)
		return seq, context.Canceled
	}
	return l.Log.Publish(ctx, stream, m)
}

func (l *interrupting) Blobs() eventlog.Blobs { return interruptingBlobs{l.Log.Blobs(), l} }

type interruptingBlobs struct {
	eventlog.Blobs
	l *interrupting
}

func (b interruptingBlobs) Put(ctx context.Context, name string, data []byte) error {
	if b.l.hit() {
		return context.Canceled
	}
	return b.Blobs.Put(ctx, name, data)
}

func TestInterruptedMigrationResumes(t *testing.T) {
	s := sharedSource(t)
	writes := func() int64 {
		target := newTarget(t)
		rep, err := Run(context.Background(), Options{Source: s.log, Target: target})
		if err != nil {
			t.Fatal(err)
		}
		return int64(rep.Modules.Copied + rep.CatalogEvents.Copied + rep.Events.Copied)
	}()
	// interrupted at a module, at the first catalog event, amid the
	// catalog, at the first workflow event and at the last
	for _, at := range []int64{2, 5, 9, writes - 2, writes} {
		target := newTarget(t)
		ctx, cancel := context.WithCancel(context.Background())
		_, err := Run(ctx, Options{Source: s.log, Target: &interrupting{Log: target, at: at, cancel: cancel}})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted at write %d of %d: %v, want canceled", at, writes, err)
		}
		// what the interrupted run left, the unacknowledged write included
		held := len(contents(t, target, catalog.Channel))
		_, events := s.expected(t, target)
		heldEvents := 0
		for stream := range events {
			heldEvents += len(contents(t, target, stream))
		}
		rep, err := Run(context.Background(), Options{Source: s.log, Target: target})
		if err != nil {
			t.Fatalf("after an interruption at write %d: %v", at, err)
		}
		// found in the target, not left to JetStream's de-duplication
		// window (which would take them again after two minutes)
		if rep.CatalogEvents.Skipped != held || rep.Events.Skipped != heldEvents {
			t.Fatalf("after an interruption at write %d, the target held %d catalog and %d workflow events; the run skipped %d and %d",
				at, held, heldEvents, rep.CatalogEvents.Skipped, rep.Events.Skipped)
		}
		s.checkTarget(t, target)
	}
}

func TestForeignCatalogIsRefused(t *testing.T) {
	ctx := context.Background()
	s := sharedSource(t)
	target := newTarget(t)
	cat, err := catalog.Open(ctx, target, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Deploy(ctx, catalog.Function{Name: "other"}, testutil.Wasm(t, "echo-wat")); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	_, err = Run(ctx, Options{Source: s.log, Target: target})
	var fe *ForeignCatalogError
	if !errors.As(err, &fe) || !errors.Is(err, ErrTarget) {
		t.Fatalf("into a target with another catalog: %v, want a ForeignCatalogError", err)
	}
	if fe.Functions != 1 || len(fe.Names) != 1 || fe.Names[0] != "other" || fe.Events != 1 {
		t.Fatalf("the error says %+v: want the target's 1 function, other, in 1 event", fe)
	}
	if got := contents(t, target, catalog.Channel); len(got) != 2 { // Sync and the deploy
		t.Fatalf("a refused migration wrote: the target catalog holds %d events", len(got))
	}
	rep, err := Run(ctx, Options{Source: s.log, Target: target, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, target, catalog.Channel); len(got) != 2+rep.CatalogEvents.Copied {
		t.Fatalf("with --force the target catalog holds %d events, want 2 + %d", len(got), rep.CatalogEvents.Copied)
	}
}
