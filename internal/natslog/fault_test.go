package natslog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/testutil"
)

// TestBlobGetWithoutLinkIsNotNotFound: a blob read whose subscription
// cannot reach the server (the link dropped as it subscribed) fails with
// ErrNotConnected, not ErrNotFound: the blob exists.
func TestBlobGetWithoutLinkIsNotNotFound(t *testing.T) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct, err := Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test", Name: "direct"})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if err := direct.Blobs().Put(ctx, "resize.3", []byte("module")); err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(srv.URL(), "nats://")
	p := testutil.NewProxy(t, target, "PUB _STAN.sub.", true)
	l, err := Connect(ctx, broker.Options{URL: "nats://" + p.Addr, ClusterID: "test", Name: "proxied"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := l.Blobs().Get(short, "resize.3"); errors.Is(err, eventlog.ErrNotFound) || !errors.Is(err, eventlog.ErrNotConnected) {
		t.Fatalf("Get of a blob that exists, the link down: %v, want ErrNotConnected", err)
	}
}

// TestPlainSubscriptionKeepsOrderAcrossALinkDrop: the link drops for a
// moment while messages are published (the server sends them into the
// void, and again after AckWait), and a message published once the link
// is back arrives first: the subscription still delivers every message
// once, in order, rather than the new one and never those it missed.
func TestPlainSubscriptionKeepsOrderAcrossALinkDrop(t *testing.T) {
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct, err := Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test", Name: "direct"})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	p := testutil.NewProxy(t, strings.TrimPrefix(srv.URL(), "nats://"), "", false)
	l, err := Connect(ctx, broker.Options{URL: "nats://" + p.Addr, ClusterID: "test", Name: "proxied"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var got []string
	sub, err := l.Subscribe("e", eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		mu.Lock()
		got = append(got, fmt.Sprintf("%d:%s", m.Sequence, m.Data))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	delivered := func(n int) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) >= n
		}
	}
	publish(t, direct, "e", "a")
	testutil.Eventually(t, 10*time.Second, "the first message", delivered(1))
	p.Hold()
	testutil.Eventually(t, 10*time.Second, "the link to drop", func() bool { return !l.Connected() })
	publish(t, direct, "e", "b", "c")
	p.Release()
	testutil.Eventually(t, 30*time.Second, "the link to come back", l.Connected)
	publish(t, direct, "e", "d")
	testutil.Eventually(t, 30*time.Second, "4 messages", delivered(4))
	mu.Lock()
	defer mu.Unlock()
	if s := strings.Join(got, " "); s != "1:a 2:b 3:c 4:d" {
		t.Fatalf("delivered %s, want 1:a 2:b 3:c 4:d", s)
	}
}
