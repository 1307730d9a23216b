// Package testutil holds what the tests of several packages share: finding
// the guest modules `make wasm` builds, assembling WAT written in a test,
// and polling for a condition.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	rootOnce sync.Once
	root     string
)

// Root returns the repository's root directory.
func Root(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir := filepath.Dir(file)
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	if root == "" {
		t.Fatal("cannot find the repository root (go.mod)")
	}
	return root
}

// WasmPath returns the path of a guest module built by `make wasm`:
// examples/NAME or host/testdata/NAME built into build/wasm/NAME.wasm.
func WasmPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Root(t), "build", "wasm", name+".wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("guest module %s is not built: run `make wasm` first (%v)", name, err)
	}
	return p
}

// Wasm returns the bytes of a guest module built by `make wasm`.
func Wasm(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(WasmPath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WATFile assembles a WebAssembly text module written in a test with
// wabt's wat2wasm, and returns the path of the module.
func WATFile(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("wat2wasm", "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm (install wabt, or run make test, which does): %v\n%s", err, msg)
	}
	return out
}

// WAT assembles a WebAssembly text module written in a test (see WATFile)
// and returns its bytes.
func WAT(t testing.TB, src string) []byte {
	t.Helper()
	b, err := os.ReadFile(WATFile(t, src))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// patience multiplies every wait of Eventually: a duration a test gives
// is what a quiet machine needs, and the suite runs with the race
// detector, several packages and tests at once, on shared machines
// (SLUICE_TEST_PATIENCE overrides it). It only makes a failing wait
// fail later.
var patience = func() time.Duration {
	if n, err := strconv.Atoi(os.Getenv("SLUICE_TEST_PATIENCE")); err == nil && n > 0 {
		return time.Duration(n)
	}
	return 3
}()

// Eventually polls cond every few milliseconds until it returns true, and
// fails the test if it has not within d (times patience).
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", d*patience, what)
	}
}

// Within is Eventually without the failure: whether cond held within d
// (times patience), for a test that has more to say when it did not.
func Within(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d * patience)
	wait := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}
