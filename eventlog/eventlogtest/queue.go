package eventlogtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// testQueueShare: two subscribers of one queue, on two connections, share
// its messages: each goes to one of them, once, and all are delivered.
func (s *suite) testQueueShare(t *testing.T) {
	l1, l2 := s.connect(t), s.connect(t)
	st := s.name(t, "jobs")
	queue := "workers.share" // a queue name may hold dots, as a stream's
	const n = 40
	publishN(t, l1, st, "m", 0, n)

	// Each holds its first message until the other has one: with one
	// message in flight each, neither can take them all.
	type member struct {
		got  collector
		one  *flag
		name string
	}
	a, b := &member{one: newFlag(), name: "first"}, &member{one: newFlag(), name: "second"}
	handler := func(me, other *member) func(*eventlog.Msg) {
		return func(m *eventlog.Msg) {
			first := me.got.count() == 0
			me.got.handle(m)
			me.one.set()
			if first {
				select {
				case <-other.one.ch:
				case <-time.After(waitFor):
					t.Errorf("the %s subscriber holds a message and MaxInflight 1, yet the other received nothing in %s", me.name, waitFor)
				}
			}
			if err := m.Ack(); err != nil {
				t.Errorf("ack %q: %v", m.Data, err)
			}
		}
	}
	o := eventlog.SubOptions{Queue: queue, Start: eventlog.First, ManualAck: true, AckWait: longAckWait, MaxInflight: 1}
	subscribe(t, l1, st, o, handler(a, b))
	subscribe(t, l2, st, o, handler(b, a))

	testutil.Eventually(t, waitFor, fmt.Sprintf("%d messages shared by two subscribers", n), func() bool {
		return a.got.count()+b.got.count() >= n
	})
	publish(t, l1, st, eventlog.Message{Data: []byte("end")})
	testutil.Eventually(t, waitFor, "the message published last", func() bool {
		return a.got.count()+b.got.count() >= n+1
	})
	seen := map[string]string{}
	for _, m := range append(a.got.all(), b.got.all()...) {
		if m.Deliveries != 1 {
			t.Errorf("%q delivered with Deliveries %d; acked at once, it is delivered once", m.Data, m.Deliveries)
		}
		if m.Stream != st {
			t.Errorf("%q delivered with Stream %q, want %q", m.Data, m.Stream, st)
		}
		seen[string(m.Data)] += "x"
	}
	for _, d := range append(names("m", 0, n), "end") {
		if seen[d] != "x" {
			t.Errorf("%q delivered %d times to the queue, want once", d, len(seen[d]))
		}
	}
	if a.got.count() == 0 || b.got.count() == 0 {
		t.Errorf("one subscriber received everything (%d and %d): a queue shares its messages", a.got.count(), b.got.count())
	}
	for _, m := range []*member{a, b} {
		expectIncreasing(t, "the "+m.name+" subscriber of a queue, without redeliveries", m.got.all())
	}
}

