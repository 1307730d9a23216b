package eventlogtest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// testDedup: where Features.Dedup, a message published again with the ID
// of one in the window is not stored again, and its first sequence is
// returned; IDs are per stream.
func (s *suite) testDedup(t *testing.T) {
	if !s.f.Dedup {
		t.Logf("%s does not de-duplicate: not tested", s.f.Name)
		return
	}
	l := s.connect(t)
	st, other := s.name(t, "catalog"), s.name(t, "other")
	first := publish(t, l, st, eventlog.Message{Data: []byte("a"), ID: "x"})
	if again := publish(t, l, st, eventlog.Message{Data: []byte("a again"), ID: "x"}); again != first {
		t.Errorf("a message published again with ID x got sequence %d; the first has %d", again, first)
	}
	if again := publish(t, s.connect(t), st, eventlog.Message{Data: []byte("a from another connection"), ID: "x"}); again != first {
		t.Errorf("a message published again with ID x on another connection got sequence %d; the first has %d", again, first)
	}
	y := publish(t, l, st, eventlog.Message{Data: []byte("y"), ID: "y"})
	if y <= first {
		t.Errorf("a message with a new ID got sequence %d, after %d", y, first)
	}
	if last, err := l.Last(ctx(t), st); err != nil || last != y {
		t.Errorf("Last = %d, %v; want %d", last, err, y)
	}
	o := publish(t, l, other, eventlog.Message{Data: []byte("x elsewhere"), ID: "x"})
	if last, err := l.Last(ctx(t), other); err != nil || last != o || o == first {
		t.Errorf("a message with ID x in another stream: sequence %d, Last %d, %v; an ID is de-duplicated within its stream", o, last, err)
	}
	publish(t, l, st, eventlog.Message{Data: []byte("end")})
	var got collector
	subscribe(t, l, st, eventlog.SubOptions{Start: eventlog.First}, got.handle)
	expectData(t, "a stream with a duplicate", got.waitData(t, "end", "published last"), []string{"a", "y", "end"})
}

// testHeaders: where Features.Headers, ID and Header are delivered to
// plain and queue subscribers; elsewhere a message with them is still
// published and delivered with its data.
func (s *suite) testHeaders(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "traced")
	header := map[string]string{
		"traceparent":  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Content-Type": "application/json",
	}
	publish(t, l, st, eventlog.Message{Data: []byte(`{"n":1}`), ID: "id-1", Header: header})
	var plain, queue collector
	subscribe(t, l, st, eventlog.SubOptions{Start: eventlog.First}, plain.handle)
	subscribe(t, s.connect(t), st, eventlog.SubOptions{Queue: "q", Start: eventlog.First}, queue.handle)
	for what, c := range map[string]*collector{"plain": &plain, "queue": &queue} {
		m := c.wait(t, 1, "by a "+what+" subscription")[0]
		if string(m.Data) != `{"n":1}` {
			t.Errorf("a %s subscription received %q, want %q", what, m.Data, `{"n":1}`)
		}
		if !s.f.Headers {
			continue
		}
		if m.ID != "id-1" {
			t.Errorf("a %s subscription received ID %q, want id-1", what, m.ID)
		}
		if len(m.Header) != len(header) {
			t.Errorf("a %s subscription received header %v, want %v", what, m.Header, header)
		}
		for k, v := range header {
			if m.Header[k] != v {
				t.Errorf("a %s subscription received header %s=%q, want %q", what, k, m.Header[k], v)
			}
		}
	}
}

