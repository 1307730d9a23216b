package bench

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"runtime/trace"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

// BenchmarkMQ measures a message-queue trigger end to end, on each broker
// with its file store (fsync on, as `sluice daemon` runs it), and NATS
// Streaming also with its memory store (nats-streaming-memory), next to its
// floor on the same server in the same run: messages published by an
// ordinary client to a topic, the function called once per message, its
// output published to the response topic, the message acked once that
// publication is stored.
//
// The floor is the same pipeline written directly on the broker's own
// client, with the same guest called in-process through package host:
// on NATS Streaming a stan.go durable queue subscription (manual ack,
// MaxInflight), on JetStream a nats.go durable pull consumer
// (MaxAckPending); each message is passed to the function, its output
// published asynchronously, and the message acked on the publication's
// acknowledgement. The daemon and the floor share the server, on topics
// of their own, and are measured in turns: the latency in mqChunks
// alternating chunks, the burst in four turns (ABBA) of half of it each,
// who goes first alternating between runs, so that a change in the
// machine's speed (other load, the disk) falls on both. Read
// sluice/floor per broker, and each figure across brokers.
//
//	go test -run '^$' -bench '^BenchmarkMQ$' -benchtime 1x -count 5 -timeout 90m ./internal/app/bench/
//
// msgs/s is a burst of burstMsgs messages published at once, from the
// first publish to the last result; p50/p99 are the latencies of
// latencyMsgs messages sent one at a time (publish to result received).
// cpu-µs/msg is the CPU time the whole process (the broker, the load
// generator and the side in its turn) spent per message of the bursts:
// where the pipeline is CPU-bound, as on two cores, it says how much of a
// gap in msgs/s is work each message costs more, not waiting.
// switches/msg counts the process's threads' context switches per
// message of the bursts: threads parking to be woken by others.
// scheds/msg estimates the goroutines' schedulings per message of the
// bursts: hand-offs and contended locks, which on two cores cost the
// other core. Run with -test.trace, each burst is marked in the trace
// (category "burst"), to tell the sides' goroutines apart.
// The load generator is the same for both sides: sluice's event-log
// client for the broker (package natslog or jslog).
func BenchmarkMQ(b *testing.B) {
	for _, br := range mqBrokers {
		for _, fn := range []string{"echo-wat", "upper-go"} {
			for _, inflight := range []int{1, 16, 256} {
				b.Run(fmt.Sprintf("%s/%s/inflight-%d", br.name, fn, inflight), func(b *testing.B) {
					mqRun(b, br, fn, inflight)
				})
			}
		}
	}
}

const (
	burstMsgs   = 20000
	latencyMsgs = 300
	payloadSize = 1024
	// mqChunks: the latency samples of the daemon and the floor are taken
	// in this many alternating chunks.
	mqChunks = 10
	// floorAckWait is the floors' AckWait: as a trigger's default, and far
	// above any delay a burst sees, so nothing is redelivered.
	floorAckWait = 30 * time.Second
	// loadPubAckWait is how long the load generator waits for each
	// publication of a burst to be acknowledged: a burst is published at
	// once and stored one fsync at a time, so its last messages wait for
	// all the others (20,000 at about 1,000 per second on JetStream).
	loadPubAckWait = 5 * time.Minute
)

// mqBroker is a broker BenchmarkMQ runs on: its embedded server, the
// daemon's options for it, the load generator's client, and the floor.
type mqBroker struct {
	name string
	// start runs the server with its file store in dir, and returns its
	// URL and how to stop it.
	start func(b *testing.B, dir string) (url string, stop func())
	// daemon sets the daemon's options for the server at url.
	daemon func(o *daemon.Options, url string)
	// connect is the load generator's client, able to have pubs
	// asynchronous publications awaiting their acknowledgement.
	connect func(b *testing.B, url string, pubs int) eventlog.Log
	// floor runs the pipeline without sluice from topic in to topic out,
	// calling f, until stop.
	floor func(b *testing.B, url string, f *host.Function, in, out string, inflight int) (stop func())
}