// testQueueRedeliver: a message not acked is delivered again after the
// AckWait, its Deliveries counting; an acked one never again.
func (s *suite) testQueueRedeliver(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "jobs")
	y := newTally()
	var (
		mu    sync.Mutex
		first = map[string]time.Time{}
		again = map[string]time.Time{}
	)
	// m1 and m3 are acked only at their second delivery.
	handler := func(m *eventlog.Msg) {
		y.add(m)
		d := string(m.Data)
		mu.Lock()
		if m.Deliveries == 1 {
			first[d] = time.Now()
		} else if _, ok := again[d]; !ok {
			again[d] = time.Now()
		}
		mu.Unlock()
		if (d == "m1" || d == "m3") && m.Deliveries < 2 {
			return
		}
		if err := m.Ack(); err != nil {
			t.Errorf("ack %q: %v", d, err)
		}
	}
	publishN(t, l, st, "m", 0, 3)
	// MaxInflight 1: a message held unacked comes back to its subscriber
	// although it holds as many as it may
	subscribe(t, l, st, eventlog.SubOptions{Queue: "q", Start: eventlog.First, ManualAck: true, AckWait: ackWait, MaxInflight: 1}, handler)
	testutil.Eventually(t, waitFor, "m1 delivered again after its AckWait", func() bool {
		_, max := y.get("m1")
		return max >= 2
	})
	// m3's redelivery comes an AckWait after it was first delivered, and
	// so after any redelivery of an acked message.
	publish(t, l, st, msg("m", 3))
	testutil.Eventually(t, waitFor, "m3 delivered again after its AckWait", func() bool {
		_, max := y.get("m3")
		return max >= 2
	})
	for d, want := range map[string]int{"m0": 1, "m1": 2, "m2": 1, "m3": 2} {
		if count, max := y.get(d); count != want || max != want {
			t.Errorf("%q delivered %d times, the last with Deliveries %d; want %d and %d", d, count, max, want, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range []string{"m1", "m3"} {
		if gap := again[d].Sub(first[d]); gap < ackWait/2 {
			t.Errorf("%q delivered again %s after the first time, with an AckWait of %s", d, gap, ackWait)
		}
	}
}

// testQueueNak: a negative ack redelivers, after its delay where
// Features.Nak and at the latest after the AckWait otherwise.
func (s *suite) testQueueNak(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "jobs")
	wait := ackWait
	const delay = 200 * time.Millisecond
	if s.f.Nak {
		wait = longAckWait // a redelivery within waitFor is the nak's
	}
	var (
		mu     sync.Mutex
		nakked time.Time
		gaps   []time.Duration
	)
	y := newTally()
	handler := func(m *eventlog.Msg) {
		// counted once settled: the test ends when m1 is counted, and
		// an ack still to come would then meet a closed connection
		defer y.add(m)
		mu.Lock()
		if !nakked.IsZero() {
			gaps = append(gaps, time.Since(nakked))
		}
		mu.Unlock()
		if m.Deliveries >= 3 || string(m.Data) != "m0" {
			if err := m.Ack(); err != nil {
				t.Errorf("ack %q: %v", m.Data, err)
			}
			return
		}
		d := delay
		if m.Deliveries == 2 {
			d = 0
		}
		mu.Lock()
		nakked = time.Now()
		mu.Unlock()
		if err := m.Nak(d); err != nil {
			t.Errorf("nak %q: %v", m.Data, err)
		}
	}
	publish(t, l, st, msg("m", 0))
	subscribe(t, l, st, eventlog.SubOptions{Queue: "q", Start: eventlog.First, ManualAck: true, AckWait: wait}, handler)
	testutil.Eventually(t, waitFor, "m0 nakked twice and delivered a third time", func() bool {
		_, max := y.get("m0")
		return max >= 3
	})
	// acked at its third delivery: a message published after it is the
	// next one delivered
	publish(t, l, st, msg("m", 1))
	testutil.Eventually(t, waitFor, "m1", func() bool { return y.has("m1") })
	if count, max := y.get("m0"); count != 3 || max != 3 {
		t.Errorf("m0 delivered %d times, the last with Deliveries %d; want 3 and 3", count, max)
	}
	mu.Lock()
	defer mu.Unlock()
	if s.f.Nak && len(gaps) > 0 && gaps[0] < delay {
		t.Errorf("a message nakked with a delay of %s delivered again %s later", delay, gaps[0])
	}
}

// testQueueMaxInflight: a subscriber never holds more unacked messages
// than its MaxInflight, and gets more as it acks.
func (s *suite) testQueueMaxInflight(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "jobs")
	const n, max = 10, 3
	publishN(t, l, st, "m", 0, n)
	var (
		mu       sync.Mutex
		held     []*eventlog.Msg
		received int
		worst    int
	)
	subscribe(t, l, st, eventlog.SubOptions{Queue: "q", Start: eventlog.First, ManualAck: true, AckWait: longAckWait, MaxInflight: max}, func(m *eventlog.Msg) {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, m)
		received++
		worst = intMax(worst, len(held))
	})
	for done := 0; done < n; {
		want := min(max, n-done)
		testutil.Eventually(t, waitFor, fmt.Sprintf("%d messages in flight", want), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(held) >= want
		})
		mu.Lock()
		acks := held
		held = nil
		mu.Unlock()
		for _, m := range acks {
			if m.Deliveries != 1 {
				t.Errorf("%q delivered with Deliveries %d before its AckWait", m.Data, m.Deliveries)
			}
			if err := m.Ack(); err != nil {
				t.Fatalf("ack %q: %v", m.Data, err)
			}
		}
		done += len(acks)
	}
	mu.Lock()
	defer mu.Unlock()
	if worst > max {
		t.Errorf("%d messages delivered and not acked at once with MaxInflight %d", worst, max)
	}
	if received != n {
		t.Errorf("%d messages delivered for %d published", received, n)
	}
}

