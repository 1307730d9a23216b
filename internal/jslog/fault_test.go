package jslog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// TestConnectSurvivesReconnectDuringSetup: a link lost and re-established
// while Connect creates the layout leaves a working Log (the reconnect
// handler had already marked it up: Connect must not do it twice).
func TestConnectSurvivesReconnectDuringSetup(t *testing.T) {
	e := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testutil.NewProxy(t, e.Addr(), "$JS.API.STREAM.", false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Connect(ctx, Options{URL: p.URL(e.URL()), Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	publish(t, l, "orders", "after the reconnect")
	if !l.Connected() || l.UpSince().IsZero() {
		t.Fatalf("Connected() = %v, UpSince() = %s after Connect", l.Connected(), l.UpSince())
	}
}

// subscribed tells whether a Log still runs a subscription.
func subscribed(l *Log, s eventlog.Subscription) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.subs[s.(*sub)]
	return ok
}

// TestQueueDeletedElsewhereEndsSubscription: a queue whose consumer is
// deleted by another connection (Log.Delete there) ends here rather than
// being created again from its Start, which replayed the stream.
func TestQueueDeletedElsewhereEndsSubscription(t *testing.T) {
	e := startServer(t, t.TempDir(), "127.0.0.1:0")
	l1, l2 := connect(t, e.URL(), 1), connect(t, e.URL(), 1)
	publish(t, l1, "jobs", "m0", "m1", "m2")
	var c collector
	s, err := l2.Subscribe("jobs", eventlog.SubOptions{Queue: "q", Start: eventlog.First}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testutil.Eventually(t, 30*time.Second, "3 messages", func() bool { return c.len() >= 3 })
	if err := l1.Delete(ctxT(t), "jobs"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the subscription of the deleted queue to end", func() bool { return !subscribed(l2, s) })
	publish(t, l1, "jobs", "after")
	var other collector
	o, err := l2.Subscribe("jobs", eventlog.SubOptions{Queue: "q", Start: eventlog.First}, other.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	testutil.Eventually(t, 30*time.Second, "the new queue's message", func() bool { return other.len() >= 1 })
	if got := c.data(); len(got) != 3 {
		t.Fatalf("the subscription of a deleted queue received %v", got)
	}
}

// TestQueueDeletedWhileDisconnected: a queue unsubscribed elsewhere while
// this connection was down ends here when the link is back, even though a
// new queue of the same name was created meanwhile: this subscriber does
// not join it.
func TestQueueDeletedWhileDisconnected(t *testing.T) {
	e := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testutil.NewProxy(t, e.Addr(), "", false)
	l1, l2 := connect(t, e.URL(), 1), connect(t, p.URL(e.URL()), 1)
	publish(t, l1, "jobs", "m0", "m1", "m2")
	o := eventlog.SubOptions{Queue: "q", Start: eventlog.First}
	var c1, c2 collector
	s1, err := l1.Subscribe("jobs", o, c1.handle)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := l2.Subscribe("jobs", o, c2.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	testutil.Eventually(t, 30*time.Second, "3 messages", func() bool { return c1.len()+c2.len() >= 3 })
	p.Hold()
	testutil.Eventually(t, 30*time.Second, "the second connection to notice the cut", func() bool { return !l2.Connected() })
	if err := s1.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	var c3 collector
	s3, err := l1.Subscribe("jobs", o, c3.handle) // a new queue, from First
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	testutil.Eventually(t, 30*time.Second, "the new queue's replay", func() bool { return c3.len() >= 3 })
	before := c2.len()
	p.Release()
	testutil.Eventually(t, 30*time.Second, "the removed queue's subscription to end", func() bool { return !subscribed(l2, s2) })
	publish(t, l1, "jobs", "m3", "m4", "m5", "m6")
	testutil.Eventually(t, 30*time.Second, "the new queue's messages", func() bool { return c3.len() >= 7 })
	if got := c2.data()[before:]; len(got) > 0 {
		t.Fatalf("the subscriber of the removed queue received %v from the new one", got)
	}
}

// TestPublishWithoutIDStoredOnce: a Publish without an ID whose
// acknowledgement a reconnect loses is sent again, and stored once: each
// Publish call de-duplicates its own retries.
func TestPublishWithoutIDStoredOnce(t *testing.T) {
	l, _ := newLog(t)
	stop := make(chan struct{})
	var n atomic.Int64
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := l.Publish(ctx, "dups", eventlog.Message{Data: []byte(strconv.Itoa(i))})
			cancel()
			if err != nil {
				done <- err
				return
			}
			n.Add(1)
		}
	}()
	for range 10 {
		at := n.Load()
		testutil.Eventually(t, 30*time.Second, "publishes to go on", func() bool { return n.Load() >= at+20 })
		if err := l.nc.ForceReconnect(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	last, err := l.Last(ctxT(t), "dups")
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	s, err := l.Subscribe("dups", eventlog.SubOptions{Start: eventlog.First}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testutil.Eventually(t, 30*time.Second, "every message stored", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.msgs) > 0 && c.msgs[len(c.msgs)-1].Sequence >= last
	})
	seen := map[string]int{}
	for _, d := range c.data() {
		seen[d]++
	}
	for d, k := range seen {
		if k > 1 {
			t.Errorf("message %s, published once without an ID, stored %d times", d, k)
		}
	}
	for _, m := range c.msgs {
		if m.ID != "" {
			t.Fatalf("message %s published without an ID delivered with ID %q", m.Data, m.ID)
		}
	}
	t.Logf("%d publishes, %d messages stored", n.Load(), c.len())
}

// TestPublishAcrossReconnects: publishes racing a reconnect wait for the
// link (Publish) or fail with ErrNotConnected (PublishAsync), never with
// another error: with no reconnect buffer, nats.go refuses what is sent
// while the link is down with ErrReconnectBufExceeded.
func TestPublishAcrossReconnects(t *testing.T) {
	l, _ := newLog(t)
	stop := make(chan struct{})
	var (
		mu  sync.Mutex
		bad = map[string]int{}
		n   atomic.Int64
		wg  sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				what := "Publish"
				if w%2 == 0 {
					what = "PublishAsync"
					err = l.PublishAsync("rc", eventlog.Message{Data: []byte("x")}, func(uint64, error) {})
				} else {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					_, err = l.Publish(ctx, "rc", eventlog.Message{Data: []byte("x")})
					cancel()
				}
				n.Add(1)
				if err != nil && (w%2 == 1 || !errors.Is(err, eventlog.ErrNotConnected)) {
					mu.Lock()
					bad[what+": "+err.Error()]++
					mu.Unlock()
				}
			}
		}()
	}
	for range 20 {
		at := n.Load()
		testutil.Eventually(t, 30*time.Second, "publishes to go on", func() bool { return n.Load() >= at+50 })
		if err := l.nc.ForceReconnect(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for k, v := range bad {
		t.Errorf("%d times: %s", v, k)
	}
}

// TestQueueSubscriberTakesOnlyWhatItCanStart: a queue subscriber asks
// for no more messages than it has free slots (MaxInflight), so a
// subscriber whose handler holds its slots (a function still compiling,
// slow calls) leaves the rest of the queue to the others at once, not
// after the AckWait of messages it pulled ahead and cannot start.
func TestQueueSubscriberTakesOnlyWhatItCanStart(t *testing.T) {
	l, _ := newLog(t)
	var in []string
	for i := range 10 {
		in = append(in, fmt.Sprintf("m%d", i))
	}
	publish(t, l, "jobs", in...)
	busy := eventlog.SubOptions{Queue: "q", Start: eventlog.First, ManualAck: true, AckWait: 10 * time.Minute, MaxInflight: 2}
	var held collector // never acked: its two slots stay taken
	s, err := l.Subscribe("jobs", busy, held.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testutil.Eventually(t, 30*time.Second, "the busy subscriber to hold its 2 slots", func() bool { return held.len() == 2 })
	var free collector
	s2, err := l.Subscribe("jobs", eventlog.SubOptions{Queue: "q", Start: eventlog.First, MaxInflight: 10}, free.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	testutil.Eventually(t, 30*time.Second, "the other 8 messages to the free subscriber, long before the busy one's AckWait", func() bool {
		return free.len() == 8
	})
	c, err := l.js.Consumer(ctxT(t), kindOf("jobs").stream, consumerName("jobs", "q"))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the free subscriber's acks", func() bool {
		ci, err := c.Info(ctxT(t))
		return err == nil && ci.NumAckPending == 2 && ci.NumPending == 0
	})
	if got := held.data(); len(got) != 2 {
		t.Errorf("the busy subscriber's handler received %v, want 2 messages (its MaxInflight)", got)
	}
	for _, d := range free.data() {
		if slices.Contains(held.data(), d) {
			t.Errorf("%s, held by the busy subscriber, also delivered to the free one", d)
		}
	}
}

// TestQueueStartAfterCloseStops: a consumer loop started while the
// subscription closes (a background start or restart losing the race
// with Close) is stopped, not left pulling and dropping messages.
func TestQueueStartAfterCloseStops(t *testing.T) {
	l, _ := newLog(t)
	o := eventlog.SubOptions{Queue: "q", Start: eventlog.First}
	s, err := l.Subscribe("jobs", o, func(*eventlog.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.(*sub).startQueue(ctxT(t)); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("start of a closed subscription's consumer: %v, want ErrClosed", err)
	}
	var c collector
	s2, err := l.Subscribe("jobs", o, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	publish(t, l, "jobs", "m0", "m1", "m2", "m3")
	testutil.Eventually(t, 30*time.Second, "every message to the open subscriber", func() bool { return c.len() >= 4 })
}

// TestPublishAsyncRacingClose: every PublishAsync that returned nil has
// its done called by the time Close returns, however the two race.
func TestPublishAsyncRacingClose(t *testing.T) {
	e := startServer(t, t.TempDir(), "127.0.0.1:0")
	for i := range 40 {
		l := connect(t, e.URL(), 1)
		var ok, done atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go publishUntilClosed(t, l, &wg, &ok, &done)
		}
		testutil.Eventually(t, 30*time.Second, "some publishes", func() bool { return ok.Load() >= int64(i%5*20) })
		l.Close()
		wg.Wait()
		if ok.Load() != done.Load() {
			t.Fatalf("round %d: PublishAsync returned nil %d times, done was called %d times by the end of Close", i, ok.Load(), done.Load())
		}
	}
}

func publishUntilClosed(t *testing.T, l *Log, wg *sync.WaitGroup, ok, done *atomic.Int64) {
	defer wg.Done()
	for {
		err := l.PublishAsync("race", eventlog.Message{Data: []byte("x")}, func(uint64, error) { done.Add(1) })
		if err != nil {
			if !errors.Is(err, eventlog.ErrClosed) {
				t.Errorf("PublishAsync: %v, want ErrClosed", err)
			}
			return
		}
		ok.Add(1)
	}
}

// TestPublishAsyncNotRetried: an asynchronous publish that finds no
// stream to answer (a stream not ready, a leader being elected) fails
// with ErrNotConnected rather than being retried later by nats.go, which
// stored it after messages published after it.
func TestPublishAsyncNotRetried(t *testing.T) {
	l, _ := newLog(t)
	publish(t, l, "orders", "m0")
	if err := l.js.DeleteStream(ctxT(t), kindTopic.stream); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 2)
	if err := l.PublishAsync("orders", eventlog.Message{Data: []byte("m1")}, func(_ uint64, err error) { results <- err }); err != nil {
		t.Fatal(err)
	}
	if _, err := l.js.CreateStream(ctxT(t), kindTopic.config(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.PublishAsync("orders", eventlog.Message{Data: []byte("m2")}, func(_ uint64, err error) { results <- err }); err != nil {
		t.Fatal(err)
	}
	first, second := <-results, <-results
	if first != nil && !errors.Is(first, eventlog.ErrNotConnected) {
		t.Errorf("m1, published with no stream to answer: %v, want ErrNotConnected", first)
	}
	if second != nil {
		t.Fatalf("m2: %v", second)
	}
	var c collector
	s, err := l.Subscribe("orders", eventlog.SubOptions{Start: eventlog.First}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testutil.Eventually(t, 30*time.Second, "m2", func() bool { return slices.Contains(c.data(), "m2") })
	publish(t, l, "orders", "end")
	testutil.Eventually(t, 30*time.Second, "the message published last", func() bool { return slices.Contains(c.data(), "end") })
	want := []string{"m2", "end"}
	if first == nil {
		want = []string{"m1", "m2", "end"}
	}
	if got := c.data(); !slices.Equal(got, want) {
		t.Fatalf("stored %v, want %v: in the order of the calls", got, want)
	}
}

// TestPublishAsyncBurstLongerThanAckWait: a burst of asynchronous
// publishes that takes the server several PubAckWaits to store is stored
// whole, with the default bound on publishes in flight: PubAckWait runs
// from the send, and a server alone syncs each message to disk, so with
// every message of the burst in flight at once the later ones ran out of
// time while the server was still storing the earlier ones.
func TestPublishAsyncBurstLongerThanAckWait(t *testing.T) {
	e := startServer(t, t.TempDir(), "127.0.0.1:0") // syncs every message, as a daemon's
	// How long the server takes to store a message here and now.
	calibrate := connect(t, e.URL(), 1)
	const probe = 500
	began := time.Now()
	if errs := publishBurst(calibrate, "burst.probe", probe); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	each := max(time.Since(began)/probe, time.Microsecond)
	// An ack wait that covers 2,000 stores, as the default 10 s does at
	// 5 ms a message (a loaded machine's disk), and a burst 3 times as
	// long as that wait.
	wait := max(time.Second, 2000*each)
	n := min(max(int(3*wait/each), 3000), 30000)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Connect(ctx, Options{URL: e.URL(), Name: t.Name(), PubAckWait: wait})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	began = time.Now()
	errs := publishBurst(l, "burst", n)
	took := time.Since(began)
	t.Logf("%d messages at %v each (measured on %d), ack wait %v: stored in %v", n, each, probe, wait, took)
	if len(errs) > 0 {
		t.Fatalf("%d of %d publishes failed, the first: %v", len(errs), n, errs[0])
	}
	last, err := l.Last(ctxT(t), "burst")
	if err != nil || last == 0 {
		t.Fatalf("last of the burst's stream: %d, %v", last, err)
	}
	var c collector
	s, err := l.Subscribe("burst", eventlog.SubOptions{Start: eventlog.First}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testutil.Eventually(t, time.Minute, "the burst read back", func() bool { return c.len() >= n })
	for i, d := range c.data() {
		if want := strconv.Itoa(i); d != want {
			t.Fatalf("message %d of the burst read back as %q, want %q: every one once, in order", i, d, want)
		}
	}
}

// publishBurst publishes n messages ("0", "1", ...) at once and returns
// the errors of those that failed, once every one is settled.
func publishBurst(l *Log, stream string, n int) []error {
	results := make(chan error, n)
	for i := range n {
		if err := l.PublishAsync(stream, eventlog.Message{Data: []byte(strconv.Itoa(i))}, func(_ uint64, err error) { results <- err }); err != nil {
			results <- err
		}
	}
	var errs []error
	for range n {
		if err := <-results; err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// TestSubscribeWhileDisconnected: a subscription made while the server is
// down is returned at once and delivers once the server is back, plain
// and queue alike (as on NATS Streaming and in memory).
func TestSubscribeWhileDisconnected(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, "127.0.0.1:0")
	addr := e.Addr()
	l := connect(t, e.URL(), 1)
	publish(t, l, "orders", "m0")
	e.Shutdown()
	testutil.Eventually(t, 10*time.Second, "the Log to notice", func() bool { return !l.Connected() })
	var plain, queue collector
	for _, c := range []struct {
		o eventlog.SubOptions
		c *collector
	}{
		{eventlog.SubOptions{Start: eventlog.First}, &plain},
		{eventlog.SubOptions{Queue: "q", Start: eventlog.First}, &queue},
	} {
		s, err := l.Subscribe("orders", c.o, c.c.handle)
		if err != nil {
			t.Fatalf("subscribe while the server is down (queue %q): %v", c.o.Queue, err)
		}
		defer s.Close()
	}
	startServer(t, dir, addr)
	publish(t, l, "orders", "m1")
	for _, c := range []*collector{&plain, &queue} {
		testutil.Eventually(t, 30*time.Second, "both messages", func() bool { return c.len() >= 2 })
		if got := c.data(); !slices.Equal(got, []string{"m0", "m1"}) {
			t.Fatalf("delivered %v, want [m0 m1]", got)
		}
	}
}

// TestClusterCountsMembersOnce: a member is counted once however the
// peers spell it, this member among them: two members named three ways
// are no cluster of three.
func TestClusterCountsMembersOnce(t *testing.T) {
	cases := []struct {
		listen string
		peers  []string
		ok     bool
	}{
		{"127.0.0.1:6222", []string{"127.0.0.1:6222", "127.0.0.1:6223", "127.0.0.1:6224"}, true},
		{"127.0.0.1:6222", []string{"127.0.0.1:6223", "127.0.0.1:6224"}, true},
		{"127.0.0.1:6222", []string{"localhost:6222", "127.0.0.1:6223"}, false}, // itself by name
		{"0.0.0.0:6222", []string{"127.0.0.1:6222", "127.0.0.1:6223"}, false},   // itself on every interface
		{"127.0.0.1:6222", []string{"127.0.0.1:6223", "localhost:6223"}, false}, // one peer twice
		{"127.0.0.1:6222", []string{"127.0.0.1:6223", "localhost:6224"}, true},
	}
	for _, c := range cases {
		var nopts natsd.Options
		_, err := cluster(&nopts, ClusterOptions{Name: "c", Listen: c.listen, Peers: c.peers, Password: "secret"})
		if c.ok && err != nil {
			t.Errorf("listen %s, peers %v: %v", c.listen, c.peers, err)
		}
		if !c.ok && !errors.Is(err, ErrCluster) {
			t.Errorf("listen %s, peers %v: %v, want ErrCluster (two members)", c.listen, c.peers, err)
		}
	}
}
