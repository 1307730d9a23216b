//go:build soak

package jslog

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// TestSoakClusterFaults runs make soak's cluster faults on 3 embedded
// servers: the meta leader killed and restarted, then a server and the
// leader killed within moments of each other (the double fault that
// loses queue messages on NATS Streaming) and both restarted, round after
// round, while messages are published with IDs and a queue acks them.
// Every message is acked, and a message never acked counts its
// deliveries without starting again.
func TestSoakClusterFaults(t *testing.T) {
	c := startCluster(t)
	l := connect(t, c.url(), 3)
	var mu sync.Mutex
	acked := map[string]int{}
	var poison []int
	qs, err := l.Subscribe("orders", eventlog.SubOptions{Queue: "billing", Start: eventlog.First, ManualAck: true, AckWait: 2 * time.Second}, func(m *eventlog.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if string(m.Data) == "poison" {
			poison = append(poison, m.Deliveries)
			return
		}
		acked[string(m.Data)]++
		m.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer qs.Close()
	publish(t, l, "orders", "poison")

	const n = 5000
	pubErr := make(chan error, 1)
	var sent sync.WaitGroup
	sent.Add(1)
	progress := make(chan int, n)
	go func() {
		defer sent.Done()
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			_, err := l.Publish(ctx, "orders", eventlog.Message{Data: []byte(strconv.Itoa(i)), ID: "order-" + strconv.Itoa(i)})
			cancel()
			if err != nil {
				pubErr <- err
				return
			}
			progress <- i
		}
	}()
	restart := func(i int) {
		e, err := StartEmbedded(c.opts[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Shutdown)
		c.servers[i] = e
	}
	wait := func(k int) {
		for range k {
			select {
			case <-progress:
			case err := <-pubErr:
				t.Fatal(err)
			}
		}
	}
	for round := 0; round < 5; round++ {
		wait(200)
		leader := c.metaLeader(t)
		c.servers[leader].Shutdown()
		c.servers[leader] = nil
		wait(100)
		restart(leader)
		wait(100)
		leader = c.metaLeader(t)
		other := (leader + 1 + rand.IntN(2)) % 3
		c.servers[other].Shutdown()
		c.servers[other] = nil
		c.servers[leader].Shutdown()
		c.servers[leader] = nil
		restart(other)
		restart(leader)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, e := range c.servers {
			if err := e.WaitClustered(ctx); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
	}
	sent.Wait()
	select {
	case err := <-pubErr:
		t.Fatal(err)
	default:
	}
	testutil.Eventually(t, 5*time.Minute, "every message acked", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == n
	})
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, k := range acked {
		dups += k - 1
	}
	for i, d := range poison {
		if d != i+1 {
			t.Fatalf("the poison message's deliveries: %v; want 1, 2, 3, ... across every fault", poison)
		}
	}
	t.Logf("%d messages acked, %d redelivered after a fault; the poison message delivered %d times", n, dups, len(poison))
}
