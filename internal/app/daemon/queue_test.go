package daemon

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
	"github.com/sluicehq/sluice/triggers"
)

// The conformance suite of the message-queue trigger: what every queue
// trigger must do, checked with messages published and read by an ordinary
// stan.go client, as any other application would.

// app is another application on the daemon's broker, with the event log
// of the tests' broker (testBroker).
type app struct {
	t *testing.T
	l eventlog.Log
}

func newApp(t *testing.T, natsURL string) *app {
	t.Helper()
	l := connectApp(t, testBroker(), natsURL)
	t.Cleanup(func() { l.Close() })
	return &app{t: t, l: l}
}

// close disconnects the application.
func (a *app) close() { a.l.Close() }

// publish publishes the payloads asynchronously and waits for their acks.
func (a *app) publish(topic string, payloads ...string) {
	a.t.Helper()
	acks := make(chan error, len(payloads))
	for _, p := range payloads {
		if err := a.l.PublishAsync(topic, eventlog.Message{Data: []byte(p)}, func(_ uint64, err error) { acks <- err }); err != nil {
			a.t.Fatal(err)
		}
	}
	for range payloads {
		if err := <-acks; err != nil {
			a.t.Fatal(err)
		}
	}
}

// collector records every message of a topic from its start.
type collector struct {
	mu   sync.Mutex
	msgs []string
}

func (a *app) collect(topic string) *collector {
	a.t.Helper()
	c := &collector{}
	sub, err := a.l.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, string(m.Data))
		c.mu.Unlock()
	})
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { sub.Close() })
	return c
}

func (c *collector) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

func (c *collector) distinct() map[string]int {
	seen := map[string]int{}
	for _, m := range c.all() {
		seen[m]++
	}
	return seen
}

// deadLetters decodes the dead letters collected, by the sequence of the
// message each is for: a message's dead letter may come more than once, as
// any publication of a queue trigger (at least once: its message's ack may
// reach the server after the trigger's AckWait on a loaded machine, and
// the message come again).
func (c *collector) deadLetters(t *testing.T) map[uint64][]triggers.DeadLetter {
	t.Helper()
	by := map[uint64][]triggers.DeadLetter{}
	for _, raw := range c.all() {
		var dl triggers.DeadLetter
		if err := json.Unmarshal([]byte(raw), &dl); err != nil {
			t.Fatalf("dead letter %q: %v", raw, err)
		}
		by[dl.Sequence] = append(by[dl.Sequence], dl)
	}
	return by
}

func payloads(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return out
}

func TestQueueNInNOut(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "echo", "echo-wat", nil)
	a := newApp(t, d.NATSURL())
	results := a.collect("out")
	const n = 2000
	a.publish("in", payloads("m", n)...) // published before the trigger exists: the durable starts at the beginning
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "q", Function: "echo", Queue: &api.QueueRequest{Topic: "in", RespTopic: "out"}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "a result for every message", func() bool { return len(results.distinct()) == n })
	for _, p := range payloads("m", n) {
		if results.distinct()[p] == 0 {
			t.Fatalf("no result for %s", p)
		}
	}
	v, err := c.Trigger(ctx, "q")
	if err != nil || v.Stats == nil || v.Stats.Succeeded < n {
		t.Fatalf("trigger stats %+v, %v", v.Stats, err)
	}
}