var mqBrokers = []mqBroker{
	{
		name: daemon.BrokerNATSStreaming,
		start: func(b *testing.B, dir string) (string, func()) {
			srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: daemon.DefaultClusterID})
			if err != nil {
				b.Fatal(err)
			}
			return srv.URL(), srv.Shutdown
		},
		daemon:  func(o *daemon.Options, url string) { o.NATSURL = url },
		connect: stanConnect,
		floor:   stanFloor,
	},
	{
		// NATS Streaming with its memory store: the broker's own cost
		// without the disk, where sluice's share of the pipeline is the
		// largest.
		name: daemon.BrokerNATSStreaming + "-memory",
		start: func(b *testing.B, _ string) (string, func()) {
			srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: daemon.DefaultClusterID})
			if err != nil {
				b.Fatal(err)
			}
			return srv.URL(), srv.Shutdown
		},
		daemon:  func(o *daemon.Options, url string) { o.NATSURL = url },
		connect: stanConnect,
		floor:   stanFloor,
	},
	{
		name: daemon.BrokerJetStream,
		start: func(b *testing.B, dir string) (string, func()) {
			srv, err := jslog.StartEmbedded(jslog.EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			return srv.URL(), srv.Shutdown
		},
		daemon: func(o *daemon.Options, url string) { o.NATSURL, o.Broker = url, daemon.BrokerJetStream },
		connect: func(b *testing.B, url string, pubs int) eventlog.Log {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			l, err := jslog.Connect(ctx, jslog.Options{URL: url, Name: "bench-load", MaxPubAcksInflight: pubs, PubAckWait: loadPubAckWait})
			if err != nil {
				b.Fatal(err)
			}
			return l
		},
		floor: jetStreamFloor,
	},
}

// stanConnect is the load generator's client on NATS Streaming.
func stanConnect(b *testing.B, url string, pubs int) eventlog.Log {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := natslog.Connect(ctx, broker.Options{URL: url, ClusterID: daemon.DefaultClusterID, Name: "bench-load", MaxPubAcksInflight: pubs, PubAckWait: loadPubAckWait})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// stanFloor is the pipeline on stan.go: a durable queue subscription with
// manual acks and MaxInflight, each message acked when its result's
// asynchronous publication is acknowledged.
func stanFloor(b *testing.B, url string, f *host.Function, in, out string, inflight int) func() {
	sc, err := stan.Connect(daemon.DefaultClusterID, "floor-"+nuid.Next(), stan.NatsURL(url), stan.MaxPubAcksInflight(max(inflight, stan.DefaultMaxPubAcksInflight)))
	if err != nil {
		b.Fatal(err)
	}
	sub, err := sc.QueueSubscribe(in, "floor", func(m *stan.Msg) {
		res, err := f.Invoke(context.Background(), host.Call{Input: m.Data})
		if err != nil {
			b.Errorf("floor: %v", err)
			return
		}
		if _, err := sc.PublishAsync(out, res.Output, func(_ string, err error) {
			if err == nil {
				m.Ack()
			}
		}); err != nil {
			b.Errorf("floor: publish: %v", err)
		}
	}, stan.DurableName("floor"), stan.SetManualAckMode(), stan.MaxInflight(inflight), stan.AckWait(floorAckWait), stan.DeliverAllAvailable())
	if err != nil {
		sc.Close()
		b.Fatal(err)
	}
	return func() { sub.Close(); sc.Close() }
}

// jetStreamFloor is the pipeline on nats.go's jetstream package: a
// durable pull consumer on the stream that holds sluice's topics
// (subjects sluice.topic.<topic>, as jslog lays them out), MaxAckPending
// inflight, each message acked when its result's asynchronous publication
// is acknowledged.
func jetStreamFloor(b *testing.B, url string, f *host.Function, in, out string, inflight int) func() {
	const stream, prefix = "SLUICE_TOPICS", "sluice.topic."
	nc, err := nats.Connect(url, nats.Name("floor"))
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(max(inflight, 256)))
	if err != nil {
		nc.Close()
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "floor", FilterSubject: prefix + in, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: floorAckWait, MaxAckPending: inflight, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		nc.Close()
		b.Fatal(err)
	}
	type pending struct {
		ack jetstream.PubAckFuture
		m   jetstream.Msg
	}
	acks := make(chan pending, inflight)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for p := range acks {
			select {
			case <-p.ack.Ok():
				p.m.Ack()
			case <-p.ack.Err(): // left unacked: redelivered after AckWait
			}
		}
	}()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		res, err := f.Invoke(context.Background(), host.Call{Input: m.Data()})
		if err != nil {
			b.Errorf("floor: %v", err)
			return
		}
		ack, err := js.PublishAsync(prefix+out, res.Output)
		if err != nil {
			b.Errorf("floor: publish: %v", err)
			return
		}
		acks <- pending{ack, m}
	}, jetstream.PullMaxMessages(inflight))
	if err != nil {
		nc.Close()
		b.Fatal(err)
	}
	return func() {
		cc.Stop()
		<-cc.Closed()
		close(acks)
		<-acked
		nc.Close()
	}
}

