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

// TestSoakSelfClusterFaults (make soak) is the long fault run on three
// self-clustered daemons: while a queue trigger works through each batch
// of messages, a round kills the daemon whose server leads the JetStream
// meta group, or another daemon and then the leader within two seconds
// (the cluster then has no majority until they are back), and restarts
// what it killed on its data dir. After every round each message of the
// batch has its result: nothing lost, duplicates counted.
func TestSoakSelfClusterFaults(t *testing.T) {
	c := startSelfCluster(t)
	a := c.members[0].d
	a.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	a.mustSluice(t, "", "trigger", "create", "q", "--fn", "echo", "--topic", "in", "--resp-topic", "out", "--ack-wait", "2s", "--max-inflight", "64")
	l := connectLog(t, "jetstream", c.url(), 3)
	seen, sub := countTopic(t, l, "out")
	defer sub.Close()
	const batch = 3000
	for round := range 6 {
		format := fmt.Sprintf("r%d-%%05d", round)
		publishTo(t, l, "in", format, batch)
		first := fmt.Sprintf(format, 0)
		testutil.Eventually(t, 60*time.Second, "the batch under way", func() bool { return seen.count(first) > 0 })
		leader := c.leader()
		killed := []*member{leader}
		if round%2 == 1 {
			for _, m := range c.members {
				if m != leader {
					killed = []*member{m, leader}
					break
				}
			}
		}
		for i, m := range killed {
			if i > 0 {
				time.Sleep(time.Duration(500+round*250) * time.Millisecond)
			}
			c.kill(m)
		}
		t.Logf("round %d: killed %d daemon(s), the meta leader %s last", round, len(killed), leader.server)
		for _, m := range killed {
			c.launch(m)
		}
		for _, m := range killed {
			c.waitReady(m)
		}
		testutil.Eventually(t, 5*time.Minute, "a result for every message of the batch", func() bool {
			for i := range batch {
				if seen.count(fmt.Sprintf(format, i)) == 0 {
					return false
				}
			}
			return true
		})
		t.Logf("round %d: %d results for %d messages so far (%d duplicates)", round, seen.all(), (round+1)*batch, seen.all()-(round+1)*batch)
	}
}
