package bench

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/testutil"
)

// BenchmarkMQ measures a message-queue trigger end to end: messages
// published by an ordinary client to a topic, the function called once per
// message, its output published to the response topic, the message acked
// once that publication is stored. In the same run, on the same server,
// the floor: the same pipeline without sluice (subscribe, publish the
// payload, ack on its publish ack). Read the ratio.
//
//	go test -run '^$' -bench MQ -benchtime 1x ./bench/
//
// msgs/s is a burst of burstMsgs messages published at once, from the
// first publish to the last result; p50/p99 are the latencies of
// latencyMsgs messages sent one at a time (publish to result received).
func BenchmarkMQ(b *testing.B) {
	for _, store := range []string{"memory", "file"} {
		for _, fn := range []string{"floor", "echo-wat", "upper-go"} {
			for _, inflight := range []int{1, 16, 256} {
				b.Run(fmt.Sprintf("%s/%s/inflight-%d", store, fn, inflight), func(b *testing.B) {
					mqRun(b, store, fn, inflight)
				})
			}
		}
	}
}

const (
	burstMsgs   = 20000
	latencyMsgs = 300
	payloadSize = 1024
)

func mqRun(b *testing.B, store, fn string, inflight int) {
	dir := ""
	if store == "file" {
		dir = b.TempDir()
	}
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: daemon.DefaultClusterID})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	burst := burstMsgs
	if inflight == 1 {
		burst = burstMsgs / 10 // one at a time through fsync: keep the run short
	}

	sc, err := stan.Connect(daemon.DefaultClusterID, "bench-"+nuid.Next(), stan.NatsURL(srv.URL()), stan.MaxPubAcksInflight(burst))
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()

	if fn == "floor" {
		floor, err := stan.Connect(daemon.DefaultClusterID, "floor-"+nuid.Next(), stan.NatsURL(srv.URL()), stan.MaxPubAcksInflight(burst))
		if err != nil {
			b.Fatal(err)
		}
		defer floor.Close()
		sub, err := floor.QueueSubscribe("in", "floor", func(m *stan.Msg) {
			floor.PublishAsync("out", m.Data, func(_ string, err error) {
				if err == nil {
					m.Ack()
				}
			})
		}, stan.DurableName("floor"), stan.SetManualAckMode(), stan.MaxInflight(inflight), stan.AckWait(30*time.Second), stan.DeliverAllAvailable())
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
	} else {
		o := daemon.DefaultOptions()
		o.Listen, o.DataDir, o.NATSURL = "127.0.0.1:0", b.TempDir(), srv.URL()
		d, err := daemon.Start(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Shutdown(context.Background())
		c := client.New(d.Addr(), "")
		if _, err := c.Deploy(context.Background(), "f", testutil.Wasm(b, fn), nil); err != nil {
			b.Fatal(err)
		}
		if _, err := c.CreateTrigger(context.Background(), api.TriggerRequest{Name: "t", Function: "f",
			Queue: &api.QueueRequest{Topic: "in", RespTopic: "out", MaxInflight: inflight}}); err != nil {
			b.Fatal(err)
		}
	}

	var (
		mu      sync.Mutex
		got     atomic.Int64
		lat     []time.Duration
		last    time.Time
		results = make(chan struct{}, burst)
	)
	sub, err := sc.Subscribe("out", func(m *stan.Msg) {
		now := time.Now()
		if i := bytes.IndexByte(m.Data, '|'); i > 0 {
			if ns, err := strconv.ParseInt(string(m.Data[:i]), 10, 64); err == nil {
				mu.Lock()
				lat = append(lat, now.Sub(time.Unix(0, ns)))
				last = now
				mu.Unlock()
			}
		}
		got.Add(1)
		results <- struct{}{}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	msg := func() []byte {
		p := []byte(strconv.FormatInt(time.Now().UnixNano(), 10) + "|")
		return append(p, bytes.Repeat([]byte("x"), payloadSize-len(p))...)
	}
	wait := func(n int) {
		timeout := time.After(5 * time.Minute)
		for i := 0; i < n; i++ {
			select {
			case <-results:
			case <-timeout:
				b.Fatalf("%d of %d results after 5 minutes", i, n)
			}
		}
	}

	// warm up: connections, the durable, and as many instances as the
	// burst will use
	warm := min(burst, 2000)
	for i := 0; i < warm; i++ {
		if _, err := sc.PublishAsync("in", msg(), nil); err != nil {
			b.Fatal(err)
		}
	}
	wait(warm)

	// unloaded latency
	mu.Lock()
	lat = lat[:0]
	mu.Unlock()
	for i := 0; i < latencyMsgs; i++ {
		if err := sc.Publish("in", msg()); err != nil {
			b.Fatal(err)
		}
		wait(1)
	}
	mu.Lock()
	sorted := append([]time.Duration(nil), lat...)
	mu.Unlock()
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })

	// burst throughput
	b.ResetTimer()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		acks := make(chan error, burst)
		for k := 0; k < burst; k++ {
			if _, err := sc.PublishAsync("in", msg(), func(_ string, err error) { acks <- err }); err != nil {
				b.Fatal(err)
			}
		}
		wait(burst)
		mu.Lock()
		elapsed += last.Sub(start)
		mu.Unlock()
		for k := 0; k < burst; k++ {
			if err := <-acks; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(burst*b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(sorted[len(sorted)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(sorted[len(sorted)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
}
