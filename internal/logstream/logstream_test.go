package logstream

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/natslog/natslogtest"
)

// gaps shows a log's sequence s as 3s: a stream's sequences with gaps, as
// a store that numbers several streams together has them (eventlog).
type gaps struct{ eventlog.Log }

func (g gaps) Subscribe(stream string, o eventlog.SubOptions, h func(*eventlog.Msg)) (eventlog.Subscription, error) {
	if o.Start.Kind == eventlog.StartSeq {
		o.Start.Seq = (o.Start.Seq + 2) / 3
	}
	return g.Log.Subscribe(stream, o, func(m *eventlog.Msg) {
		c := *m
		c.Sequence *= 3
		h(&c)
	})
}

func (g gaps) Last(ctx context.Context, stream string) (uint64, error) {
	seq, err := g.Log.Last(ctx, stream)
	return 3 * seq, err
}

func TestPublishAndRead(t *testing.T) {
	ctx := context.Background()
	conn := natslogtest.Connect(t)
	p := NewPublisher(conn, "d1", slog.New(slog.DiscardHandler))
	// 5000 records of 300 bytes: over the batch split size several times
	const n = 5000
	line := strings.Repeat("x", 300)
	for i := 0; i < n; i += 10 {
		batch := make([]host.Record, 10)
		for k := range batch {
			batch[k] = host.Record{Function: "f", Invocation: fmt.Sprint(i + k), Message: line}
		}
		p.Emit(batch)
	}
	p.Close() // flushes
	var got []string
	err := Read(ctx, conn, "f", ReadOptions{Tail: MaxTail, Since: time.Hour}, func(r host.Record) error {
		got = append(got, r.Invocation)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("read %d records, want %d (dropped %d)", len(got), n, p.Dropped())
	}
	for i, id := range got {
		if id != fmt.Sprint(i) {
			t.Fatalf("record %d is %s: out of order", i, id)
		}
	}
}

// TestReadTail reads the last N records of a channel whose messages hold
// 1 to 5 records each (and markers of other readers): exactly the last N,
// in order, whichever message they start in, across several counting
// windows; then, following, the new ones. The same holds where the
// stream's sequences have gaps.
func TestReadTail(t *testing.T) {
	t.Run("nats-streaming", func(t *testing.T) { readTail(t, natslogtest.Connect(t)) })
	t.Run("sequences with gaps", func(t *testing.T) { readTail(t, gaps{natslogtest.Connect(t)}) })
}

func readTail(t *testing.T, conn eventlog.Log) {
	ctx := context.Background()
	n := 0
	publish := func(records int) {
		recs := make([]host.Record, records)
		for k := range recs {
			recs[k] = host.Record{Function: "f", Invocation: fmt.Sprint(n)}
			n++
		}
		data, _ := json.Marshal(message{Daemon: "d", Records: recs})
		if _, err := conn.Publish(ctx, Channel("f"), eventlog.Message{Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 300; i++ {
		publish(i%5 + 1)
		if i%50 == 0 {
			data, _ := json.Marshal(message{Marker: "someone else's"})
			conn.Publish(ctx, Channel("f"), eventlog.Message{Data: data})
		}
	}
	read := func(o ReadOptions) []string {
		t.Helper()
		var got []string
		if err := Read(ctx, conn, "f", o, func(r host.Record) error { got = append(got, r.Invocation); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	last := func(k int) []string {
		var want []string
		for i := max(0, n-k); i < n; i++ {
			want = append(want, fmt.Sprint(i))
		}
		return want
	}
	for _, tail := range []int{0, 1, 4, 5, 6, 100, 333, n - 1, n, MaxTail} {
		if got, want := read(ReadOptions{Tail: tail}), last(tail); !slices.Equal(got, want) {
			t.Fatalf("tail %d: got %d records %v, want %d ending %v", tail, len(got), got[max(0, len(got)-3):], len(want), want[max(0, len(want)-3):])
		}
	}
	if got := read(ReadOptions{Tail: 10, Since: time.Nanosecond}); len(got) != 0 {
		t.Fatalf("records stored before since: %v", got)
	}
	if err := Read(ctx, conn, "f", ReadOptions{Tail: MaxTail + 1}, func(host.Record) error { return nil }); err == nil {
		t.Fatal("a tail over the maximum was read")
	}

	fctx, cancel := context.WithCancel(ctx)
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- Read(fctx, conn, "f", ReadOptions{Tail: 2, Follow: true}, func(r host.Record) error { got <- r.Invocation; return nil })
	}()
	want := last(2)
	for i := 0; i < 2; i++ {
		if id := <-got; id != want[i] {
			t.Fatalf("follow: record %s, want %s", id, want[i])
		}
	}
	publish(3)
	for _, w := range last(3) {
		if id := <-got; id != w {
			t.Fatalf("follow: new record %s, want %s", id, w)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow ended with %v", err)
	}
}
