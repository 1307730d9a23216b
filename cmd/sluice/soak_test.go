//go:build soak

package main

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/sluicehq/sluice/internal/testutil"
)

// TestSoakRepeatedKill9 (make soak) publishes 50,000 messages to a queue
// trigger and kills the daemon with SIGKILL five times while it works
// through them; after the last restart every message must have a result.
func TestSoakRepeatedKill9(t *testing.T) {
	data := t.TempDir()
	p := startDaemon(t, data)
	p.mustSluice(t, "", "fn", "deploy", "upper", testutil.WasmPath(t, "upper-go"))
	p.mustSluice(t, "", "trigger", "create", "q", "--fn", "upper", "--topic", "in", "--resp-topic", "out", "--ack-wait", "2s", "--max-inflight", "64")
	const n = 50000
	pub := publishN(t, p.nats, "in", "m%06d", n)
	pub.Close()
	for kill := 1; kill <= 5; kill++ {
		time.Sleep(time.Duration(300+kill*100) * time.Millisecond)
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
		t.Logf("kill -9 #%d", kill)
		p = startDaemon(t, data)
	}
	sc, err := stan.Connect("sluice", "reader-"+nuid.Next(), stan.NatsURL(p.nats))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var mu sync.Mutex
	seen, total := map[string]bool{}, 0
	sub, err := sc.Subscribe("out", func(m *stan.Msg) { mu.Lock(); seen[string(m.Data)] = true; total++; mu.Unlock() }, stan.DeliverAllAvailable())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	testutil.Eventually(t, 10*time.Minute, "a result for every message", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprintf("M%06d", i)] {
			t.Fatalf("message m%06d has no result", i)
		}
	}
	t.Logf("%d messages, 5 kills: %d results (%d duplicates)", n, total, total-n)
}

// TestSoakClusterFaults is the long fault run on a three-node NATS
// Streaming cluster with two daemons: six rounds, each killing the NATS
// Streaming leader and then one daemon (in turn) with invocations under
// way, restarting each after its death, under a steady message stream.
func TestSoakClusterFaults(t *testing.T) {
	runClusterFaults(t, faultPlan{rate: 300, wfRate: 5, rounds: 6, batch: 40, restart: true})
}
