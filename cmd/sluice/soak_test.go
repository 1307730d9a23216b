//go:build soak

package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
	"github.com/sluicehq/sluice/triggers"
)

// TestSoakRepeatedKill9 (make soak) publishes 50,000 messages to a queue
// trigger and kills the daemon with SIGKILL five times while it works
// through them; after the last restart every message must have a result.
func TestSoakRepeatedKill9(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	runClusterFaults(t, faultPlan{rate: 300, wfRate: 5, rounds: 6, batch: 40, restart: true})
}

// poisonGuest is a reactor that fails every call with its input and the
// redeliveries the call's metadata gives (the broker's count):
// "INPUT redeliveries=N".
const poisonGuest = `(module
  (import "sluice" "fail" (func $fail (param i32 i32)))
  (import "sluice" "meta_get" (func $meta_get (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "redeliveries")
  (data (i32.const 16) " redeliveries=")
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
    (local $n i32)
    (memory.copy (i32.const 4096) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (i32.const 4096) (local.get $len)) (i32.const 16) (i32.const 14))
    (local.set $n (call $meta_get (i32.const 0) (i32.const 12)
      (i32.add (i32.const 4110) (local.get $len)) (i32.const 16)))
    (local.set $n (i32.add (i32.add (local.get $len) (i32.const 14)) (local.get $n)))
    (call $fail (i32.const 4096) (local.get $n))
    (i32.const 1)))`

// poisonRetries is the poison trigger's --max-retries.
const poisonRetries = 2

// deadLetters counts the dead letters of poison messages.
type deadLetters struct {
	mu  sync.Mutex
	got map[string][]triggers.DeadLetter // payload -> its dead letters
	bad []string
}

func collectDead(t *testing.T, l eventlog.Log, topic string) (*deadLetters, eventlog.Subscription) {
	t.Helper()
	d := &deadLetters{got: map[string][]triggers.DeadLetter{}}
	sub, err := l.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		var dl triggers.DeadLetter
		err := json.Unmarshal(m.Data, &dl)
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil {
			d.bad = append(d.bad, string(m.Data))
			return
		}
		d.got[string(dl.Payload)] = append(d.got[string(dl.Payload)], dl)
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, sub
}

// missing lists the messages without a dead letter.
func (d *deadLetters) missing(msgs []string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, m := range msgs {
		if len(d.got[m]) == 0 {
			out = append(out, m)
		}
	}
	return out
}

// retryLine is a daemon's log line for a queue message that failed and
// will be redelivered, when the function is poisonGuest.
var retryLine = regexp.MustCompile(`msg="message failed; it will be redelivered" .*trigger=(\S+) .*err="function \\"[^"\\]*\\" failed: (\S+) redeliveries=(\d+)"`)

// failedAttempts reads the daemons' logs (every process's, the killed
// ones' too) and returns, for each message of the trigger, the
// redeliveries of each of its failed attempts that was retried.
func failedAttempts(logs, trigger string) map[string][]int {
	seen := map[string][]int{}
	for _, line := range strings.Split(logs, "\n") {
		m := retryLine.FindStringSubmatch(line)
		if m == nil || m[1] != trigger {
			continue
		}
		n, _ := strconv.Atoi(m[3])
		seen[m[2]] = append(seen[m[2]], n)
	}
	return seen
}

