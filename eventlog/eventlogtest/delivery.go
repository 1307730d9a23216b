package eventlogtest

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// testOrder: messages published from one goroutine, synchronously then
// asynchronously, reach a subscriber on another connection in that order,
// with the sequences Publish and done reported, strictly increasing; done
// is called exactly once for each.
func (s *suite) testOrder(t *testing.T) {
	pub, rcv := s.connect(t), s.connect(t)
	st := s.name(t, "orders")
	var got collector
	subscribe(t, rcv, st, eventlog.SubOptions{Start: eventlog.First}, got.handle)
	start := time.Now()

	const n = 200
	want := publishN(t, pub, st, "m", 0, n)
	var (
		calls [n]atomic.Int32
		seqs  [n]atomic.Uint64
		errs  = make(chan error, n)
	)
	for i := range n {
		err := pub.PublishAsync(st, msg("m", n+i), func(seq uint64, err error) {
			calls[i].Add(1)
			seqs[i].Store(seq)
			if err != nil {
				errs <- fmt.Errorf("done of async message %d: %w", i, err)
			}
		})
		if err != nil {
			t.Fatalf("PublishAsync %d on a connection that is up: %v", i, err)
		}
	}
	testutil.Eventually(t, waitFor, "every PublishAsync's done", func() bool {
		for i := range calls {
			if calls[i].Load() == 0 {
				return false
			}
		}
		return true
	})
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for i := range seqs {
		want = append(want, seqs[i].Load())
	}

	ms := got.wait(t, 2*n, "published")
	expectData(t, "a subscriber from First", ms, names("m", 0, 2*n))
	expectIncreasing(t, "a subscriber from First", ms)
	for i, m := range ms {
		if !pub.Features().Sequences && i >= n {
			if want[i] != 0 {
				t.Fatalf("async message %q: done got sequence %d without Features.Sequences", m.Data, want[i])
			}
			continue
		}
		if m.Sequence != want[i] {
			t.Fatalf("message %q delivered with sequence %d; its publish reported %d", m.Data, m.Sequence, want[i])
		}
		if m.Stream != st {
			t.Fatalf("message %q delivered with Stream %q, want %q", m.Data, m.Stream, st)
		}
		if m.Time.Before(start.Add(-time.Minute)) || m.Time.After(time.Now().Add(time.Minute)) {
			t.Fatalf("message %q delivered with Time %s: not when it was stored (the test started at %s)", m.Data, m.Time, start)
		}
		if m.Deliveries != 1 || m.Redelivered() {
			t.Fatalf("message %q of a plain subscription delivered with Deliveries %d, want 1", m.Data, m.Deliveries)
		}
	}
	// a marker published last: anything delivered twice came before it
	publish(t, pub, st, eventlog.Message{Data: []byte("end")})
	ms = got.waitData(t, "end", "published last")
	if len(ms) != 2*n+1 {
		t.Fatalf("%d messages delivered for %d published: %q", len(ms), 2*n+1, datas(ms))
	}
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("done of async message %d called %d times, want once", i, c)
		}
	}
}

// testStarts: each start position delivers what it says, from the
// stream's messages and then the new ones.
func (s *suite) testStarts(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "starts")
	seqs := publishN(t, l, st, "m", 0, 5)

	cases := []struct {
		name  string
		start eventlog.Start
		want  []string
	}{
		{"New", eventlog.New, names("m", 5, 7)},
		{"First", eventlog.First, names("m", 0, 7)},
		{"Last", eventlog.Last, names("m", 4, 7)},
		{"At a sequence", eventlog.At(seqs[2]), names("m", 2, 7)},
		{"At a sequence between two messages", eventlog.At(seqs[1] + 1), names("m", 2, 7)},
		{"At 1, before or at the first message", eventlog.At(1), names("m", 0, 7)},
		{"At a sequence past the end", eventlog.At(seqs[4] + 1), names("m", 5, 7)},
		{"Since long ago", eventlog.Since(time.Now().Add(-time.Hour)), names("m", 0, 7)},
	}
	got := make([]*collector, len(cases))
	for i, c := range cases {
		got[i] = &collector{}
		subscribe(t, s.connect(t), st, eventlog.SubOptions{Start: c.start}, got[i].handle)
	}
	publishN(t, l, st, "m", 5, 7)
	for i, c := range cases {
		ms := got[i].waitData(t, "m6", "from start "+c.name)
		expectData(t, "start "+c.name, ms, c.want)
		expectIncreasing(t, "start "+c.name, ms)
	}
}

