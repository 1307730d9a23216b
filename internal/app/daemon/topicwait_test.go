package daemon

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/testutil"
)

// TestWaitOnTopicThroughTheAPI: an invocation waits for a message on a
// topic; messages published through the API (POST
// /v1/topics/{topic}/publish, what `sluice topic publish` calls) end it:
// the one that matches, not the one before it. The task after the wait
// reads the message.
func TestWaitOnTopicThroughTheAPI(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	deploy(t, c, "work", "wfguest", nil)
	if _, _, err := c.CreateWorkflow(ctx, "shipment", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: shipment
output: ${ tasks.after.output.n }
tasks:
  shipped: { run: wait, inputs: { topic: shipments, match: "${ message.order == input.order }" } }
  after: { run: work, requires: [shipped], inputs: { op: add, n: "${ tasks.shipped.output.boxes }" } }
`)); err != nil {
		t.Fatal(err)
	}
	inv, err := c.InvokeWorkflow(ctx, "shipment", []byte(`{"order": 7}`), client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "the wait to watch its topic", func() bool {
		got, err := c.Invocation(ctx, inv.ID)
		return err == nil && got.Tasks["shipped"] != nil && got.Tasks["shipped"].WaitingTopic == "shipments"
	})
	if err := c.Publish(ctx, "shipments", []byte(`{"order": 3, "boxes": 100}`)); err != nil {
		t.Fatal(err)
	}
	seq, err := c.PublishSeq(ctx, "shipments", []byte(`{"order": 7, "boxes": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	var done *engine.Invocation
	testutil.Eventually(t, 20*time.Second, "the invocation to end", func() bool {
		done, err = c.Invocation(ctx, inv.ID)
		return err == nil && done.Status != engine.StatusRunning
	})
	if done.Status != engine.StatusSucceeded || string(done.Output) != `3` {
		t.Fatalf("status %s, output %s, error %s", done.Status, done.Output, done.Error)
	}
	events, err := c.Events(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Type == engine.EventTaskSucceeded && ev.Task == "shipped" && seq != 0 && ev.Consumed != seq {
			t.Fatalf("the wait took message %d, want %d", ev.Consumed, seq)
		}
	}
}