// testDelete: where Features.Delete, Delete removes a stream's messages
// and its queues; elsewhere it returns ErrUnsupported and removes nothing.
func (s *suite) testDelete(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "invocation")
	publishN(t, l, st, "m", 0, 3)
	var q collector
	sub := subscribe(t, l, st, eventlog.SubOptions{Queue: "q", Start: eventlog.First}, q.handle)
	q.wait(t, 3, "by a queue")
	if err := sub.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	err := l.Delete(ctx(t), st)
	if !s.f.Delete {
		if !errors.Is(err, eventlog.ErrUnsupported) {
			t.Fatalf("Delete without Features.Delete: %v, want ErrUnsupported", err)
		}
		var got collector
		subscribe(t, l, st, eventlog.SubOptions{Start: eventlog.First}, got.handle)
		expectData(t, "a stream after an unsupported Delete", got.wait(t, 3, "kept"), names("m", 0, 3))
		return
	}
	if err != nil {
		t.Fatalf("delete %s: %v", st, err)
	}
	if last, err := l.Last(ctx(t), st); err != nil || last != 0 {
		t.Errorf("Last of a deleted stream = %d, %v; want 0", last, err)
	}
	if err := l.Delete(ctx(t), st); err != nil {
		t.Errorf("delete a deleted stream: %v, want nil", err)
	}
	if err := l.Delete(ctx(t), s.name(t, "never")); err != nil {
		t.Errorf("delete a stream that never was: %v, want nil", err)
	}

	// The stream is new: its old messages are gone...
	publish(t, l, st, msg("m", 3))
	var all collector
	subscribe(t, l, st, eventlog.SubOptions{Start: eventlog.First}, all.handle)
	expectData(t, "a stream deleted and written again", all.wait(t, 1, "from First"), []string{"m3"})
	// ...and so is its queue: one that survived would deliver m3, which it
	// has not had; a new one starting New does not.
	var again collector
	subscribe(t, l, st, eventlog.SubOptions{Queue: "q", Start: eventlog.New}, again.handle)
	publish(t, l, st, msg("m", 4))
	expectData(t, "a queue of a deleted stream, made again from New", again.waitData(t, "m4", "published last"), []string{"m4"})
}

// testBlobs: values of 0 B, 1 B and 3 MiB round-trip, across connections;
// Put replaces, Get of a missing name is ErrNotFound, Delete removes and
// is idempotent.
func (s *suite) testBlobs(t *testing.T) {
	l1, l2 := s.connect(t), s.connect(t)
	b1, b2 := l1.Blobs(), l2.Blobs()
	big := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"one", []byte{0}},
		{"big", big},
	}
	for _, c := range cases {
		name := s.name(t, c.name)
		if err := b1.Put(ctx(t), name, c.data); err != nil {
			t.Fatalf("put %d bytes: %v", len(c.data), err)
		}
		got, err := b2.Get(ctx(t), name)
		if err != nil || !bytes.Equal(got, c.data) {
			t.Fatalf("get %d bytes put on another connection: %d bytes, %v", len(c.data), len(got), err)
		}
	}
	name := s.name(t, "one")
	if err := b2.Put(ctx(t), name, []byte("new")); err != nil {
		t.Fatalf("put over a value: %v", err)
	}
	if got, err := b1.Get(ctx(t), name); err != nil || string(got) != "new" {
		t.Fatalf("get a replaced value: %q, %v; want \"new\"", got, err)
	}
	if _, err := b1.Get(ctx(t), s.name(t, "missing")); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("get a missing value: %v, want ErrNotFound", err)
	}
	if !s.f.Delete {
		if err := b1.Delete(ctx(t), name); !errors.Is(err, eventlog.ErrUnsupported) {
			t.Fatalf("delete a blob without Features.Delete: %v, want ErrUnsupported", err)
		}
		if got, err := b2.Get(ctx(t), name); err != nil || string(got) != "new" {
			t.Fatalf("get after an unsupported delete: %q, %v; want the value kept", got, err)
		}
		return
	}
	if err := b1.Delete(ctx(t), name); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := b2.Get(ctx(t), name); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("get a deleted value: %v, want ErrNotFound", err)
	}
	if err := b2.Delete(ctx(t), name); err != nil {
		t.Fatalf("delete a deleted value: %v, want nil", err)
	}
	if got, err := b1.Get(ctx(t), s.name(t, "big")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a value after another was deleted: %d bytes, %v", len(got), err)
	}
}