// mqTurns counts the runs of each sub-benchmark, so that the order of its
// two turns alternates between runs (-count).
var mqTurns sync.Map

func mqRun(b *testing.B, br mqBroker, fn string, inflight int) {
	ctx := context.Background()
	url, stop := br.start(b, b.TempDir())
	defer stop()
	burst := burstMsgs
	if inflight == 1 {
		burst = burstMsgs / 10 // one at a time through fsync: keep the run short
	}
	wasm := testutil.Wasm(b, fn)

	// The floor, on topics of its own.
	h, err := host.New(ctx, host.NewConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	f, err := h.Load(ctx, host.Spec{Name: "floor"}, wasm)
	if err != nil {
		b.Fatal(err)
	}
	gen := br.connect(b, url, burst)
	defer gen.Close()
	defer br.floor(b, url, f, "floor-in", "floor-out", inflight)()

	// The daemon, on the same server.
	o := daemon.DefaultOptions()
	o.Listen, o.DataDir = "127.0.0.1:0", b.TempDir()
	br.daemon(&o, url)
	d, err := daemon.Start(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Shutdown(ctx)
	c := client.New(d.Addr(), "")
	if _, err := c.Deploy(ctx, "f", wasm, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "t", Function: "f",
		Queue: &api.QueueRequest{Topic: "in", RespTopic: "out", MaxInflight: inflight}}); err != nil {
		b.Fatal(err)
	}

	sluice := newMQPipe(b, gen, "in", "out")
	floor := newMQPipe(b, gen, "floor-in", "floor-out")
	defer sluice.close()
	defer floor.close()
	first, second := floor, sluice
	n, _ := mqTurns.LoadOrStore(b.Name(), new(atomic.Int64))
	if n.(*atomic.Int64).Add(1)%2 == 0 {
		first, second = sluice, floor
	}
	first.publish(min(burst, 2000))
	second.publish(min(burst, 2000))
	// Latency in ten chunks, who goes first alternating, so that a change
	// in the machine's speed (other load, the disk) falls on both.
	for i := 0; i < mqChunks; i++ {
		a, c := first, second
		if i%2 == 1 {
			a, c = second, first
		}
		a.latency(latencyMsgs / mqChunks)
		c.latency(latencyMsgs / mqChunks)
	}
	sluice.sortLatency()
	floor.sortLatency()
	// The burst in four turns, ABBA, half of it in each.
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, p := range []*mqPipe{first, second, second, first} {
			p.burst(burst / 2)
		}
	}
	b.StopTimer()
	b.ReportMetric(sluice.rate(), "msgs/s")
	b.ReportMetric(sluice.pct(0.50), "p50-µs")
	b.ReportMetric(sluice.pct(0.99), "p99-µs")
	b.ReportMetric(floor.rate(), "floor-msgs/s")
	b.ReportMetric(floor.pct(0.50), "floor-p50-µs")
	b.ReportMetric(floor.pct(0.99), "floor-p99-µs")
	b.ReportMetric(sluice.rate()/floor.rate(), "sluice/floor")
	b.ReportMetric(sluice.cpuPerMsg(), "cpu-µs/msg")
	b.ReportMetric(floor.cpuPerMsg(), "floor-cpu-µs/msg")
	b.ReportMetric(sluice.switchesPerMsg(), "switches/msg")
	b.ReportMetric(floor.switchesPerMsg(), "floor-switches/msg")
	b.ReportMetric(sluice.schedsPerMsg(), "scheds/msg")
	b.ReportMetric(floor.schedsPerMsg(), "floor-scheds/msg")
	b.ReportMetric(0, "ns/op")
}

// mqPipe drives one pipeline: it publishes to in and times the results on
// out. A message carries the time it was sent, which the function passes
// on (echo-wat copies it, upper-go leaves digits as they are).
type mqPipe struct {
	b       *testing.B
	gen     eventlog.Log
	in      string
	sub     eventlog.Subscription
	results chan struct{}

	mu   sync.Mutex
	lat  []time.Duration // of every result
	last time.Time       // the last result's arrival

	samples  []time.Duration // of the messages sent one at a time
	elapsed  time.Duration   // of the bursts
	messages int             // in the bursts
	cpu      time.Duration   // the process's CPU time in the bursts
	switches int64           // its threads' context switches in the bursts
	scheds   uint64          // its goroutines' schedulings in the bursts
}

