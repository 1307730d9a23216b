package jslog

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/testutil"
)

// testCluster is three embedded servers clustered on loopback.
type testCluster struct {
	servers []*Embedded
	opts    []EmbeddedOptions
}

func startCluster(t *testing.T) *testCluster {
	t.Helper()
	routes := []string{testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)}
	c := &testCluster{}
	for i := range 3 {
		o := EmbeddedOptions{
			Dir: t.TempDir(), Listen: testutil.FreeAddr(t), Auth: testAuth,
			Cluster: ClusterOptions{Name: "sluice-test", Listen: routes[i], Peers: routes, Password: "route-secret"},
		}
		e, err := StartEmbedded(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Shutdown)
		if e.Replicas() != 3 {
			t.Fatalf("replicas %d in a cluster of 3", e.Replicas())
		}
		c.servers, c.opts = append(c.servers, e), append(c.opts, o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range c.servers {
		if err := e.WaitClustered(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// url is every server's client URL, for a client that fails over.
func (c *testCluster) url() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, "nats://"+o.Listen)
	}
	return broker.URLWithAuth(strings.Join(urls, ","), testAuth)
}

func (c *testCluster) metaLeader(t *testing.T) int {
	t.Helper()
	leader := -1
	testutil.Eventually(t, 30*time.Second, "a meta leader", func() bool {
		for i, e := range c.servers {
			if e != nil && e.IsMetaLeader() {
				leader = i
				return true
			}
		}
		return false
	})
	return leader
}

// TestClusterSurvivesMetaLeaderLoss kills the JetStream meta leader of
// a 3-server cluster while messages are published and a queue consumes
// them: publishing and the queue carry on on the other two, nothing is
// lost, and a message never acked keeps its delivery count.
func TestClusterSurvivesMetaLeaderLoss(t *testing.T) {
	c := startCluster(t)
	l := connect(t, c.url(), 3)

	var mu sync.Mutex
	acked := map[string]bool{}
	var poison []int
	qs, err := l.Subscribe("orders", eventlog.SubOptions{Queue: "billing", Start: eventlog.First, ManualAck: true, AckWait: time.Second}, func(m *eventlog.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if string(m.Data) == "poison" {
			poison = append(poison, m.Deliveries)
			return
		}
		acked[string(m.Data)] = true
		m.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer qs.Close()
	publish(t, l, "orders", "poison")
	testutil.Eventually(t, 30*time.Second, "two deliveries of the poison message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(poison) >= 2
	})
	if err := l.Blobs().Put(ctxT(t), "mod", []byte("module bytes")); err != nil {
		t.Fatal(err)
	}

	const n = 200
	pubErr := make(chan error, 1)
	published := make(chan int, n)
	go func() {
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := l.Publish(ctx, "orders", eventlog.Message{Data: []byte(strconv.Itoa(i)), ID: "order-" + strconv.Itoa(i)})
			cancel()
			if err != nil {
				pubErr <- err
				return
			}
			published <- i
		}
		pubErr <- nil
	}()
	for range n / 4 {
		<-published
	}
	leader := c.metaLeader(t)
	c.servers[leader].Shutdown()
	c.servers[leader] = nil
	if err := <-pubErr; err != nil {
		t.Fatalf("publishing after the leader was lost: %v", err)
	}
	testutil.Eventually(t, time.Minute, "every message acked, the poison redelivered on the survivors", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == n && len(poison) >= 4
	})
	mu.Lock()
	for i, d := range poison {
		if d != i+1 {
			t.Fatalf("the poison message's deliveries: %v; want 1, 2, 3, ... across the failover", poison)
		}
	}
	mu.Unlock()
	if b, err := l.Blobs().Get(ctxT(t), "mod"); err != nil || string(b) != "module bytes" {
		t.Fatalf("blob after the failover: %q, %v", b, err)
	}
	// a new meta leader among the survivors
	if i := c.metaLeader(t); i == leader {
		t.Fatalf("the dead server %d still leads", i)
	}
}
