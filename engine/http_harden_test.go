package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/egress"
	"github.com/sluicehq/sluice/testutil"
)

// secretHTTP adapts the outbound client to the engine with the secrets
// passed on, as the daemon does.
type secretHTTP struct{ c *egress.Client }

func (h secretHTTP) Do(ctx context.Context, r HTTPRequest) (HTTPResponse, error) {
	resp, err := h.c.Do(ctx, egress.Request{Method: r.Method, URL: r.URL, Header: r.Header, Body: r.Body, Secrets: r.Secrets})
	if err != nil {
		return HTTPResponse{}, err
	}
	return HTTPResponse{Status: resp.Status, Header: resp.Header, Body: resp.Body}, nil
}

// openHTTPWith (re)opens the rig's engine with an outbound client of cfg.
func (r *rig) openHTTPWith(cfg egress.Config) {
	r.t.Helper()
	if r.e != nil {
		r.e.Close(context.Background())
	}
	o := Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: r.node, Retain: r.retain, MaxValue: r.maxValue,
		HTTP: secretHTTP{egress.New(cfg)}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.e = e
}

func allowList(t *testing.T, entries ...string) *egress.AllowList {
	t.Helper()
	a, err := egress.ParseAllowList(entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// retryWait is how far past its event's time the first TaskRetrying of
// a task set its wake.
func retryWait(t *testing.T, evs []*Event, task string) time.Duration {
	t.Helper()
	for _, ev := range evs {
		if ev.Type == EventTaskRetrying && ev.Task == task && ev.Wake != nil {
			return ev.Wake.Sub(ev.Time)
		}
	}
	t.Fatalf("no TaskRetrying of %s in %v", task, types(evs))
	return 0
}

// TestHTTPRetryAfter: a 429 or 503 with Retry-After waits what it says
// (seconds or an HTTP-date) instead of the backoff, capped by
// max_backoff; the wake time is recorded. Other statuses keep the
// backoff.
func TestHTTPRetryAfter(t *testing.T) {
	t.Parallel()
	s := newAPIServer(t)
	var mu sync.Mutex
	calls := map[string]int{}
	first := func(path string) bool {
		mu.Lock()
		defer mu.Unlock()
		calls[path]++
		return calls[path] == 1
	}
	s.handle("/seconds", func(w http.ResponseWriter, r *http.Request) {
		if first("/seconds") {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	})
	s.handle("/date", func(w http.ResponseWriter, r *http.Request) {
		if first("/date") {
			w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	})
	s.handle("/other", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "broken", http.StatusInternalServerError)
	})
	r := newRig(t, false)
	r.openHTTP(s.hostport())
	src := `
apiVersion: sluice/v1
kind: Workflow
name: %s
tasks:
  call:
    run: http
    inputs: { url: "${ input }" }
    retry: %s
`
	r.defs.put(t, fmt.Sprintf(src, "seconds", "{ max: 2, backoff: 1h }"))
	r.defs.put(t, fmt.Sprintf(src, "date", "{ max: 2, backoff: 1s, max_backoff: 2s }"))
	r.defs.put(t, fmt.Sprintf(src, "other", "{ max: 2, backoff: 1h }"))

	// an hour's backoff: the invocation ends only if Retry-After is taken
	inv := r.run("seconds", fmt.Sprintf("%q", s.URL+"/seconds"))
	wantStatus(t, inv, StatusSucceeded)
	if d := retryWait(t, r.events(inv.ID), "call"); d <= 0 || d > time.Second {
		t.Fatalf("wake %s after the failure, want Retry-After's 1s", d)
	}
	evs := r.events(inv.ID)
	for _, ev := range evs {
		if ev.Type == EventTaskRetrying && !strings.Contains(ev.Error, "answered 429 Too Many Requests (Retry-After: 1): slow down") {
			t.Fatalf("the failure says %q", ev.Error)
		}
	}
	if replayed := r.replayed(inv.ID); replayed.Status != StatusSucceeded {
		t.Fatalf("replayed: %s", replayed.Status)
	}

	// an hour away, capped by max_backoff (2s), not the backoff (1s)
	inv = r.run("date", fmt.Sprintf("%q", s.URL+"/date"))
	wantStatus(t, inv, StatusSucceeded)
	if d := retryWait(t, r.events(inv.ID), "call"); d <= 1500*time.Millisecond || d > 2*time.Second {
		t.Fatalf("wake %s after the failure, want max_backoff's 2s", d)
	}

	// a 500's Retry-After is not read: the backoff applies
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	started, err := r.e.Invoke(ctx, "other", []byte(fmt.Sprintf("%q", s.URL+"/other")), InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the 500's TaskRetrying", func() bool {
		for _, ev := range r.events(started.ID) {
			if ev.Type == EventTaskRetrying {
				return true
			}
		}
		return false
	})
	if d := retryWait(t, r.events(started.ID), "call"); d < 5*time.Minute {
		t.Fatalf("a 500 waits %s, want its backoff (an hour, capped at 10m)", d)
	}
	if _, err := r.e.Cancel(ctx, started.ID); err != nil {
		t.Fatal(err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{"99999999999999999999", maxBackoff, true},
		{"Tue, 01 Dec 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Tue, 01 Dec 2026 09:00:00 GMT", 0, true}, // past
		{"Tuesday, 01-Dec-26 10:01:00 GMT", time.Minute, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		d, ok := parseRetryAfter(tt.v, now)
		if d != tt.want || ok != tt.ok {
			t.Errorf("%q: %s %v, want %s %v", tt.v, d, ok, tt.want, tt.ok)
		}
	}
	err := &httpStatusError{retryAfter: "3600"}
	if d := serverWait(err, retryPolicy{}, now); d != maxRetryAfter {
		t.Errorf("without max_backoff: %s, want %s", d, maxRetryAfter)
	}
	if d := serverWait(err, retryPolicy{maxBackoff: time.Minute}, now); d != time.Minute {
		t.Errorf("with max_backoff 1m: %s", d)
	}
	if d := serverWait(&httpStatusError{retryAfter: "soon"}, retryPolicy{}, now); d != -1 {
		t.Errorf("unreadable: %s, want the backoff (-1)", d)
	}
}

// TestHTTPSecretHeader: a header {secret: NAME} arrives with the
// daemon-side secret's value, on every attempt; the events, the
// invocation and its replay hold the name only. A secret the daemon
// lacks fails the task (invalid_argument, not retried), saying the flag.
func TestHTTPSecretHeader(t *testing.T) {
	const value = "Bearer sk_live_do_not_log_7d3f"
	s := newAPIServer(t)
	var mu sync.Mutex
	n := 0
	s.handle("/charge", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, r.Header.Get("X-Key"))
	})
	file := filepath.Join(t.TempDir(), "stripe")
	if err := os.WriteFile(file, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, false)
	r.openHTTPWith(egress.Config{Allow: allowList(t, s.hostport()), Secrets: []egress.Secret{{Name: "STRIPE", File: file}}})
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: charge
output: ${ tasks.call.output.status }
tasks:
  call:
    run: http
    inputs:
      url: ${ input.url }
      method: POST
      headers: { Authorization: { secret: STRIPE }, X-Key: "${ input.key }", X-Other: { secret: "${ input.secret }" } }
      body: { amount: 5 }
    retry: { max: 2, backoff: 1ms }
`)
	inv := r.run("charge", fmt.Sprintf(`{"url": %q, "key": "k1", "secret": "STRIPE"}`, s.URL+"/charge"))
	wantStatus(t, inv, StatusSucceeded)
	got := s.requests("/charge")
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	for i, req := range got {
		if req.Header.Get("Authorization") != value || req.Header.Get("X-Other") != value || req.Header.Get("X-Key") != "k1" {
			t.Fatalf("attempt %d: headers %v", i+1, req.Header)
		}
	}
	evs := r.events(inv.ID)
	all, _ := json.Marshal(evs)
	status, _ := json.Marshal(inv)
	for what, b := range map[string][]byte{"events": all, "invocation": status} {
		if strings.Contains(string(b), "sk_live") {
			t.Fatalf("the %s hold the secret: %s", what, b)
		}
	}
	if !strings.Contains(string(all), `"secrets":{"Authorization":"STRIPE","X-Other":"STRIPE"}`) {
		t.Fatalf("the request records no secrets by name: %s", all)
	}
	if replayed := r.replayed(inv.ID); replayed.Status != StatusSucceeded {
		t.Fatalf("replayed: %s", replayed.Status)
	}

	inv = r.run("charge", fmt.Sprintf(`{"url": %q, "key": "k2", "secret": "NOPE"}`, s.URL+"/charge"))
	wantStatus(t, inv, StatusFailed)
	want := "header X-Other takes the secret NOPE, which this daemon does not have: start it with --http-secret NOPE=@FILE (or env SLUICE_HTTP_SECRET_NOPE)"
	if !strings.Contains(inv.Error, want) || inv.ErrorCode != "invalid_argument" || inv.Tasks["call"].Attempts != 1 {
		t.Fatalf("error %q (%s, %d attempts), want it to say %q", inv.Error, inv.ErrorCode, inv.Tasks["call"].Attempts, want)
	}
	inv = r.run("charge", fmt.Sprintf(`{"url": %q, "key": "k3", "secret": "not a name"}`, s.URL+"/charge"))
	wantStatus(t, inv, StatusFailed)
	if !strings.Contains(inv.Error, "header X-Other is ") || !strings.Contains(inv.Error, "a map is {secret: NAME}") {
		t.Fatalf("error %q", inv.Error)
	}
	if len(s.requests("/charge")) != 2 {
		t.Fatal("a request with a missing secret was sent")
	}
}

func TestHTTPSecretHeaderChecked(t *testing.T) {
	for src, says := range map[string]string{
		"{ Authorization: { secret: 'a b' } }":             `secret "a b": a secret's name is`,
		"{ Authorization: { secret: STRIPE, prefix: x } }": "a map is {secret: NAME}",
		"{ Authorization: { token: STRIPE } }":             "a map is {secret: NAME}",
		"{ Authorization: { secret: [a] } }":               "a map is {secret: NAME}",
		"{ Authorization: { secret: '${ input.name }' } }": "",
	} {
		def := fmt.Sprintf(`
apiVersion: sluice/v1
kind: Workflow
name: w
tasks:
  call:
    run: http
    inputs: { url: "https://api.example.com/", headers: %s }
`, src)
		_, err := ParseDefinition("w", []byte(def), Known{})
		switch {
		case says == "" && err != nil:
			t.Errorf("%s: %v", src, err)
		case says != "" && (err == nil || !strings.Contains(err.Error(), says)):
			t.Errorf("%s: %v, want it to say %q", src, err, says)
		}
	}
}
