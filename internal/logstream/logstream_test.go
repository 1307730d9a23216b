package logstream

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/broker"
)

func TestPublishAndRead(t *testing.T) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx := context.Background()
	conn, err := broker.Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
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
	err = Read(ctx, conn, "f", time.Hour, false, func(r host.Record) error {
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
