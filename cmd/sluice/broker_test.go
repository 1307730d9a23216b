package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

// testBroker is the broker the daemons of these tests run on:
// SLUICE_TEST_BROKER (nats-streaming or jetstream; make test runs the
// package on both), else nats-streaming, the daemon's default.
func testBroker() string {
	if b := os.Getenv("SLUICE_TEST_BROKER"); b != "" {
		return b
	}
	return "nats-streaming"
}

// brokerEnv is what a daemon process of the tests is started with: the
// broker, unless the test gives --broker itself.
func brokerEnv(args []string) []string {
	for _, a := range args {
		if a == "--broker" || len(a) > 9 && a[:9] == "--broker=" {
			return os.Environ()
		}
	}
	return append(os.Environ(), "SLUICE_BROKER="+testBroker())
}

// connectLog connects to a daemon's broker (nats-streaming or jetstream)
// at natsURL as another application would. It is closed at the end of the
// test. A JetStream client is given the daemons' replicas: jslog.Connect
// sets the streams to the replicas it is given.
func connectLog(t testing.TB, brokerName, natsURL string, replicas int) eventlog.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		l   eventlog.Log
		err error
	)
	if brokerName == "jetstream" {
		l, err = jslog.Connect(ctx, jslog.Options{URL: natsURL, Name: "test-app", Replicas: replicas})
	} else {
		l, err = natslog.Connect(ctx, broker.Options{URL: natsURL, ClusterID: "sluice", Name: "test-app"})
	}
	if err != nil {
		t.Fatalf("connect to the daemon's broker: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// publishN publishes n messages formatted with format and their index to
// the broker of the tests' daemons (testBroker) at natsURL, and waits for
// every ack. The log is the caller's to close (it is also closed at the
// end of the test).
func publishN(t *testing.T, natsURL, topic, format string, n int) eventlog.Log {
	t.Helper()
	return publishTo(t, connectLog(t, testBroker(), natsURL, 1), topic, format, n)
}

// publishTo is publishN on a connected log.
func publishTo(t testing.TB, l eventlog.Log, topic, format string, n int) eventlog.Log {
	t.Helper()
	acks := make(chan error, n)
	for i := 0; i < n; i++ {
		m := eventlog.Message{Data: []byte(fmt.Sprintf(format, i))}
		if err := l.PublishAsync(topic, m, func(_ uint64, err error) { acks <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := <-acks; err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// counter counts the messages of a topic by their data, from the start of
// the topic.
type counter struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
}

func countTopic(t testing.TB, l eventlog.Log, topic string) (*counter, eventlog.Subscription) {
	t.Helper()
	c := &counter{seen: map[string]int{}}
	sub, err := l.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		c.mu.Lock()
		c.seen[string(m.Data)]++
		c.total++
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, sub
}

// distinct is how many different messages were seen.
func (c *counter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// count is how often the message was seen.
func (c *counter) count(data string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[data]
}

// all is how many messages were seen, duplicates included.
func (c *counter) all() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// BenchmarkQueueTrigger is a daemon on the tests' broker (embedded, file
// store) working through a burst of messages with a queue trigger: an
// echo function, results to another topic, 64 in flight. It reports the
// publish rate and the end-to-end rate (the first publish to the last
// result), to compare the brokers:
//
//	SLUICE_TEST_BROKER=jetstream go test -run '^$' -bench QueueTrigger -benchtime 1x -count 3 ./cmd/sluice/
func BenchmarkQueueTrigger(b *testing.B) {
	const n = 20000
	for range b.N {
		b.StopTimer()
		p := startDaemon(b, b.TempDir())
		p.mustSluice(b, "", "fn", "deploy", "echo", testutil.WasmPath(b, "echo-wat"))
		p.mustSluice(b, "", "trigger", "create", "q", "--fn", "echo", "--topic", "in", "--resp-topic", "out", "--max-inflight", "64")
		l := connectLog(b, testBroker(), p.nats, 1)
		seen, sub := countTopic(b, l, "out")
		b.StartTimer()
		start := time.Now()
		publishTo(b, l, "in", "m%06d", n)
		published := time.Since(start)
		testutil.Eventually(b, 5*time.Minute, "a result for every message", func() bool { return seen.distinct() == n })
		took := time.Since(start)
		b.StopTimer()
		sub.Close()
		b.ReportMetric(n/published.Seconds(), "published/s")
		b.ReportMetric(n/took.Seconds(), "msgs/s")
	}
}