func TestQueueRetriesThenDeadLetters(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "go", "goguest", nil)
	a := newApp(t, d.NATSURL())
	results, dead := a.collect("jobs.out"), a.collect("jobs.dead")
	maxRetries := 2
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "jobs", Function: "go", Queue: &api.QueueRequest{
		Topic: "jobs", RespTopic: "jobs.out", ErrorTopic: "jobs.dead", MaxRetries: &maxRetries, AckWait: "1s",
	}}); err != nil {
		t.Fatal(err)
	}
	var in []string
	for i := 0; i < 20; i++ {
		if i%4 == 0 {
			in = append(in, "error") // fails every time
		} else {
			in = append(in, fmt.Sprintf("echo:ok-%d", i))
		}
	}
	a.publish("jobs", in...)
	// At least once, with a 1 s AckWait: on a loaded machine a message's
	// ack may reach the server after it, and the message come again. A
	// result or a dead letter may then come twice; what counts is one of
	// each per message.
	testutil.Eventually(t, 30*time.Second, "5 messages dead-lettered and 15 results", func() bool {
		return len(dead.deadLetters(t)) == 5 && len(results.distinct()) == 15
	})
	time.Sleep(1500 * time.Millisecond) // a further attempt would show now
	by := dead.deadLetters(t)
	if len(by) != 5 {
		t.Fatalf("dead letters for %d messages, want 5: %v", len(by), by)
	}
	for seq, dls := range by {
		first := dls[0].Redeliveries
		for _, dl := range dls {
			if string(dl.Payload) != "error" || dl.Code != "function_error" || dl.Redeliveries < uint32(maxRetries) ||
				dl.Function != "go" || dl.Trigger != "jobs" || dl.Topic != "jobs" || !strings.Contains(dl.Error, "the order has no items") {
				t.Fatalf("dead letter %+v", dl)
			}
			first = min(first, dl.Redeliveries)
		}
		// dead-lettered after exactly its retries; a later one is the
		// message come again after its dead letter's ack was late
		if first != uint32(maxRetries) {
			t.Fatalf("message %d first dead-lettered after %d redeliveries, want %d: %+v", seq, first, maxRetries, dls)
		}
	}
	// Each failing message fails its first maxRetries deliveries without
	// a dead letter, then once per dead letter: however
	// often a late ack brings a dead-lettered message back, failures less
	// dead letters are its retries, no more.
	testutil.Eventually(t, 10*time.Second, "the counters to settle", func() bool {
		v, err := c.Trigger(ctx, "jobs")
		return err == nil && v.Stats != nil && v.Stats.Failed == v.Stats.DeadLettered+5*uint64(maxRetries)
	})
	v, _ := c.Trigger(ctx, "jobs")
	if v.Stats.Failed-v.Stats.DeadLettered != 5*uint64(maxRetries) || v.Stats.DeadLettered < 5 || v.Stats.Succeeded < 15 {
		t.Fatalf("stats %+v: want %d failures more than dead letters (5 messages x %d retries), at least 5 dead letters and 15 successes",
			v.Stats, 5*maxRetries, maxRetries)
	}
}

func TestQueueMetadataAndNoErrorTopic(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "go", "goguest", nil)
	a := newApp(t, d.NATSURL())
	out := a.collect("meta.out")
	zero := 0
	// The messages are there before the trigger: NATS Streaming sends a
	// message published while a durable queue subscription starts twice
	// (its start redelivers what it has just delivered), which a loaded
	// machine made happen to all six.
	a.publish("meta", "meta:sequence", "meta:redelivered", "meta:topic", "meta:trigger", "error", "meta:redeliveries")
	// An AckWait longer than the test: no message comes again unless the
	// trigger retries it, so that what each call sees is a first delivery.
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "meta", Function: "go", Queue: &api.QueueRequest{
		Topic: "meta", RespTopic: "meta.out", MaxRetries: &zero, AckWait: "10m",
	}}); err != nil {
		t.Fatal(err)
	}
	// The results of a queue trigger are at least once: a message whose
	// ack reaches the server after AckWait (a loaded machine) comes again
	// and publishes another result, which sees itself redelivered. Wait
	// for each message's first result, not for a count of results.
	want := map[string]int{"1": 1, "false": 1, "meta": 2, "0": 1} // sequence, redelivered, topic and trigger, redeliveries
	firsts := func(seen map[string]int) bool {
		for v, n := range want {
			if seen[v] < n {
				return false
			}
		}
		return true
	}
	testutil.Eventually(t, 20*time.Second, "a result for each of the 5 messages that succeed", func() bool { return firsts(out.distinct()) })
	// the failing message, without an error topic and with no retries, was
	// logged and acked: nothing comes back
	time.Sleep(500 * time.Millisecond)
	got := out.all()
	v, err := c.Trigger(ctx, "meta")
	if err != nil || v.Stats == nil {
		t.Fatalf("trigger: %+v, %v", v, err)
	}
	// Neither the failing message (no retries: logged and acked) nor any
	// other came again within the AckWait: one result per message that
	// succeeded, each a first delivery's.
	if v.Stats.Redelivered != 0 || v.Stats.DeadLettered != 1 || len(got) != 5 {
		t.Fatalf("results %q, stats %+v: want the 5 results of first deliveries %v, 1 message dropped and no redelivery", got, v.Stats, want)
	}
}

