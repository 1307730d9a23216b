package natslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/testutil"
)

// open starts an embedded NATS Streaming server (memory store) on a free
// loopback port and connects a Log to it.
func open(t *testing.T) *Log {
	t.Helper()
	return openStore(t, "")
}

func publish(t *testing.T, l *Log, stream string, data ...string) {
	t.Helper()
	for _, d := range data {
		if _, err := l.Publish(context.Background(), stream, eventlog.Message{Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFeatures(t *testing.T) {
	l := open(t)
	f := l.Features()
	want := eventlog.Features{Name: "nats-streaming", MaxPayload: 1<<20 - payloadOverhead}
	if f != want {
		t.Fatalf("features %+v, want %+v (NATS's default max_payload is 1 MiB)", f, want)
	}
}

func TestMsgFields(t *testing.T) {
	l := open(t)
	before := time.Now().Add(-time.Minute)
	publish(t, l, "orders", "a", "b", "c")
	got := make(chan *eventlog.Msg, 3)
	sub, err := l.Subscribe("orders", eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i, want := range []string{"a", "b", "c"} {
		m := <-got
		if m.Stream != "orders" || m.Sequence != uint64(i+1) || string(m.Data) != want || m.Deliveries != 1 || m.Redelivered() {
			t.Fatalf("message %d: %+v, want stream orders, sequence %d, data %q, 1 delivery", i, m, i+1, want)
		}
		if m.Time.Before(before) || m.Time.After(time.Now()) {
			t.Fatalf("message %d stored at %v: not the server's timestamp of now", i, m.Time)
		}
		if m.Ack() != nil || m.Nak(0) != nil {
			t.Fatal("settling a plain subscription's message is a no-op")
		}
	}
}

func TestStartPositions(t *testing.T) {
	l := open(t)
	publish(t, l, "s", "1", "2", "3", "4")
	cases := []struct {
		name  string
		start eventlog.Start
		want  uint64
	}{
		{"first", eventlog.First, 1},
		{"last", eventlog.Last, 4},
		{"at", eventlog.At(3), 3},
		{"since", eventlog.Since(time.Now().Add(-time.Hour)), 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := make(chan uint64, 4)
			sub, err := l.Subscribe("s", eventlog.SubOptions{Start: c.start}, func(m *eventlog.Msg) { got <- m.Sequence })
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if seq := <-got; seq != c.want {
				t.Fatalf("first delivered %d, want %d", seq, c.want)
			}
		})
	}
	t.Run("new", func(t *testing.T) {
		got := make(chan uint64, 4)
		sub, err := l.Subscribe("s", eventlog.SubOptions{Start: eventlog.New}, func(m *eventlog.Msg) { got <- m.Sequence })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		publish(t, l, "s", "5")
		if seq := <-got; seq != 5 {
			t.Fatalf("first delivered %d, want 5 (only what is published after subscribing)", seq)
		}
	})
}

// TestDeliveriesCount: a queue message left unacked comes again after
// AckWait, counted; Nak does not make it come sooner, and is no error.
func TestDeliveriesCount(t *testing.T) {
	l := open(t)
	publish(t, l, "work", "job")
	var mu sync.Mutex
	var counts []int
	acked := make(chan struct{})
	sub, err := l.Subscribe("work", eventlog.SubOptions{Queue: "workers", Start: eventlog.First, ManualAck: true, AckWait: time.Second},
		func(m *eventlog.Msg) {
			mu.Lock()
			counts = append(counts, m.Deliveries)
			n := len(counts)
			mu.Unlock()
			if m.Redelivered() != (m.Deliveries > 1) {
				t.Errorf("delivery %d: Redelivered %v", m.Deliveries, m.Redelivered())
			}
			if n < 3 {
				if err := m.Nak(0); err != nil {
					t.Errorf("nak: %v", err)
				}
				return
			}
			if err := m.Ack(); err != nil {
				t.Errorf("ack: %v", err)
			}
			close(acked)
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	select {
	case <-acked:
	case <-time.After(30 * time.Second):
		t.Fatal("the message was not delivered three times")
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(counts) != "[1 2 3]" {
		t.Fatalf("deliveries %v, want [1 2 3]", counts)
	}
}

// TestQueueResumes: a durable queue closed and subscribed again goes on
// after what it acked; Start applies only when it is created.
func TestQueueResumes(t *testing.T) {
	l := open(t)
	publish(t, l, "q", "1", "2")
	o := eventlog.SubOptions{Queue: "g", Start: eventlog.First, ManualAck: true}
	got := make(chan uint64, 8)
	handler := func(m *eventlog.Msg) {
		if err := m.Ack(); err != nil {
			t.Errorf("ack: %v", err)
		}
		got <- m.Sequence
	}
	sub, err := l.Subscribe("q", o, handler)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := <-got, <-got; a != 1 || b != 2 {
		t.Fatalf("got %d, %d", a, b)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	publish(t, l, "q", "3")
	sub, err = l.Subscribe("q", o, handler)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if seq := <-got; seq != 3 {
		t.Fatalf("resumed at %d, want 3", seq)
	}
}

func TestLast(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	if seq, err := l.Last(ctx, "empty"); err != nil || seq != 0 {
		t.Fatalf("Last of an empty stream: %d, %v; want 0", seq, err)
	}
	publish(t, l, "five", "1", "2", "3", "4", "5")
	if seq, err := l.Last(ctx, "five"); err != nil || seq != 5 {
		t.Fatalf("Last: %d, %v; want 5", seq, err)
	}
	if _, err := l.Last(ctx, "no spaces"); !errors.Is(err, eventlog.ErrInvalidName) {
		t.Fatalf("Last of an invalid name: %v, want ErrInvalidName", err)
	}
}

func TestPublishErrors(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	max := l.Features().MaxPayload
	if _, err := l.Publish(ctx, "big", eventlog.Message{Data: make([]byte, max)}); err != nil {
		t.Fatalf("a message of MaxPayload bytes: %v", err)
	}
	over := int(l.c.MaxPayload()) + 1 // the server's max_payload
	if _, err := l.Publish(ctx, "big", eventlog.Message{Data: make([]byte, over)}); !errors.Is(err, eventlog.ErrTooLarge) {
		t.Fatalf("a message over the server's max_payload: %v, want ErrTooLarge", err)
	}
	if err := l.PublishAsync("big", eventlog.Message{Data: make([]byte, over)}, func(uint64, error) {}); !errors.Is(err, eventlog.ErrTooLarge) {
		t.Fatalf("an async message over the server's max_payload: %v, want ErrTooLarge", err)
	}
	for _, name := range []string{"", "a b", "a.>", "*", ".a", "a.", "a..b"} {
		if _, err := l.Publish(ctx, name, eventlog.Message{Data: []byte("x")}); !errors.Is(err, eventlog.ErrInvalidName) {
			t.Errorf("publish to %q: %v, want ErrInvalidName", name, err)
		}
		if _, err := l.Subscribe(name, eventlog.SubOptions{}, func(*eventlog.Msg) {}); !errors.Is(err, eventlog.ErrInvalidName) {
			t.Errorf("subscribe to %q: %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := l.Subscribe("ok", eventlog.SubOptions{Queue: "a b"}, func(*eventlog.Msg) {}); !errors.Is(err, eventlog.ErrInvalidName) {
		t.Errorf("a queue named %q: %v, want ErrInvalidName", "a b", err)
	}
	if err := l.Delete(ctx, "big"); !errors.Is(err, eventlog.ErrUnsupported) {
		t.Fatalf("Delete: %v, want ErrUnsupported", err)
	}
	done := make(chan error, 1)
	if err := l.PublishAsync("async", eventlog.Message{Data: []byte("x")}, func(_ uint64, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("async publish acknowledged with %v", err)
	}
	if seq, err := l.Last(ctx, "async"); err != nil || seq != 1 {
		t.Fatalf("the async message: Last %d, %v; want 1", seq, err)
	}
}

func TestNotConnectedIsTheContractsError(t *testing.T) {
	l := open(t)
	l.Close()
	_, err := l.Publish(context.Background(), "x", eventlog.Message{Data: []byte("x")})
	if !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("publish after Close: %v, want eventlog.ErrClosed", err)
	}
	if !errors.Is(broker.ErrNotConnected, eventlog.ErrNotConnected) {
		t.Fatal("broker.ErrNotConnected is not an eventlog.ErrNotConnected")
	}
}

func TestBlobs(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	b := l.Blobs()
	big := make([]byte, 3<<20+123)
	for i := range big {
		big[i] = byte(i * 7)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"big", big},
		{"one-chunk", []byte("hello")},
		{"exact", bytes.Repeat([]byte{1}, 2*ChunkSize)},
		{"empty", []byte{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := b.Put(ctx, c.name, c.data); err != nil {
				t.Fatal(err)
			}
			got, err := b.Get(ctx, c.name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.data) {
				t.Fatalf("got %d bytes back, want the %d put", len(got), len(c.data))
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if _, err := b.Get(ctx, "missing"); !errors.Is(err, eventlog.ErrNotFound) {
			t.Fatalf("Get of a missing blob: %v, want ErrNotFound", err)
		}
	})
	t.Run("replaced", func(t *testing.T) {
		for _, v := range []string{"first", "second value"} {
			if err := b.Put(ctx, "r", []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := b.Get(ctx, "r"); err != nil || string(got) != "second value" {
			t.Fatalf("Get after two Puts: %q, %v; want the second", got, err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := b.Delete(ctx, "big"); !errors.Is(err, eventlog.ErrUnsupported) {
			t.Fatalf("Delete: %v, want ErrUnsupported", err)
		}
	})
	t.Run("invalid name", func(t *testing.T) {
		if err := b.Put(ctx, "a/b", nil); !errors.Is(err, eventlog.ErrInvalidName) {
			t.Fatalf("Put: %v, want ErrInvalidName", err)
		}
	})
}

// TestPlainSubscriptionResumesAfterRestart: a plain subscription resumes
// after the last message it delivered when the server comes back, each
// message once.
func TestPlainSubscriptionResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL()
	ctx := context.Background()
	l, err := Connect(ctx, broker.Options{URL: url, ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var got []uint64
	sub, err := l.Subscribe("e", eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		mu.Lock()
		got = append(got, m.Sequence)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	publish(t, l, "e", "1", "2")
	srv.Shutdown()
	testutil.Eventually(t, 10*time.Second, "the Log to notice", func() bool { return !l.Connected() && l.UpSince().IsZero() })
	srv2, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: dir, Listen: url[len("nats://"):], ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Shutdown)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := l.WaitUp(wctx); err != nil {
		t.Fatal(err)
	}
	publish(t, l, "e", "3")
	testutil.Eventually(t, 20*time.Second, "3 messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("sequences %v, want [1 2 3]", got)
	}
}

// BenchmarkLast: what Last costs on a stream that holds messages (a
// subscription's round trip); on an empty one it is emptyWait.
func BenchmarkLast(b *testing.B) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	ctx := context.Background()
	l, err := Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Publish(ctx, "s", eventlog.Message{Data: []byte("x")}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if seq, err := l.Last(ctx, "s"); err != nil || seq != 1 {
			b.Fatal(seq, err)
		}
	}
}

// BenchmarkBlobGet: fetching a 3 MiB module (6 chunks) from the memory
// store, from its index record to the checked bytes.
func BenchmarkBlobGet(b *testing.B) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	ctx := context.Background()
	l, err := Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, 3<<20)
	if err := l.Blobs().Put(ctx, "m", data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got, err := l.Blobs().Get(ctx, "m"); err != nil || len(got) != len(data) {
			b.Fatal(len(got), err)
		}
	}
}
