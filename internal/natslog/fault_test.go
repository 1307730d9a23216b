package natslog

import (
	"context"
	"errors"
	"strings"
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
