package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/memlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/internal/natslog/natslogtest"
	"github.com/sluicehq/sluice/testutil"
)

// A panic while a message is processed (a bug in sluice that a message
// finds) fails that call only: the message is retried and dead-lettered by
// the usual rules, the others are served, and the process goes on.
func TestQueuePanicIsAFailedCall(t *testing.T) {
	conn := natslogtest.Connect(t)
	ctx := context.Background()

	var mu sync.Mutex
	calls := map[string]int{}
	inv := fn.InvokerFunc(func(_ context.Context, _ fn.Target, c fn.Call) (fn.Result, error) {
		mu.Lock()
		calls[string(c.Input)]++
		mu.Unlock()
		if string(c.Input) == "boom" {
			var m map[string]int
			m["x"]++ // assignment to entry in nil map
		}
		return fn.Result{Output: c.Input}, nil
	})
	var out, dead []string
	collect(t, conn, &mu, map[string]*[]string{"out": &out, "dead": &dead})
	q := NewQueue(conn, inv, slog.New(slog.DiscardHandler))
	defer q.Close(ctx)
	if err := q.Start(QueueTrigger{Name: "t", Target: fn.Function("f"), Topic: "in", RespTopic: "out", ErrorTopic: "dead",
		MaxRetries: 1, MaxInflight: 4, AckWait: 2 * time.Second, Group: "t-1"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "boom", "b"} {
		if _, err := conn.Publish(ctx, "in", eventlog.Message{Data: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	// Delivery is at least once: on a loaded machine a result's ack can
	// miss AckWait and the message comes back, so results are counted
	// once each.
	distinct := func(xs []string) map[string]bool {
		set := map[string]bool{}
		for _, x := range xs {
			set[x] = true
		}
		return set
	}
	testutil.Eventually(t, 20*time.Second, "results a and b and a dead letter", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got := distinct(out)
		return got["a"] && got["b"] && len(dead) >= 1
	})
	mu.Lock()
	defer mu.Unlock()
	if got := distinct(out); len(got) != 2 {
		t.Fatalf("results %q: want a and b only", out)
	}
	for _, d := range dead {
		var dl DeadLetter
		if err := json.Unmarshal([]byte(d), &dl); err != nil {
			t.Fatal(err)
		}
		if string(dl.Payload) != "boom" || dl.Code != "internal" || dl.Redeliveries < 1 || calls["boom"] < 2 ||
			!strings.Contains(dl.Error, "assignment to entry in nil map") || !strings.Contains(dl.Error, "processing message 2 failed inside sluice") {
			t.Fatalf("dead letter %+v after %d calls", dl, calls["boom"])
		}
	}
	if st, _ := q.Stats("t"); st.Failed < 2 || st.DeadLettered < 1 || st.Succeeded < 2 {
		t.Fatalf("stats %+v after calls %v", st, calls)
	}
}

// recorder is an eventlog.Acker that notes how a message was settled.
type recorder struct {
	mu   sync.Mutex
	acks int
	naks []time.Duration
}

func (r *recorder) Ack() error { r.mu.Lock(); r.acks++; r.mu.Unlock(); return nil }
func (r *recorder) Nak(d time.Duration) error {
	r.mu.Lock()
	r.naks = append(r.naks, d)
	r.mu.Unlock()
	return nil
}

// A failed message is negatively acked with a delay that doubles with
// each delivery, up to AckWait, until its last attempt, which is settled
// (dropped without an error topic); a message that succeeds is acked.
func TestFailedMessageIsNakedWithBackoff(t *testing.T) {
	fail := fn.InvokerFunc(func(context.Context, fn.Target, fn.Call) (fn.Result, error) {
		return fn.Result{}, errors.New("boom")
	})
	q := NewQueue(nil, fail, slog.New(slog.DiscardHandler))
	r := &queueRun{q: q, t: QueueTrigger{Name: "t", Target: fn.Function("f"), Topic: "in", MaxRetries: 6, AckWait: 10 * time.Second}}
	rec := &recorder{}
	for deliveries := 1; deliveries <= 7; deliveries++ {
		r.inner.Add(1)
		r.process(eventlog.NewMsg(eventlog.Msg{Stream: "in", Sequence: 1, Data: []byte("x"), Deliveries: deliveries}, rec))
	}
	r.inner.Wait()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if fmt.Sprint(rec.naks) != fmt.Sprint(want) || rec.acks != 1 {
		t.Fatalf("naks %v and %d acks; want naks %v, then 1 ack (the last attempt, dropped)", rec.naks, rec.acks, want)
	}
	if got := r.stats.dead.Load(); got != 1 {
		t.Fatalf("%d dead-lettered, want 1", got)
	}

	ok := fn.InvokerFunc(func(_ context.Context, _ fn.Target, c fn.Call) (fn.Result, error) {
		if c.Meta[abi.MetaRedeliveries] != "2" || c.Meta[abi.MetaRedelivered] != "true" {
			t.Errorf("meta %v: want 2 redeliveries", c.Meta)
		}
		return fn.Result{}, nil
	})
	r = &queueRun{q: NewQueue(nil, ok, slog.New(slog.DiscardHandler)), t: r.t}
	rec = &recorder{}
	r.inner.Add(1)
	r.process(eventlog.NewMsg(eventlog.Msg{Stream: "in", Sequence: 1, Deliveries: 3}, rec))
	if rec.acks != 1 || len(rec.naks) != 0 {
		t.Fatalf("a success: %d acks, naks %v; want 1 ack", rec.acks, rec.naks)
	}
}

func TestRetryDelay(t *testing.T) {
	cases := []struct {
		deliveries int
		ackWait    time.Duration
		want       time.Duration
	}{
		{1, 30 * time.Second, time.Second},
		{2, 30 * time.Second, 2 * time.Second},
		{6, 30 * time.Second, 30 * time.Second},
		{100, 30 * time.Second, 30 * time.Second},
		{1, 0, time.Second},
		{10, 0, 30 * time.Second},
		{1, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, c := range cases {
		if got := retryDelay(c.deliveries, c.ackWait); got != c.want {
			t.Errorf("retryDelay(%d, %s) = %s, want %s", c.deliveries, c.ackWait, got, c.want)
		}
	}
}

// slowSubscribe is a log whose Subscribe waits until released, as one
// does while the link is slow: a trigger can be stopped meanwhile.
type slowSubscribe struct {
	eventlog.Log
	entered, release chan struct{}
}

func (l slowSubscribe) Subscribe(stream string, o eventlog.SubOptions, h func(*eventlog.Msg)) (eventlog.Subscription, error) {
	l.entered <- struct{}{}
	<-l.release
	return l.Log.Subscribe(stream, o, h)
}

// A trigger stopped while it subscribes leaves no subscription behind,
// and shows no counters before it takes messages or after it stops.
func TestStopWhileStarting(t *testing.T) {
	b := memlog.NewBroker()
	conn := b.Connect()
	defer conn.Close()
	slow := slowSubscribe{conn, make(chan struct{}), make(chan struct{})}
	ok := fn.InvokerFunc(func(_ context.Context, _ fn.Target, c fn.Call) (fn.Result, error) {
		return fn.Result{Output: c.Input}, nil
	})
	q := NewQueue(slow, ok, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	defer q.Close(ctx)
	started := make(chan error, 1)
	go func() {
		started <- q.Start(QueueTrigger{Name: "t", Target: fn.Function("f"), Topic: "in", Group: "g", MaxInflight: 2, AckWait: time.Second})
	}()
	<-slow.entered
	if _, running := q.Stats("t"); running {
		t.Fatal("a trigger shows counters before it takes messages")
	}
	stopped := make(chan struct{})
	go func() { q.Stop(ctx, "t", true); close(stopped) }()
	<-stopped
	close(slow.release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if _, running := q.Stats("t"); running {
		t.Fatal("a stopped trigger shows counters")
	}
	// no subscription is left in the group: a message published now
	// reaches the one subscriber made now, every time
	var got atomic.Int32
	sub, err := conn.Subscribe("in", eventlog.SubOptions{Queue: "g", Start: eventlog.First}, func(m *eventlog.Msg) { got.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 20 {
		if _, err := conn.Publish(ctx, "in", eventlog.Message{Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "every message to reach the group's only subscriber", func() bool { return got.Load() == 20 })
}

// Workers are started as they are needed, but calls that take long still
// run --max-inflight at a time: four messages whose calls all wait for
// one another are all called at once, and a fifth waits for a free slot.
func TestSlowCallsRunMaxInflightAtOnce(t *testing.T) {
	conn := natslogtest.Connect(t)
	ctx := context.Background()

	const inflight = 4
	var running, most atomic.Int32
	release := make(chan struct{})
	inv := fn.InvokerFunc(func(_ context.Context, _ fn.Target, c fn.Call) (fn.Result, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		return fn.Result{Output: c.Input}, nil
	})
	var mu sync.Mutex
	out := map[string]bool{}
	sub, err := conn.Subscribe("out", eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		mu.Lock()
		out[string(m.Data)] = true
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	q := NewQueue(conn, inv, slog.New(slog.DiscardHandler))
	defer q.Close(ctx)
	if err := q.Start(QueueTrigger{Name: "t", Target: fn.Function("f"), Topic: "in", RespTopic: "out",
		MaxInflight: inflight, AckWait: 30 * time.Second, Group: "t-1"}); err != nil {
		t.Fatal(err)
	}
	for i := range inflight + 1 {
		if _, err := conn.Publish(ctx, "in", eventlog.Message{Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "four calls running at once", func() bool { return running.Load() == inflight })
	time.Sleep(100 * time.Millisecond) // a fifth call would start now
	if n := most.Load(); n != inflight {
		t.Fatalf("%d calls ran at once, want --max-inflight's %d", n, inflight)
	}
	close(release)
	testutil.Eventually(t, 10*time.Second, "the five results", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(out) == inflight+1
	})
}

// publishCount is a Log that counts the publications made through it.
type publishCount struct {
	eventlog.Log
	n atomic.Int32
}

func (p *publishCount) Publish(ctx context.Context, stream string, m eventlog.Message) (uint64, error) {
	p.n.Add(1)
	return p.Log.Publish(ctx, stream, m)
}

func (p *publishCount) PublishAsync(stream string, m eventlog.Message, done func(uint64, error)) error {
	p.n.Add(1)
	return p.Log.PublishAsync(stream, m, done)
}

// With PublishOn, a trigger takes its messages from one connection and
// publishes its results and dead letters on the other (a daemon on NATS
// Streaming gives its triggers a connection for results). The messages'
// acks go out on the first, from the results' publish acks on the other:
// the daemon's TestQueueGracefulShutdownAcksWhatCompleted restarts a
// daemon on the same server and sees none of its messages come back.
func TestQueuePublishesOnTheResultsConnection(t *testing.T) {
	conn, results := natslogtest.ConnectPair(t)
	ctx := context.Background()
	inv := fn.InvokerFunc(func(_ context.Context, _ fn.Target, c fn.Call) (fn.Result, error) {
		if string(c.Input) == "fail" {
			return fn.Result{}, errors.New("failed on purpose")
		}
		return fn.Result{Output: c.Input}, nil
	})
	var mu sync.Mutex
	var out, dead []string
	collect(t, conn, &mu, map[string]*[]string{"out": &out, "dead": &dead})
	msgs, pub := &publishCount{Log: conn}, &publishCount{Log: results}
	q := NewQueue(msgs, inv, slog.New(slog.DiscardHandler))
	q.PublishOn(pub)
	defer q.Close(ctx)
	if err := q.Start(QueueTrigger{Name: "t", Target: fn.Function("f"), Topic: "in", RespTopic: "out", ErrorTopic: "dead",
		MaxRetries: 0, MaxInflight: 4, AckWait: time.Hour, Group: "t-1"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "fail", "b"} {
		if _, err := conn.Publish(ctx, "in", eventlog.Message{Data: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 20*time.Second, "results a and b and a dead letter", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(out) == 2 && len(dead) == 1
	})
	testutil.Eventually(t, 10*time.Second, "the three messages handled", func() bool {
		st, _ := q.Stats("t")
		return st.Succeeded == 2 && st.DeadLettered == 1 && st.InFlight == 0
	})
	if m, p := msgs.n.Load(), pub.n.Load(); m != 0 || p != 3 {
		t.Fatalf("%d publications on the messages' connection and %d on the results', want 0 and 3", m, p)
	}
}

// collect appends the data of every message of each topic, from the
// first, to the topic's slice, under mu; the subscriptions end with the
// test.
func collect(t *testing.T, conn eventlog.Log, mu *sync.Mutex, into map[string]*[]string) {
	t.Helper()
	for topic, list := range into {
		sub, err := conn.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
			mu.Lock()
			*list = append(*list, string(m.Data))
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Close() })
	}
}