func intMax(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// testQueueClose: a queue outlives its subscribers: a new subscriber of
// the same name, on another connection, gets what was not acked and what
// came meanwhile, whatever Start it asks for.
func (s *suite) testQueueClose(t *testing.T) {
	l1, l2 := s.connect(t), s.connect(t)
	st := s.name(t, "jobs")
	publishN(t, l1, st, "m", 0, 5)
	var a collector
	a.then = func(m *eventlog.Msg) {
		if d := string(m.Data); d < "m3" {
			if err := m.Ack(); err != nil {
				t.Errorf("ack %q: %v", d, err)
			}
		}
	}
	o := eventlog.SubOptions{Queue: "q", Start: eventlog.First, ManualAck: true, AckWait: ackWait}
	subA := subscribe(t, l1, st, o, a.handle)
	a.wait(t, 5, "from First")
	if err := subA.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	publish(t, l1, st, msg("m", 5))

	y := newTally()
	b := collector{then: func(m *eventlog.Msg) {
		y.add(m)
		if err := m.Ack(); err != nil {
			t.Errorf("ack %q: %v", m.Data, err)
		}
	}}
	subB := subscribe(t, l2, st, o, b.handle)
	testutil.Eventually(t, waitFor, "m3, m4 (not acked) and m5 (published meanwhile)", func() bool { return y.has("m3", "m4", "m5") })
	publish(t, l1, st, msg("m", 6))
	b.waitData(t, "m6", "published last")
	for _, d := range names("m", 0, 3) {
		if count, _ := y.get(d); count > 0 {
			t.Errorf("%q, acked before its subscriber closed, delivered again to the queue", d)
		}
	}
	for _, d := range []string{"m3", "m4"} {
		if _, max := y.get(d); max < 2 {
			t.Errorf("%q delivered again with Deliveries %d: it was delivered before", d, max)
		}
	}
	for _, d := range []string{"m5", "m6"} {
		if count, max := y.get(d); count != 1 || max != 1 {
			t.Errorf("%q delivered %d times with Deliveries %d, want once with 1", d, count, max)
		}
	}

	// Start applies only when the queue is created: a subscriber asking
	// for New still gets what was published while it had none.
	if err := subB.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	publish(t, l1, st, msg("m", 7))
	var c collector
	c.then = func(m *eventlog.Msg) { m.Ack() }
	subscribe(t, l2, st, eventlog.SubOptions{Queue: "q", Start: eventlog.New, ManualAck: true, AckWait: ackWait}, c.handle)
	c.waitData(t, "m7", "published while the queue had no subscriber")
}

// testQueueUnsubscribe: Unsubscribe removes the queue: a subscriber of
// the same name starts a new one, from its own Start.
func (s *suite) testQueueUnsubscribe(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "jobs")
	publishN(t, l, st, "m", 0, 3)
	var a collector
	sub := subscribe(t, l, st, eventlog.SubOptions{Queue: "q", Start: eventlog.First}, a.handle)
	a.wait(t, 3, "from First")
	if err := sub.Unsubscribe(); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	var b collector
	subscribe(t, l, st, eventlog.SubOptions{Queue: "q", Start: eventlog.First}, b.handle)
	ms := b.wait(t, 3, "from First, the queue being new")
	expectData(t, "a new queue of the same name", ms, names("m", 0, 3))
	for _, m := range ms {
		if m.Deliveries != 1 {
			t.Errorf("%q delivered to a new queue with Deliveries %d, want 1", m.Data, m.Deliveries)
		}
	}
}

// testQueueUnsubscribeShared: when one of a queue's subscribers, on two
// connections, unsubscribes, the other stops receiving where
// Features.UnsubscribeEndsQueue (a new queue of the same name starts from
// its own Start, without it); otherwise it keeps the queue where it was:
// it gets what comes next, and nothing again.
func (s *suite) testQueueUnsubscribeShared(t *testing.T) {
	l1, l2 := s.connect(t), s.connect(t)
	st := s.name(t, "jobs")
	publishN(t, l1, st, "m", 0, 4)
	var a, b collector
	o := eventlog.SubOptions{Queue: "q", Start: eventlog.First}
	subA := subscribe(t, l1, st, o, a.handle)
	subscribe(t, l2, st, o, b.handle)
	testutil.Eventually(t, waitFor, "4 messages shared by two subscribers", func() bool { return a.count()+b.count() >= 4 })
	if err := subA.Unsubscribe(); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	before := b.count()
	if !s.f.UnsubscribeEndsQueue {
		publish(t, l1, st, eventlog.Message{Data: []byte("end")})
		ms := b.waitData(t, "end", "by the queue's remaining subscriber")
		expectData(t, "the remaining subscriber of a queue after another's Unsubscribe", ms[before:], []string{"end"})
		return
	}
	var c collector
	subscribe(t, l1, st, o, c.handle)
	publish(t, l1, st, eventlog.Message{Data: []byte("end")})
	expectData(t, "a new queue of the same name, from First", c.waitData(t, "end", "from First"), append(names("m", 0, 4), "end"))
	if got := b.all()[before:]; len(got) > 0 {
		t.Errorf("the other subscriber of a queue removed by Unsubscribe received %q after", datas(got))
	}
}
