//go:build soak

package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"

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
	seen, sub := countTopic(t, connectLog(t, testBroker(), p.nats, 1), "out")
	defer sub.Close()
	testutil.Eventually(t, 10*time.Minute, "a result for every message", func() bool { return seen.distinct() == n })
	for i := 0; i < n; i++ {
		if seen.count(fmt.Sprintf("M%06d", i)) == 0 {
			t.Fatalf("message m%06d has no result", i)
		}
	}
	t.Logf("%d messages, 5 kills: %d results (%d duplicates)", n, seen.all(), seen.all()-n)
}

// TestSoakClusterFaults is the long fault run on a three-node NATS
// Streaming cluster with two daemons: six rounds, each killing the NATS
// Streaming leader and then one daemon (in turn) with invocations under
// way, restarting each after its death, under a steady message stream.
func TestSoakClusterFaults(t *testing.T) {
	runClusterFaults(t, faultPlan{rate: 300, wfRate: 5, rounds: 6, batch: 40, restart: true})
}
