package bench

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/testutil"
)

// TestDaemonBenchmarks runs HTTP, MQ and Workflow briefly against a real
// daemon: their figures must be sane and they must clean up after
// themselves. Never a threshold on the figures.
func TestDaemonBenchmarks(t *testing.T) {
	ctx := context.Background()
	d, c := startDaemon(t)
	if _, err := c.Deploy(ctx, "echo", testutil.Wasm(t, "echo-wat"), nil); err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.Addr()

	t.Run("http", func(t *testing.T) {
		r, err := HTTP(ctx, HTTPOptions{URL: base + "/v1/functions/echo/invoke", Concurrency: 4, Requests: 500, Warmup: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if r.Requests < 500 || r.Errors != 0 || r.RPS <= 0 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
			t.Fatalf("%+v", r.Latency)
		}
		if _, err := HTTP(ctx, HTTPOptions{URL: base + "/v1/functions/missing/invoke", Requests: 10}); err == nil {
			t.Fatal("no error for a missing function")
		}
	})

	t.Run("mq", func(t *testing.T) {
		testMQ(t, c, d.NATSURL(), daemon.BrokerNATSStreaming)
	})
	t.Run("mq-jetstream", func(t *testing.T) {
		o := daemon.DefaultOptions()
		o.Listen, o.NATSListen, o.DataDir, o.Broker = "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), daemon.BrokerJetStream
		d, err := daemon.Start(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Shutdown(context.Background()) })
		c := client.New(d.Addr(), "")
		if _, err := c.Deploy(ctx, "echo", testutil.Wasm(t, "echo-wat"), nil); err != nil {
			t.Fatal(err)
		}
		testMQ(t, c, d.NATSURL(), daemon.BrokerJetStream)
	})

	t.Run("workflow", func(t *testing.T) {
		if _, err := Workflow(ctx, WorkflowOptions{Server: base, Tasks: 3, Invocations: 10}); err == nil {
			t.Fatal("a workflow benchmark without a function ran")
		}
		r, err := Workflow(ctx, WorkflowOptions{Server: base, Function: "echo", Tasks: 3, Invocations: 10})
		if err != nil {
			t.Fatal(err)
		}
		if r.Chain.N != 10 || r.Chain.P50 <= 0 || r.Chain.P50 < r.Call.P50 || r.Direct.P50 <= 0 || r.RoundTrip.P50 <= 0 {
			t.Fatalf("%+v", r)
		}
		if wfs, err := c.Workflows(ctx); err != nil || len(wfs) != 0 {
			t.Fatalf("workflows left behind: %v %v", wfs, err)
		}
		if fns, err := c.Functions(ctx); err != nil || len(fns) != 1 {
			t.Fatalf("functions: %v %v", fns, err)
		}
	})
}

// testMQ runs MQ briefly on a daemon with echo deployed, on the broker the
// daemon says it runs on, which must be broker.
func testMQ(t *testing.T, c *client.Client, natsURL, broker string) {
	ctx := context.Background()
	r, err := MQ(ctx, MQOptions{Client: c, NATSURL: natsURL, ClusterID: daemon.DefaultClusterID, Function: "echo",
		Messages: 300, Latency: 20, Inflight: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Broker != broker {
		t.Fatalf("MQ ran on %q, the daemon on %q", r.Broker, broker)
	}
	if r.MsgsPerSec <= 0 || r.Latency.N != 20 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 {
		t.Fatalf("%+v", r)
	}
	if ts, err := c.Triggers(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("triggers left behind: %v %v", ts, err)
	}
}

// BenchmarkWorkflow is `sluice bench workflow` as a Go benchmark, on a
// daemon in this process with the file store (fsync on), as `sluice
// daemon` runs: the engine's overhead per task of a chain of 10 no-op
// tasks.
//
//	go test -run '^$' -bench Workflow -benchtime 1x -count 5 ./internal/app/bench/
func BenchmarkWorkflow(b *testing.B) {
	d, _ := startDaemon(b, true)
	for i := 0; i < b.N; i++ {
		r, err := Workflow(context.Background(), WorkflowOptions{Server: "http://" + d.Addr()})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(Micros(r.PerTaskP50), "µs/task-p50")
		b.ReportMetric(Micros(r.PerTaskP99), "µs/task-p99")
		b.ReportMetric(Micros(r.Marginal), "µs/marginal-task")
		b.ReportMetric(Micros(r.Invocation), "µs/invocation")
		b.ReportMetric(Micros(r.Chain.P50), "µs/chain-p50")
		b.ReportMetric(Micros(r.Direct.P50), "µs/direct-call")
	}
	b.ReportMetric(0, "ns/op")
}