// testSince: Since(t) delivers the messages stored at or after t, and none
// stored before.
func (s *suite) testSince(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "since")
	publishN(t, l, st, "m", 0, 3)
	var all collector
	subscribe(t, l, st, eventlog.SubOptions{Start: eventlog.First}, all.handle)
	stored := all.wait(t, 3, "from First")[2].Time

	// Since is about wall-clock time: the messages before and after the
	// start must be apart in it by more than a broker's rounding of time
	// or the latency of a subscription request.
	const gap = 50 * time.Millisecond
	testutil.Eventually(t, waitFor, "the clock to move on", func() bool { return time.Since(stored) > 2*gap })
	since := stored.Add(gap)
	publishN(t, l, st, "m", 3, 5)

	var got collector
	subscribe(t, l, st, eventlog.SubOptions{Start: eventlog.Since(since)}, got.handle)
	publishN(t, l, st, "m", 5, 6)
	ms := got.waitData(t, "m5", "since "+since.String())
	expectData(t, "Since a time between m2 and m3", ms, names("m", 3, 6))
}

// testLast: Last is 0 for a stream that holds nothing and the sequence of
// the last message stored otherwise, whatever other streams hold.
func (s *suite) testLast(t *testing.T) {
	l := s.connect(t)
	st, other := s.name(t, "last"), s.name(t, "other")
	last, err := l.Last(ctx(t), st)
	if err != nil || last != 0 {
		t.Fatalf("Last of an empty stream = %d, %v; want 0, nil", last, err)
	}
	var want, wantOther uint64
	for i := range 3 {
		want = publish(t, l, st, msg("m", i))
		wantOther = publish(t, l, other, msg("o", i))
	}
	if last, err = l.Last(ctx(t), st); err != nil || last != want {
		t.Fatalf("Last = %d, %v; want %d (the sequence of its last message), nil", last, err, want)
	}
	if last, err = s.connect(t).Last(ctx(t), other); err != nil || last != wantOther {
		t.Fatalf("Last on another connection = %d, %v; want %d, nil", last, err, wantOther)
	}
}

// testStreamsIndependent: the messages of one stream never reach a
// subscriber of another, whatever their names share.
func (s *suite) testStreamsIndependent(t *testing.T) {
	l := s.connect(t)
	base := s.name(t, "a")
	streams := []string{base, base + ".b", base + "b", base + "-b", base + "_b", base + ".b.c"}
	got := make([]*collector, len(streams))
	for i, st := range streams {
		got[i] = &collector{}
		subscribe(t, l, st, eventlog.SubOptions{Start: eventlog.First}, got[i].handle)
	}
	for i, st := range streams {
		publish(t, l, st, msg("m", i))
	}
	for _, st := range streams {
		publish(t, l, st, eventlog.Message{Data: []byte("end")})
	}
	for i, st := range streams {
		ms := got[i].waitData(t, "end", "on "+st)
		expectData(t, "a subscriber of "+st, ms, []string{"m" + strconv.Itoa(i), "end"})
	}
}

// testConcurrency: goroutines publishing at once to one stream each keep
// their order, every message is stored once, and Last is never below a
// sequence already returned.
func (s *suite) testConcurrency(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "busy")
	var got collector
	subscribe(t, s.connect(t), st, eventlog.SubOptions{Start: eventlog.First}, got.handle)

	const workers, each = 8, 50
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[string]uint64{}
		fail = make(chan error, workers*each)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prefix := fmt.Sprintf("w%d-", w)
			for i := range each {
				m := msg(prefix, i)
				if w%2 == 0 {
					seq, err := l.Publish(ctx(t), st, m)
					if err != nil {
						fail <- err
						return
					}
					last, err := l.Last(ctx(t), st)
					if err != nil || last < seq {
						fail <- fmt.Errorf("Last = %d, %v after a publish returned %d", last, err, seq)
						return
					}
					mu.Lock()
					seqs[string(m.Data)] = seq
					mu.Unlock()
					continue
				}
				wg.Add(1)
				err := l.PublishAsync(st, m, func(seq uint64, err error) {
					defer wg.Done()
					if err != nil {
						fail <- err
					}
					mu.Lock()
					seqs[string(m.Data)] = seq
					mu.Unlock()
				})
				if err != nil {
					wg.Done()
					fail <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	ms := got.wait(t, workers*each, "published at once")
	expectIncreasing(t, "a subscriber of concurrent publishers", ms)
	next := map[string]int{}
	for _, m := range ms {
		d := string(m.Data)
		var w, i int
		if _, err := fmt.Sscanf(d, "w%d-%d", &w, &i); err != nil {
			t.Fatalf("unexpected message %q", d)
		}
		prefix := fmt.Sprintf("w%d-", w)
		if i != next[prefix] {
			t.Fatalf("%q delivered after %s%d: a goroutine's messages must keep their order", d, prefix, next[prefix]-1)
		}
		next[prefix]++
		if seqs[d] != m.Sequence && (seqs[d] != 0 || l.Features().Sequences) {
			t.Fatalf("%q delivered with sequence %d; its publish reported %d", d, m.Sequence, seqs[d])
		}
	}
	publish(t, l, st, eventlog.Message{Data: []byte("end")})
	if ms = got.waitData(t, "end", "published last"); len(ms) != workers*each+1 {
		t.Fatalf("%d messages delivered for %d published", len(ms), workers*each+1)
	}
}
