package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/client"
)

// callWorkflow posts its input's body to its input's URL with the http
// built-in and outputs the response's body.
const callWorkflow = `
apiVersion: sluice/v1
kind: Workflow
name: call
output: ${ tasks.post.output.body }
tasks:
  post:
    run: http
    inputs:
      url: ${ input.url }
      method: POST
      headers: { X-Invocation: "${ invocation.id }" }
      body: ${ input.body }
`

// echoServer answers a POST with {"got": BODY, "type": CONTENT-TYPE},
// and counts the requests.
type echoServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
}

func newEchoServer(t *testing.T) *echoServer {
	s := &echoServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits++
		s.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"got": json.RawMessage(body), "type": r.Header.Get("Content-Type")})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *echoServer) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func runCall(t *testing.T, c *client.Client, url string) *engine.Invocation {
	t.Helper()
	if _, _, err := c.CreateWorkflow(ctx, "call", []byte(callWorkflow)); err != nil {
		t.Fatal(err)
	}
	in := fmt.Sprintf(`{"url": %q, "body": {"order": 7}}`, url)
	inv, err := c.InvokeWorkflow(ctx, "call", []byte(in), client.InvokeOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestHTTPBuiltinCallsAllowedHosts: with --allow-http naming a local
// server, a workflow calls it; a host not in the list is refused, and the
// refusal names the flag. Each call is logged at debug with its task,
// and counted by outcome.
func TestHTTPBuiltinCallsAllowedHosts(t *testing.T) {
	t.Parallel()
	s := newEchoServer(t)
	o := testOptions(t)
	o.AllowHTTP = []string{strings.TrimPrefix(s.URL, "http://")}
	var logs logBuffer
	o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, c := start(t, o)
	inv := runCall(t, c, s.URL+"/orders")
	if inv.Status != "succeeded" || !sameJSON(string(inv.Output), `{"got": {"order": 7}, "type": "application/json"}`) {
		t.Fatalf("invocation %s: %s %s", inv.Status, inv.Output, inv.Error)
	}
	logs.waitLine(t, "the call's debug line", func(l map[string]any) bool {
		return says(l, "msg", "outbound HTTP request", "method", "POST", "url", s.URL+"/orders", "status", "200", "invocation", inv.ID, "task", "post")
	})

	other := newEchoServer(t)
	inv, err := c.InvokeWorkflow(ctx, "call", []byte(fmt.Sprintf(`{"url": %q, "body": null}`, other.URL)), client.InvokeOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("host %s is not in the daemon's allow-list (sluice daemon --allow-http %s)", strings.TrimPrefix(other.URL, "http://"), o.AllowHTTP[0])
	if inv.Status != "failed" || !strings.Contains(inv.Error, want) {
		t.Fatalf("invocation %s: %q, want it to say %q", inv.Status, inv.Error, want)
	}
	if other.requests() != 0 {
		t.Fatal("a host not in the list was called")
	}
	m := scrape(t, d.Addr())
	for outcome, want := range map[string]float64{"answered": 1, "refused": 1, "failed": 0} {
		if got := m[`sluice_workflow_http_requests_total{outcome="`+outcome+`"}`]; got != want {
			t.Errorf("%s requests: %v, want %v", outcome, got, want)
		}
	}
}

// TestHTTPBuiltinOffByDefault: without --allow-http the built-in sends
// nothing, and the task's error says which flag turns it on.
func TestHTTPBuiltinOffByDefault(t *testing.T) {
	t.Parallel()
	s := newEchoServer(t)
	_, c := start(t, testOptions(t))
	inv := runCall(t, c, s.URL)
	if inv.Status != "failed" || !strings.Contains(inv.Error, "outbound HTTP is off on this daemon: start it with --allow-http HOST[:PORT],...") {
		t.Fatalf("invocation %s: %q", inv.Status, inv.Error)
	}
	if s.requests() != 0 {
		t.Fatal("the server was called")
	}
}

func TestAllowHTTPOption(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.AllowHTTP = []string{"api.example.com", "http://api.example.com"}
	_, err := Start(ctx, o)
	if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), `--allow-http "http://api.example.com": want HOST or HOST:PORT, not a URL`) {
		t.Fatalf("start: %v", err)
	}
}
