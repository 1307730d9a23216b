package jslog

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/testutil"
)

var testAuth = broker.Auth{User: "sluice", Password: "test-password"}

// startServer starts an embedded server on dir, listening on listen
// (127.0.0.1:0 for a free port).
func startServer(t *testing.T, dir, listen string) *Embedded {
	t.Helper()
	e, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: listen, Auth: testAuth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

func connect(t *testing.T, url string, replicas int) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Connect(ctx, Options{URL: url, Replicas: replicas, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func newLog(t *testing.T) (*Log, *Embedded) {
	t.Helper()
	e := startServer(t, t.TempDir(), "127.0.0.1:0")
	return connect(t, e.URL(), 1), e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, l *Log, stream string, data ...string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, d := range data {
		seq, err := l.Publish(ctxT(t), stream, eventlog.Message{Data: []byte(d)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// collector gathers what a subscription delivers.
type collector struct {
	mu   sync.Mutex
	msgs []*eventlog.Msg
}

func (c *collector) handle(m *eventlog.Msg) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

func (c *collector) data() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = string(m.Data)
	}
	return out
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func TestSubjects(t *testing.T) {
	cases := []struct{ name, subject, stream string }{
		{"sluice.catalog", "sluice.catalog.catalog", "SLUICE_CATALOG"},
		{"sluice.wf.events", "sluice.wf.wf.events", "SLUICE_WF"},
		{"sluice.wf.events.inv-1", "sluice.wf.wf.events.inv-1", "SLUICE_WF"},
		{"sluice.wf.checkpoints", "sluice.ckpt.wf.checkpoints", "SLUICE_CKPT"},
		{"sluice.wf.nodes", "sluice.short.wf.nodes", "SLUICE_SHORT"},
		{"sluice.ticks.nightly", "sluice.short.ticks.nightly", "SLUICE_SHORT"},
		{"sluice.logs.resize", "sluice.logs.logs.resize", "SLUICE_LOGS"},
		{"sluice.mod.resize.3", "sluice.sys.mod.resize.3", "SLUICE_SYS"},
		{"orders", "sluice.topic.orders", "SLUICE_TOPICS"},
		// a user's topic never reaches one of sluice's streams
		{"catalog", "sluice.topic.catalog", "SLUICE_TOPICS"},
		{"sluice_catalog", "sluice.topic.sluice_catalog", "SLUICE_TOPICS"},
		{"sluicecatalog.x", "sluice.topic.sluicecatalog.x", "SLUICE_TOPICS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := subject(c.name); got != c.subject {
				t.Errorf("subject = %s, want %s", got, c.subject)
			}
			if got := kindOf(c.name).stream; got != c.stream {
				t.Errorf("stream = %s, want %s", got, c.stream)
			}
		})
	}
}

func TestPublishSubscribeInOrder(t *testing.T) {
	l, _ := newLog(t)
	var want []string
	for i := range 200 {
		want = append(want, strconv.Itoa(i))
	}
	seqs := publish(t, l, "orders", want[:100]...)
	// another stream between: sequences have gaps, delivery does not
	publish(t, l, "invoices", "x", "y")
	seqs = append(seqs, publish(t, l, "orders", want[100:]...)...)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("sequence %d after %d", seqs[i], seqs[i-1])
		}
	}
	var c collector
	s, err := l.Subscribe("orders", eventlog.SubOptions{Start: eventlog.First}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testutil.Eventually(t, 30*time.Second, "200 messages", func() bool { return c.len() >= 200 })
	if got := c.data(); !slices.Equal(got, want) {
		t.Fatalf("delivered %v\nwant %v", got, want)
	}
	for i, m := range c.msgs {
		if m.Sequence != seqs[i] || m.Stream != "orders" || m.Deliveries != 1 || m.Time.IsZero() {
			t.Fatalf("message %d: seq %d stream %s deliveries %d time %v; want seq %d", i, m.Sequence, m.Stream, m.Deliveries, m.Time, seqs[i])
		}
	}
	last, err := l.Last(ctxT(t), "orders")
	if err != nil || last != seqs[len(seqs)-1] {
		t.Fatalf("Last = %d, %v; want %d", last, err, seqs[len(seqs)-1])
	}
}

func TestStarts(t *testing.T) {
	l, _ := newLog(t)
	seqs := publish(t, l, "events", "a", "b")
	since := storedAt(t, l, "events", publish(t, l, "events", "c")[0])
	cases := []struct {
		name  string
		start eventlog.Start
		want  []string
	}{
		{"first", eventlog.First, []string{"a", "b", "c", "d"}},
		{"new", eventlog.New, []string{"d"}},
		{"last", eventlog.Last, []string{"c", "d"}},
		{"seq", eventlog.At(seqs[1]), []string{"b", "c", "d"}},
		{"time", eventlog.Since(since), []string{"c", "d"}},
	}
	for _, queue := range []string{"", "q"} {
		var cs []*collector
		for _, c := range cases {
			col := &collector{}
			cs = append(cs, col)
			o := eventlog.SubOptions{Start: c.start}
			if queue != "" {
				o.Queue = queue + "-" + c.name
			}
			s, err := l.Subscribe("events", o, col.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
		}
		publish(t, l, "events", "d")
		for i, c := range cases {
			t.Run(c.name+"/queue="+queue, func(t *testing.T) {
				testutil.Eventually(t, 30*time.Second, "d", func() bool { d := cs[i].data(); return len(d) > 0 && d[len(d)-1] == "d" })
				if got := cs[i].data(); !slices.Equal(got, c.want) {
					t.Fatalf("delivered %v, want %v", got, c.want)
				}
			})
		}
		// the second round starts on what the first published
		publish(t, l, "events", "removed")
		if err := l.Delete(ctxT(t), "events"); err != nil {
			t.Fatal(err)
		}
		seqs = publish(t, l, "events", "a", "b")
		since = storedAt(t, l, "events", publish(t, l, "events", "c")[0])
		cases[3].start = eventlog.At(seqs[1])
		cases[4].start = eventlog.Since(since)
	}
}

// storedAt returns when the server stored a message.
func storedAt(t *testing.T, l *Log, stream string, seq uint64) time.Time {
	t.Helper()
	st, err := l.js.Stream(ctxT(t), kindOf(stream).stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctxT(t), seq)
	if err != nil {
		t.Fatal(err)
	}
	return m.Time
}

func TestQueueSharedBySubscribers(t *testing.T) {
	l, _ := newLog(t)
	const n = 200
	got := map[string]int{}
	var mu sync.Mutex
	per := [2]int{}
	both := make(chan struct{})
	var once sync.Once
	handler := func(i int) func(*eventlog.Msg) {
		return func(m *eventlog.Msg) {
			mu.Lock()
			got[string(m.Data)]++
			per[i]++
			if per[0] > 0 && per[1] > 0 {
				once.Do(func() { close(both) })
			}
			mu.Unlock()
			// hold the first messages until the other subscriber has some:
			// it can only get them if the queue shares
			select {
			case <-both:
			case <-time.After(20 * time.Second):
			}
		}
	}
	o := eventlog.SubOptions{Queue: "workers", Start: eventlog.First, MaxInflight: 64}
	for i := range 2 {
		s, err := l.Subscribe("jobs", o, handler(i))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	for i := range n {
		publish(t, l, "jobs", strconv.Itoa(i))
	}
	testutil.Eventually(t, 30*time.Second, "every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == n
	})
	mu.Lock()
	defer mu.Unlock()
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("one subscriber got everything: %v", per)
	}
	for k, c := range got {
		if c != 1 {
			t.Errorf("message %s delivered %d times", k, c)
		}
	}
}

func TestNakRedeliversAfterDelay(t *testing.T) {
	l, _ := newLog(t)
	type delivery struct {
		n  int
		at time.Time
	}
	ch := make(chan delivery, 10)
	s, err := l.Subscribe("jobs", eventlog.SubOptions{Queue: "w", Start: eventlog.First, ManualAck: true, AckWait: time.Minute}, func(m *eventlog.Msg) {
		ch <- delivery{m.Deliveries, time.Now()}
		if m.Deliveries == 1 {
			m.Nak(300 * time.Millisecond)
		} else {
			m.Ack()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	publish(t, l, "jobs", "x")
	first := <-ch
	var second delivery
	select {
	case second = <-ch:
	case <-time.After(30 * time.Second): // far below AckWait: only the nak redelivers
		t.Fatal("no redelivery after the nak")
	}
	if first.n != 1 || second.n != 2 {
		t.Fatalf("deliveries %d then %d, want 1 then 2", first.n, second.n)
	}
	if d := second.at.Sub(first.at); d < 300*time.Millisecond {
		t.Fatalf("redelivered after %s, before the nak's delay", d)
	}
	select {
	case d := <-ch:
		t.Fatalf("delivered again after the ack (deliveries %d)", d.n)
	default:
	}
}

func TestDedupAndHeaders(t *testing.T) {
	l, _ := newLog(t)
	m := eventlog.Message{Data: []byte("deploy"), ID: "ev-1", Header: map[string]string{"traceparent": "00-abc-def-01", "Content-Type": "application/json"}}
	s1, err := l.Publish(ctxT(t), "sluice.catalog", m)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := l.Publish(ctxT(t), "sluice.catalog", m)
	if err != nil || s2 != s1 {
		t.Fatalf("second publish of the same ID: seq %d, %v; want %d (the first's)", s2, err, s1)
	}
	publish(t, l, "sluice.catalog", "after")
	var c collector
	s, err := l.Subscribe("sluice.catalog", eventlog.SubOptions{Start: eventlog.First}, c.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testutil.Eventually(t, 30*time.Second, "the message after", func() bool { d := c.data(); return len(d) > 0 && d[len(d)-1] == "after" })
	if got := c.data(); !slices.Equal(got, []string{"deploy", "after"}) {
		t.Fatalf("delivered %v: the duplicate was stored", got)
	}
	got := c.msgs[0]
	if got.ID != "ev-1" || !maps.Equal(got.Header, m.Header) {
		t.Fatalf("delivered ID %q header %v, want %q %v", got.ID, got.Header, m.ID, m.Header)
	}
	if f := l.Features(); !f.Dedup || f.DedupWindow != DedupWindow || !f.Headers || !f.Nak || !f.DurableDeliveries || !f.Delete || f.Name != "jetstream" {
		t.Fatalf("features %+v", f)
	}
}

func TestLastAndDelete(t *testing.T) {
	l, _ := newLog(t)
	ctx := ctxT(t)
	if last, err := l.Last(ctx, "sluice.wf.events.inv-1"); err != nil || last != 0 {
		t.Fatalf("Last of an empty stream = %d, %v", last, err)
	}
	seqs := publish(t, l, "sluice.wf.events.inv-1", "created", "done")
	keep := publish(t, l, "sluice.wf.events.inv-2", "created")
	if last, err := l.Last(ctx, "sluice.wf.events.inv-1"); err != nil || last != seqs[1] {
		t.Fatalf("Last = %d, %v; want %d", last, err, seqs[1])
	}
	s, err := l.Subscribe("sluice.wf.events.inv-1", eventlog.SubOptions{Queue: "engine", Start: eventlog.First}, func(*eventlog.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	name := consumerName("sluice.wf.events.inv-1", "engine")
	if _, err := l.js.Consumer(ctx, kindWF.stream, name); err != nil {
		t.Fatalf("the queue's consumer: %v", err)
	}
	if err := l.Delete(ctx, "sluice.wf.events.inv-1"); err != nil {
		t.Fatal(err)
	}
	if last, err := l.Last(ctx, "sluice.wf.events.inv-1"); err != nil || last != 0 {
		t.Fatalf("Last after Delete = %d, %v; want 0", last, err)
	}
	if _, err := l.js.Consumer(ctx, kindWF.stream, name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the queue's consumer after Delete: %v, want not found", err)
	}
	if last, err := l.Last(ctx, "sluice.wf.events.inv-2"); err != nil || last != keep[0] {
		t.Fatalf("Delete touched another stream: Last = %d, %v; want %d", last, err, keep[0])
	}
	if err := l.Delete(ctx, "never-published"); err != nil {
		t.Fatalf("Delete of a stream that does not exist: %v", err)
	}
}

// TestConnectLeavesStreamsAlone: the first daemon creates sluice's
// streams; a daemon connecting later finds them as wanted and neither
// creates nor updates one (an update while another client makes a
// consumer is a data race inside nats-server v2.15, and a needless update
// at every start rewrites the stream's store).
func TestConnectLeavesStreamsAlone(t *testing.T) {
	e := startServer(t, t.TempDir(), "127.0.0.1:0")
	nc, err := nats.Connect(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	requests, err := nc.SubscribeSync("$JS.API.STREAM.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	changes := func() []string {
		t.Helper()
		var subjects []string
		for {
			m, err := requests.NextMsg(200 * time.Millisecond)
			if errors.Is(err, nats.ErrTimeout) {
				return subjects
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(m.Subject, "$JS.API.STREAM.CREATE.") || strings.HasPrefix(m.Subject, "$JS.API.STREAM.UPDATE.") {
				subjects = append(subjects, m.Subject)
			}
		}
	}
	connect(t, e.URL(), 1)
	if got := changes(); len(got) < len(kinds) {
		t.Fatalf("the first connection made %v, want a create of each of sluice's %d streams", got, len(kinds))
	}
	connect(t, e.URL(), 1)
	if got := changes(); len(got) > 0 {
		t.Fatalf("a second connection changed streams already as wanted: %v", got)
	}
}

func TestLimits(t *testing.T) {
	l, _ := newLog(t)
	ctx := ctxT(t)
	max := l.Features().MaxPayload
	if _, err := l.Publish(ctx, "big", eventlog.Message{Data: make([]byte, max), ID: "a", Header: map[string]string{"traceparent": "00-abc"}}); err != nil {
		t.Fatalf("MaxPayload bytes with headers: %v", err)
	}
	if _, err := l.Publish(ctx, "big", eventlog.Message{Data: make([]byte, max+headerReserve+1)}); !errors.Is(err, eventlog.ErrTooLarge) {
		t.Fatalf("over the server's max payload: %v, want ErrTooLarge", err)
	}
	for _, bad := range []string{"", "a b", "orders.>", "x.*", ".x", "x..y"} {
		if _, err := l.Publish(ctx, bad, eventlog.Message{}); !errors.Is(err, eventlog.ErrInvalidName) {
			t.Errorf("Publish(%q): %v, want ErrInvalidName", bad, err)
		}
		if _, err := l.Subscribe(bad, eventlog.SubOptions{}, func(*eventlog.Msg) {}); !errors.Is(err, eventlog.ErrInvalidName) {
			t.Errorf("Subscribe(%q): %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestBlobs(t *testing.T) {
	l, _ := newLog(t)
	ctx := ctxT(t)
	b := l.Blobs()
	data := make([]byte, 3<<20)
	rand.Read(data)
	if err := b.Put(ctx, "resize.3", data); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "resize.3")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %d bytes, %v; want the 3 MiB put", len(got), err)
	}
	if err := b.Put(ctx, "resize.3", []byte("smaller")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "resize.3"); err != nil || string(got) != "smaller" {
		t.Fatalf("Get after replacing: %q, %v", got, err)
	}
	if err := b.Delete(ctx, "resize.3"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "resize.3"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "resize.3"); err != nil {
		t.Fatalf("Delete of a missing blob: %v", err)
	}
}

// TestReconnectAcrossServerRestart restarts the server on the same store
// and port while a plain and a queue subscription run and publishing
// goes on: every message is delivered, in order to the plain one, and a
// message the queue never acked keeps its delivery count (NATS
// Streaming's restarts from 1).
func TestReconnectAcrossServerRestart(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, "127.0.0.1:0")
	addr := e.Addr()
	l := connect(t, e.URL(), 1)

	var plain collector
	ps, err := l.Subscribe("orders", eventlog.SubOptions{Start: eventlog.First}, plain.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	var mu sync.Mutex
	acked := map[string]bool{}
	var poison []int // the deliveries of the message never acked
	qs, err := l.Subscribe("orders", eventlog.SubOptions{Queue: "billing", Start: eventlog.First, ManualAck: true, AckWait: time.Second}, func(m *eventlog.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if string(m.Data) == "poison" {
			poison = append(poison, m.Deliveries)
			return // never acked: redelivered every AckWait
		}
		acked[string(m.Data)] = true
		m.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer qs.Close()
	publish(t, l, "orders", "poison")
	testutil.Eventually(t, 30*time.Second, "two deliveries of the poison message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(poison) >= 2
	})

	const n = 300
	var want []string
	for i := range n {
		want = append(want, strconv.Itoa(i))
	}
	pubErr := make(chan error, 1)
	go func() {
		for _, d := range want {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := l.Publish(ctx, "orders", eventlog.Message{Data: []byte(d), ID: "order-" + d})
			cancel()
			if err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()
	testutil.Eventually(t, 30*time.Second, "some messages before the restart", func() bool { return plain.len() > 50 })
	e.Shutdown()
	testutil.Eventually(t, 10*time.Second, "the Log to notice", func() bool { return !l.Connected() })
	if err := l.PublishAsync("orders", eventlog.Message{Data: []byte("x")}, func(uint64, error) {}); !errors.Is(err, eventlog.ErrNotConnected) {
		t.Errorf("PublishAsync while down: %v, want ErrNotConnected", err)
	}
	mu.Lock()
	before := len(poison)
	mu.Unlock()
	startServer(t, dir, addr)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, "every message on the plain subscription", func() bool { return plain.len() >= n+1 })
	if got := plain.data(); !slices.Equal(got[1:], want) {
		t.Fatalf("plain subscription got %d messages, want %d in order (first differences: %v)", len(got)-1, n, firstDiff(got[1:], want))
	}
	testutil.Eventually(t, time.Minute, "every message acked by the queue, the poison redelivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == n && len(poison) > before
	})
	mu.Lock()
	defer mu.Unlock()
	for i, d := range poison {
		if d != i+1 {
			t.Fatalf("the poison message's deliveries: %v; want 1, 2, 3, ... across the restart", poison)
		}
	}
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d: %s, want %s", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

func TestCredentials(t *testing.T) {
	e, _ := startServer(t, t.TempDir(), "127.0.0.1:0"), 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for name, url := range map[string]string{
		"none":           "nats://" + e.Addr(),
		"wrong password": broker.URLWithAuth("nats://"+e.Addr(), broker.Auth{User: "sluice", Password: "guess"}),
	} {
		if _, err := Connect(ctx, Options{URL: url}); !errors.Is(err, broker.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", name, err)
		}
	}
	if _, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir(), Listen: "0.0.0.0:0"}); !errors.Is(err, broker.ErrOpenListen) {
		t.Errorf("open listen beyond loopback: %v, want ErrOpenListen", err)
	}
	if _, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir(), Listen: "127.0.0.1:0", Auth: broker.Auth{User: "u"}}); !errors.Is(err, broker.ErrCredentials) {
		t.Errorf("user without password: %v, want ErrCredentials", err)
	}
	_, err := StartEmbedded(EmbeddedOptions{Dir: t.TempDir(), Listen: "127.0.0.1:0", Auth: testAuth,
		Cluster: ClusterOptions{Name: "c", Listen: "0.0.0.0:0", Peers: []string{"10.0.0.2:6222", "10.0.0.3:6222"}}})
	if !errors.Is(err, broker.ErrOpenListen) {
		t.Errorf("cluster listen beyond loopback without a password: %v, want ErrOpenListen", err)
	}
	_, err = StartEmbedded(EmbeddedOptions{Dir: t.TempDir(), Listen: "127.0.0.1:0", Auth: testAuth,
		Cluster: ClusterOptions{Name: "c", Listen: "127.0.0.1:0", Peers: []string{"127.0.0.1:6222"}}})
	if !errors.Is(err, ErrCluster) {
		t.Errorf("a cluster of two: %v, want ErrCluster", err)
	}
}

func TestServerNameKeptInDataDir(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, "127.0.0.1:0")
	name := e.Name()
	e.Shutdown()
	if again := startServer(t, dir, "127.0.0.1:0").Name(); again != name {
		t.Fatalf("server name %q after a restart, was %q", again, name)
	}
}

func TestDamagedStoreIsReported(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, "127.0.0.1:0")
	l := connect(t, e.URL(), 1)
	publish(t, l, "sluice.catalog", "deploy")
	l.Close()
	e.Shutdown()
	meta := filepath.Join(StreamDir(filepath.Join(dir, "jetstream"), kindCatalog.stream), "meta.inf")
	if err := os.WriteFile(meta, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", Auth: testAuth})
	var se *StoreError
	if !errors.As(err, &se) || se.Stream != kindCatalog.stream {
		t.Fatalf("start on a damaged catalog stream: %v, want a StoreError naming %s", err, kindCatalog.stream)
	}
	t.Log(err)
}

// TestShortReadsLeaveNoConsumers: a plain subscription's consumer goes
// with it. Many short reads in a row (a topic's tail, wf events) must not
// run into the server's 1,000 consumers per stream, which consumers left
// for their 5-minute InactiveThreshold did.
func TestShortReadsLeaveNoConsumers(t *testing.T) {
	l, _ := newLog(t)
	ctx := ctxT(t)
	if _, err := l.Publish(ctx, "reads", eventlog.Message{Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	const n = 1200
	for i := range n {
		got := make(chan struct{}, 1)
		sub, err := l.Subscribe("reads", eventlog.SubOptions{Start: eventlog.First}, func(*eventlog.Msg) {
			select {
			case got <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Fatalf("read %d of %d: %v", i+1, n, err)
		}
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("read %d: no message", i+1)
		}
		sub.Close()
	}
	testutil.Eventually(t, 30*time.Second, "the ended reads' consumers to be gone", func() bool {
		st, err := l.js.Stream(ctx, kindOf("reads").stream)
		return err == nil && st.CachedInfo().State.Consumers == 0
	})
}

// TestDeleteSmallAndLarge: a stream of a few messages and one of many in
// a family's JetStream stream are empty after Delete (and a second Delete
// is no error), and their neighbours keep theirs.
func TestDeleteSmallAndLarge(t *testing.T) {
	l, _ := newLog(t)
	ctx := ctxT(t)
	for name, n := range map[string]int{"sluice.wf.inv.small": 5, "sluice.wf.inv.large": 100, "sluice.wf.inv.kept": 3} {
		for i := range n {
			if _, err := l.Publish(ctx, name, eventlog.Message{Data: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"sluice.wf.inv.small", "sluice.wf.inv.large"} {
		if err := l.Delete(ctx, name); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
		if last, err := l.Last(ctx, name); err != nil || last != 0 {
			t.Fatalf("%s after its deletion: last %d, %v", name, last, err)
		}
		if err := l.Delete(ctx, name); err != nil {
			t.Fatalf("delete %s again: %v", name, err)
		}
	}
	st, err := l.js.Stream(ctx, kindOf("sluice.wf.inv.kept").stream)
	if err != nil {
		t.Fatal(err)
	}
	if msgs := st.CachedInfo().State.Msgs; msgs != 3 {
		t.Fatalf("%d messages left in the stream, want the 3 kept", msgs)
	}
}

// TestTransientPlacement: a stream that cannot be placed because a peer
// is offline (a cluster forming) is tried again; one that cannot be
// placed for another reason is not.
func TestTransientPlacement(t *testing.T) {
	offline := &jetstream.APIError{Code: 400, ErrorCode: jsNoPeers, Description: "no suitable peers for placement, peer offline"}
	if !transient(fmt.Errorf("create stream: %w", offline)) {
		t.Errorf("%v is not transient", offline)
	}
	tooMany := &jetstream.APIError{Code: 400, ErrorCode: jsNoPeers, Description: "no suitable peers for placement, insufficient resources"}
	if transient(tooMany) {
		t.Errorf("%v is transient", tooMany)
	}
}

// TestPlainSubscriptionOutlivesAStuckReset: a plain subscription whose
// consumer must be re-created, and whose re-creation cannot complete,
// goes on under a new consumer. In a cluster, an ordered consumer re-made
// just after a server was killed can be placed on that server before the
// cluster has noticed it is gone: every later attempt to make the same
// consumer then waits on the dead server, and the subscription delivered
// nothing more, for good (a kill -9 test saw its reader stop at 1,024 of
// 3,000 results). Here the consumer's next name is taken by a consumer of
// another kind, so that re-creating it fails each time in the same way.
func TestPlainSubscriptionOutlivesAStuckReset(t *testing.T) {
	l, _ := newLog(t)
	ctx := ctxT(t)
	publish(t, l, "plain", "a1", "a2", "a3")
	var got collector
	sub, err := l.Subscribe("plain", eventlog.SubOptions{Start: eventlog.First}, got.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	testutil.Eventually(t, 10*time.Second, "the first three messages", func() bool { return got.len() == 3 })
	st, err := l.js.Stream(ctx, kindOf("plain").stream)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range st.ConsumerNames(ctx).Name() {
		names = append(names, name)
	}
	if len(names) != 1 || !strings.HasSuffix(names[0], "_1") {
		t.Fatalf("consumers of the subscription: %v, want one named ..._1", names)
	}
	first := names[0]
	next := strings.TrimSuffix(first, "_1") + "_2"
	if _, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Name: next, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: subject("plain"), InactiveThreshold: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	// the subscription's consumer goes: it must be re-created
	if err := st.DeleteConsumer(ctx, first); err != nil {
		t.Fatal(err)
	}
	publish(t, l, "plain", "a4", "a5")
	testutil.Eventually(t, 40*time.Second, "the messages published after the failed re-creation", func() bool { return got.len() >= 5 })
	time.Sleep(500 * time.Millisecond) // a duplicate would show now
	if d := got.data(); strings.Join(d, ",") != "a1,a2,a3,a4,a5" {
		t.Fatalf("delivered %v, want a1..a5 once each, in order", d)
	}
}

// TestTakenPortEndsTheWait: a server whose port was taken between
// CheckListen and its start logs a fatal error and never serves; the wait
// for it ends at that error, with the server's reason, not at its
// timeout. A taken port is refused before the start (CheckListen).
func TestTakenPortEndsTheWait(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = StartEmbedded(EmbeddedOptions{Dir: t.TempDir(), Listen: ln.Addr().String(), Auth: testAuth})
	if err == nil || !strings.Contains(err.Error(), "--nats-listen "+ln.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a taken port: %v", err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	srv, err := natsd.NewServer(&natsd.Options{Host: host, Port: p, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	fatal := broker.NewFatalLines()
	srv.SetLoggerV2(broker.ServerLogger{OnFatal: fatal.Report}, false, false, false)
	srv.Start()
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout/2)
	defer cancel()
	err = serving(ctx, srv, fatal)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("wait for a server on a taken port: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the wait ran to its end: %v", err)
	}
}
