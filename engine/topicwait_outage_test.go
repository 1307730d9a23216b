package engine

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
)

// The waits on topics across a broker's outage and a takeover, on both
// brokers.

// callbackWorkflow waits for the message of one payment on a topic.
const callbackWorkflow = `
apiVersion: sluice/v1
kind: Workflow
name: callback
output: ${ tasks.done.output }
tasks:
  done: { run: wait, inputs: { topic: payments.done, match: "${ message.payment == input }" } }
`

// stopBroker stops the rig's broker (NATS Streaming or JetStream) as an
// outage; restart brings it back on the same store at the same address,
// where the connections find it again.
func (r *rig) stopBroker() (restart func()) {
	r.t.Helper()
	if r.backend == natsStreaming {
		return r.stopServer()
	}
	addr := r.js.Addr()
	r.js.Shutdown()
	return func() {
		r.t.Helper()
		js, err := jslog.StartEmbedded(jslog.EmbeddedOptions{Dir: r.dir, Listen: addr})
		if err != nil {
			r.t.Fatal(err)
		}
		r.js = js
	}
}

// connectThrough connects to the rig's broker through a proxy that can
// cut the link.
func (r *rig) connectThrough(p *testutil.Proxy, name string) eventlog.Log {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var l eventlog.Log
	var err error
	if r.backend == jetStream {
		l, err = jslog.Connect(ctx, jslog.Options{URL: p.URL(r.js.URL()), Name: name})
	} else {
		l, err = natslog.Connect(ctx, broker.Options{URL: p.URL(r.srv.URL()), ClusterID: "test", Name: name, ConnectWait: time.Second})
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return l
}

// brokerAddr is the host:port of the rig's broker.
func (r *rig) brokerAddr() string {
	if r.backend == jetStream {
		return r.js.Addr()
	}
	return strings.TrimPrefix(r.srv.URL(), "nats://")
}

// wantTaken checks that a wait took the message at seq, in the one
// attempt it started: it resumed, rather than starting again after the
// messages it was to examine.
func wantTaken(t *testing.T, e *Engine, id, task string, seq uint64) {
	t.Helper()
	evs, err := e.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c := eventOf(t, evs, EventTaskSucceeded, task).Consumed; c != seq {
		t.Fatalf("task %s took message %d, want %d", task, c, seq)
	}
	started := 0
	for _, ev := range evs {
		if ev.Type == EventTaskStarted && ev.Task == task {
			started++
		}
	}
	if started != 1 {
		t.Fatalf("task %s started %d attempts, want 1 (the wait resumes its attempt): %v", task, started, types(evs))
	}
}

// TestTopicWaitAcrossBrokerRestart: the broker stops while a wait
// watches its topic and comes back on its store; the wait, subscribed
// before the outage, takes the matching message published once the
// broker is back (the one before the outage did not match).
func TestTopicWaitAcrossBrokerRestart(t *testing.T) {
	for _, backend := range []string{natsStreaming, jetStream} {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, true)
			r.defs.put(t, callbackWorkflow)
			id := invokeOn(t, r.e, "callback", `"p-1"`)
			watching(t, r.e, id, "done", "payments.done")
			r.publish("payments.done", `{"payment": "p-0"}`)
			restart := r.stopBroker()
			testutil.Eventually(t, 20*time.Second, "the connection to notice", func() bool { return !r.conn.Connected() })
			restart()
			testutil.Eventually(t, 30*time.Second, "the connection to come back", func() bool { return r.conn.Connected() })
			r.publish("payments.done", `{"payment": "p-2"}`)
			match := r.publish("payments.done", `{"payment": "p-1", "amount": 12}`)
			done := waitDone(t, r.e, id)
			wantStatus(t, done, StatusSucceeded)
			wantJSON(t, done.Output, `{"payment": "p-1", "amount": 12}`)
			wantTaken(t, r.e, id, "done", match)
		})
	}
}

// TestTopicWaitAcrossLinkOutage: the daemon loses its link to the broker
// while a wait watches its topic; the broker stays up and stores the
// matching message, published meanwhile by another client. Once the link
// is back the wait takes that message, not those after it, even one
// published once the link is back that the broker delivers first (on NATS
// Streaming the messages sent while the link was down come again after
// AckWait): a message published during the outage is not lost.
func TestTopicWaitAcrossLinkOutage(t *testing.T) {
	for _, backend := range []string{natsStreaming, jetStream} {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, true)
			r.e.Close(context.Background()) // the daemon behind the proxy is the only one
			r.e = nil
			p := testutil.NewProxy(t, r.brokerAddr(), "", false)
			e := r.engineOn("node-p", DefaultNodeTimeout, r.connectThrough(p, "node-p"))
			r.defs.put(t, callbackWorkflow)
			id := invokeOn(t, e, "callback", `"p-1"`)
			watching(t, e, id, "done", "payments.done")
			p.Hold()
			testutil.Eventually(t, 20*time.Second, "the daemon to lose its link", func() bool { return !e.o.Log.Connected() })
			r.publish("payments.done", `{"payment": "p-0"}`)
			during := r.publish("payments.done", `{"payment": "p-1", "amount": 12}`)
			r.publish("payments.done", `{"payment": "p-1", "amount": 13}`)
			p.Release()
			testutil.Eventually(t, 30*time.Second, "the daemon's link to come back", e.o.Log.Connected)
			r.publish("payments.done", `{"payment": "p-1", "amount": 14}`)
			done := waitDone(t, e, id)
			wantStatus(t, done, StatusSucceeded)
			wantJSON(t, done.Output, `{"payment": "p-1", "amount": 12}`)
			wantTaken(t, e, id, "done", during)
		})
	}
}

