package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
)

// logBuffer keeps a daemon's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines logged so far that match.
func (b *logBuffer) lines(t *testing.T, match func(line map[string]any) bool) []map[string]any {
	t.Helper()
	b.mu.Lock()
	data := bytes.Clone(b.buf.Bytes())
	b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Bytes())
		}
		if match(line) {
			out = append(out, line)
		}
	}
	return out
}

// waitLine waits for a line that matches and returns it.
func (b *logBuffer) waitLine(t *testing.T, what string, match func(line map[string]any) bool) map[string]any {
	t.Helper()
	var found []map[string]any
	testutil.Eventually(t, 10*time.Second, what, func() bool {
		found = b.lines(t, match)
		return len(found) > 0
	})
	return found[0]
}

// says tells whether a line has each key with the value (compared as
// text: a sequence is a number on some lines, a string on others).
func says(line map[string]any, kv ...string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		v, ok := line[kv[i]]
		if !ok || fmt.Sprint(v) != kv[i+1] {
			return false
		}
	}
	return true
}

// waitRecords waits for a function's log records that match, and
// returns them once there are n.
func waitRecords(t *testing.T, c *client.Client, fn string, n int, match func(r host.Record) bool) []host.Record {
	t.Helper()
	var recs []host.Record
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d log records of %s", n, fn), func() bool {
		recs = recs[:0]
		err := c.Logs(ctx, fn, time.Hour, false, func(r host.Record) {
			if match(r) {
				recs = append(recs, r)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return len(recs) >= n
	})
	return recs
}

// post sends a request with an X-Request-Id (none if id is "").
func post(t *testing.T, url, id, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if id != "" {
		req.Header.Set(api.RequestIDHeader, id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// captureLogs makes the daemon of o log JSON at debug level into the
// buffer it returns (and to stderr too with -v).
func captureLogs(o *Options) *logBuffer {
	logs := &logBuffer{}
	var w io.Writer = logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, os.Stderr)
	}
	o.Logger = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return logs
}

// Every line the daemon logs about a request, a queue message or a
// workflow task names it, and so does every log record of the functions
// it calls (`sluice fn logs`).
func TestLogIDs(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	logs := captureLogs(&o)
	d, c := start(t, o)
	base := "http://" + d.Addr()
	deploy(t, c, "trap", "trap", nil)
	deploy(t, c, "gg", "goguest", nil)

	t.Run("a trap", func(t *testing.T) {
		resp := post(t, base+"/v1/functions/trap/invoke", "abc-123", "x")
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get(api.RequestIDHeader) != "abc-123" {
			t.Fatalf("%d, X-Request-Id %q: want 502 and abc-123 echoed", resp.StatusCode, resp.Header.Get(api.RequestIDHeader))
		}
		call := resp.Header.Get("X-Sluice-Invocation")
		logs.waitLine(t, "the request line with request_id", func(l map[string]any) bool {
			return says(l, "msg", "request", "level", "WARN", "path", "/v1/functions/trap/invoke", "status", "502", "request_id", "abc-123", "call", call)
		})
		failure := logs.waitLine(t, "the failure line", func(l map[string]any) bool {
			return says(l, "component", "guest", "stream", "sluice", "call", call)
		})
		if !says(failure, "request_id", "abc-123") || !strings.Contains(failure["msg"].(string), `function "trap" trapped`) {
			t.Fatalf("failure line %v: want the trap and request_id abc-123", failure)
		}
		recs := waitRecords(t, c, "trap", 1, func(r host.Record) bool { return r.Invocation == call })
		if r := recs[0]; r.Stream != "sluice" || r.Origin["request_id"] != "abc-123" {
			t.Fatalf("fn logs record %+v: want the failure with request_id abc-123", r)
		}
	})

	t.Run("stderr through an HTTP trigger", func(t *testing.T) {
		if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "lg", Function: "gg", HTTP: &catalog.HTTPSpec{Path: "/lg"}}); err != nil {
			t.Fatal(err)
		}
		resp := post(t, base+"/fn/lg", "abc-124", "log")
		if resp.StatusCode != http.StatusOK || resp.Header.Get(api.RequestIDHeader) != "abc-124" {
			t.Fatalf("%d, X-Request-Id %q: want 200 and abc-124 echoed", resp.StatusCode, resp.Header.Get(api.RequestIDHeader))
		}
		call := resp.Header.Get("X-Sluice-Invocation")
		logs.waitLine(t, "the request line", func(l map[string]any) bool {
			return says(l, "msg", "request", "path", "/fn/lg", "request_id", "abc-124", "call", call)
		})
		for _, stream := range []string{"stderr", "log"} {
			logs.waitLine(t, "the guest's "+stream+" line with request_id", func(l map[string]any) bool {
				return says(l, "component", "guest", "stream", stream, "call", call, "request_id", "abc-124")
			})
		}
		recs := waitRecords(t, c, "gg", 2, func(r host.Record) bool { return r.Invocation == call })
		for _, r := range recs {
			if r.Origin["request_id"] != "abc-124" || r.Origin["trace_id"] == "" || r.Origin["span_id"] == "" || len(r.Origin) != 3 {
				t.Fatalf("fn logs record %+v: want origin request_id abc-124 and the call's trace_id and span_id", r)
			}
		}
	})

	for _, tc := range []struct{ name, sent string }{{"no id", ""}, {"a bad id", "no spaces allowed"}, {"a long id", strings.Repeat("a", 65)}} {
		t.Run("a new id for "+tc.name, func(t *testing.T) {
			resp := post(t, base+"/v1/functions/gg/invoke", tc.sent, "log")
			id := resp.Header.Get(api.RequestIDHeader)
			if resp.StatusCode != http.StatusOK || id == "" || id == tc.sent {
				t.Fatalf("%d, X-Request-Id %q: want 200 and a new id", resp.StatusCode, id)
			}
			call := resp.Header.Get("X-Sluice-Invocation")
			logs.waitLine(t, "the request line with the new id", func(l map[string]any) bool {
				return says(l, "msg", "request", "request_id", id, "call", call)
			})
			recs := waitRecords(t, c, "gg", 2, func(r host.Record) bool { return r.Invocation == call })
			for _, r := range recs {
				if r.Origin["request_id"] != id {
					t.Fatalf("fn logs record %+v: want origin request_id %s", r, id)
				}
			}
			if tc.sent != "" && len(logs.lines(t, func(l map[string]any) bool { return says(l, "request_id", tc.sent) })) > 0 {
				t.Fatalf("the refused id %q was logged", tc.sent)
			}
		})
	}

	t.Run("a queue message", func(t *testing.T) {
		deploy(t, c, "gq", "goguest", nil)
		if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "lq", Function: "gq", Queue: &api.QueueRequest{Topic: "lq.in", MaxRetries: new(int)}}); err != nil {
			t.Fatal(err)
		}
		// sequences 1 and 2 of the topic: one logs, one fails (no retry,
		// no error topic: dropped with an error line)
		for _, in := range []string{"log", "error"} {
			if err := c.Publish(ctx, "lq.in", []byte(in)); err != nil {
				t.Fatal(err)
			}
		}
		for _, stream := range []string{"stderr", "log"} {
			logs.waitLine(t, "the guest's "+stream+" line with the message", func(l map[string]any) bool {
				return says(l, "component", "guest", "function", "gq", "stream", stream, "trigger", "lq", "sequence", "1")
			})
		}
		logs.waitLine(t, "the failure line with the message", func(l map[string]any) bool {
			return says(l, "component", "guest", "function", "gq", "stream", "sluice", "trigger", "lq", "sequence", "2")
		})
		logs.waitLine(t, "the dropped message's line", func(l map[string]any) bool {
			return says(l, "component", "queue", "level", "ERROR", "trigger", "lq", "sequence", "2")
		})
		recs := waitRecords(t, c, "gq", 3, func(r host.Record) bool { return r.Origin["trigger"] == "lq" })
		for _, r := range recs {
			want := map[string]string{"sluice": "2", "stderr": "1", "log": "1"}[r.Stream]
			if r.Origin["sequence"] != want || r.Origin["trace_id"] == "" || r.Origin["span_id"] == "" || len(r.Origin) != 4 {
				t.Fatalf("fn logs record %+v: want origin trigger lq, sequence %s, and the call's trace_id and span_id", r, want)
			}
		}
	})

	t.Run("a workflow task", func(t *testing.T) {
		deploy(t, c, "gw", "goguest", nil)
		src := "apiVersion: sluice/v1\nkind: Workflow\nname: wl\ntasks:\n  say: { run: gw, inputs: log }\n"
		if _, _, err := c.CreateWorkflow(ctx, "wl", []byte(src)); err != nil {
			t.Fatal(err)
		}
		inv, err := c.InvokeWorkflow(ctx, "wl", nil, client.InvokeOptions{Wait: true})
		if err != nil || inv.Status != "succeeded" {
			t.Fatalf("%v %+v", err, inv)
		}
		for _, stream := range []string{"stderr", "log"} {
			line := logs.waitLine(t, "the guest's "+stream+" line with the invocation", func(l map[string]any) bool {
				return says(l, "component", "guest", "function", "gw", "stream", stream, "invocation", inv.ID, "task", "say")
			})
			if call, _ := line["call"].(string); call == "" || call == inv.ID {
				t.Fatalf("line %v: want the call's own id as call", line)
			}
		}
		recs := waitRecords(t, c, "gw", 2, func(r host.Record) bool { return r.Origin["invocation"] == inv.ID })
		for _, r := range recs {
			if r.Origin["task"] != "say" || r.Invocation == inv.ID {
				t.Fatalf("fn logs record %+v: want origin invocation %s, task say, and a call id of its own", r, inv.ID)
			}
		}

		// a task that fails says so, at warn, with the invocation and task
		src = "apiVersion: sluice/v1\nkind: Workflow\nname: wf-fails\ntasks:\n  boom: { run: gw, inputs: error }\n"
		if _, _, err := c.CreateWorkflow(ctx, "wf-fails", []byte(src)); err != nil {
			t.Fatal(err)
		}
		failed, err := c.InvokeWorkflow(ctx, "wf-fails", nil, client.InvokeOptions{Wait: true})
		if err != nil || failed.Status != "failed" {
			t.Fatalf("%v %+v", err, failed)
		}
		logs.waitLine(t, "the engine's line about the failed task", func(l map[string]any) bool {
			return says(l, "component", "engine", "level", "WARN", "msg", "task failed", "invocation", failed.ID, "task", "boom", "workflow", "wf-fails")
		})
	})
}
