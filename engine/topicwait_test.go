package engine

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// publish stores a message on a topic and returns its sequence.
func (r *rig) publish(topic, data string) uint64 {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.conn.Publish(ctx, topic, eventlog.Message{Data: []byte(data)}); err != nil {
		r.t.Fatalf("publish to %s: %v", topic, err)
	}
	seq, err := r.conn.Last(ctx, topic)
	if err != nil {
		r.t.Fatal(err)
	}
	return seq
}

// watching waits until an invocation's task watches a topic.
func watching(t *testing.T, e *Engine, id, task, topic string) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, "task "+task+" to watch topic "+topic, func() bool {
		inv, err := e.Get(id)
		return err == nil && inv.Tasks[task] != nil && inv.Tasks[task].WaitingTopic == topic
	})
}

// heldTopicWaits is how many waits on topics an engine holds.
func heldTopicWaits(e *Engine) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.topics.n
}

// eventOf returns the first event of a type for a task.
func eventOf(t *testing.T, evs []*Event, typ, task string) *Event {
	t.Helper()
	for _, ev := range evs {
		if ev.Type == typ && ev.Task == task {
			return ev
		}
	}
	t.Fatalf("no %s of task %s in %v", typ, task, types(evs))
	return nil
}

// TestWaitOnTopic: a wait on a topic ends on the first message stored
// after its attempt started for which match is true (one published
// before it started is not taken, those that do not match are skipped);
// its output is the message's bytes, exactly. Several waits on one topic
// each see every message. TaskStarted records where the wait started in
// the topic, TaskSucceeded the message it took.
func TestWaitOnTopic(t *testing.T) {
	for _, backend := range []string{natsStreaming, jetStream} {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, false)
			r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: order
output: ${ [tasks.got.output.n, tasks.first.output, tasks.named.output.n, tasks.after.output.n] }
tasks:
  got: { run: wait, inputs: { topic: orders, match: "${ message?.order == input.order }" } }
  first: { run: wait, inputs: { topic: orders } }
  named:
    run: wait
    inputs: { topic: "${ 'ord' + 'ers' }", match: "${ message?.order == input.order && message.n > 1 }" }
  after: { run: wfguest, requires: [got], inputs: { op: add, n: "${ tasks.got.output.n }" } }
`)
			before := r.publish("orders", `{"order": 7, "n": 100}`)
			id := invokeOn(t, r.e, "order", `{"order": 7}`)
			for _, task := range []string{"got", "first", "named"} {
				watching(t, r.e, id, task, "orders")
			}
			r.publish("orders", `{"order": 1, "n": 5}`)
			match := r.publish("orders", ` {"order": 7,  "n": 1} `)
			second := r.publish("orders", `{"order": 7, "n": 2}`)
			done := waitDone(t, r.e, id)
			wantStatus(t, done, StatusSucceeded)
			wantJSON(t, done.Output, `[1, {"order": 1, "n": 5}, 2, 2]`)
			if got := string(done.Tasks["got"].Output); got != `{"order": 7,  "n": 1}` && got != ` {"order": 7,  "n": 1} ` {
				t.Fatalf("the wait's output is %q, not the message's bytes", got)
			}
			evs := r.events(id)
			for _, task := range []string{"got", "first", "named"} {
				st := eventOf(t, evs, EventTaskStarted, task)
				if st.After == nil || *st.After != before {
					t.Fatalf("task %s started after %v, want %d (the topic's last message then)", task, st.After, before)
				}
			}
			if c := eventOf(t, evs, EventTaskSucceeded, "got").Consumed; c != match {
				t.Fatalf("got took message %d, want %d", c, match)
			}
			if c := eventOf(t, evs, EventTaskSucceeded, "named").Consumed; c != second {
				t.Fatalf("named took message %d, want %d", c, second)
			}
			testutil.Eventually(t, 10*time.Second, "the waits' subscriptions to end", func() bool { return heldTopicWaits(r.e) == 0 })
		})
	}
}

// TestTopicWaitSurvivesCrash: the daemon dies while a wait watches its
// topic, and the matching message is published while it is down; reopened,
// the owner reads the topic again from where the wait started and the
// invocation ends with that message. A replay agrees.
func TestTopicWaitSurvivesCrash(t *testing.T) {
	t.Parallel()
	r := newRig(t, true)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: callback
tasks:
  done: { run: wait, inputs: { topic: payments.done, match: "${ message.payment == input }" } }
`)
	id := invokeOn(t, r.e, "callback", `"p-1"`)
	watching(t, r.e, id, "done", "payments.done")
	r.publish("payments.done", `{"payment": "p-0"}`)
	r.crash()
	r.publish("payments.done", `{"payment": "p-2"}`)
	match := r.publish("payments.done", `{"payment": "p-1", "amount": 12}`)
	r.publish("payments.done", `{"payment": "p-1", "amount": 13}`)
	r.open()
	done := waitDone(t, r.e, id)
	wantStatus(t, done, StatusSucceeded)
	wantJSON(t, done.Output, `{"payment": "p-1", "amount": 12}`)
	evs := r.events(id)
	if c := eventOf(t, evs, EventTaskSucceeded, "done").Consumed; c != match {
		t.Fatalf("took message %d, want %d", c, match)
	}
	started := 0
	for _, ev := range evs {
		if ev.Type == EventTaskStarted {
			started++
		}
	}
	if started != 1 {
		t.Fatalf("%d attempts started, want 1 (the wait resumes its attempt): %v", started, types(evs))
	}
}