// testTooLarge: a message of MaxPayload bytes is stored; one byte more is
// ErrTooLarge, and the connection still works.
func (s *suite) testTooLarge(t *testing.T) {
	l := s.connect(t)
	st := s.name(t, "big")
	max := make([]byte, s.f.MaxPayload)
	for i := range max {
		max[i] = byte(i)
	}
	over := make([]byte, s.f.MaxPayload+1)
	if _, err := l.Publish(ctx(t), st, eventlog.Message{Data: over}); !errors.Is(err, eventlog.ErrTooLarge) {
		t.Fatalf("publish %d bytes, over MaxPayload %d: %v, want ErrTooLarge", len(over), s.f.MaxPayload, err)
	}
	async := make(chan error, 1)
	if err := l.PublishAsync(st, eventlog.Message{Data: over}, func(_ uint64, err error) { async <- err }); err != nil {
		async <- err
	}
	select {
	case err := <-async:
		if !errors.Is(err, eventlog.ErrTooLarge) {
			t.Fatalf("PublishAsync of %d bytes, over MaxPayload %d: %v, want ErrTooLarge", len(over), s.f.MaxPayload, err)
		}
	case <-time.After(waitFor):
		t.Fatalf("PublishAsync of %d bytes, over MaxPayload: no outcome in %s", len(over), waitFor)
	}
	seq := publish(t, l, st, eventlog.Message{Data: max})
	publish(t, l, st, eventlog.Message{Data: []byte("small")})
	var got collector
	subscribe(t, l, st, eventlog.SubOptions{Start: eventlog.First}, got.handle)
	ms := got.wait(t, 2, "after a refused one")
	if len(ms) != 2 || ms[0].Sequence != seq || !bytes.Equal(ms[0].Data, max) || string(ms[1].Data) != "small" {
		t.Fatalf("after messages over MaxPayload were refused, received %d messages; want the one of MaxPayload (%d bytes) and \"small\"", len(ms), s.f.MaxPayload)
	}
}

// testInvalidNames: names the contract does not allow are ErrInvalidName,
// for streams, queues and blobs.
func (s *suite) testInvalidNames(t *testing.T) {
	l := s.connect(t)
	valid := s.name(t, "valid")
	for _, name := range []string{"", "a b", "a..b", "a.>", "*", ".a", "a.", "a/b", "a\x00b"} {
		if eventlog.ValidName(name) {
			t.Fatalf("ValidName(%q) = true", name)
		}
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, eventlog.ErrInvalidName) {
				t.Errorf("%s with the name %q: %v, want ErrInvalidName", op, name, err)
			}
		}
		_, err := l.Publish(ctx(t), name, eventlog.Message{Data: []byte("x")})
		check("Publish", err)
		check("PublishAsync", l.PublishAsync(name, eventlog.Message{Data: []byte("x")}, func(uint64, error) {
			t.Errorf("PublishAsync to %q called done", name)
		}))
		sub, err := l.Subscribe(name, eventlog.SubOptions{}, func(*eventlog.Msg) {})
		check("Subscribe", err)
		if sub != nil {
			sub.Close()
		}
		if name != "" { // no queue: a plain subscription
			sub, err = l.Subscribe(valid, eventlog.SubOptions{Queue: name}, func(*eventlog.Msg) {})
			check("Subscribe to a queue", err)
			if sub != nil {
				sub.Close()
			}
		}
		_, err = l.Last(ctx(t), name)
		check("Last", err)
		if err := l.Delete(ctx(t), name); s.f.Delete || !errors.Is(err, eventlog.ErrUnsupported) {
			check("Delete", err)
		}
		check("Blobs().Put", l.Blobs().Put(ctx(t), name, []byte("x")))
		_, err = l.Blobs().Get(ctx(t), name)
		check("Blobs().Get", err)
		check("Blobs().Delete", l.Blobs().Delete(ctx(t), name))
	}
}

