package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/testutil"
)

// startDaemon starts a daemon of its own for a test.
func startDaemon(t *testing.T) (*daemon.Daemon, *client.Client) {
	t.Helper()
	o := daemon.DefaultOptions()
	if b := os.Getenv("SLUICE_TEST_BROKER"); b != "" {
		o.Broker = b
	}
	o.Listen, o.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	o.DataDir = t.TempDir()
	o.CompileCacheDir = os.Getenv("SLUICE_TEST_CACHE")
	o.StartTimeout, o.ShutdownTimeout = 30*time.Second, 10*time.Second
	d, err := daemon.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("start a daemon: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
		defer cancel()
		d.Shutdown(ctx)
	})
	c := client.New(d.Addr(), "")
	if _, err := c.Deploy(context.Background(), "wfguest", testutil.Wasm(t, "wfguest"), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.CreateWorkflow(context.Background(), "gate", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: gate
tasks:
  first: { run: wfguest, inputs: { op: add, n: 1 } }
  hold: { run: wait, requires: [first], inputs: { signal: go } }
`)); err != nil {
		t.Fatal(err)
	}
	return d, c
}

// sse reads server-sent events.
type sse struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

func openStream(t *testing.T, d *daemon.Daemon, id string) *sse {
	t.Helper()
	resp, err := http.Get("http://" + d.Addr() + "/v1/invocations/" + id + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 4<<20)
	t.Cleanup(func() { resp.Body.Close() })
	return &sse{body: resp.Body, sc: sc}
}

// next returns the next event's name and data; io.EOF once the stream has
// ended.
func (s *sse) next() (string, []byte, error) {
	name, data := "", []byte(nil)
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "" && name != "":
			return name, data, nil
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = []byte(line[len("data: "):])
		}
	}
	if err := s.sc.Err(); err != nil {
		return "", nil, err
	}
	return "", nil, io.EOF
}

// TestInvocationStream: the stream sends the invocation at once, again
// when it changes, and ends with "end" once it has finished; then the
// engine keeps no watch for it.
func TestInvocationStream(t *testing.T) {
	d, c := startDaemon(t)
	ctx := context.Background()
	inv, err := c.InvokeWorkflow(ctx, "gate", nil, client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := openStream(t, d, inv.ID)
	var tree api.InvocationTree
	for {
		name, data, err := s.next()
		if err != nil || name != "invocation" {
			t.Fatalf("event %q, %v: want the invocation", name, err)
		}
		if err := json.Unmarshal(data, &tree); err != nil {
			t.Fatal(err)
		}
		if h := tree.Invocation.Tasks["hold"]; h != nil && h.Waiting == "go" {
			break // it came as the invocation went on, without asking again
		}
		if tree.Invocation.Status != "running" {
			t.Fatalf("the invocation is %s", tree.Invocation.Status)
		}
	}
	if n := d.Engine().Watching(); n != 1 {
		t.Fatalf("%d watches while one client reads", n)
	}
	if _, err := c.SignalInvocation(ctx, inv.ID, "go", []byte(`1`), client.SignalOptions{}); err != nil {
		t.Fatal(err)
	}
	last := ""
	for {
		name, data, err := s.next()
		if err != nil {
			t.Fatalf("the stream ended without its end: %v", err)
		}
		if name == "end" {
			break
		}
		if err := json.Unmarshal(data, &tree); err != nil {
			t.Fatal(err)
		}
		last = tree.Invocation.Status
	}
	if last != "succeeded" {
		t.Fatalf("the last snapshot says %q, want succeeded", last)
	}
	if _, _, err := s.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after end: %v, want the stream closed", err)
	}
	testutil.Eventually(t, 10*time.Second, "no watch left", func() bool { return d.Engine().Watching() == 0 })
	resp, err := http.Get("http://" + d.Addr() + "/v1/invocations/nosuch/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the stream of no invocation answered %d", resp.StatusCode)
	}
}

// TestStreamLeftAndDrained: a client that goes away leaves no watch
// behind, and a shutdown ends the streams still open.
func TestStreamLeftAndDrained(t *testing.T) {
	d, c := startDaemon(t)
	ctx := context.Background()
	inv, err := c.InvokeWorkflow(ctx, "gate", nil, client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gone := openStream(t, d, inv.ID)
	if name, _, err := gone.next(); err != nil || name != "invocation" {
		t.Fatalf("first event %q: %v", name, err)
	}
	gone.body.Close()
	s := openStream(t, d, inv.ID)
	if name, _, err := s.next(); err != nil || name != "invocation" {
		t.Fatalf("first event %q: %v", name, err)
	}
	testutil.Eventually(t, 10*time.Second, "the watch of the client that left to end", func() bool { return d.Engine().Watching() == 1 })
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := s.next(); err != nil {
				done <- err
				return
			}
		}
	}()
	// a stream left open holds the shutdown until its timeout, and makes
	// it fail
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v", err)
	}
	select {
	case <-done:
	case <-sctx.Done():
		t.Fatal("the stream is still open after the shutdown")
	}
}
