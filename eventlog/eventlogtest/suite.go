// Package eventlogtest is the conformance suite of the event-log contract
// (package eventlog): its executable definition. Every implementation runs
// it from its own tests, on a real broker:
//
//	func TestConformance(t *testing.T) {
//		srv := startServer(t) // one broker for the whole suite
//		eventlogtest.Run(t, eventlogtest.Harness{
//			Connect: func(t testing.TB) eventlog.Log { return connect(t, srv) },
//			Restart: func(t testing.TB) { srv.Restart(t) },
//		})
//	}
//
// Each case asserts what a user of the contract relies on: order and
// sequences, the start positions, queues shared across connections with
// acks, redelivery counts, negative acks, in-flight bounds and positions
// that outlive their subscribers, the limits, and at-least-once delivery
// across a lost connection and a restarted broker. A feature the
// implementation claims (eventlog.Features) is checked; one it does not
// claim is checked for its documented fallback, or not at all.
//
// Every case uses stream, queue and blob names of its own (a prefix unique
// to the run and the case), so the cases share one broker, and those that
// neither restart it nor cut a connection run in parallel. The suite
// waits by polling (testutil.Eventually) and never asserts an
// upper bound of time tighter than several seconds; AckWaits are 1 s,
// NATS Streaming's smallest.
package eventlogtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// Harness is how the suite reaches the implementation under test.
type Harness struct {
	// Connect returns a new connection to the broker under test, up. The
	// suite closes it at the end of the case. Several are open at once:
	// they play several processes sharing the broker.
	Connect func(t testing.TB) eventlog.Log
	// Restart, if set, restarts the broker while connections stay open,
	// keeping what it stored (a file store, a cluster): the connections
	// must re-establish themselves and resume their subscriptions. The
	// cases that restart run one at a time, after the others.
	Restart func(t testing.TB)
	// Cut, if set, drops the link of one connection to the broker for a
	// while (and of no other); the connection must re-establish itself.
	Cut func(t testing.TB, l eventlog.Log)
}

// Bounds of the suite's waits. They are generous on purpose: the
// machines that run the suite are shared and noisy, and a wait only ends
// early when the condition holds.
const (
	// waitFor bounds a wait for something that should happen promptly.
	waitFor = 15 * time.Second
	// ackWait is the AckWait of the cases that wait for a redelivery:
	// NATS Streaming's smallest (it counts in whole seconds).
	ackWait = time.Second
	// longAckWait is the AckWait of the cases where a redelivery by
	// AckWait would be a failure: far above waitFor.
	longAckWait = time.Minute
	// opTimeout bounds one operation on the log: a publish waits this long
	// for a connection that is coming back.
	opTimeout = 30 * time.Second
)

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	if h.Connect == nil {
		t.Fatal("eventlogtest: Harness.Connect is required")
	}
	s := &suite{h: h, run: strconv.FormatInt(time.Now().UnixNano(), 36)}
	l := h.Connect(t)
	s.f = l.Features()
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	t.Logf("features: %+v", s.f)
	if s.f.Name == "" {
		t.Error("Features.Name is empty")
	}
	if s.f.MaxPayload <= 0 {
		t.Fatalf("Features.MaxPayload is %d: an implementation states its limit", s.f.MaxPayload)
	}
	if s.f.Dedup && s.f.DedupWindow <= 0 {
		t.Errorf("Features.Dedup with a DedupWindow of %s: the window says how long an ID is remembered", s.f.DedupWindow)
	}
	parallel := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Order", s.testOrder},
		{"Starts", s.testStarts},
		{"Since", s.testSince},
		{"Last", s.testLast},
		{"StreamsIndependent", s.testStreamsIndependent},
		{"Concurrency", s.testConcurrency},
		{"QueueShare", s.testQueueShare},
		{"QueueRedeliver", s.testQueueRedeliver},
		{"QueueNak", s.testQueueNak},
		{"QueueMaxInflight", s.testQueueMaxInflight},
		{"QueueCloseKeepsPosition", s.testQueueClose},
		{"QueueUnsubscribe", s.testQueueUnsubscribe},
		{"QueueUnsubscribeShared", s.testQueueUnsubscribeShared},
		{"Dedup", s.testDedup},
		{"Headers", s.testHeaders},
		{"Delete", s.testDelete},
		{"Family", s.testFamily},
		{"Blobs", s.testBlobs},
		{"BlobsMany", s.testBlobsMany},
		{"BlobsAtOnce", s.testBlobsAtOnce},
		{"BlobsLarge", s.testBlobsLarge},
		{"TooLarge", s.testTooLarge},
		{"InvalidNames", s.testInvalidNames},
		{"Closed", s.testClosed},
		{"Cut", s.testCut},
	}
	t.Run("Parallel", func(t *testing.T) {
		for _, c := range parallel {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				c.run(t)
			})
		}
	})
	t.Run("Restart", s.testRestart)
	t.Run("BlobsRestart", s.testBlobsRestart)
}

type suite struct {
	h   Harness
	f   eventlog.Features
	run string // unique to this run of the suite
}

// connect returns a new connection, closed at the end of the case.
func (s *suite) connect(t *testing.T) eventlog.Log {
	t.Helper()
	l := s.h.Connect(t)
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return l
}

// name returns a name unique to the run and the case: a stream, queue or
// blob name of the case's own.
func (s *suite) name(t *testing.T, suffix string) string {
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	n := "conf-" + s.run + "-" + base
	if len(n) > 200 {
		n = n[:200]
	}
	return n + "." + suffix
}

// ctx returns a context bounding one operation of the case.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return c
}