func TestQueueTwoDaemonsShareTheWork(t *testing.T) {
	t.Parallel()
	a, ca := start(t, testOptions(t))
	ob := testOptions(t)
	ob.NATSURL = a.NATSURL()
	_, cb := start(t, ob)
	deploy(t, ca, "go", "goguest", nil)
	waitForFunction(t, cb, "go")
	if _, err := ca.CreateTrigger(ctx, api.TriggerRequest{Name: "work", Function: "go", Queue: &api.QueueRequest{Topic: "work", RespTopic: "work.out", MaxInflight: 4}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "both daemons to run the trigger", func() bool {
		va, ea := ca.Trigger(ctx, "work")
		vb, eb := cb.Trigger(ctx, "work")
		return ea == nil && eb == nil && va.Stats != nil && vb.Stats != nil
	})
	app := newApp(t, a.NATSURL())
	out := app.collect("work.out")
	const n = 400
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("echo:w%05d", i)
	}
	app.publish("work", msgs...)
	testutil.Eventually(t, 60*time.Second, "every message processed", func() bool { return len(out.distinct()) == n })
	va, _ := ca.Trigger(ctx, "work")
	vb, _ := cb.Trigger(ctx, "work")
	if va.Stats.Succeeded == 0 || vb.Stats.Succeeded == 0 || va.Stats.Succeeded+vb.Stats.Succeeded < n {
		t.Fatalf("work not shared: a %d, b %d of %d", va.Stats.Succeeded, vb.Stats.Succeeded, n)
	}
	t.Logf("a processed %d, b %d", va.Stats.Succeeded, vb.Stats.Succeeded)

	// deleting the trigger stops it on both daemons
	if err := cb.DeleteTrigger(ctx, "work"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the trigger to stop on both", func() bool {
		va, _ := ca.Trigger(ctx, "work")
		vb, _ := cb.Trigger(ctx, "work")
		return va.Stats == nil && vb.Stats == nil
	})
	app.publish("work", "echo:after-delete")
	time.Sleep(time.Second)
	if out.distinct()["after-delete"] != 0 {
		t.Fatal("a deleted trigger still processes messages")
	}
}

func TestQueueSurvivesBrokerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	natsURL, stop := startBroker(t, dir, "127.0.0.1:0")
	o := testOptions(t)
	o.NATSURL = natsURL
	_, c := start(t, o)
	deploy(t, c, "echo", "echo-wat", nil)
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "q", Function: "echo", Queue: &api.QueueRequest{Topic: "in", RespTopic: "out", AckWait: "2s"}}); err != nil {
		t.Fatal(err)
	}
	a := newApp(t, natsURL)
	a.publish("in", payloads("before", 100)...)
	out := a.collect("out")
	testutil.Eventually(t, 20*time.Second, "results before the cut", func() bool { return len(out.distinct()) == 100 })
	a.close()

	// the connection is cut: the broker goes away and comes back
	stop()
	time.Sleep(500 * time.Millisecond)
	startBroker(t, dir, strings.TrimPrefix(natsURL, "nats://"))
	b := newApp(t, natsURL)
	b.publish("in", payloads("after", 100)...)
	out2 := b.collect("out")
	testutil.Eventually(t, 60*time.Second, "processing to resume", func() bool {
		seen := out2.distinct()
		for _, p := range payloads("after", 100) {
			if seen[p] == 0 {
				return false
			}
		}
		return true
	})
}

func TestQueueGracefulShutdownAcksWhatCompleted(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	d, c := start(t, o)
	deploy(t, c, "go", "goguest", nil)
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "slow", Function: "go", Queue: &api.QueueRequest{Topic: "slow", RespTopic: "slow.out", MaxInflight: 4, AckWait: "2s"}}); err != nil {
		t.Fatal(err)
	}
	a := newApp(t, d.NATSURL())
	a.publish("slow", "nap:800", "nap:800", "nap:800", "nap:800")
	testutil.Eventually(t, 10*time.Second, "4 calls in flight", func() bool {
		v, err := c.Trigger(ctx, "slow")
		return err == nil && v.Stats != nil && v.Stats.InFlight == 4
	})
	a.close()
	natsListen := d.NATSAddr()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// restart: had the 4 messages not been acked, they would come back
	o.NATSListen = natsListen
	d2, _ := start(t, o)
	b := newApp(t, d2.NATSURL())
	out := b.collect("slow.out")
	testutil.Eventually(t, 10*time.Second, "the 4 results", func() bool { return len(out.all()) >= 4 })
	time.Sleep(3 * time.Second) // past AckWait: a redelivery would show
	if got := out.all(); len(got) != 4 {
		t.Fatalf("%d results, want exactly 4 (no redelivery after a graceful shutdown): %q", len(got), got)
	}
}

