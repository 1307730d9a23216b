package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// Where the log has families and Delete, each invocation's events are in
// a stream of its own: these tests run on memlog and on a real embedded
// JetStream server.

// counting is a log that counts, by subscribed stream, the messages its
// subscriptions deliver.
type counting struct {
	eventlog.Log
	mu        sync.Mutex
	delivered map[string]int
}

func (c *counting) Subscribe(stream string, o eventlog.SubOptions, h func(*eventlog.Msg)) (eventlog.Subscription, error) {
	key := stream
	if o.Family {
		key += ".>"
	}
	return c.Log.Subscribe(stream, o, func(m *eventlog.Msg) {
		c.mu.Lock()
		c.delivered[key]++
		c.mu.Unlock()
		h(m)
	})
}

// take returns the counts since the last call.
func (c *counting) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.delivered
	c.delivered = map[string]int{}
	return d
}

const parentChild = `
apiVersion: sluice/v1
kind: Workflow
name: parent
output: ${ tasks.sub.output }
tasks:
  first: { run: wfguest, inputs: { op: double, n: "${ input }" } }
  sub: { run: workflow, requires: [first], inputs: { workflow: child, input: "${ tasks.first.output.n }" } }
`

const child = `
apiVersion: sluice/v1
kind: Workflow
name: child
output: ${ tasks.add.output.n }
tasks:
  add: { run: wfguest, inputs: { op: double, n: "${ input }" } }
`

const quick = "apiVersion: sluice/v1\nkind: Workflow\nname: quick\ntasks:\n  a: { run: noop, inputs: \"${ input }\" }\n"

const sleeper = "apiVersion: sluice/v1\nkind: Workflow\nname: sleeper\ntasks:\n  nap: { run: sleep, inputs: 1h }\n"

