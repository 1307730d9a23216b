package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
)

// TestEarlierVersion loads an earlier version of a function while the
// current one serves calls: the current version's entry and loaded
// function are untouched, the earlier one runs its own module, is closed
// once idle, and stays loadable after the function is deleted.
func TestEarlierVersion(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, host.NewConfig())
	r.reg.oldIdle = 200 * time.Millisecond
	r.deploy(t, "f", "echo-wat", catalog.Config{ABI: "reactor"})
	r.deploy(t, "f", "wordcount-c", catalog.Config{ABI: "reactor"})
	testutil.Eventually(t, testTimeout, "version 2 to be current", func() bool {
		_, fn, _ := r.reg.Loaded("f")
		return fn != nil && fn.Version == 2
	})
	if out, err := r.invoke(t, "f", "one"); err != nil || out != `{"bytes":3,"words":1,"lines":1}` {
		t.Fatalf("current: %q, %v", out, err)
	}
	cur, _, _ := r.reg.Loaded("f")

	// the current version serves calls while version 1 loads and runs
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served int
	var bad error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, fn, err := r.reg.Invoke(ctx, "f", host.Call{Input: []byte("two words")})
			if err != nil || fn.Version != 2 || string(res.Output) != `{"bytes":9,"words":2,"lines":1}` {
				bad = fmt.Errorf("a call of the current version: %q version %v: %v", res.Output, fn, err)
				return
			}
			served++
		}
	}()
	for i := 0; i < 20; i++ {
		res, fn, err := r.reg.InvokeVersion(ctx, "f", 1, host.Call{Input: []byte("echoed")})
		if err != nil || fn.Version != 1 || string(res.Output) != "echoed" {
			t.Fatalf("version 1: %q version %v: %v", res.Output, fn, err)
		}
	}
	close(stop)
	wg.Wait()
	if bad != nil {
		t.Fatal(bad)
	}
	t.Logf("the current version served %d calls meanwhile", served)
	if now, fn, ok := r.reg.Loaded("f"); !ok || now != cur || fn.Version != 2 {
		t.Fatalf("the current version changed: %p version %v, was %p", now, fn, cur)
	}
	// the current version asked for by its number is the current entry
	if _, fn, err := r.reg.InvokeVersion(ctx, "f", 2, host.Call{Input: []byte("x")}); err != nil || fn.Version != 2 {
		t.Fatalf("version 2 by number: %v %v", fn, err)
	}
	r.reg.mu.Lock()
	n := len(r.reg.old)
	r.reg.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d earlier versions loaded, want 1", n)
	}

	// idle, it is closed
	f1, _, release, err := r.reg.getVersion(ctx, "f", 1)
	if err != nil {
		t.Fatal(err)
	}
	release()
	testutil.Eventually(t, testTimeout, "the idle earlier version to be closed", func() bool {
		_, err := f1.Invoke(ctx, host.Call{Input: []byte("x")})
		return errors.Is(err, host.ErrClosed)
	})
	r.reg.mu.Lock()
	n = len(r.reg.old)
	r.reg.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d earlier versions still loaded", n)
	}
	if _, err := cur.Invoke(ctx, host.Call{Input: []byte("x")}); err != nil {
		t.Fatalf("the current version after the sweep: %v", err)
	}

	// deleted: no current version, both versions still callable by number
	if err := r.cat.DeleteFunction(ctx, "f", false); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, testTimeout, "the delete", func() bool { d, _ := r.reg.Counts(); return d == 0 })
	if _, err := r.invoke(t, "f", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the current version of a deleted function: %v", err)
	}
	for v, want := range map[int]string{1: "kept", 2: `{"bytes":4,"words":1,"lines":1}`} {
		res, _, err := r.reg.InvokeVersion(ctx, "f", v, host.Call{Input: []byte("kept")})
		if err != nil || string(res.Output) != want {
			t.Fatalf("version %d of the deleted function: %q, %v", v, res.Output, err)
		}
	}

	// a version never deployed is refused, naming it
	_, _, err = r.reg.InvokeVersion(ctx, "f", 3, host.Call{})
	if !errors.Is(err, ErrVersionNotKept) || !strings.Contains(err.Error(), `function "f" version 3 is not in this daemon's catalog`) {
		t.Fatalf("version 3: %v", err)
	}
}

