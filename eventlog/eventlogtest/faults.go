package eventlogtest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// testCut: a connection whose link is cut comes back by itself; its
// publishes wait for it, its plain subscription resumes after its last
// message with no gap and no duplicate, and its queue subscription gets
// every message at least once.
func (s *suite) testCut(t *testing.T) {
	if s.h.Cut == nil {
		t.Logf("the harness cannot cut a connection: not tested")
		return
	}
	cut, other := s.connect(t), s.connect(t)
	st := s.name(t, "events")
	var plain collector
	subscribe(t, cut, st, eventlog.SubOptions{Start: eventlog.First}, plain.handle)
	y := newTally()
	subscribe(t, cut, st, eventlog.SubOptions{Queue: "q", Start: eventlog.First, AckWait: ackWait}, y.add)
	seqs := publishN(t, other, st, "m", 0, 10)
	plain.wait(t, 10, "before the cut")
	before := cut.UpSince()
	if before.IsZero() || !cut.Connected() {
		t.Fatalf("a connection that is up: Connected() = %v, UpSince() = %s", cut.Connected(), before)
	}

	s.h.Cut(t, cut)
	seqs = append(seqs, publishN(t, other, st, "m", 10, 20)...)
	seqs = append(seqs, publishN(t, cut, st, "m", 20, 25)...) // waits for its link
	testutil.Eventually(t, waitFor, "the cut connection to be up again, since after the cut", func() bool {
		return cut.Connected() && cut.UpSince().After(before)
	})
	publish(t, other, st, eventlog.Message{Data: []byte("end")})
	ms := plain.waitData(t, "end", "after the cut")
	expectData(t, "a plain subscription across a cut", ms, append(names("m", 0, 25), "end"))
	for i, seq := range seqs {
		if ms[i].Sequence != seq {
			t.Fatalf("%q delivered with sequence %d; its publish reported %d", ms[i].Data, ms[i].Sequence, seq)
		}
	}
	testutil.Eventually(t, waitFor, "every message to reach the queue at least once", func() bool {
		return y.has(append(names("m", 0, 25), "end")...)
	})
}

// testRestart: across a restart of the broker, nothing acknowledged to a
// publisher is lost, plain subscriptions resume where they were without a
// gap or a duplicate (one that had received nothing too), queues deliver
// what they had not acked, and delivery counts go on where
// Features.DurableDeliveries.
func (s *suite) testRestart(t *testing.T) {
	if s.h.Restart == nil {
		t.Logf("the harness cannot restart the broker: not tested")
		return
	}
	pub, rcv := s.connect(t), s.connect(t)
	st := s.name(t, "events")
	seqs := publishN(t, pub, st, "m", 0, 20)
	var plain, fresh collector
	subscribe(t, rcv, st, eventlog.SubOptions{Start: eventlog.First}, plain.handle)
	plain.wait(t, 20, "before the restart")
	subscribe(t, rcv, st, eventlog.SubOptions{Start: eventlog.New}, fresh.handle)

	// m0 is never acked (nakked where the broker can): it keeps coming
	// back, and its delivery counts are compared across the restart.
	var (
		mu        sync.Mutex
		restarted bool
		after     []int // m0's Deliveries after the restart
	)
	y := newTally()
	done := newFlag()
	subscribe(t, rcv, st, eventlog.SubOptions{Queue: "q", Start: eventlog.First, ManualAck: true, AckWait: ackWait}, func(m *eventlog.Msg) {
		y.add(m)
		// errors are ignored: while the link is down an ack or a nak is
		// lost, and the message comes back after its AckWait
		if string(m.Data) != "m0" || done.isSet() {
			m.Ack()
			return
		}
		mu.Lock()
		if restarted {
			after = append(after, m.Deliveries)
		}
		mu.Unlock()
		m.Nak(100 * time.Millisecond)
	})
	testutil.Eventually(t, waitFor, "the queue to take every message and m0 twice", func() bool {
		_, max := y.get("m0")
		return max >= 2 && y.has(names("m", 0, 20)...)
	})

	// A publisher goes on publishing while the broker restarts: what it is
	// told was stored must be there after.
	type stored struct {
		data string
		seq  uint64
	}
	acked := make(chan stored, 20)
	published := make(chan error, 1)
	go func() {
		for i := 20; i < 40; i++ {
			m := msg("m", i)
			seq, err := pub.Publish(ctx(t), st, m) // waits for the broker
			if err != nil {
				published <- fmt.Errorf("publish %q across the restart: %w", m.Data, err)
				return
			}
			acked <- stored{string(m.Data), seq}
		}
		published <- nil
	}()
	s.h.Restart(t)
	mu.Lock()
	restarted = true
	_, before := y.get("m0")
	mu.Unlock()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	close(acked)
	for _, l := range []eventlog.Log{pub, rcv} {
		if err := l.WaitUp(ctx(t)); err != nil {
			t.Fatalf("a connection after the restart: %v", err)
		}
	}
	publish(t, pub, st, eventlog.Message{Data: []byte("end")})

	// A publish that lost its ack to the restart may have been stored
	// twice (where the broker does not de-duplicate): what is stored is
	// what a replay reads, and subscribers must receive exactly that.
	var replay collector
	subscribe(t, s.connect(t), st, eventlog.SubOptions{Start: eventlog.First}, replay.handle)
	all := replay.waitData(t, "end", "from First after the restart")
	expectIncreasing(t, "a replay after a restart", all)
	bySeq := map[uint64]string{}
	for _, m := range all {
		bySeq[m.Sequence] = string(m.Data)
	}
	var want []stored
	for i, seq := range seqs {
		want = append(want, stored{fmt.Sprintf("m%d", i), seq})
	}
	for p := range acked {
		want = append(want, p)
	}
	have := map[string]bool{}
	for _, m := range all {
		have[string(m.Data)] = true
	}
	for _, p := range want {
		if p.seq == 0 && !pub.Features().Sequences { // no sequence to check: the data must be there
			if !have[p.data] {
				t.Fatalf("%q, acknowledged, is not stored after the restart (the stream holds %q)", p.data, datas(all))
			}
			continue
		}
		if bySeq[p.seq] != p.data {
			t.Fatalf("%q, acknowledged with sequence %d, is not stored after the restart (the stream holds %q)", p.data, p.seq, datas(all))
		}
	}
	expectSame(t, "a plain subscription across a restart", plain.waitData(t, "end", "after the restart"), all)
	var since []*eventlog.Msg
	for _, m := range all {
		if m.Sequence > seqs[19] {
			since = append(since, m)
		}
	}
	expectSame(t, "a plain subscription from New that had received nothing before the restart",
		fresh.waitData(t, "end", "after the restart"), since)

	testutil.Eventually(t, waitFor, "the queue to take every message and m0 twice more", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(after) >= 2 && y.has(append(names("m", 0, 40), "end")...)
	})
	mu.Lock()
	second := after[1]
	mu.Unlock()
	done.set()
	// The second delivery after the restart is one; the first may have
	// been on its way before.
	if s.f.DurableDeliveries && second <= before {
		t.Errorf("m0 delivered %d times before the restart and then with Deliveries %d: the counts must survive a restart (Features.DurableDeliveries)", before, second)
	}
	if second < 2 {
		t.Errorf("m0, delivered before the restart, delivered after it with Deliveries %d", second)
	}
	t.Logf("m0: %d deliveries before the restart, then %v", before, after)
}