// TestTopicWaitMatchFails: a match that errors on a message, goes over
// the expression budget or is not true or false fails its task (code
// task_error), naming the topic, the message and the expression.
func TestTopicWaitMatchFails(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: picky
tasks:
  field: { run: wait, inputs: { topic: picky, match: "${ message.count > 3 }" } }
`)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: greedy
tasks:
  big: { run: wait, inputs: { topic: greedy, match: "${ len(repeat(string(message), 100000000)) > 0 }" } }
`)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: vague
tasks:
  what: { run: wait, inputs: { topic: vague, match: "${ message }" } }
`)
	cases := []struct{ workflow, task, topic, message, want string }{
		{"picky", "field", "picky", `{"other": 1}`, "message.count > 3"},
		{"greedy", "big", "greedy", `"x"`, "over a limit"},
		{"vague", "what", "vague", `{"a": 1}`, "not true or false"},
	}
	for _, c := range cases {
		id := invokeOn(t, r.e, c.workflow, `null`)
		watching(t, r.e, id, c.task, c.topic)
		seq := r.publish(c.topic, c.message)
		done := waitDone(t, r.e, id)
		wantStatus(t, done, StatusFailed)
		task := done.Tasks[c.task]
		prefix := "wait on topic " + c.topic + ": message " + strconv.FormatUint(seq, 10) + ": "
		if task.ErrorCode != codeTaskError || !strings.HasPrefix(task.Error, prefix) || !contains(task.Error, c.want) {
			t.Fatalf("%s: error [%s] %q, want [%s] %q...%q", c.workflow, task.ErrorCode, task.Error, codeTaskError, prefix, c.want)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the waits' subscriptions to end", func() bool { return heldTopicWaits(r.e) == 0 })
}

// TestTopicWaitTimeout: a wait's timeout: bounds it and its catch: gives
// the default; its subscription ends with it.
func TestTopicWaitTimeout(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: patient
output: ${ tasks.reply.output }
tasks:
  reply:
    run: wait
    inputs: { topic: replies, match: "${ message == 'never' }" }
    timeout: 300ms
    catch: { run: noop, inputs: "no message (${ error.code })" }
`)
	id := invokeOn(t, r.e, "patient", `null`)
	watching(t, r.e, id, "reply", "replies")
	r.publish("replies", "not this one")
	done := waitDone(t, r.e, id)
	wantStatus(t, done, StatusSucceeded)
	if got := string(done.Output); got != `"no message (timeout)"` {
		t.Fatalf("output %s, want the catch's", got)
	}
	testutil.Eventually(t, 10*time.Second, "the wait's subscription to end", func() bool { return heldTopicWaits(r.e) == 0 })
}

// TestTopicWaitCanceled: canceling the invocation ends its waits'
// subscriptions.
func TestTopicWaitCanceled(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: idle
tasks:
  each: { run: foreach, inputs: { foreach: "${ [1, 2, 3] }", do: { run: wait, inputs: { topic: "idle.${ item }" } } } }
`)
	id := invokeOn(t, r.e, "idle", `null`)
	testutil.Eventually(t, 20*time.Second, "three waits to watch", func() bool { return heldTopicWaits(r.e) == 3 })
	if _, err := r.e.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, waitDone(t, r.e, id), StatusCanceled)
	testutil.Eventually(t, 10*time.Second, "the waits' subscriptions to end", func() bool { return heldTopicWaits(r.e) == 0 })
}
