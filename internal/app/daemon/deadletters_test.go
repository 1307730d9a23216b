package daemon

import (
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/testutil"
)

// TestDeadLettersRedrive: a queue trigger whose function fails on a
// payload dead-letters it; the letter is listed with its error, function,
// source and payload; once the function is fixed, a redrive publishes it
// back and its result reaches the response topic; a second redrive of the
// letter is refused, and the letter shows it was redriven. Every message
// has one result: none lost, none twice.
func TestDeadLettersRedrive(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "worker", "goguest", nil)
	a := newApp(t, d.NATSURL())
	results := a.collect("jobs.out")
	zero := 0
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "jobs", Function: "worker", Queue: &api.QueueRequest{
		Topic: "jobs", RespTopic: "jobs.out", ErrorTopic: "jobs.dead", MaxRetries: &zero,
	}}); err != nil {
		t.Fatal(err)
	}
	a.publish("jobs", "echo:fine", "error")

	var page api.DeadLetterPage
	testutil.Eventually(t, 30*time.Second, "a dead letter and a result", func() bool {
		var err error
		page, err = c.DeadLetters(ctx, "jobs.dead", 0, 0)
		return err == nil && len(page.Letters) == 1 && len(results.all()) == 1
	})
	l := page.Letters[0]
	if l.PayloadText != "error" || l.PayloadBytes != 5 || l.Function != "worker" || l.Trigger != "jobs" || l.SourceTopic != "jobs" ||
		l.SourceSequence == 0 || l.Code != "function_error" || l.Error == "" || l.Redrive != nil || page.Next != 0 {
		t.Fatalf("dead letter %+v (next %d)", l, page.Next)
	}

	// the fix: a version of the function that succeeds on every payload
	deploy(t, c, "worker", "echo-wat", nil)
	if out := invoke(t, c, "worker", "error"); out != "error" {
		t.Fatalf("the fixed function answers %q", out)
	}
	res, err := c.Redrive(ctx, "jobs.dead", api.RedriveRequest{Sequences: []uint64{l.Sequence}})
	if err != nil || len(res.Redriven) != 1 || res.Redriven[0].To != "jobs" || len(res.Skipped)+len(res.Failed) != 0 {
		t.Fatalf("redrive: %+v, %v", res, err)
	}
	testutil.Eventually(t, 30*time.Second, "the redriven message's result", func() bool { return results.distinct()["error"] == 1 })

	_, err = c.Redrive(ctx, "jobs.dead", api.RedriveRequest{Sequences: []uint64{l.Sequence}})
	apiError(t, err, http.StatusConflict, "conflict", "was redriven to jobs", "by request", "--force")
	if res, err := c.Redrive(ctx, "jobs.dead", api.RedriveRequest{All: true}); err != nil || len(res.Redriven) != 0 {
		t.Fatalf("redrive --all after every letter was redriven: %+v, %v", res, err)
	}
	page, err = c.DeadLetters(ctx, "jobs.dead", 0, 0)
	if err != nil || len(page.Letters) != 1 || page.Letters[0].Redrive == nil || !page.Letters[0].Redrive.Done ||
		page.Letters[0].Redrive.Claim.By == "" || page.Letters[0].Redrive.Times != 1 {
		t.Fatalf("the letter after its redrive: %+v, %v", page.Letters, err)
	}
	if got := results.distinct(); len(got) != 2 || got["fine"] != 1 || got["error"] != 1 {
		t.Fatalf("results %v: want fine and error once each", got)
	}
}

// TestDeadLettersPaging: pages of limit letters, oldest first, each
// page's next the after of the following one; bad parameters are refused
// saying what to give.
func TestDeadLettersPaging(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "worker", "goguest", nil)
	a := newApp(t, d.NATSURL())
	zero := 0
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "p", Function: "worker", Queue: &api.QueueRequest{
		Topic: "p", ErrorTopic: "p.dead", MaxRetries: &zero, MaxInflight: 1,
	}}); err != nil {
		t.Fatal(err)
	}
	a.publish("p", "error", "error", "error", "error", "error")
	testutil.Eventually(t, 30*time.Second, "5 dead letters", func() bool {
		page, err := c.DeadLetters(ctx, "p.dead", 0, 10)
		return err == nil && len(page.Letters) == 5
	})
	var seqs []uint64
	var after uint64
	for pages := 0; ; pages++ {
		page, err := c.DeadLetters(ctx, "p.dead", after, 2)
		if err != nil || pages > 3 {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, l := range page.Letters {
			seqs = append(seqs, l.Sequence)
		}
		if page.Next == 0 {
			break
		}
		after = page.Next
	}
	if len(seqs) != 5 {
		t.Fatalf("pages gave %v, want 5 letters", seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("pages gave %v: want oldest first", seqs)
		}
	}
	_, err := c.DeadLetters(ctx, "p.dead", 0, api.MaxDeadLetters+1)
	apiError(t, err, http.StatusBadRequest, "invalid_argument", "limit", "from 1 to")
	_, err = c.Redrive(ctx, "p.dead", api.RedriveRequest{})
	apiError(t, err, http.StatusBadRequest, "invalid_argument", "sequences", "all")
}
