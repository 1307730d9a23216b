package natslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/testutil"
)

// putterURL, set in the environment, makes the test binary a process
// that Puts crashValue() under "crash" to the server at that URL, then
// exits.
const putterURL = "SLUICE_TEST_BLOB_PUTTER"

func TestMain(m *testing.M) {
	if url := os.Getenv(putterURL); url != "" {
		os.Exit(putter(url))
	}
	os.Exit(m.Run())
}

func putter(url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Connect(ctx, broker.Options{URL: url, ClusterID: "test", Name: "putter"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := l.Blobs().Put(ctx, "crash", crashValue()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// crashValue is 64 MiB (the engine's default limit on a value): 128
// chunks, time enough to be killed in the middle.
func crashValue() []byte {
	v := make([]byte, 64<<20)
	for i := range v {
		v[i] = byte(i / ChunkSize)
	}
	return v
}

// TestBlobPutKilled: a process killed (SIGKILL) while it stores a value's
// chunks leaves no value, not part of one; the value stored again is
// read whole.
func TestBlobPutKilled(t *testing.T) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: t.TempDir(), Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test", Name: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Blobs().Put(ctx, "before", []byte("a value")); err != nil {
		t.Fatal(err)
	}
	base, err := l.Last(ctx, BlobDataChannel)
	if err != nil {
		t.Fatal(err)
	}
	// Killed as soon as its first chunk is stored, long before all 128.
	stored := make(chan struct{}, 1)
	sub, err := l.Subscribe(BlobDataChannel, eventlog.SubOptions{Start: eventlog.New, MaxInflight: 1}, func(*eventlog.Msg) {
		select {
		case stored <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), putterURL+"="+srv.URL())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-stored:
	case err := <-exited:
		t.Fatalf("the putter ended before it stored anything: %v", err)
	case <-ctx.Done():
		t.Fatal("the putter stored nothing")
	}
	cmd.Process.Kill()
	sub.Close()
	var exit *exec.ExitError
	if err := <-exited; !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("the putter ended with %v before it was killed: the test did not cut a Put short", err)
	}
	// What it sent before it died is stored in the end; its Put had not
	// seen every chunk acked, so it wrote no index record.
	testutil.Eventually(t, time.Minute, "the chunks the putter sent to be stored", func() bool {
		last, err := l.Last(ctx, BlobDataChannel)
		return err == nil && last > base
	})
	if got, err := l.Blobs().Get(ctx, "crash"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("Get of a value whose Put was killed: %d bytes, %v; want ErrNotFound", len(got), err)
	}
	want := crashValue()
	if err := l.Blobs().Put(ctx, "crash", want); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Blobs().Get(ctx, "crash"); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get of the value stored again: %d bytes (equal %t), %v", len(got), bytes.Equal(got, want), err)
	}
}
