package triggers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/memlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/testutil"
)

// flakyPubs is a Log whose PublishAsync fails the first publication of
// each payload (in its callback, as a lost acknowledgement does), and
// records how many callers were inside it at once.
type flakyPubs struct {
	eventlog.Log
	mu     sync.Mutex
	failed map[string]bool
	in     atomic.Int32
	most   atomic.Int32
	enter  chan struct{} // a token per caller inside PublishAsync
}

func (f *flakyPubs) PublishAsync(stream string, m eventlog.Message, done func(uint64, error)) error {
	n := f.in.Add(1)
	defer f.in.Add(-1)
	for {
		most := f.most.Load()
		if n <= most || f.most.CompareAndSwap(most, n) {
			break
		}
	}
	// Give a caller publishing at the same time the chance to be seen:
	// wait a little for another one to come in (workers publishing from
	// their own goroutines did; a trigger publishes one at a time).
	select {
	case f.enter <- struct{}{}:
	default:
	}
	select {
	case <-f.enter:
	case <-time.After(20 * time.Millisecond):
	}
	f.mu.Lock()
	fail := !f.failed[string(m.Data)]
	f.failed[string(m.Data)] = true
	f.mu.Unlock()
	if fail {
		go done(0, errors.New("publish: no acknowledgement"))
		return nil
	}
	return f.Log.PublishAsync(stream, m, done)
}

// A trigger's results are published by one goroutine at a time, whatever
// its --max-inflight (concurrent publishers convoyed on the broker
// client's locks), and a message is acked only once its result is stored:
// one whose publication failed comes back and is answered then.
func TestQueuePublishesFromOneGoroutineAndAcksWhatIsStored(t *testing.T) {
	b := memlog.NewBroker()
	conn := b.Connect()
	defer conn.Close()
	const n, inflight = 32, 16
	log := &flakyPubs{Log: conn, failed: map[string]bool{}, enter: make(chan struct{}, 1)}
	// the calls run together: each waits until inflight of them started
	var started atomic.Int32
	all := make(chan struct{})
	inv := fn.InvokerFunc(func(ctx context.Context, _ fn.Target, c fn.Call) (fn.Result, error) {
		if started.Add(1) == inflight {
			close(all)
		}
		select {
		case <-all:
		case <-ctx.Done():
		}
		return fn.Result{Output: c.Input}, nil
	})
	var mu sync.Mutex
	results := map[string]int{}
	sub, err := conn.Subscribe("out", eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		mu.Lock()
		results[string(m.Data)]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx := context.Background()
	publishNumbers(t, conn, "in", n)
	q := NewQueue(log, inv, slog.New(slog.DiscardHandler))
	defer q.Close(ctx)
	if err := q.Start(QueueTrigger{Name: "t", Target: fn.Function("f"), Topic: "in", RespTopic: "out",
		MaxRetries: 3, MaxInflight: inflight, AckWait: 200 * time.Millisecond, Group: "t-1"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "a result for every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(results) == n
	})
	for i := range n {
		mu.Lock()
		got := results[fmt.Sprint(i)]
		mu.Unlock()
		if got != 1 {
			t.Errorf("message %d: %d results stored, want 1 (its first publication failed, the second stored)", i, got)
		}
	}
	if most := log.most.Load(); most != 1 {
		t.Errorf("%d publications at once, want 1: a trigger publishes them one after the other", most)
	}
	testutil.Eventually(t, 10*time.Second, "every message settled", func() bool {
		s, ok := q.Stats("t")
		return ok && s.InFlight == 0 && s.Succeeded == 2*n
	})
}

// A function that refuses calls as busy (its slots and its queue of
// waiting calls full: a --max-inflight above its --concurrency) holds the
// trigger back: the messages wait for a slot and are answered, none fails
// or becomes a dead letter.
func TestQueueWaitsForABusyFunction(t *testing.T) {
	b := memlog.NewBroker()
	conn := b.Connect()
	defer conn.Close()
	const n, inflight, slots = 48, 16, 2
	busy := errcode.Sentinel(errcode.Busy, "busy")
	var running, tried atomic.Int32
	crowd := make(chan struct{}) // closed once inflight calls were tried
	inv := fn.InvokerFunc(func(ctx context.Context, _ fn.Target, c fn.Call) (fn.Result, error) {
		if tried.Add(1) == inflight {
			close(crowd)
		}
		if running.Add(1) > slots {
			running.Add(-1)
			return fn.Result{}, fmt.Errorf("function %q: %w: every slot taken", "f", busy)
		}
		defer running.Add(-1)
		select {
		case <-crowd:
		case <-ctx.Done():
		}
		return fn.Result{Output: c.Input}, nil
	})
	var mu sync.Mutex
	results, dead := map[string]int{}, 0
	for topic, f := range map[string]func(*eventlog.Msg){
		"out":  func(m *eventlog.Msg) { mu.Lock(); results[string(m.Data)]++; mu.Unlock() },
		"dead": func(*eventlog.Msg) { mu.Lock(); dead++; mu.Unlock() },
	} {
		sub, err := conn.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, f)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
	}
	ctx := context.Background()
	publishNumbers(t, conn, "in", n)
	q := NewQueue(conn, inv, slog.New(slog.DiscardHandler))
	defer q.Close(ctx)
	if err := q.Start(QueueTrigger{Name: "t", Target: fn.Function("f"), Topic: "in", RespTopic: "out", ErrorTopic: "dead",
		MaxRetries: 0, MaxInflight: inflight, AckWait: time.Hour, Group: "t-1"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "a result for every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(results) == n || dead > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if dead > 0 || len(results) != n {
		t.Fatalf("%d dead letters and results for %d of %d messages; want no dead letter, every message answered", dead, len(results), n)
	}
	if s, _ := q.Stats("t"); s.Failed != 0 {
		t.Fatalf("%d failed calls counted; a busy function is backpressure, not a failure", s.Failed)
	}
}

// publishNumbers publishes 0, 1, ... n-1 to topic, in order.
func publishNumbers(t *testing.T, conn eventlog.Log, topic string, n int) {
	t.Helper()
	for i := range n {
		if _, err := conn.Publish(context.Background(), topic, eventlog.Message{Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
}