// TestEarlierVersionsBounded: at most maxOldVersions earlier versions are
// loaded at once, the least recently used closed first; one beyond the
// catalog's history is refused with the reason.
func TestEarlierVersionsBounded(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, host.NewConfig())
	n := maxOldVersions + 3
	for i := 0; i <= n; i++ {
		r.deploy(t, "f", "echo-wat", catalog.Config{ABI: "reactor", Concurrency: i + 1})
	}
	var first *host.Function
	for v := 1; v <= n; v++ {
		f, fn, release, err := r.reg.getVersion(ctx, "f", v)
		if err != nil || fn.Version != v || f.Spec().Limits.Concurrency != v {
			t.Fatalf("version %d: %v %v", v, fn, err)
		}
		release()
		if v == 1 {
			first = f
		}
		r.reg.mu.Lock()
		loaded := len(r.reg.old)
		r.reg.mu.Unlock()
		if loaded > maxOldVersions {
			t.Fatalf("%d earlier versions loaded, the limit is %d", loaded, maxOldVersions)
		}
	}
	testutil.Eventually(t, testTimeout, "the least recently used version to be closed", func() bool {
		_, err := first.Invoke(ctx, host.Call{})
		return errors.Is(err, host.ErrClosed)
	})
	if res, _, err := r.reg.InvokeVersion(ctx, "f", 1, host.Call{Input: []byte("again")}); err != nil || string(res.Output) != "again" {
		t.Fatalf("version 1 loaded again: %q %v", res.Output, err)
	}

	// beyond the history
	for i := 0; i < catalog.KeepVersions; i++ {
		r.deploy(t, "f", "echo-wat", catalog.Config{ABI: "reactor"})
	}
	last := n + 1 + catalog.KeepVersions
	testutil.Eventually(t, testTimeout, "the deploys", func() bool { return r.cat.LastVersion("f") == last })
	_, _, err := r.reg.InvokeVersion(ctx, "f", 2, host.Call{})
	want := fmt.Sprintf(`function "f" version 2 is no longer kept: the catalog keeps the last %d versions of each function, and %d is the last`, catalog.KeepVersions, last)
	if !errors.Is(err, ErrVersionNotKept) || !strings.Contains(err.Error(), want) {
		t.Fatalf("version 2: %v, want %q", err, want)
	}
}

// BenchmarkInvokeVersion compares a call of the current version by name
// (Invoke), by its number (InvokeVersion, what a workflow task pinned to
// it makes) and a call of an earlier version loaded beside it.
//
//	go test ./internal/registry -run '^$' -bench InvokeVersion -count 5
func BenchmarkInvokeVersion(b *testing.B) {
	ctx := context.Background()
	r := newRig(b, host.NewConfig())
	r.deploy(b, "f", "echo-wat", catalog.Config{ABI: "reactor"})
	r.deploy(b, "f", "echo-wat", catalog.Config{ABI: "reactor", Concurrency: 2})
	testutil.Eventually(b, testTimeout, "version 2 to be current", func() bool {
		_, fn, _ := r.reg.Loaded("f")
		return fn != nil && fn.Version == 2
	})
	in := host.Call{Input: make([]byte, 1024)}
	for _, c := range []struct {
		name    string
		version int
	}{{"current-by-name", 0}, {"current-by-number", 2}, {"earlier", 1}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, fn, err := r.reg.InvokeVersion(ctx, "f", c.version, in); err != nil || c.version != 0 && fn.Version != c.version {
					b.Fatal(fn, err)
				}
			}
		})
	}
}
