package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/testutil"
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
	conn, err := broker.Connect(ctx, broker.Options{URL: url, ClusterID: "test"})
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
