// Package natslogtest starts what tests of the packages above the event
// log need from NATS Streaming: an embedded server and a connection to it.
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
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	conn, err := natslog.Connect(context.Background(), broker.Options{URL: srv.URL(), ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
