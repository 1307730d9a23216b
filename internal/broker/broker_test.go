package broker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/testutil"
)

// fileStore starts a server with its file store in dir and connects to
// it. The caller closes the connection (before a server it restarted is
// shut down).
func fileStore(t *testing.T) (e *Embedded, dir, url string, c *Conn) {
	t.Helper()
	return fileStoreWith(t, Options{})
}

// fileStoreWith is fileStore with the connection's options o (its URL
// and cluster id set here).
func fileStoreWith(t *testing.T, o Options) (e *Embedded, dir, url string, c *Conn) {
	t.Helper()
	dir = t.TempDir()
	e, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	url = e.URL()
	o.URL, o.ClusterID = url, "test"
	c, err = Connect(context.Background(), o)
	if err != nil {
		e.Shutdown()
		t.Fatal(err)
	}
	return e, dir, url, c
}

func TestSubscriptionSurvivesServerRestart(t *testing.T) {
	e, dir, url, c := fileStore(t)
	defer c.Close()
	ctx := context.Background()

	var mu sync.Mutex
	var got []string
	if _, err := c.Subscribe("events", SubOptions{Start: StartAll}, func(m *Msg) {
		mu.Lock()
		got = append(got, string(m.Data))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := c.Publish(ctx, "events", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the first 5 messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 5
	})

	// The server goes away: publishing waits instead of failing, and the
	// process carries on.
	e.Shutdown()
	testutil.Eventually(t, 5*time.Second, "the client to notice", func() bool { return !c.Connected() })
	published := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		published <- c.Publish(pctx, "events", []byte("5"))
	}()
	time.Sleep(500 * time.Millisecond)
	e2, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: url[len("nats://"):], ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e2.Shutdown)
	if err := <-published; err != nil {
		t.Fatalf("publish across the restart: %v", err)
	}
	for i := 6; i < 10; i++ {
		if err := c.Publish(ctx, "events", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 20*time.Second, "all 10 messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 10
	})
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	mu.Lock()
	defer mu.Unlock()
	for i, s := range got {
		if s != fmt.Sprint(i) {
			t.Fatalf("messages %v: want 0..9 in order, each once", got)
		}
	}
	if len(got) != 10 {
		t.Fatalf("messages %v: want 0..9 each once", got)
	}
}

func TestMemoryStoreRestartReconnects(t *testing.T) {
	// A memory-store server forgets clients when it restarts: the
	// connection must notice, register again and resume.
	e, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	url := e.URL()
	ctx := context.Background()
	c, err := Connect(ctx, Options{URL: url, ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 10)
	if _, err := c.Subscribe("ticks", SubOptions{}, func(m *Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	e.Shutdown()
	e2, err := StartEmbedded(EmbeddedOptions{Listen: url[len("nats://"):], ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e2.Shutdown)
	testutil.Eventually(t, 20*time.Second, "a new streaming client", func() bool { return c.Connects() >= 2 && c.Connected() })
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Publish(pctx, "ticks", []byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "after" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscription not resumed")
	}
}

// TestSubscribeBeforeStreamingIsServed: the link comes back to a NATS
// server that does not serve streaming yet (a restarted server starts NATS
// first, streaming a moment later), and a subscription made then gets no
// answer (stan.go's "subscribe request timeout"). It waits for streaming
// and is made instead of failing (it failed so in CI).
func TestSubscribeBeforeStreamingIsServed(t *testing.T) {
	subscribeInOutage(t, "before streaming is served", Options{}, 500*time.Millisecond, func(t *testing.T, c *Conn, url string) func() {
		return plainServer(t, c, url, false)
	})
}

// TestSubscribeOutlastingItsWait: a subscription whose requests go
// unanswered past its wait (here a server takes them and answers none
// for 2.5 s, with a ConnectWait of 1 s; in life, a request in flight when
// the server went away waits out the whole ConnectWait, and the wait can
// end meanwhile) is made in the background once streaming answers,
// instead of failing (it failed so in CI).
func TestSubscribeOutlastingItsWait(t *testing.T) {
	subscribeInOutage(t, "while requests go unanswered", Options{ConnectWait: time.Second}, 2500*time.Millisecond, func(t *testing.T, c *Conn, url string) func() {
		return plainServer(t, c, url, true)
	})
}

// plainServer starts a NATS server that does not serve streaming on
// url's port, waits for c's link to it, and returns how to shut it down.
// With swallow, a client of it takes every message and answers none.
func plainServer(t *testing.T, c *Conn, url string, swallow bool) (end func()) {
	host, port, err := net.SplitHostPort(url[len("nats://"):])
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	plain, err := natsd.NewServer(&natsd.Options{Host: host, Port: p, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go plain.Start()
	if !plain.ReadyForConnections(5 * time.Second) {
		t.Fatal("plain NATS server not ready")
	}
	var nc *nats.Conn
	if swallow {
		if nc, err = nats.Connect(url); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Subscribe(">", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the link to come back", func() bool { return c.nc.IsConnected() })
	return func() {
		if nc != nil {
			nc.Close()
		}
		plain.Shutdown()
		plain.WaitForShutdown()
	}
}

// TestSubscribeWhileTheLinkIsDown: a subscription made while the NATS link
// is down under a streaming client that is still up waits for the link and
// is made, instead of failing with nats.go's "outbound buffer limit
// exceeded" (there is no reconnect buffer) and being resumed by nothing.
func TestSubscribeWhileTheLinkIsDown(t *testing.T) {
	subscribeInOutage(t, "while the link is down", Options{}, 500*time.Millisecond, func(t *testing.T, c *Conn, _ string) func() {
		testutil.Eventually(t, 5*time.Second, "the link to drop", func() bool { return !c.Connected() })
		return func() {}
	})
}

// subscribeInOutage connects with options o, stores a message, shuts the
// server down, lets outage set up what the client sees then (and return
// how to end it), subscribes from the start while the server comes back
// after back, and checks that the subscription is made and gets the
// message. A subscribe request in flight when the server goes away waits
// out ConnectWait (5 s by default) before the subscription is made in
// the background, so the message may take that long.
func subscribeInOutage(t *testing.T, when string, o Options, back time.Duration, outage func(t *testing.T, c *Conn, url string) (end func())) {
	e, dir, url, c := fileStoreWith(t, o)
	defer c.Close()
	if err := c.Publish(context.Background(), "kept", []byte("before")); err != nil {
		t.Fatal(err)
	}
	e.Shutdown()
	end := outage(t, c, url)
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(back)
		end()
		e2, err := StartEmbedded(EmbeddedOptions{Dir: dir, Listen: url[len("nats://"):], ClusterID: "test"})
		if err == nil {
			t.Cleanup(e2.Shutdown)
		}
		restarted <- err
	}()
	got := make(chan string, 10)
	sub, err := c.Subscribe("kept", SubOptions{Start: StartAll}, func(m *Msg) { got <- string(m.Data) })
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("subscribe %s: %v", when, err)
	}
	defer sub.Close()
	select {
	case m := <-got:
		if m != "before" {
			t.Fatalf("got %q, want the message stored before the restart", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the subscription made %s receives nothing", when)
	}
}