func newMQPipe(b *testing.B, gen eventlog.Log, in, out string) *mqPipe {
	p := &mqPipe{b: b, gen: gen, in: in, results: make(chan struct{}, burstMsgs+latencyMsgs+2000)}
	sub, err := gen.Subscribe(out, eventlog.SubOptions{Start: eventlog.New}, func(m *eventlog.Msg) {
		now := time.Now()
		if i := bytes.IndexByte(m.Data, '|'); i > 0 {
			if ns, err := strconv.ParseInt(string(m.Data[:i]), 10, 64); err == nil {
				p.mu.Lock()
				p.lat = append(p.lat, now.Sub(time.Unix(0, ns)))
				p.last = now
				p.mu.Unlock()
			}
		}
		p.results <- struct{}{}
	})
	if err != nil {
		b.Fatal(err)
	}
	p.sub = sub
	return p
}

func (p *mqPipe) close() { p.sub.Close() }

func (p *mqPipe) msg() eventlog.Message {
	d := []byte(strconv.FormatInt(time.Now().UnixNano(), 10) + "|")
	return eventlog.Message{Data: append(d, bytes.Repeat([]byte("x"), payloadSize-len(d))...)}
}

func (p *mqPipe) wait(n int) {
	timeout := time.After(5 * time.Minute)
	for i := 0; i < n; i++ {
		select {
		case <-p.results:
		case <-timeout:
			p.b.Fatalf("%s: %d of %d results after 5 minutes", p.in, i, n)
		}
	}
}

// publish publishes n messages asynchronously and waits for their
// results, then for their acknowledgements. The first call warms up:
// connections, the durable, as many instances as a burst uses.
func (p *mqPipe) publish(n int) {
	acks := make(chan error, n)
	for k := 0; k < n; k++ {
		if err := p.gen.PublishAsync(p.in, p.msg(), func(_ uint64, err error) { acks <- err }); err != nil {
			p.b.Fatal(err)
		}
	}
	p.wait(n)
	for k := 0; k < n; k++ {
		if err := <-acks; err != nil {
			p.b.Fatal(err)
		}
	}
}

// latency sends n messages one at a time and keeps their latencies.
func (p *mqPipe) latency(n int) {
	p.mu.Lock()
	from := len(p.lat)
	p.mu.Unlock()
	for i := 0; i < n; i++ {
		if _, err := p.gen.Publish(context.Background(), p.in, p.msg()); err != nil {
			p.b.Fatal(err)
		}
		p.wait(1)
	}
	p.mu.Lock()
	p.samples = append(p.samples, p.lat[from:]...)
	p.mu.Unlock()
}

func (p *mqPipe) sortLatency() {
	sort.Slice(p.samples, func(i, j int) bool { return p.samples[i] < p.samples[j] })
}

// burst publishes n messages at once and times them, first publish to
// last result.
func (p *mqPipe) burst(n int) {
	runtime.GC()
	cpu, sw := processUsage(p.b)
	sc := schedulings()
	trace.Log(context.Background(), "burst", "start "+p.in) // to tell the sides apart in a -test.trace
	start := time.Now()
	p.publish(n)
	trace.Log(context.Background(), "burst", "end "+p.in)
	cpu2, sw2 := processUsage(p.b)
	p.scheds += schedulings() - sc
	p.cpu += cpu2 - cpu
	p.switches += sw2 - sw
	p.mu.Lock()
	p.elapsed += p.last.Sub(start)
	p.mu.Unlock()
	p.messages += n
}

func (p *mqPipe) rate() float64 { return float64(p.messages) / p.elapsed.Seconds() }

func (p *mqPipe) cpuPerMsg() float64 {
	return float64(p.cpu) / float64(time.Microsecond) / float64(p.messages)
}

func (p *mqPipe) switchesPerMsg() float64 { return float64(p.switches) / float64(p.messages) }

func (p *mqPipe) schedsPerMsg() float64 { return float64(p.scheds) / float64(p.messages) }

// schedulings estimates how many times the goroutines of this process
// went from runnable to running: a goroutine woken by another (a hand-off,
// a contended lock) is one, and on two cores it may cost the other core a
// woken or spinning thread. The runtime times one such transition of a
// goroutine in eight (runtime/metrics' /sched/latencies): the count is
// eight times those it timed.
func schedulings() uint64 {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	var n uint64
	for _, c := range s[0].Value.Float64Histogram().Counts {
		n += c
	}
	return 8 * n
}

// processUsage is the CPU time (user and system) this process has used,
// and the context switches of its threads (voluntary: a thread that
// parked, to be woken by another; involuntary: preempted by the kernel).
func processUsage(b *testing.B) (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}

func (p *mqPipe) pct(q float64) float64 {
	return float64(p.samples[int(float64(len(p.samples)-1)*q)].Microseconds())
}
