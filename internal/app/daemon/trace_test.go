package daemon

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/logctx"
	"github.com/sluicehq/sluice/testutil"
)

// the caller's span, as a client of the daemon sends it
const (
	clientTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	clientTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID      = "00f067aa0ba902b7"
)

// request sends a request with the headers and returns the answer.
func request(t *testing.T, method, url, body string, h http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// span parses a traceparent the daemon gave, failing the test if it is
// not valid.
func span(t *testing.T, what, traceparent string) (traceID, spanID string) {
	t.Helper()
	tc, ok := logctx.ParseTraceparent(traceparent)
	if !ok {
		t.Fatalf("%s: traceparent %q is not valid", what, traceparent)
	}
	return hex.EncodeToString(tc.TraceID[:]), hex.EncodeToString(tc.SpanID[:])
}

// A request with a traceparent reaches the guest with the same trace and
// a span of the call's own, whose traceparent the answer carries; one
// without, or with an invalid one, is served as well, in a new trace.
// Both through an HTTP trigger and the API's invoke endpoints, and every
// log line and function log record of the call names the trace.
func TestTraceOverHTTP(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	logs := captureLogs(&o)
	d, c := start(t, o)
	deploy(t, c, "go", "goguest", nil)
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "meta", Function: "go", HTTP: &catalog.HTTPSpec{Path: "/meta"}}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.Addr()
	urls := map[string]string{"HTTP trigger": base + "/fn/meta", "invoke endpoint": base + "/v1/functions/go/invoke"}
	tests := []struct {
		name      string
		h         http.Header
		continued bool
		state     string
	}{
		{"a valid traceparent", http.Header{"Traceparent": {clientTraceparent}, "Tracestate": {"rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"}}, true, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
		{"none", http.Header{}, false, "<absent>"},
		{"uppercase hex", http.Header{"Traceparent": {strings.ToUpper(clientTraceparent)}, "Tracestate": {"rojo=1"}}, false, "<absent>"},
		{"version ff", http.Header{"Traceparent": {"ff" + clientTraceparent[2:]}}, false, "<absent>"},
		{"a zero trace id", http.Header{"Traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}, false, "<absent>"},
		{"garbage", http.Header{"Traceparent": {"not a trace; at all"}}, false, "<absent>"},
		{"two traceparents", http.Header{"Traceparent": {clientTraceparent, clientTraceparent}}, false, "<absent>"},
	}
	for where, url := range urls {
		for _, tc := range tests {
			t.Run(where+", "+tc.name, func(t *testing.T) {
				status, body, h := request(t, "POST", url, "meta:traceparent", tc.h.Clone())
				if status != http.StatusOK {
					t.Fatalf("%d %s: want the call served whatever its trace headers", status, body)
				}
				if h.Get("Traceparent") != body {
					t.Fatalf("the answer's traceparent %q, the guest's %q: want the call's span in both", h.Get("Traceparent"), body)
				}
				trace, spanID := span(t, "the guest's", body)
				if (trace == clientTraceID) != tc.continued || spanID == clientSpanID {
					t.Fatalf("the call's span %s: continued the client's trace %v, want %v, and a span of its own", body, trace == clientTraceID, tc.continued)
				}
				if _, state, _ := request(t, "POST", url, "meta:tracestate", tc.h.Clone()); state != tc.state {
					t.Fatalf("tracestate %q, want %q", state, tc.state)
				}
			})
		}
	}

	t.Run("the logs name the trace", func(t *testing.T) {
		h := http.Header{"Traceparent": {clientTraceparent}}
		_, _, answer := request(t, "POST", base+"/fn/meta", "log", h)
		call := answer.Get("X-Sluice-Invocation")
		_, spanID := span(t, "the answer's", answer.Get("Traceparent"))
		logs.waitLine(t, "the request line with the trace", func(l map[string]any) bool {
			return says(l, "msg", "request", "path", "/fn/meta", "call", call, "trace_id", clientTraceID, "span_id", spanID)
		})
		logs.waitLine(t, "the guest's line with the trace", func(l map[string]any) bool {
			return says(l, "component", "guest", "stream", "log", "call", call, "trace_id", clientTraceID, "span_id", spanID, "parent_span_id", clientSpanID)
		})
		recs := waitRecords(t, c, "go", 2, func(r host.Record) bool { return r.Invocation == call })
		for _, r := range recs {
			if r.Origin["trace_id"] != clientTraceID || r.Origin["span_id"] != spanID {
				t.Fatalf("fn logs record %+v: want trace_id %s and span_id %s", r, clientTraceID, spanID)
			}
		}
	})
}

// A workflow invoked with a traceparent records it: the answer carries
// the invocation's span, a child of the caller's, and each task's guest
// reads a span of the same trace.
func TestTraceOfAWorkflow(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "work", "wfguest", nil)
	if _, _, err := c.CreateWorkflow(ctx, "traced", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: traced
output: ${ [tasks.a.output.traceparent, tasks.b.output.traceparent] }
tasks:
  a: { run: work, inputs: { op: meta } }
  b: { run: work, requires: [a], inputs: { op: meta } }
`)); err != nil {
		t.Fatal(err)
	}
	status, body, h := request(t, "POST", "http://"+d.Addr()+"/v1/workflows/traced/invoke?wait=true", "null", http.Header{"Traceparent": {clientTraceparent}})
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	var inv engine.Invocation
	if err := json.Unmarshal([]byte(body), &inv); err != nil {
		t.Fatal(err)
	}
	trace, invSpan := span(t, "the answer's", h.Get("Traceparent"))
	if trace != clientTraceID || invSpan == clientSpanID || inv.Traceparent != h.Get("Traceparent") {
		t.Fatalf("answer traceparent %q, invocation's %q: want one new span of trace %s", h.Get("Traceparent"), inv.Traceparent, clientTraceID)
	}
	var tasks []string
	if err := json.Unmarshal(inv.Output, &tasks); err != nil || len(tasks) != 2 {
		t.Fatalf("output %s: %v", inv.Output, err)
	}
	seen := map[string]bool{invSpan: true}
	for _, tp := range tasks {
		if tr, s := span(t, "a task's", tp); tr != clientTraceID || seen[s] {
			t.Fatalf("task span %s: want a new span of trace %s", tp, clientTraceID)
		} else {
			seen[s] = true
		}
	}
}

// traced is a message and its headers, as a consumer receives it.
type traced struct {
	data   string
	header map[string]string
}

// collectTraced records every message of a topic with its headers.
func collectTraced(t *testing.T, l eventlog.Log, topic string) func() []traced {
	t.Helper()
	var mu sync.Mutex
	var got []traced
	sub, err := l.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		mu.Lock()
		got = append(got, traced{string(m.Data), m.Header})
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return func() []traced {
		mu.Lock()
		defer mu.Unlock()
		return append([]traced(nil), got...)
	}
}

// A queue message published with a traceparent header reaches the guest
// in the same trace, and its result is published with the call's
// traceparent, so that a consumer downstream continues the trace, where
// the broker has headers (JetStream). On NATS Streaming, which has none,
// each message starts a trace. An invalid header never fails a message.
func TestTraceAcrossAQueueHop(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "go", "goguest", nil)
	a := newApp(t, d.NATSURL())
	out := collectTraced(t, a.l, "traced.out")
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "tq", Function: "go", Queue: &api.QueueRequest{Topic: "traced.in", RespTopic: "traced.out"}}); err != nil {
		t.Fatal(err)
	}
	headers := a.l.Features().Headers
	sent := []map[string]string{
		{"traceparent": clientTraceparent, "tracestate": "rojo=1"},
		{"traceparent": "00-zz"},
		nil,
	}
	for _, h := range sent {
		if _, err := a.l.Publish(ctx, "traced.in", eventlog.Message{Data: []byte("meta:traceparent"), Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 30*time.Second, "a result per message", func() bool { return len(out()) >= len(sent) })
	continued := 0
	for _, m := range out() {
		trace, _ := span(t, "the guest's", m.data)
		if trace == clientTraceID {
			continued++
		}
		if !headers {
			if len(m.header) != 0 {
				t.Fatalf("a result on a broker without headers has %v", m.header)
			}
			continue
		}
		if m.header["traceparent"] != m.data {
			t.Fatalf("result published with traceparent %q, want the call's %q", m.header["traceparent"], m.data)
		}
		if want := map[bool]string{true: "rojo=1", false: ""}[trace == clientTraceID]; m.header["tracestate"] != want {
			t.Fatalf("result published with tracestate %q, want %q", m.header["tracestate"], want)
		}
	}
	if want := map[bool]int{true: 1, false: 0}[headers]; continued != want {
		t.Fatalf("%d results continue the message's trace, want %d (%s has headers: %v)", continued, want, testBroker(), headers)
	}
}

// Each firing of a timer trigger is a trace of its own: the workflow
// invocations two firings start record different traces.
func TestTimerFiringsAreTraces(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	deploy(t, c, "work", "wfguest", nil)
	if _, _, err := c.CreateWorkflow(ctx, "ticked", []byte("apiVersion: sluice/v1\nkind: Workflow\nname: ticked\ntasks:\n  a: { run: work, inputs: { op: meta } }\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "tick", Workflow: "ticked", Cron: &catalog.CronSpec{Schedule: "@every 1s"}}); err != nil {
		t.Fatal(err)
	}
	var invs []*engine.Invocation
	testutil.Eventually(t, 30*time.Second, "two firings to finish", func() bool {
		var err error
		invs, err = c.Invocations(ctx, "ticked")
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, inv := range invs {
			if inv.Status == engine.StatusSucceeded {
				done++
			}
		}
		return done >= 2
	})
	if err := c.DeleteTrigger(ctx, "tick"); err != nil {
		t.Fatal(err)
	}
	traces := map[string]string{}
	for _, inv := range invs {
		if inv.Status != engine.StatusSucceeded {
			continue
		}
		trace, _ := span(t, "invocation "+inv.ID, inv.Traceparent)
		if other, dup := traces[trace]; dup {
			t.Fatalf("invocations %s and %s, of two firings, share trace %s", other, inv.ID, trace)
		}
		traces[trace] = inv.ID
	}
}