// testClosed: a closed Log refuses everything with ErrClosed, and its
// subscriptions end.
func (s *suite) testClosed(t *testing.T) {
	l := s.h.Connect(t)
	st := s.name(t, "closed")
	var got collector
	if _, err := l.Subscribe(st, eventlog.SubOptions{Start: eventlog.First}, got.handle); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if l.Connected() {
		t.Error("Connected() after Close")
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
	_, err := l.Publish(ctx(t), st, eventlog.Message{Data: []byte("x")})
	check("Publish", err)
	check("PublishAsync", l.PublishAsync(st, eventlog.Message{Data: []byte("x")}, func(uint64, error) {
		t.Error("PublishAsync after Close called done")
	}))
	_, err = l.Subscribe(st, eventlog.SubOptions{}, func(*eventlog.Msg) {})
	check("Subscribe", err)
	_, err = l.Last(ctx(t), st)
	check("Last", err)
	check("WaitUp", l.WaitUp(ctx(t)))

	// what another connection publishes does not reach the closed one's
	// subscription: a subscription made after it gets it first
	other := s.connect(t)
	var after collector
	subscribe(t, other, st, eventlog.SubOptions{Start: eventlog.First}, after.handle)
	publish(t, other, st, eventlog.Message{Data: []byte("after")})
	after.wait(t, 1, "published after the close")
	if n := got.count(); n != 0 {
		t.Errorf("a subscription of a closed Log received %d messages", n)
	}
}

// testFamily: where Features.Families, a family subscription delivers the
// messages of the prefix's stream and of every stream below it, in store
// order with growing sequences, naming each one's stream, and not those of
// a stream that only shares the prefix's first letters; LastOfFamily says
// where that order ends, and a deleted member drops out of both.
// Elsewhere both are ErrUnsupported.
func (s *suite) testFamily(t *testing.T) {
	l := s.connect(t)
	fam := s.name(t, "fam")
	if !s.f.Families {
		if _, err := l.Subscribe(fam, eventlog.SubOptions{Family: true, Start: eventlog.First}, func(*eventlog.Msg) {}); !errors.Is(err, eventlog.ErrUnsupported) {
			t.Errorf("a family subscription without Features.Families: %v, want ErrUnsupported", err)
		}
		if _, err := l.LastOfFamily(ctx(t), fam); !errors.Is(err, eventlog.ErrUnsupported) {
			t.Errorf("LastOfFamily without Features.Families: %v, want ErrUnsupported", err)
		}
		return
	}
	if _, err := l.Subscribe(fam, eventlog.SubOptions{Family: true, Queue: "q"}, func(*eventlog.Msg) {}); !errors.Is(err, eventlog.ErrUnsupported) {
		t.Errorf("a family queue subscription: %v, want ErrUnsupported", err)
	}
	if last, err := l.LastOfFamily(ctx(t), fam); err != nil || last != 0 {
		t.Errorf("LastOfFamily of an empty family = %d, %v; want 0", last, err)
	}
	a, bc, sibling := fam+".a", fam+".b.c", s.name(t, "famx")
	publish(t, l, a, eventlog.Message{Data: []byte("1")})
	publish(t, l, fam, eventlog.Message{Data: []byte("2")})
	publish(t, l, sibling, eventlog.Message{Data: []byte("not of the family")})
	third := publish(t, l, bc, eventlog.Message{Data: []byte("3")})
	fourth := publish(t, l, a, eventlog.Message{Data: []byte("4")})
	if last, err := l.LastOfFamily(ctx(t), fam); err != nil || last != fourth {
		t.Errorf("LastOfFamily = %d, %v; want %d", last, err, fourth)
	}
	var all collector
	subscribe(t, l, fam, eventlog.SubOptions{Family: true, Start: eventlog.First}, all.handle)
	got := all.waitData(t, "4", "published last")
	expectData(t, "a family from First", got, []string{"1", "2", "3", "4"})
	expectIncreasing(t, "a family from First", got)
	for i, want := range []string{a, fam, bc, a} {
		if got[i].Stream != want {
			t.Errorf("message %q of the family came with Stream %q, want %q", got[i].Data, got[i].Stream, want)
		}
	}
	// A stream of the family created after subscribing is delivered too.
	fifth := publish(t, s.connect(t), fam+".new", eventlog.Message{Data: []byte("5")})
	if m := all.waitData(t, "5", "published to a new stream of the family"); m[len(m)-1].Stream != fam+".new" {
		t.Errorf("message 5 came with Stream %q, want %q", m[len(m)-1].Stream, fam+".new")
	}
	var from collector
	subscribe(t, l, fam, eventlog.SubOptions{Family: true, Start: eventlog.At(third)}, from.handle)
	expectData(t, "a family from the third message", from.waitData(t, "5", "published last"), []string{"3", "4", "5"})

	if !s.f.Delete {
		return
	}
	if err := l.Delete(ctx(t), a); err != nil {
		t.Fatalf("delete %s: %v", a, err)
	}
	if err := l.Delete(ctx(t), fam+".new"); err != nil {
		t.Fatalf("delete %s: %v", fam+".new", err)
	}
	if last, err := l.LastOfFamily(ctx(t), fam); err != nil || last != third {
		t.Errorf("LastOfFamily after deleting the streams of 4 and 5 = %d, %v; want %d (of 3)", last, err, third)
	}
	publish(t, l, bc, eventlog.Message{Data: []byte("6")})
	var after collector
	subscribe(t, l, fam, eventlog.SubOptions{Family: true, Start: eventlog.First}, after.handle)
	expectData(t, "a family with deleted members", after.waitData(t, "6", "published last"), []string{"2", "3", "6"})
	if fifth <= fourth {
		t.Errorf("sequences of the family: %d after %d", fifth, fourth)
	}
}
