package triggers

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/testutil"
)

// A panic while a message is processed (a bug in sluice that a message
// finds) fails that call only: the message is retried and dead-lettered by
// the usual rules, the others are served, and the process goes on.
func TestQueuePanicIsAFailedCall(t *testing.T) {
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

	var mu sync.Mutex
	calls := map[string]int{}
	inv := InvokerFunc(func(_ context.Context, _ string, c host.Call) (host.Result, error) {
		mu.Lock()
		calls[string(c.Input)]++
		mu.Unlock()
		if string(c.Input) == "boom" {
			var m map[string]int
			m["x"]++ // assignment to entry in nil map
		}
		return host.Result{Output: c.Input}, nil
	})
	var out, dead []string
	for topic, into := range map[string]*[]string{"out": &out, "dead": &dead} {
		sub, err := conn.Subscribe(topic, broker.SubOptions{Start: broker.StartAll}, func(m *broker.Msg) {
			mu.Lock()
			*into = append(*into, string(m.Data))
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
	}
	q := NewQueue(conn, inv, slog.New(slog.DiscardHandler))
	defer q.Close(ctx)
	if err := q.Start(QueueTrigger{Name: "t", Function: "f", Topic: "in", RespTopic: "out", ErrorTopic: "dead",
		MaxRetries: 1, MaxInflight: 4, AckWait: time.Second, Group: "t-1"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "boom", "b"} {
		if err := conn.Publish(ctx, "in", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 20*time.Second, "2 results and 1 dead letter", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(out) == 2 && len(dead) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	var dl DeadLetter
	if err := json.Unmarshal([]byte(dead[0]), &dl); err != nil {
		t.Fatal(err)
	}
	if string(dl.Payload) != "boom" || dl.Code != "internal" || dl.Redeliveries != 1 || calls["boom"] != 2 ||
		!strings.Contains(dl.Error, "assignment to entry in nil map") || !strings.Contains(dl.Error, "processing message 2 failed inside sluice") {
		t.Fatalf("dead letter %+v after %d calls", dl, calls["boom"])
	}
	if st, _ := q.Stats("t"); st.Failed != 2 || st.DeadLettered != 1 || st.Succeeded != 2 {
		t.Fatalf("stats %+v", st)
	}
}
