package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

func embedded(t *testing.T) string {
	t.Helper()
	e, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e.URL()
}

func open(t *testing.T, url, dir string) *Catalog {
	t.Helper()
	ctx := context.Background()
	conn, err := natslog.Connect(ctx, broker.Options{URL: url, ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := Open(ctx, conn, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestModulesAreChunkedAndFetched(t *testing.T) {
	url := embedded(t)
	a := open(t, url, t.TempDir())
	wasm := make([]byte, 3*ChunkSize+123) // four chunks
	rand.Read(wasm)
	ctx := context.Background()
	f, err := a.Deploy(ctx, Function{Name: "big"}, wasm)
	if err != nil {
		t.Fatal(err)
	}
	if f.Chunks != 4 || f.Size != len(wasm) || f.Version != 1 {
		t.Fatalf("deployed %+v", f)
	}
	// Another catalog opened afterwards sees the function at once (Open
	// replays everything stored before it) and fetches the bytes.
	dir := t.TempDir()
	b := open(t, url, dir)
	fb, ok := b.Function("big")
	if !ok {
		t.Fatal("second catalog does not see the function")
	}
	got, err := b.Module(ctx, fb)
	if err != nil || !bytes.Equal(got, wasm) {
		t.Fatalf("fetched %d bytes, %v", len(got), err)
	}
	// now cached on disk; a corrupt cache is detected and fetched again
	path := filepath.Join(dir, f.Module+".wasm")
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = b.Module(ctx, fb)
	if err != nil || !bytes.Equal(got, wasm) {
		t.Fatalf("after corrupting the cache: %d bytes, %v", len(got), err)
	}
	// deploying the same bytes again stores nothing new
	if _, err := b.Deploy(ctx, Function{Name: "same"}, wasm); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentDeploysGetDistinctVersions(t *testing.T) {
	url := embedded(t)
	cats := []*Catalog{open(t, url, ""), open(t, url, "")}
	var mu sync.Mutex
	var versions []int
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			f, err := cats[i%2].Deploy(context.Background(), Function{Name: "race"}, []byte{0, 'a', 's', 'm', byte(i)})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			versions = append(versions, f.Version)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions %v, want 1..10 each once", versions)
		}
	}
	// Deploy returns once its own catalog has the version; the other one
	// follows the channel.
	for i, c := range cats {
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("catalog %d at version 10", i), func() bool {
			f, _ := c.Function("race")
			return f != nil && f.Version == 10
		})
	}
}

// syncBuffer is a log output the follower and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// openAfterEvents publishes raw catalog events, as anyone on the broker
// could, and opens a catalog that replays them, its log kept.
func openAfterEvents(t *testing.T, conn eventlog.Log, events []string) (*Catalog, *syncBuffer) {
	t.Helper()
	ctx := context.Background()
	for _, ev := range events {
		if _, err := conn.Publish(ctx, Channel, eventlog.Message{Data: []byte(ev)}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	c, err := Open(ctx, conn, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, logs
}

// Whoever can publish to the catalog channel (the broker is shared) may
// write anything there: nothing stops the follower. Each bad event is
// skipped with a warning naming its sequence and why, a panicking
// watcher misses one change, and the catalog goes on.
func TestForgedEventsAreSkipped(t *testing.T) {
	url := embedded(t)
	ctx := context.Background()
	conn, err := natslog.Connect(ctx, broker.Options{URL: url, ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	forged := []string{
		`garbage before anything`, // sequence 1: not taken for a dropped start
		`{"type":"FunctionDeployed","function":{"name":"f","module":"../../../etc/passwd","size":10,"chunks":1}}`,
		`{"type":"WorkflowCreated","workflow":{"name":"w","revision":"x","source":"tasks: {}"}}`,
		`{"type":"TriggerCreated","trigger":{"name":"../t","function":"f","cron":{"schedule":"* * *"}}}`,
		`{"type":"Rewind","to":0}`,
	}
	c, logs := openAfterEvents(t, conn, forged)
	if c.Err() != nil || len(c.Functions())+len(c.Workflows())+len(c.Triggers()) != 0 {
		t.Fatalf("after forged events: %v, %d functions", c.Err(), len(c.Functions()))
	}
	for _, want := range []string{
		`msg="skipping a catalog event that is not a JSON event" seq=1`,
		`msg="skipping a malformed catalog event" seq=2 type=FunctionDeployed daemon="" err="invalid: function \"f\": module \"../../../etc/passwd\" is not a sha256 in hex"`,
		`msg="skipping a malformed catalog event" seq=3 type=WorkflowCreated`,
		`msg="skipping a malformed catalog event" seq=4 type=TriggerCreated`,
		`msg="skipping a catalog event of an unknown type (written by a newer sluice?)" seq=5 type=Rewind`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the log does not say %s:\n%s", want, logs.String())
		}
	}
	var seen []string
	var mu sync.Mutex
	c.Watch(func(ch Change) { panic("a watcher's bug") })
	c.Watch(func(ch Change) { mu.Lock(); seen = append(seen, ch.Function.Name); mu.Unlock() })
	if _, err := c.Deploy(ctx, Function{Name: "a"}, []byte("\x00asm-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deploy(ctx, Function{Name: "b"}, []byte("\x00asm-b")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || !strings.Contains(logs.String(), `msg="a catalog watcher panicked; it skipped the event"`) {
		t.Fatalf("the other watcher saw %v; log:\n%s", seen, logs.String())
	}
}

// Triggers a sluice with other routing rules stored may conflict now: the
// catalog still opens, the earlier trigger keeps its route, and the later
// one is skipped with a warning that names it and what to do.
func TestConflictingRoutesStoredEarlierAreSkipped(t *testing.T) {
	url := embedded(t)
	ctx := context.Background()
	conn, err := natslog.Connect(ctx, broker.Options{URL: url, ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	module := mod("m")
	stored := []string{
		`{"type":"FunctionDeployed","id":"1","function":{"name":"f","module":"` + module + `","size":10,"chunks":1}}`,
		`{"type":"TriggerCreated","id":"2","trigger":{"name":"by-id","function":"f","http":{"path":"/users/{id}"}}}`,
		`{"type":"TriggerCreated","id":"3","trigger":{"name":"by-name","function":"f","http":{"path":"/users/{name}","method":"GET"}}}`,
		`{"type":"TriggerCreated","id":"4","trigger":{"name":"star","function":"f","http":{"path":"/a*b"}}}`,
		`{"type":"TriggerCreated","id":"5","trigger":{"name":"me","function":"f","http":{"path":"/users/me"}}}`,
	}
	c, logs := openAfterEvents(t, conn, stored)
	var names []string
	for _, tr := range c.Triggers() {
		names = append(names, tr.Name)
	}
	if c.Err() != nil || strings.Join(names, ",") != "by-id,me" {
		t.Fatalf("triggers %v, err %v", names, c.Err())
	}
	for _, want := range []string{
		`level=WARN msg="skipping an HTTP trigger: its route takes the requests of an earlier trigger's, which keeps them; delete one of them and create it again with another path or method" seq=3 trigger=by-name`,
		`route GET /users/{name} is taken by trigger \"by-id\"`,
		`level=WARN msg="skipping a malformed catalog event" seq=4 type=TriggerCreated daemon="" err="invalid: --http-path \"/a*b\": \"a*b\": * is a whole last segment`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the log does not say %s:\n%s", want, logs.String())
		}
	}
}
