// Package natslogtest starts what tests of the packages above the event
// log need from NATS Streaming: an embedded server and connections to it.
package natslogtest

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/natslog"
)

// Connect starts an embedded NATS Streaming server with its memory store
// and connects to it; both are closed when the test ends.
func Connect(t testing.TB) *natslog.Log {
	t.Helper()
	return connect(t, start(t))
}

// ConnectPair starts an embedded NATS Streaming server and makes two
// connections to it, as a daemon has: one for its events and its triggers'
// messages, one for its triggers' results.
func ConnectPair(t testing.TB) (*natslog.Log, *natslog.Log) {
	t.Helper()
	url := start(t)
	return connect(t, url), connect(t, url)
}

func start(t testing.TB) string {
	t.Helper()
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.URL()
}

func connect(t testing.TB, url string) *natslog.Log {
	t.Helper()
	conn, err := natslog.Connect(context.Background(), broker.Options{URL: url, ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