// TestSoakSelfClusterFaults (make soak) is the long fault run on three
// self-clustered daemons: while a queue trigger works through each batch
// of messages, workflow invocations run (started over HTTP on every
// member, and by a queue trigger) and poison messages go through their
// retries, a round kills the daemon whose server leads the JetStream meta
// group, or another daemon and then the leader within two seconds (the
// cluster then has no majority until they are back), and restarts what it
// killed on its data dir. After every round each message of the batch has
// its result: nothing lost, duplicates counted. At the end every
// invocation succeeded with its output and its log shows no success run
// again, every poison message has its dead letter, and no message's
// delivery count started again.
func TestSoakSelfClusterFaults(t *testing.T) {
	t.Parallel()
	const (
		rounds = 6
		batch  = 3000 // messages to the echo trigger per round
		invs   = 9    // invocations started over HTTP per round
		wfMsgs = 8    // messages to the workflow's trigger per round
		poison = 20   // poison messages per round
	)
	c := startSelfCluster(t)
	wf := newWFAudit(t, c.daemons)
	c.wf = wf
	a := c.members[0].d
	a.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	a.mustSluice(t, "", "trigger", "create", "q", "--fn", "echo", "--topic", "in", "--resp-topic", "out", "--ack-wait", "2s", "--max-inflight", "64")
	a.mustSluice(t, "", "fn", "deploy", "poison", testutil.WATFile(t, poisonGuest))
	a.mustSluice(t, "", "trigger", "create", "dlq", "--fn", "poison", "--topic", "poison", "--error-topic", "dead",
		"--max-retries", strconv.Itoa(poisonRetries), "--ack-wait", "5s", "--max-inflight", "16")
	group := setupFaultWorkflow(t, a, c.daemons())
	l := connectLog(t, "jetstream", c.url(), 3)
	seen, sub := countTopic(t, l, "out")
	defer sub.Close()
	dead, deadSub := collectDead(t, l, "dead")
	defer deadSub.Close()
	wfSub := wf.collect(l, "wfout")
	defer wfSub.Close()

	var wfInputs []int
	var poisoned []string
	underWay := 0 // invocations started over HTTP under way at the kills
	start := time.Now()
	for round := range rounds {
		// workflows and poison messages first, under way at the kills
		running := wf.waitRunning(wf.invoke(invs))
		underWay += running
		publishTo(t, l, "wfin", fmt.Sprintf("%d%%03d", round+1), wfMsgs)
		for i := range wfMsgs {
			wfInputs = append(wfInputs, (round+1)*1000+i)
		}
		pformat := fmt.Sprintf("p%d-%%03d", round)
		publishTo(t, l, "poison", pformat, poison)
		for i := range poison {
			poisoned = append(poisoned, fmt.Sprintf(pformat, i))
		}
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
		deadBefore := len(poisoned) - len(dead.missing(poisoned))
		for i, m := range killed {
			if i > 0 {
				time.Sleep(time.Duration(500+round*250) * time.Millisecond)
			}
			c.kill(m)
		}
		t.Logf("%5.1fs round %d: killed %d daemon(s), the meta leader %s last; %d invocations under way, %d of %d poison messages dead-lettered",
			time.Since(start).Seconds(), round, len(killed), leader.server, running, deadBefore, len(poisoned))
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
		t.Logf("%5.1fs round %d: %d results for %d messages so far (%d duplicates)",
			time.Since(start).Seconds(), round, seen.all(), (round+1)*batch, seen.all()-(round+1)*batch)
	}
	if underWay == 0 {
		t.Fatal("no invocation was under way at any kill: the run tested nothing")
	}

	// Every invocation succeeded, with its output, its log sound; every
	// message to the workflow's trigger has its output.
	counts := wf.finish(group, wfInputs)

	// Every poison message has its dead letter, made when the broker's
	// count reached --max-retries redeliveries.
	for deadline := time.Now().Add(3 * time.Minute); len(dead.missing(poisoned)) > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if m := dead.missing(poisoned); len(m) > 0 {
		t.Errorf("%d of %d poison messages have no dead letter after 3 minutes: %s", len(m), len(poisoned), strings.Join(m[:min(len(m), 20)], " "))
	}
	retried := failedAttempts(c.logText(), "dlq")
	dead.mu.Lock()
	letters, exact, dups := 0, 0, 0
	for _, bad := range dead.bad {
		t.Errorf("a dead letter that is not JSON: %q", bad)
	}
	for _, m := range poisoned {
		dls := dead.got[m]
		letters += len(dls)
		if len(dls) > 1 {
			dups += len(dls) - 1
		}
		said := map[uint32]bool{} // the redeliveries its dead letters say
		for _, dl := range dls {
			if dl.Redeliveries < poisonRetries || dl.Trigger != "dlq" || dl.Topic != "poison" || dl.Function != "poison" ||
				!strings.Contains(dl.Error, fmt.Sprintf("%s redeliveries=%d", m, dl.Redeliveries)) {
				t.Errorf("dead letter of %s: %+v", m, dl)
			}
			if said[dl.Redeliveries] {
				t.Errorf("%s: two dead letters at %d redeliveries: its delivery count started again", m, dl.Redeliveries)
			}
			said[dl.Redeliveries] = true
			if dl.Redeliveries == poisonRetries {
				exact++
			}
		}
	}
	dead.mu.Unlock()
	// The attempts retried, as the daemons logged them: no message fails
	// twice at one count, which is what a count that started again at a
	// failover looks like (0, 1, 2, 1, 2), and each fails at 0 and 1
	// (a daemon killed between a call and its log line may hide one).
	tries, repeats, whole := 0, 0, 0
	for _, m := range poisoned {
		at := map[int]bool{}
		for _, n := range retried[m] {
			tries++
			if n >= poisonRetries {
				t.Errorf("%s: retried at redeliveries %v, past --max-retries %d", m, retried[m], poisonRetries)
			}
			if at[n] {
				repeats++
				t.Errorf("%s: retried at redeliveries %v: its delivery count started again", m, retried[m])
				break
			}
			at[n] = true
		}
		if len(at) == poisonRetries {
			whole++
		}
	}

	t.Logf("messages: %d in, %d results (%d duplicates)", rounds*batch, seen.all(), seen.all()-rounds*batch)
	counts.log(t)
	t.Logf("poison messages: %d in, %d dead letters (%d duplicates), %d of them at exactly %d redeliveries; %d retries logged, %d messages with each of theirs, %d counts that started again",
		len(poisoned), letters, dups, exact, poisonRetries, tries, whole, repeats)
}
