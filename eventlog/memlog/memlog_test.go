package memlog_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/eventlogtest"
	"github.com/sluicehq/sluice/eventlog/memlog"
	"github.com/sluicehq/sluice/testutil"
)

const waitFor = 10 * time.Second

func TestConformance(t *testing.T) {
	b := memlog.NewBroker()
	eventlogtest.Run(t, eventlogtest.Harness{
		Connect: func(testing.TB) eventlog.Log { return b.Connect() },
		Restart: func(testing.TB) { b.Restart() },
		Cut:     func(_ testing.TB, l eventlog.Log) { b.Cut(l, 50*time.Millisecond) },
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return c
}

// TestDown: while its link is down a connection says so, Publish waits
// and gives up with ErrNotConnected when its context ends, PublishAsync,
// Ack and Nak fail at once, and subscriptions deliver nothing; once it is
// back everything resumes.
func TestDown(t *testing.T) {
	b := memlog.NewBroker()
	l := b.Connect()
	defer l.Close()
	var got atomic.Int32
	var held atomic.Pointer[eventlog.Msg]
	if _, err := l.Subscribe("jobs", eventlog.SubOptions{Queue: "q", ManualAck: true}, func(m *eventlog.Msg) {
		held.Store(m)
		got.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Publish(ctx(t), "jobs", eventlog.Message{Data: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "the first message", func() bool { return got.Load() == 1 })

	b.Cut(l, time.Hour)
	if l.Connected() || !l.UpSince().IsZero() {
		t.Fatalf("a cut connection: Connected() = %v, UpSince() = %s", l.Connected(), l.UpSince())
	}
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Publish(short, "jobs", eventlog.Message{Data: []byte("b")}); !errors.Is(err, eventlog.ErrNotConnected) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish while down: %v, want ErrNotConnected and the context's error", err)
	}
	if err := l.PublishAsync("jobs", eventlog.Message{Data: []byte("b")}, func(uint64, error) { t.Error("done called") }); !errors.Is(err, eventlog.ErrNotConnected) {
		t.Fatalf("PublishAsync while down: %v, want ErrNotConnected", err)
	}
	if err := held.Load().Ack(); !errors.Is(err, eventlog.ErrNotConnected) {
		t.Fatalf("Ack while down: %v, want ErrNotConnected", err)
	}
	if err := held.Load().Nak(0); !errors.Is(err, eventlog.ErrNotConnected) {
		t.Fatalf("Nak while down: %v, want ErrNotConnected", err)
	}
	// another connection publishes meanwhile: nothing reaches the cut one
	other := b.Connect()
	defer other.Close()
	if _, err := other.Publish(ctx(t), "jobs", eventlog.Message{Data: []byte("c")}); err != nil {
		t.Fatal(err)
	}

	published := make(chan error, 1)
	go func() {
		_, err := l.Publish(ctx(t), "jobs", eventlog.Message{Data: []byte("d")})
		published <- err
	}()
	if got.Load() != 1 {
		t.Fatalf("%d messages delivered to a connection that is down", got.Load())
	}
	b.Cut(l, 0) // back now
	if err := <-published; err != nil {
		t.Fatalf("a Publish waiting for the link: %v", err)
	}
	if err := l.WaitUp(ctx(t)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "c and d after the link came back", func() bool { return got.Load() >= 3 })
}

// TestSequencesHaveGaps: the broker numbers every stream's messages in
// one sequence, as JetStream does: code that assumes consecutive
// sequences in a stream fails on it.
func TestSequencesHaveGaps(t *testing.T) {
	l := memlog.NewBroker().Connect()
	defer l.Close()
	var seqs []uint64
	for _, st := range []string{"a", "b", "a"} {
		seq, err := l.Publish(ctx(t), st, eventlog.Message{Data: []byte(st)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Fatalf("sequences %v, want 1, 2, 3: stream a has a gap", seqs)
	}
}

// TestDedupWindow: an ID is forgotten after the window.
func TestDedupWindow(t *testing.T) {
	const window = 20 * time.Millisecond
	l := memlog.NewBroker(memlog.WithDedupWindow(window)).Connect()
	defer l.Close()
	first, err := l.Publish(ctx(t), "s", eventlog.Message{Data: []byte("a"), ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := l.Publish(ctx(t), "s", eventlog.Message{Data: []byte("a"), ID: "x"}); again != first {
		t.Fatalf("within the window: sequence %d, want %d", again, first)
	}
	start := time.Now()
	testutil.Eventually(t, waitFor, "the window to pass", func() bool { return time.Since(start) > 2*window })
	if later, _ := l.Publish(ctx(t), "s", eventlog.Message{Data: []byte("a"), ID: "x"}); later == first {
		t.Fatalf("after the window: the message was not stored again (sequence %d)", later)
	}
	if f := l.Features(); f.DedupWindow != window {
		t.Fatalf("Features().DedupWindow = %s, want %s", f.DedupWindow, window)
	}
}

// TestMaxPayload: the limit is the broker's option, and says so.
func TestMaxPayload(t *testing.T) {
	l := memlog.NewBroker(memlog.WithMaxPayload(10)).Connect()
	defer l.Close()
	if f := l.Features(); f.MaxPayload != 10 {
		t.Fatalf("Features().MaxPayload = %d, want 10", f.MaxPayload)
	}
	_, err := l.Publish(ctx(t), "s", eventlog.Message{Data: make([]byte, 11)})
	if !errors.Is(err, eventlog.ErrTooLarge) {
		t.Fatalf("11 bytes over a limit of 10: %v", err)
	}
	t.Log(err)
	if memlog.NewBroker().Features().MaxPayload != memlog.DefaultMaxPayload {
		t.Fatal("the default MaxPayload is not DefaultMaxPayload")
	}
}

// TestNoGoroutineLeft: closing every connection ends every goroutine the
// broker started: subscriptions (plain and queue, one of them with a
// redelivery due), callbacks of PublishAsync, reconnections.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	b := memlog.NewBroker()
	for range 3 {
		l := b.Connect()
		if _, err := l.Subscribe("s", eventlog.SubOptions{Start: eventlog.First}, func(*eventlog.Msg) {}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Subscribe("s", eventlog.SubOptions{Queue: "q", ManualAck: true, AckWait: time.Hour}, func(*eventlog.Msg) {}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		if err := l.PublishAsync("s", eventlog.Message{Data: []byte("x")}, func(uint64, error) { close(done) }); err != nil {
			t.Fatal(err)
		}
		<-done
		b.Cut(l, time.Hour)
		l.Close()
	}
	b.Restart()
	if n := b.Connections(); n != 0 {
		t.Fatalf("%d connections open after closing all", n)
	}
	testutil.Eventually(t, waitFor, "the broker's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}
