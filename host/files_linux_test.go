package host

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// TestOutOfFiles runs the host short of file descriptors: a compilation
// that cannot open its cache entry fails saying so (it failed as an
// invalid module), and Health reports it until descriptors are free.
func TestOutOfFiles(t *testing.T) {
	h, err := New(context.Background(), NewConfig().WithCacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	wasm := testutil.Wasm(t, "wordcount-c")
	// A new descriptor takes the lowest free number, which the limit must
	// exceed: a limit of the lowest free number leaves none.
	probe, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	free := probe.Fd()
	probe.Close()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	_, loadErr := h.Load(context.Background(), Spec{Name: "wc"}, wasm)
	health := h.Health()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(loadErr, ErrOutOfFiles) || !strings.Contains(loadErr.Error(), "out of file descriptors (raise the limit: ulimit -n, LimitNOFILE)") {
		t.Fatalf("load without file descriptors: %v", loadErr)
	}
	if !errors.Is(health, ErrOutOfFiles) {
		t.Fatalf("health without file descriptors: %v", health)
	}
	if err := h.Health(); err != nil {
		t.Fatalf("health with descriptors again: %v", err)
	}
	if _, err := h.Load(context.Background(), Spec{Name: "wc"}, wasm); err != nil {
		t.Fatalf("load with descriptors again: %v", err)
	}
}