func last(t *testing.T, l eventlog.Log, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := l.Last(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// invokeMany runs n invocations of workflow, a few at a time, and waits
// for them all.
func invokeMany(t *testing.T, e *Engine, workflow string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				inv, err := e.Invoke(ctx, workflow, fmt.Appendf(nil, "%d", i), InvokeOptions{})
				if err == nil {
					// one that finished and was already forgotten is done too
					if _, err = e.Wait(ctx, inv.ID); errors.Is(err, ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err := <-errs:
			close(next)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestEventsPerInvocation: an invocation's events, its child's, and a
// cancel asked by another node are in the invocation's own streams;
// nothing is in the shared channel; wf events reads them back.
func TestEventsPerInvocation(t *testing.T) {
	for _, b := range familyLogs {
		t.Run(b, func(t *testing.T) {
			r := newRigOn(t, b, false)
			r.defs.put(t, parentChild)
			r.defs.put(t, child)
			inv := r.run("parent", "5")
			wantStatus(t, inv, StatusSucceeded)
			wantJSON(t, inv.Output, "20")
			f := r.conn.Features()
			own := EventStream(f, inv.ID)
			if own != InvocationStreams+"."+inv.ID {
				t.Fatalf("EventStream = %q", own)
			}
			kid := childID(inv.ID, "sub", 1)
			if last(t, r.conn, own) == 0 || last(t, r.conn, EventStream(f, kid)) == 0 {
				t.Fatalf("the parent's stream (last %d) or the child's %s (last %d) is empty",
					last(t, r.conn, own), kid, last(t, r.conn, EventStream(f, kid)))
			}
			if n := last(t, r.conn, EventsChannel); n != 0 {
				t.Fatalf("%s holds events (last %d): they belong to the invocations' streams", EventsChannel, n)
			}
			evs := r.events(inv.ID)
			for _, ev := range evs {
				if ev.Invocation != inv.ID {
					t.Fatalf("wf events of %s returned an event of %s", inv.ID, ev.Invocation)
				}
			}
			if got := types(evs); got[0] != EventInvocationCreated || got[len(got)-1] != EventInvocationSucceeded {
				t.Fatalf("events %v", got)
			}
			// another node cancels: its request goes to the invocation's stream
			r.defs.put(t, sleeper)
			ctx := context.Background()
			s, err := r.e.Invoke(ctx, "sleeper", nil, InvokeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			other, err := Open(ctx, Options{Log: r.connect(), Functions: r.fns, Definitions: r.defs, Node: "node-b"})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close(ctx)
			got, err := other.Cancel(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, got, StatusCanceled)
			if n := last(t, r.conn, EventsChannel); n != 0 {
				t.Fatalf("a cancel went to %s", EventsChannel)
			}
		})
	}
}

// TestForgottenInvocationIsDeleted: once a finished invocation leaves
// retention its stream is deleted (the disk reclaimed); the kept ones
// stay; invoking again with a forgotten id makes a new invocation whose
// events stay.
func TestForgottenInvocationIsDeleted(t *testing.T) {
	for _, b := range familyLogs {
		t.Run(b, func(t *testing.T) {
			r := newRigOn(t, b, false)
			r.retain = 3
			r.restart()
			r.defs.put(t, parentChild)
			r.defs.put(t, child)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var ids []string
			for i := 0; i < 6; i++ {
				inv, err := r.e.Invoke(ctx, "parent", []byte("1"), InvokeOptions{ID: fmt.Sprintf("order-%d", i)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.e.Wait(ctx, inv.ID); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, inv.ID)
			}
			waitDeleted(t, r.e)
			f := r.conn.Features()
			// 6 parents and 6 children finished; the newest 3 are kept
			forgotten := 0
			for _, parent := range ids {
				for _, id := range []string{parent, childID(parent, "sub", 1)} {
					_, err := r.e.Get(id)
					gone := err != nil
					n := last(t, r.conn, EventStream(f, id))
					switch {
					case gone && n != 0:
						t.Errorf("%s: forgotten, its stream still holds events (last %d)", id, n)
					case !gone && n == 0:
						t.Errorf("%s: kept, its stream is empty", id)
					}
					if gone {
						forgotten++
					}
				}
			}
			if forgotten != 9 {
				t.Fatalf("%d invocations forgotten, want 9 of 12", forgotten)
			}
			if _, err := r.e.Get(ids[0]); err == nil {
				t.Fatalf("%s is still known", ids[0])
			}
			// the same id again: a new invocation, whose events stay
			inv, err := r.e.Invoke(ctx, "parent", []byte("2"), InvokeOptions{ID: ids[0]})
			if err != nil {
				t.Fatal(err)
			}
			done, err := r.e.Wait(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantJSON(t, done.Output, "8")
			waitDeleted(t, r.e)
			if evs := r.events(ids[0]); len(evs) == 0 || evs[0].Type != EventInvocationCreated {
				t.Fatalf("the new %s: events %v", ids[0], types(evs))
			}
		})
	}
}

// TestReplayOnlyKept: a start replays only the running and retained
// invocations, even with a sleeper that started 10,000 events ago (on
// one shared stream it pins the checkpoint and every start replays them
// all), and the sleeper goes on.
func TestReplayOnlyKept(t *testing.T) {
	t.Parallel()
	for _, b := range familyLogs {
		t.Run(b, func(t *testing.T) {
			r := newRigOn(t, b, false)
			r.retain = 10
			r.restart()
			r.defs.put(t, sleeper)
			r.defs.put(t, quick)
			ctx := context.Background()
			s, err := r.e.Invoke(ctx, "sleeper", nil, InvokeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			const runs = 2000 // 5 events each: 10,000 events after the sleeper's first
			invokeMany(t, r.e, "quick", runs)
			waitDeleted(t, r.e)
			r.crash()
			r.open()
			replayed := r.e.ReplayedEvents()
			// the sleeper's few events and the 10 kept invocations' 5 each
			if replayed == 0 || replayed > 100 {
				t.Fatalf("a start replayed %d events; %d invocations ran, 11 are kept", replayed, runs+1)
			}
			got, err := r.e.Get(s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != StatusRunning || got.Tasks["nap"].Status != TaskRunning {
				t.Fatalf("the sleeper after a start: %s, nap %s", got.Status, got.Tasks["nap"].Status)
			}
			if n := len(r.e.List("quick")); n != 10 {
				t.Fatalf("%d quick invocations kept after a start, want 10", n)
			}
		})
	}
}

// TestEventsReadsOnlyItsStream: wf events of an old invocation reads its
// own events, not everything written since it began.
func TestEventsReadsOnlyItsStream(t *testing.T) {
	t.Parallel()
	for _, b := range familyLogs {
		t.Run(b, func(t *testing.T) {
			r := newRigOn(t, b, false)
			c := &counting{Log: r.conn, delivered: map[string]int{}}
			r.e.Close(context.Background())
			r.conn = c
			r.open()
			r.defs.put(t, quick)
			old := r.run("quick", "1")
			invokeMany(t, r.e, "quick", 200)
			c.take()
			evs := r.events(old.ID)
			read := c.take()
			if len(evs) != 5 || evs[len(evs)-1].Type != EventInvocationSucceeded {
				t.Fatalf("events of %s: %v", old.ID, types(evs))
			}
			// Besides the engine's own subscriptions (the family, the
			// heartbeats), which may deliver stragglers meanwhile, the read
			// subscribed to the invocation's stream and read its events.
			own := EventStream(r.conn.Features(), old.ID)
			for stream, n := range read {
				switch stream {
				case own:
					if n != len(evs) {
						t.Errorf("reading the %d events of an old invocation delivered %d messages of its stream", len(evs), n)
					}
				case InvocationStreams + ".>", NodesChannel:
				default:
					t.Errorf("reading the events of an old invocation read %s (%d messages)", stream, n)
				}
			}
			if read[own] == 0 {
				t.Errorf("reading the events of an old invocation did not read its stream: %v", read)
			}
		})
	}
}

// TestCrashResumesOnFamilies: after a crash (no goodbye, connection
// dropped) a start resumes the running invocation: a task whose success is
// recorded is not run again, the running one is, a sleep keeps its wake
// time.
func TestCrashResumesOnFamilies(t *testing.T) {
	t.Parallel()
	for _, b := range familyLogs {
		t.Run(b, func(t *testing.T) {
			r := newRigOn(t, b, false)
			done, starts, wakes := resumeAcross(t, r, 2000, func() { r.crash(); r.open() })
			wantStatus(t, done, StatusSucceeded)
			wantJSON(t, done.Output, `[42, 2000, "succeeded"]`)
			if starts["first"] != 1 || starts["slow"] != 2 || starts["nap"] != 1 || len(wakes) != 1 {
				t.Fatalf("TaskStarted per task: %v, nap wakes %v", starts, wakes)
			}
		})
	}
}

// TestEventInAnotherStream: an event about one invocation stored in
// another's stream (forged, or written by a bug) changes nothing: replay
// and deletion go by stream.
func TestEventInAnotherStream(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, sleeper)
	ctx := context.Background()
	a, err := r.e.Invoke(ctx, "sleeper", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.e.Invoke(ctx, "sleeper", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(&Event{Type: eventCancelRequested, Invocation: a.ID, Node: "node-x", Error: "forged"})
	f := r.conn.Features()
	if _, err := r.conn.Publish(ctx, EventStream(f, b.ID), eventlog.Message{Data: forged}); err != nil {
		t.Fatal(err)
	}
	// a cancel in the right stream, after it, is applied: the forged one
	// was read (and skipped) before it
	real, _ := json.Marshal(&Event{Type: eventCancelRequested, Invocation: b.ID, Node: "node-x", Error: "asked"})
	if _, err := r.conn.Publish(ctx, EventStream(f, b.ID), eventlog.Message{Data: real}); err != nil {
		t.Fatal(err)
	}
	done, err := r.e.Wait(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusCanceled)
	if got, _ := r.e.Get(a.ID); got.Status != StatusRunning {
		t.Fatalf("%s was canceled by an event in %s's stream: %s", a.ID, b.ID, got.Status)
	}
	r.restart()
	if got, _ := r.e.Get(a.ID); got.Status != StatusRunning {
		t.Fatalf("after a restart, %s was canceled by an event in %s's stream: %s", a.ID, b.ID, got.Status)
	}
}

// TestOutageOnFamilies: the connection is lost while an invocation with a
// child workflow sleeps; the events that end the sleeps cannot be stored,
// the invocation goes stale, and once the connection is back it is
// rebuilt from its family of streams (it and its child) and finishes.
func TestOutageOnFamilies(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: napper\ntasks:\n  z: { run: sleep, inputs: 300ms }\n  y: { run: noop, requires: [z], inputs: \"${ input }\" }\n")
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: outage
output: ${ [tasks.after.output.n, tasks.sub.output] }
tasks:
  nap: { run: sleep, inputs: 300ms }
  sub: { run: workflow, inputs: { workflow: napper, input: 7 } }
  after: { run: wfguest, requires: [nap, sub], inputs: { op: add, n: 41 } }
`)
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "outage", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.mem.Cut(r.conn, 2*time.Second)
	testutil.Eventually(t, 10*time.Second, "the invocation to go stale", func() bool { return r.e.isStale(inv.ID) })
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	done, err := r.e.Wait(wctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `[42, 7]`)
	for _, task := range []string{"nap", "sub", "after"} {
		if a := done.Tasks[task].Attempts; a != 1 {
			t.Errorf("task %s: %d attempts, want 1", task, a)
		}
	}
}

// slowStore is a log that holds the events written to invocations'
// streams while held is set, but for their InvocationCreated (Invoke
// waits for it), and stores them, in order, when the test lets them go:
// the acknowledgements of a loaded JetStream server that come a while
// after the engine has applied the events.
type slowStore struct {
	eventlog.Log
	mu   sync.Mutex
	held bool
	q    []func()
}

func (l *slowStore) PublishAsync(stream string, m eventlog.Message, done func(uint64, error)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held || stream == NodesChannel || bytes.Contains(m.Data, []byte(`"InvocationCreated"`)) {
		return l.Log.PublishAsync(stream, m, done)
	}
	l.q = append(l.q, func() {
		if err := l.Log.PublishAsync(stream, m, done); err != nil {
			done(0, err)
		}
	})
	return nil
}

func (l *slowStore) hold() {
	l.mu.Lock()
	l.held = true
	l.mu.Unlock()
}

// release stores what was held, in order, and stops holding.
func (l *slowStore) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.q {
		f()
	}
	l.q, l.held = nil, false
}

// TestEventsAfterStatus: wf events, asked as soon as wf status shows an
// invocation succeeded, lists every event up to its end, though the
// server had not yet stored them when it was asked (the last events of a
// workflow run through a kill -9 went missing so, on a loaded JetStream
// server).
func TestEventsAfterStatus(t *testing.T) {
	t.Parallel()
	for _, b := range []string{natsStreaming, memory, jetStream} {
		t.Run(b, func(t *testing.T) {
			r := newRigOn(t, b, false)
			r.e.Close(context.Background())
			l := &slowStore{Log: r.connect()}
			e := r.engineOn("node-s", DefaultNodeTimeout, l)
			r.e = e
			r.defs.put(t, quick)
			l.hold()
			id := invokeOn(t, e, "quick", "1")
			testutil.Eventually(t, 20*time.Second, "the invocation to succeed", func() bool {
				inv, err := e.Get(id)
				return err == nil && inv.Status == StatusSucceeded
			})
			stored := time.AfterFunc(300*time.Millisecond, l.release)
			defer stored.Stop()
			evs, err := e.Events(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got := types(evs); len(got) != 5 || got[0] != EventInvocationCreated || got[len(got)-1] != EventInvocationSucceeded {
				t.Fatalf("events of a succeeded invocation: %v", got)
			}
		})
	}
}