func TestTimerFiresOnceAcrossDaemons(t *testing.T) {
	t.Parallel()
	a, ca := start(t, testOptions(t))
	ob := testOptions(t)
	ob.NATSURL = a.NATSURL()
	_, cb := start(t, ob)
	deploy(t, ca, "echo", "echo-wat", nil)
	waitForFunction(t, cb, "echo")
	app := newApp(t, a.NATSURL())
	out := app.collect("ticks")
	if _, err := ca.CreateTrigger(ctx, api.TriggerRequest{Name: "tick", Function: "echo", Cron: &catalog.CronSpec{Schedule: "@every 1s", RespTopic: "ticks"}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "6 ticks", func() bool { return len(out.all()) >= 6 })
	time.Sleep(500 * time.Millisecond)
	var ticks []time.Time
	seen := map[string]int{}
	for _, raw := range out.all() {
		var in triggers.TickInput
		if err := json.Unmarshal([]byte(raw), &in); err != nil || in.Trigger != "tick" {
			t.Fatalf("tick input %q: %v", raw, err)
		}
		seen[in.Time]++
		tt, err := time.Parse(time.RFC3339, in.Time)
		if err != nil {
			t.Fatal(err)
		}
		ticks = append(ticks, tt)
	}
	for tick, n := range seen {
		if n != 1 {
			t.Fatalf("tick %s fired %d times across two daemons", tick, n)
		}
	}
	sort.Slice(ticks, func(i, j int) bool { return ticks[i].Before(ticks[j]) })
	for i := 1; i < len(ticks); i++ {
		if d := ticks[i].Sub(ticks[i-1]); d != time.Second {
			t.Fatalf("ticks %s and %s are %s apart, want 1s (a tick missed?)", ticks[i-1], ticks[i], d)
		}
	}
	if err := ca.DeleteTrigger(ctx, "tick"); err != nil {
		t.Fatal(err)
	}
	n := len(out.all())
	time.Sleep(2500 * time.Millisecond)
	if m := len(out.all()); m > n+1 {
		t.Fatalf("a deleted timer still fires: %d ticks after %d", m, n)
	}
}

// TestQueueTriggerRunsWorkflow: a queue trigger whose target is a
// workflow runs one invocation per message, named after the trigger and
// the message, publishes each output, and dead-letters what fails.
func TestQueueTriggerRunsWorkflow(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "work", "wfguest", nil)
	if _, _, err := c.CreateWorkflow(ctx, "twice", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: twice
output: ${ tasks.b.output.n }
tasks:
  a: { run: work, inputs: { op: double, n: "${ input.n }" } }
  b: { run: work, requires: [a], inputs: { op: double, n: "${ tasks.a.output.n }" } }
`)); err != nil {
		t.Fatal(err)
	}
	a := newApp(t, d.NATSURL())
	results, dead := a.collect("wf.out"), a.collect("wf.dead")
	maxRetries := 0
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "wfq", Workflow: "twice", Queue: &api.QueueRequest{
		Topic: "wf.in", RespTopic: "wf.out", ErrorTopic: "wf.dead", MaxRetries: &maxRetries,
	}}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var in []string
	for i := 0; i < n; i++ {
		in = append(in, fmt.Sprintf(`{"n": %d}`, i))
	}
	in = append(in, `not json`) // input.n of a string: task a fails
	a.publish("wf.in", in...)
	testutil.Eventually(t, 60*time.Second, "an output per message and one dead letter", func() bool {
		return len(results.distinct()) == n && len(dead.deadLetters(t)) == 1
	})
	for i := 0; i < n; i++ { // at least once: a redelivered message publishes its output again
		if results.distinct()[fmt.Sprint(4*i)] == 0 {
			t.Fatalf("no output %d: %v", 4*i, results.distinct())
		}
	}
	for _, dls := range dead.deadLetters(t) { // at least once too
		for _, dl := range dls {
			if string(dl.Payload) != "not json" || !strings.Contains(dl.Error, "task a") {
				t.Fatalf("dead letter %+v", dl)
			}
		}
	}
	// One invocation per message, named after the trigger's group and the
	// message's sequence: a redelivery finds the invocation it started.
	invs, err := c.Invocations(ctx, "twice")
	if err != nil {
		t.Fatal(err)
	}
	if len(invs) != n+1 {
		t.Fatalf("%d invocations for %d messages", len(invs), n+1)
	}
	for _, inv := range invs {
		if !strings.HasPrefix(inv.ID, "sluice-wfq-") {
			t.Fatalf("invocation id %q", inv.ID)
		}
	}
}
