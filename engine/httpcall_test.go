package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/egress"
	"github.com/sluicehq/sluice/testutil"
)

// The http built-in's tests run the real engine on NATS Streaming with
// the daemon's real outbound client (internal/egress), against a local
// HTTP server.

// egressHTTP adapts the outbound client to the engine, as the daemon does.
type egressHTTP struct{ c *egress.Client }

func (h egressHTTP) Do(ctx context.Context, r HTTPRequest) (HTTPResponse, error) {
	resp, err := h.c.Do(ctx, egress.Request{Method: r.Method, URL: r.URL, Header: r.Header, Body: r.Body})
	if err != nil {
		return HTTPResponse{}, err
	}
	return HTTPResponse{Status: resp.Status, Header: resp.Header, Body: resp.Body}, nil
}

// openHTTP (re)opens the rig's engine with an outbound client allowing
// the hosts given (none: the engine has no client at all).
func (r *rig) openHTTP(allow ...string) {
	r.t.Helper()
	if r.e != nil {
		r.e.Close(context.Background())
	}
	o := Options{Log: r.conn, Functions: r.fns, Definitions: r.defs, Node: r.node, Retain: r.retain, MaxValue: r.maxValue}
	if len(allow) > 0 {
		list, err := egress.ParseAllowList(allow)
		if err != nil {
			r.t.Fatal(err)
		}
		o.HTTP = egressHTTP{egress.New(egress.Config{Allow: list})}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Open(ctx, o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.e = e
}

// request is what the test server received.
type request struct {
	Method, Path, ContentType string
	Header                    http.Header
	Body                      []byte
}

// apiServer is a local server whose answers a test sets per path.
type apiServer struct {
	*httptest.Server
	mu       sync.Mutex
	got      []request
	handlers map[string]http.HandlerFunc
}

func newAPIServer(t *testing.T) *apiServer {
	s := &apiServer{handlers: map[string]http.HandlerFunc{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, request{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Header: r.Header, Body: body})
		h := s.handlers[r.URL.Path]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) handle(path string, h http.HandlerFunc) {
	s.mu.Lock()
	s.handlers[path] = h
	s.mu.Unlock()
}

func (s *apiServer) requests(path string) []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []request
	for _, r := range s.got {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (s *apiServer) hostport() string { return strings.TrimPrefix(s.URL, "http://") }

func TestHTTPTask(t *testing.T) {
	s := newAPIServer(t)
	s.handle("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		fmt.Fprint(w, `{"price": 12345678901234567890, "items": [1, 2]}`)
	})
	s.handle("/text", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<b>hi</b>") })
	s.handle("/bytes", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte{0, 0xff, 0x80}) })
	s.handle("/echo", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	r := newRig(t, false)
	r.openHTTP(s.hostport())
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: calls
output:
  json: ${ tasks.json.output }
  price: ${ tasks.json.output.body.price }
  text: ${ tasks.text.output }
  bytes: ${ tasks.bin.output }
  posted: ${ tasks.post.output.status }
tasks:
  json:
    run: http
    inputs: { url: "${ input.base }/json" }
  text:
    run: http
    inputs: { url: "${ input.base }/text", headers: { Accept: text/plain, X-List: [a, b], X-N: 3 } }
  bin:
    run: http
    inputs: { url: "${ input.base }/bytes" }
  post:
    run: http
    inputs:
      url: ${ input.base + "/echo" }
      method: POST
      body: { n: "${ len(tasks.json.output.body.items) }", s: "<&>" }
    requires: [json]
  string:
    run: http
    inputs: { url: "${ input.base }/echo", method: PUT, body: "plain <text>" }
  raw:
    run: http
    inputs: { url: "${ input.base }/echo", method: PUT, body: "${ fromBase64('AP+A') }" }
  typed:
    run: http
    inputs: { url: "${ input.base }/echo", method: POST, headers: { content-type: text/csv }, body: [1, 2] }
`)
	inv := r.run("calls", fmt.Sprintf(`{"base": %q}`, s.URL))
	wantStatus(t, inv, StatusSucceeded)
	var out struct {
		JSON struct {
			Status  int                        `json:"status"`
			Headers map[string]json.RawMessage `json:"headers"`
			Body    json.RawMessage            `json:"body"`
		} `json:"json"`
		Price  json.RawMessage `json:"price"`
		Text   json.RawMessage `json:"text"`
		Bytes  json.RawMessage `json:"bytes"`
		Posted int             `json:"posted"`
	}
	if err := json.Unmarshal(inv.Output, &out); err != nil {
		t.Fatal(err)
	}
	// the task's output keeps the body as sent (compacted); output:
	// re-encodes it, in the order of its keys
	wantField(t, inv.Tasks["json"].Output, "body", `{"price":12345678901234567890,"items":[1,2]}`)
	if out.JSON.Status != 200 || string(out.JSON.Body) != `{"items":[1,2],"price":12345678901234567890}` ||
		string(out.JSON.Headers["content-type"]) != `"application/json"` || string(out.JSON.Headers["set-cookie"]) != `["a=1","b=2"]` {
		t.Fatalf("json response as %+v", out.JSON)
	}
	if string(out.Price) != "12345678901234567890" {
		t.Fatalf("price %s: a JSON body's numbers are exact", out.Price)
	}
	wantField(t, inv.Tasks["text"].Output, "body", `"<b>hi</b>"`)
	wantField(t, out.Bytes, "body_base64", `"AP+A"`)
	if out.Posted != http.StatusCreated {
		t.Fatalf("posted %d", out.Posted)
	}
	text := s.requests("/text")[0]
	if text.Method != "GET" || text.Header.Get("Accept") != "text/plain" || strings.Join(text.Header.Values("X-List"), ",") != "a,b" || text.Header.Get("X-N") != "3" {
		t.Fatalf("GET /text with %v", text.Header)
	}
	for _, want := range []request{
		{Method: "POST", ContentType: "application/json", Body: []byte(`{"n":2,"s":"<&>"}`)},
		{Method: "PUT", ContentType: "", Body: []byte("plain <text>")},
		{Method: "PUT", ContentType: "", Body: []byte{0, 0xff, 0x80}},
		{Method: "POST", ContentType: "text/csv", Body: []byte(`[1,2]`)},
	} {
		found := false
		for _, got := range s.requests("/echo") {
			found = found || got.Method == want.Method && got.ContentType == want.ContentType && bytes.Equal(got.Body, want.Body)
		}
		if !found {
			t.Errorf("no %s /echo with %q and body %q among %+v", want.Method, want.ContentType, want.Body, s.requests("/echo"))
		}
	}
}

func wantField(t *testing.T, obj json.RawMessage, field, want string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	if string(m[field]) != want {
		t.Fatalf("%s: %s is %s, want %s", obj, field, m[field], want)
	}
}

// TestHTTPBodyPassedOn: a value passed on as the body is sent as its
// exact bytes, a large one (stored apart) included; a JSON document gets
// Content-Type application/json.
func TestHTTPBodyPassedOn(t *testing.T) {
	s := newAPIServer(t)
	s.handle("/up", func(w http.ResponseWriter, r *http.Request) {})
	r := newRig(t, false)
	r.openHTTP(s.hostport())
	r.defs.put(t, fmt.Sprintf(`
apiVersion: sluice/v1
kind: Workflow
name: upload
tasks:
  same:
    run: wfguest
    inputs: ${ input }
  up:
    run: http
    inputs: { url: "%s/up", method: POST, body: "${ tasks.same.output }" }
    requires: [same]
`, s.URL))
	big := make([]byte, 700<<10) // over MaxData: stored apart
	for i := range big {
		big[i] = byte(i % 251)
	}
	for _, tc := range []struct {
		name, contentType string
		input             []byte
	}{
		{"binary", "", big},
		{"json", "application/json", []byte(`{"b":  1.50}`)},
		{"text", "", []byte("not json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.requests("/up"))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			inv, err := r.e.Invoke(ctx, "upload", tc.input, InvokeOptions{Input: InputAuto})
			if err != nil {
				t.Fatal(err)
			}
			if inv, err = r.e.Wait(ctx, inv.ID); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, inv, StatusSucceeded)
			got := s.requests("/up")[before]
			if !bytes.Equal(got.Body, tc.input) || got.ContentType != tc.contentType {
				t.Fatalf("the server got %d bytes with %q, want %d with %q", len(got.Body), got.ContentType, len(tc.input), tc.contentType)
			}
		})
	}
}

// TestHTTPStatusRule: 4xx is an output (the answer to this request);
// 408, 429 and 5xx are failed attempts, retried by retry:.
func TestHTTPStatusRule(t *testing.T) {
	t.Parallel()
	s := newAPIServer(t)
	var mu sync.Mutex
	flaky := 0
	s.handle("/flaky", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		flaky++
		n := flaky
		mu.Unlock()
		if n <= 2 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	})
	s.handle("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the database is down", http.StatusServiceUnavailable)
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
    retry: { max: 2, backoff: 1ms }
`
	for _, name := range []string{"missing", "flaky", "down"} {
		r.defs.put(t, fmt.Sprintf(src, name))
	}
	inv := r.run("missing", fmt.Sprintf("%q", s.URL+"/nothing"))
	wantStatus(t, inv, StatusSucceeded)
	wantField(t, inv.Output, "status", "404")
	if got := len(s.requests("/nothing")); got != 1 {
		t.Fatalf("a 404 was sent %d times", got)
	}

	inv = r.run("flaky", fmt.Sprintf("%q", s.URL+"/flaky"))
	wantStatus(t, inv, StatusSucceeded)
	wantField(t, inv.Output, "body", `"ok"`)
	if a := inv.Tasks["call"].Attempts; a != 3 {
		t.Fatalf("%d attempts, want 3", a)
	}

	inv = r.run("down", fmt.Sprintf("%q", s.URL+"/down?key=secret"))
	wantStatus(t, inv, StatusFailed)
	want := "GET " + s.URL + "/down answered 503 Service Unavailable: the database is down (after 3 attempts)"
	if inv.Error != want {
		t.Fatalf("error %q, want %q", inv.Error, want)
	}
}

// TestHTTPRefused: without a client, or to a host the list does not
// allow, the task fails with what to do, and nothing is sent.
func TestHTTPRefused(t *testing.T) {
	s := newAPIServer(t)
	s.handle("/", func(w http.ResponseWriter, r *http.Request) {})
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: call
tasks:
  call:
    run: http
    inputs: { url: "${ input }" }
    retry: { max: 1, backoff: 1ms }
`)
	r.openHTTP()
	inv := r.run("call", fmt.Sprintf("%q", s.URL+"/"))
	wantStatus(t, inv, StatusFailed)
	if !contains(inv.Error, "the http built-in is off on this daemon: start it with --allow-http") {
		t.Fatalf("error %q", inv.Error)
	}
	r.openHTTP("127.0.0.1:1")
	inv = r.run("call", fmt.Sprintf("%q", s.URL+"/"))
	wantStatus(t, inv, StatusFailed)
	if !contains(inv.Error, "host "+s.hostport()+" is not in the daemon's allow-list (sluice daemon --allow-http 127.0.0.1:1)") {
		t.Fatalf("error %q", inv.Error)
	}
	// a refusal is not retried: a retry would be refused the same way
	if a := inv.Tasks["call"].Attempts; a != 1 || inv.ErrorCode != "invalid_argument" || !contains(inv.Error, "not retried: the request is refused for what it is") {
		t.Fatalf("a refused request: %d attempts, code %q: %q", a, inv.ErrorCode, inv.Error)
	}
	inv = r.run("call", `"http://`+s.hostport()+`@evil.example/"`)
	wantStatus(t, inv, StatusFailed)
	if !contains(inv.Error, "carries user info") {
		t.Fatalf("error %q", inv.Error)
	}
	if n := len(s.requests("/")); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

// blockingServer answers /slow only when released; it says when a
// request arrives and when its client went away.
func blockingServer(t *testing.T) (s *apiServer, arrived, gone chan struct{}, release func()) {
	s = newAPIServer(t)
	arrived, gone = make(chan struct{}, 10), make(chan struct{}, 10)
	rel := make(chan struct{})
	var once sync.Once
	s.handle("/slow", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-rel:
			fmt.Fprint(w, "done")
		case <-r.Context().Done():
			gone <- struct{}{}
		}
	})
	release = func() { once.Do(func() { close(rel) }) }
	t.Cleanup(release)
	return s, arrived, gone, release
}

func waitChan(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("no %s", what)
	}
}

const slowWorkflow = `
apiVersion: sluice/v1
kind: Workflow
name: slow
tasks:
  call:
    run: http
    inputs: { url: "${ input }" }
`

// TestHTTPCancel: canceling the invocation cancels the request.
func TestHTTPCancel(t *testing.T) {
	s, arrived, gone, _ := blockingServer(t)
	r := newRig(t, false)
	r.openHTTP(s.hostport())
	r.defs.put(t, slowWorkflow)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inv, err := r.e.Invoke(ctx, "slow", []byte(fmt.Sprintf("%q", s.URL+"/slow")), InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitChan(t, arrived, "request")
	if _, err := r.e.Cancel(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	waitChan(t, gone, "cancelation of the request")
	inv, err = r.e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, inv, StatusCanceled)
}

// TestHTTPTaskTimeout: the task's timeout: bounds the request.
func TestHTTPTaskTimeout(t *testing.T) {
	s, _, gone, _ := blockingServer(t)
	r := newRig(t, false)
	r.openHTTP(s.hostport())
	r.defs.put(t, strings.Replace(slowWorkflow, "    run: http\n", "    run: http\n    timeout: 100ms\n", 1))
	inv := r.run("slow", fmt.Sprintf("%q", s.URL+"/slow"))
	wantStatus(t, inv, StatusFailed)
	if inv.Error != "timed out after 100ms (the task's timeout)" {
		t.Fatalf("error %q", inv.Error)
	}
	waitChan(t, gone, "cancelation of the request")
}

// TestHTTPAfterCrash: a request in flight when the daemon dies is sent
// again after the restart (at least once), and the invocation completes.
func TestHTTPAfterCrash(t *testing.T) {
	s, arrived, _, release := blockingServer(t)
	r := newRig(t, true)
	r.openHTTP(s.hostport())
	r.defs.put(t, slowWorkflow)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inv, err := r.e.Invoke(ctx, "slow", []byte(fmt.Sprintf("%q", s.URL+"/slow")), InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitChan(t, arrived, "request")
	testutil.Eventually(t, 30*time.Second, "the request's TaskStarted stored", func() bool {
		evs, err := r.e.Events(ctx, inv.ID)
		return err == nil && len(evs) > 0 && evs[len(evs)-1].Type == EventTaskStarted
	})
	r.crash()
	release()
	r.openHTTP(s.hostport())
	got, err := r.e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, StatusSucceeded)
	wantField(t, got.Output, "body", `"done"`)
	if n := len(s.requests("/slow")); n != 2 {
		t.Fatalf("the request was sent %d times, want 2 (once more after the crash)", n)
	}
	if a := got.Tasks["call"].Attempts; a != 2 {
		t.Fatalf("attempt %d, want 2", a)
	}
}

// TestHTTPReplay: what the events record (the request, its body as data,
// the response) rebuilds the same invocation.
func TestHTTPReplay(t *testing.T) {
	s := newAPIServer(t)
	s.handle("/p", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true}`)
	})
	r := newRig(t, false)
	r.openHTTP(s.hostport())
	r.defs.put(t, fmt.Sprintf(`
apiVersion: sluice/v1
kind: Workflow
name: replay
tasks:
  call:
    run: http
    inputs: { url: "%s/p", method: POST, headers: { X-A: "${ input.a }" }, body: "${ fromBase64(input.b) }" }
`, s.URL))
	inv := r.run("replay", `{"a": "1", "b": "AP+A"}`)
	wantStatus(t, inv, StatusSucceeded)
	evs := r.events(inv.ID)
	var sched *Event
	for _, ev := range evs {
		if ev.Type == EventTaskScheduled {
			sched = ev
		}
	}
	if sched == nil || string(sched.Input) != fmt.Sprintf(`{"headers":{"X-A":["1"]},"method":"POST","url":"%s/p"}`, s.URL) ||
		sched.InputData == nil || !bytes.Equal(sched.InputData.Bytes, []byte{0, 0xff, 0x80}) {
		t.Fatalf("TaskScheduled %+v", sched)
	}
	live, _ := json.Marshal(inv)
	r.openHTTP(s.hostport())
	again, err := r.e.Get(inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	replayed, _ := json.Marshal(again)
	if string(live) != string(replayed) {
		t.Fatalf("replayed:\n%s\nlive:\n%s", replayed, live)
	}
}
