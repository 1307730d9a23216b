package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicehq/sluice/eventlog/memlog"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/graph"
)

// graphServer is a server whose catalog holds n functions and n triggers
// (a third each HTTP, queue and timer), on an in-memory event log: the
// graph reads only the catalog and the log.
func graphServer(tb testing.TB, n int) *Server {
	tb.Helper()
	ctx := context.Background()
	conn := memlog.NewBroker().Connect()
	tb.Cleanup(func() { conn.Close() })
	cat, err := catalog.Open(ctx, conn, catalog.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cat.Close() })
	for i := range n {
		name := fmt.Sprintf("fn-%04d", i)
		if _, err := cat.Deploy(ctx, catalog.Function{Name: name, Config: catalog.Config{ABI: "wasi"}}, []byte(name)); err != nil {
			tb.Fatal(err)
		}
		t := catalog.Trigger{Name: fmt.Sprintf("t-%04d", i), Function: name}
		switch i % 3 {
		case 0:
			t.HTTP = &catalog.HTTPSpec{Path: "/" + name, Method: "POST"}
		case 1:
			t.Queue = &catalog.QueueSpec{Topic: fmt.Sprintf("in-%04d", i), RespTopic: "out", ErrorTopic: "dead", MaxRetries: 3, MaxInflight: 16, AckWait: catalog.DefaultAckWait}
		case 2:
			t.Cron = &catalog.CronSpec{Schedule: "@every 1m"}
		}
		if _, err := cat.CreateTrigger(ctx, t); err != nil {
			tb.Fatal(err)
		}
	}
	s := New("", slog.New(slog.DiscardHandler))
	s.SetBackend(&Backend{Log: conn, Catalog: cat})
	return s
}

// TestGraphHandler: GET /v1/graph answers the catalog's graph; on a log
// that cannot list topics it says so in a warning.
func TestGraphHandler(t *testing.T) {
	s := graphServer(t, 3)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/graph", nil))
	var g graph.Graph
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &g) != nil {
		t.Fatalf("GET /v1/graph: %d %s", w.Code, w.Body)
	}
	// 3 functions, 3 triggers, a route, a timer, topics in, out and dead
	if len(g.Nodes) != 11 || len(g.Edges) != 3+3+2 {
		t.Fatalf("graph of 3 functions and 3 triggers: %d nodes, %d edges: %s", len(g.Nodes), len(g.Edges), w.Body)
	}
	if len(g.Warnings) != 1 {
		t.Fatalf("warnings %q; want one saying the topics are not listed", g.Warnings)
	}
	w = httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/topics", nil))
	if w.Code != http.StatusBadRequest {
		t.Fatalf("GET /v1/topics on a log that cannot list them: %d %s", w.Code, w.Body)
	}
}

// BenchmarkGraphHandler is GET /v1/graph on a catalog of 1,000 functions
// and 1,000 triggers: the graph built and written as JSON and as dot.
func BenchmarkGraphHandler(b *testing.B) {
	s := graphServer(b, 1000)
	for _, format := range []string{"json", "dot"} {
		b.Run("functions=1000/triggers=1000/format="+format, func(b *testing.B) {
			var size int
			for b.Loop() {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/graph?format="+format, nil))
				if w.Code != http.StatusOK {
					b.Fatalf("GET /v1/graph: %d %s", w.Code, w.Body)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/response")
		})
	}
}