// lossyStart is a log whose link is cut as the first TaskStarted is
// written to it: that event is lost, and so is every event written after
// it, until the test brings the link back (up); the loss of the
// TaskStarted is reported then, as a publish acknowledgement that never
// came.
type lossyStart struct {
	eventlog.Log
	mu   sync.Mutex
	cut  bool
	back chan struct{} // closed by up
	held chan func(uint64, error)
}

var errLinkCut = fmt.Errorf("%w: nats: server is disconnected", eventlog.ErrNotConnected)

func (l *lossyStart) PublishAsync(stream string, m eventlog.Message, done func(uint64, error)) error {
	l.mu.Lock()
	first := !l.cut && bytes.Contains(m.Data, []byte(`"TaskStarted"`))
	l.cut = l.cut || first
	down := l.down()
	l.mu.Unlock()
	switch {
	case first:
		l.held <- done
		return nil
	case down:
		return errLinkCut
	}
	return l.Log.PublishAsync(stream, m, done)
}

// down tells whether the link is cut (under mu).
func (l *lossyStart) down() bool {
	if !l.cut {
		return false
	}
	select {
	case <-l.back:
		return false
	default:
		return true
	}
}

func (l *lossyStart) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.down() && l.Log.Connected()
}

func (l *lossyStart) WaitUp(ctx context.Context) error {
	l.mu.Lock()
	down := l.down()
	l.mu.Unlock()
	if down {
		select {
		case <-l.back:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", eventlog.ErrNotConnected, ctx.Err())
		}
	}
	return l.Log.WaitUp(ctx)
}

// up brings the link back and reports the lost TaskStarted.
func (l *lossyStart) up(t *testing.T) {
	t.Helper()
	select {
	case done := <-l.held:
		close(l.back)
		done(0, errLinkCut)
	case <-time.After(20 * time.Second):
		t.Fatal("no TaskStarted was written")
	}
}

// TestTopicWaitStartNotStored: the TaskStarted of a wait's attempt is
// lost (the link cut as it was written) while the wait already watches
// its topic, and the matching message is stored before the daemon learns
// of the loss; the invocation is rebuilt from the log, without that
// TaskStarted, and the attempt starts again from the position read the
// first time, so the wait takes that message, not a later one.
func TestTopicWaitStartNotStored(t *testing.T) {
	t.Parallel()
	r := newRigOn(t, memory, false)
	r.e.Close(context.Background()) // the lossy daemon is the only one
	r.e = nil
	l := &lossyStart{Log: r.connect(), back: make(chan struct{}), held: make(chan func(uint64, error), 1)}
	e := r.engineOn("node-l", DefaultNodeTimeout, l)
	r.defs.put(t, callbackWorkflow)
	id := invokeOn(t, e, "callback", `"p-1"`)
	watching(t, e, id, "done", "payments.done")
	r.publish("payments.done", `{"payment": "p-0"}`)
	during := r.publish("payments.done", `{"payment": "p-1", "amount": 12}`)
	r.publish("payments.done", `{"payment": "p-1", "amount": 13}`)
	l.up(t)
	testutil.Eventually(t, 20*time.Second, "the invocation to be rebuilt from the log", func() bool { return !e.isStale(id) })
	r.publish("payments.done", `{"payment": "p-1", "amount": 14}`)
	done := waitDone(t, e, id)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `{"payment": "p-1", "amount": 12}`)
	wantTaken(t, e, id, "done", during)
}

// TestTopicWaitTakenOver: node-1 owns an invocation whose two waits
// watch a topic, and dies. A message is published while nobody watches
// (before node-2 even starts), another once node-2 has taken the
// invocation over: node-2 resumes both waits from where node-1 started
// them (TaskStarted's after), so the first takes the message of the gap
// and the second the later one; a matching message published before the
// waits started counts for neither.
func TestTopicWaitTakenOver(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{natsStreaming, jetStream} {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, true)
			r.e.Close(context.Background()) // node-2 alone takes over
			r.e = nil
			r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: shipping
output: ${ [tasks.packed.output.box, tasks.shipped.output.box] }
tasks:
  packed:  { run: wait, inputs: { topic: boxes, match: "${ message.order == input && message.step == 'packed' }" } }
  shipped: { run: wait, inputs: { topic: boxes, match: "${ message.order == input && message.step == 'shipped' }" } }
`)
			r.publish("boxes", `{"order": 9, "step": "packed", "box": "before"}`)
			r.publish("boxes", `{"order": 9, "step": "shipped", "box": "before"}`)
			a := r.engine("node-1")
			id := invokeOn(t, a, "shipping", `9`)
			watching(t, a, id, "packed", "boxes")
			watching(t, a, id, "shipped", "boxes")
			a.crash()
			r.publish("boxes", `{"order": 8, "step": "packed", "box": "other order"}`)
			gap := r.publish("boxes", `{"order": 9, "step": "packed", "box": "gap"}`)
			b := r.engine("node-2")
			testutil.Eventually(t, 30*time.Second, "node-2 to take the invocation over", func() bool {
				inv, err := b.Get(id)
				return err == nil && inv.Owner == "node-2"
			})
			watching(t, b, id, "shipped", "boxes")
			later := r.publish("boxes", `{"order": 9, "step": "shipped", "box": "later"}`)
			done := waitDone(t, b, id)
			wantStatus(t, done, StatusSucceeded)
			wantJSON(t, done.Output, `["gap", "later"]`)
			wantTaken(t, b, id, "packed", gap)
			wantTaken(t, b, id, "shipped", later)
		})
	}
}
