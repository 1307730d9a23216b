package eventlogtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/eventlog"
)

// manyBlobs is how many values testBlobsMany stores: enough that a
// store of one channel (or one file) per value shows its cost, few
// enough for every broker to write them in seconds.
const manyBlobs = 2000

// putAll stores blobs named s.name(t, "vI") holding "value I" from
// several goroutines and returns the names.
func (s *suite) putAll(t *testing.T, l eventlog.Log, n int) []string {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = s.name(t, fmt.Sprintf("v%d", i))
	}
	var (
		wg   sync.WaitGroup
		next = make(chan int)
		errs = make(chan error, n)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := l.Blobs().Put(ctx(t), names[i], []byte(fmt.Sprintf("value %d", i))); err != nil {
					errs <- fmt.Errorf("put value %d: %w", i, err)
				}
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return names
}

// expectAll reads back what putAll stored.
func expectAll(t *testing.T, l eventlog.Log, names []string, when string) {
	t.Helper()
	for i, name := range names {
		got, err := l.Blobs().Get(ctx(t), name)
		if want := fmt.Sprintf("value %d", i); err != nil || string(got) != want {
			t.Fatalf("%s: value %d of %d: %q, %v; want %q", when, i+1, len(names), got, err, want)
		}
	}
}

// testBlobsMany: thousands of values stored by one connection are all
// read by a new one (a daemon started later).
func (s *suite) testBlobsMany(t *testing.T) {
	names := s.putAll(t, s.connect(t), manyBlobs)
	expectAll(t, s.connect(t), names, "on a new connection")
}

// testBlobsAtOnce: a value stored by one connection is read by another
// right after Put returns, though the reader had looked at the store
// before; a missing name is ErrNotFound, promptly.
func (s *suite) testBlobsAtOnce(t *testing.T) {
	writer, reader := s.connect(t), s.connect(t)
	name := s.name(t, "value")
	if _, err := reader.Blobs().Get(ctx(t), name); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("get a value not stored yet: %v, want ErrNotFound", err)
	}
	for i := range 5 {
		data := []byte(fmt.Sprintf("stored %d", i))
		if err := writer.Blobs().Put(ctx(t), name+fmt.Sprint(i), data); err != nil {
			t.Fatalf("put: %v", err)
		}
		if got, err := reader.Blobs().Get(ctx(t), name+fmt.Sprint(i)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get on another connection right after Put returned: %q, %v; want %q", got, err, data)
		}
	}
	// A missing name costs one look at the store, not a wait: ten of
	// them take far less than waitFor (an implementation that waits for
	// a value to appear takes seconds each).
	c, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for i := range 10 {
		if _, err := reader.Blobs().Get(c, s.name(t, fmt.Sprintf("missing%d", i))); !errors.Is(err, eventlog.ErrNotFound) {
			t.Fatalf("get missing value %d of 10 (all within %s): %v, want ErrNotFound", i+1, waitFor, err)
		}
	}
}

// testBlobsLarge: a 32 MiB value (half the engine's default limit on a
// workflow value) round-trips exactly, across connections.
func (s *suite) testBlobsLarge(t *testing.T) {
	data := make([]byte, 32<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	name := s.name(t, "large")
	if err := s.connect(t).Blobs().Put(ctx(t), name, data); err != nil {
		t.Fatalf("put 32 MiB: %v", err)
	}
	got, err := s.connect(t).Blobs().Get(ctx(t), name)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get 32 MiB on another connection: %d bytes (equal: %t), %v", len(got), bytes.Equal(got, data), err)
	}
}

// testBlobsRestart: values stored before the broker restarted are read
// after it, on the connection that lived through it and on a new one; a
// value stored after it too.
func (s *suite) testBlobsRestart(t *testing.T) {
	if s.h.Restart == nil {
		t.Logf("the harness cannot restart the broker: not tested")
		return
	}
	l := s.connect(t)
	names := s.putAll(t, l, 100)
	s.h.Restart(t)
	expectAll(t, l, names, "after a restart, on the connection that lived through it")
	expectAll(t, s.connect(t), names, "after a restart, on a new connection")
	after := s.name(t, "after")
	if err := l.Blobs().Put(ctx(t), after, []byte("after")); err != nil {
		t.Fatalf("put after a restart: %v", err)
	}
	if got, err := s.connect(t).Blobs().Get(ctx(t), after); err != nil || string(got) != "after" {
		t.Fatalf("get a value stored after a restart: %q, %v", got, err)
	}
}
