package triggers

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/eventlog/memlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/logctx"
	"github.com/sluicehq/sluice/testutil"
)

const callerTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// A queue message's call continues the trace of the message's headers
// (a new one without them, or with an invalid one, never a failure), and
// its result and dead letter carry the call's span on to the consumer
// downstream, where the log has headers (memlog, JetStream).
func TestQueueCarriesTheTrace(t *testing.T) {
	conn := memlog.NewBroker().Connect()
	defer conn.Close()
	ctx := context.Background()

	var mu sync.Mutex
	seen := map[string]logctx.Trace{} // input -> the call's trace
	inv := fn.InvokerFunc(func(ctx context.Context, _ fn.Target, c fn.Call) (fn.Result, error) {
		tc, _ := logctx.TraceFrom(ctx)
		mu.Lock()
		seen[string(c.Input)] = tc
		mu.Unlock()
		if string(c.Input) == "fail" {
			return fn.Result{}, errors.New("boom")
		}
		return fn.Result{Output: c.Input}, nil
	})
	got := map[string]*eventlog.Msg{} // result or dead letter's input -> the message
	for _, topic := range []string{"out", "dead"} {
		sub, err := conn.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
			key := string(m.Data)
			if m.Stream == "dead" {
				var dl DeadLetter
				_ = json.Unmarshal(m.Data, &dl)
				key = string(dl.Payload)
			}
			mu.Lock()
			got[key] = m
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
	}
	q := NewQueue(conn, inv, slog.New(slog.DiscardHandler))
	defer q.Close(ctx)
	if err := q.Start(QueueTrigger{Name: "t", Target: fn.Function("f"), Topic: "in", RespTopic: "out", ErrorTopic: "dead",
		MaxRetries: 0, MaxInflight: 4, AckWait: time.Second, Group: "t-1"}); err != nil {
		t.Fatal(err)
	}
	sent := map[string]map[string]string{
		"traced":  {"traceparent": callerTraceparent, "tracestate": "rojo=1"},
		"cased":   {"Traceparent": callerTraceparent},
		"none":    nil,
		"invalid": {"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "tracestate": "rojo=1"},
		"fail":    {"traceparent": callerTraceparent},
	}
	for in, h := range sent {
		if _, err := conn.Publish(ctx, "in", eventlog.Message{Data: []byte(in), Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "a result or dead letter per message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(sent)
	})
	mu.Lock()
	defer mu.Unlock()
	for in := range sent {
		call, out := seen[in], got[in]
		if call.IsZero() {
			t.Fatalf("%s: the call had no trace", in)
		}
		if out.Header["traceparent"] != call.Traceparent() {
			t.Fatalf("%s: published with traceparent %q, want the call's %q", in, out.Header["traceparent"], call.Traceparent())
		}
		continued := in == "traced" || in == "cased" || in == "fail"
		if tid := hex.EncodeToString(call.TraceID[:]); continued != (tid == callerTraceparent[3:35]) {
			t.Fatalf("%s: the call's trace %s; continued the message's: %v, want %v", in, tid, !continued, continued)
		}
		if continued && hex.EncodeToString(call.Parent[:]) != callerTraceparent[36:52] {
			t.Fatalf("%s: the call's parent span %x, want the message's", in, call.Parent)
		}
	}
	if got["traced"].Header["tracestate"] != "rojo=1" || got["invalid"].Header["tracestate"] != "" {
		t.Fatalf("tracestate passed on %q and %q, want the valid trace's alone", got["traced"].Header["tracestate"], got["invalid"].Header["tracestate"])
	}
	var dl DeadLetter
	if err := json.Unmarshal(got["fail"].Data, &dl); err != nil || dl.Traceparent != seen["fail"].Traceparent() {
		t.Fatalf("dead letter %+v (%v): want the failed call's traceparent %s", dl, err, seen["fail"].Traceparent())
	}
}

func TestTraceOf(t *testing.T) {
	for _, tc := range []struct {
		name      string
		h         http.Header
		continued bool
		state     string
	}{
		{"none", http.Header{}, false, ""},
		{"valid", http.Header{"Traceparent": {callerTraceparent}, "Tracestate": {"a=1", "b=2"}}, true, "a=1,b=2"},
		{"invalid", http.Header{"Traceparent": {"01-zz"}, "Tracestate": {"a=1"}}, false, ""},
		{"twice", http.Header{"Traceparent": {callerTraceparent, callerTraceparent}}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TraceOf(tc.h)
			if got.IsZero() || got.SpanID == [8]byte{} {
				t.Fatalf("TraceOf = %+v: want a span", got)
			}
			if tid := hex.EncodeToString(got.TraceID[:]); (tid == callerTraceparent[3:35]) != tc.continued || got.State != tc.state {
				t.Fatalf("TraceOf = %s state %q: want continued %v, state %q", got, got.State, tc.continued, tc.state)
			}
		})
	}
}