// publish publishes data and returns its sequence: as Publish returns
// it where Features.Sequences, else as Last reads it (the cases publish
// to a stream from one goroutine at a time).
func publish(t *testing.T, l eventlog.Log, stream string, m eventlog.Message) uint64 {
	t.Helper()
	seq, err := l.Publish(ctx(t), stream, m)
	if err != nil {
		t.Fatalf("publish %q to %s: %v", m.Data, stream, err)
	}
	if !l.Features().Sequences {
		if seq != 0 {
			t.Fatalf("publish %q to %s: sequence %d without Features.Sequences", m.Data, stream, seq)
		}
		if seq, err = l.Last(ctx(t), stream); err != nil {
			t.Fatalf("the sequence of %q in %s: %v", m.Data, stream, err)
		}
	}
	if seq == 0 {
		t.Fatalf("publish %q to %s: sequence 0 (sequences start at 1)", m.Data, stream)
	}
	return seq
}

// publishN publishes data prefix0, prefix1, ... and returns their sequences.
func publishN(t *testing.T, l eventlog.Log, stream, prefix string, from, to int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := from; i < to; i++ {
		seqs = append(seqs, publish(t, l, stream, msg(prefix, i)))
	}
	return seqs
}

func msg(prefix string, i int) eventlog.Message {
	return eventlog.Message{Data: []byte(prefix + strconv.Itoa(i))}
}

// subscribe subscribes, closing the subscription at the end of the case.
func subscribe(t *testing.T, l eventlog.Log, stream string, o eventlog.SubOptions, h func(*eventlog.Msg)) eventlog.Subscription {
	t.Helper()
	sub, err := l.Subscribe(stream, o, h)
	if err != nil {
		t.Fatalf("subscribe to %s (%+v): %v", stream, o, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// collector keeps what a handler received, in order.
type collector struct {
	mu   sync.Mutex
	msgs []*eventlog.Msg
	// then, if set, runs after a message is kept.
	then func(*eventlog.Msg)
}

func (c *collector) handle(m *eventlog.Msg) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	if c.then != nil {
		c.then(m)
	}
}

func (c *collector) all() []*eventlog.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*eventlog.Msg(nil), c.msgs...)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// wait waits until the collector holds at least n messages and returns
// them.
func (c *collector) wait(t *testing.T, n int, what string) []*eventlog.Msg {
	t.Helper()
	testutil.Eventually(t, waitFor, fmt.Sprintf("%d messages %s (have %d)", n, what, c.count()), func() bool { return c.count() >= n })
	return c.all()
}

// waitData waits until a message with data d was received and returns
// everything received up to now.
func (c *collector) waitData(t *testing.T, d string, what string) []*eventlog.Msg {
	t.Helper()
	testutil.Eventually(t, waitFor, fmt.Sprintf("message %q %s", d, what), func() bool {
		for _, m := range c.all() {
			if string(m.Data) == d {
				return true
			}
		}
		return false
	})
	return c.all()
}

func datas(ms []*eventlog.Msg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Data)
	}
	return out
}

func seqsOf(ms []*eventlog.Msg) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Sequence
	}
	return out
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}

// expectData fails unless the messages' data are exactly want, in order.
func expectData(t *testing.T, what string, ms []*eventlog.Msg, want []string) {
	t.Helper()
	got := datas(ms)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: received %q, want %q", what, got, want)
	}
}

// expectIncreasing fails unless the sequences strictly increase.
func expectIncreasing(t *testing.T, what string, ms []*eventlog.Msg) {
	t.Helper()
	for i := 1; i < len(ms); i++ {
		if ms[i].Sequence <= ms[i-1].Sequence {
			t.Fatalf("%s: sequence %d (%q) after %d (%q): sequences must strictly increase",
				what, ms[i].Sequence, ms[i].Data, ms[i-1].Sequence, ms[i-1].Data)
		}
	}
}

// tally counts deliveries by data, for queues.
type tally struct {
	mu    sync.Mutex
	count map[string]int
	max   map[string]int // the highest Deliveries seen
}

func newTally() *tally { return &tally{count: map[string]int{}, max: map[string]int{}} }

func (y *tally) add(m *eventlog.Msg) {
	y.mu.Lock()
	defer y.mu.Unlock()
	d := string(m.Data)
	y.count[d]++
	if m.Deliveries > y.max[d] {
		y.max[d] = m.Deliveries
	}
}

func (y *tally) get(d string) (count, maxDeliveries int) {
	y.mu.Lock()
	defer y.mu.Unlock()
	return y.count[d], y.max[d]
}

func (y *tally) has(ds ...string) bool {
	y.mu.Lock()
	defer y.mu.Unlock()
	for _, d := range ds {
		if y.count[d] == 0 {
			return false
		}
	}
	return true
}

// flag is a condition set once, waited for by handlers.
type flag struct {
	once sync.Once
	ch   chan struct{}
}

func newFlag() *flag { return &flag{ch: make(chan struct{})} }
func (f *flag) set() { f.once.Do(func() { close(f.ch) }) }
func (f *flag) isSet() bool {
	select {
	case <-f.ch:
		return true
	default:
		return false
	}
}

// counter is an atomic count, shared with handlers.
type counter = atomic.Int64

// expectSame fails unless the messages are those of want (by sequence),
// in order.
func expectSame(t *testing.T, what string, ms, want []*eventlog.Msg) {
	t.Helper()
	if fmt.Sprint(seqsOf(ms)) != fmt.Sprint(seqsOf(want)) {
		t.Fatalf("%s: received %q (sequences %v), want %q (sequences %v)", what, datas(ms), seqsOf(ms), datas(want), seqsOf(want))
	}
}
