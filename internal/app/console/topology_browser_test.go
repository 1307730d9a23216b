//go:build browser

package console_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
)

// TestTopologyShowsTheGraph: the Topology page draws what is deployed: a
// queue trigger with its topic, response and error topics, an HTTP
// trigger with its route, the workflows and what they run, each node a
// box with its id, the edges between them; a click on a node opens its
// page (a function's, a topic's).
func TestTopologyShowsTheGraph(t *testing.T) {
	setup(t)
	ctx := context.Background()
	if _, err := cli.Deploy(ctx, "topo-worker", testutil.Wasm(t, "goguest"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.CreateTrigger(ctx, api.TriggerRequest{Name: "topo-jobs", Function: "topo-worker", Queue: &api.QueueRequest{
		Topic: "topo.jobs", RespTopic: "topo.jobs.out", ErrorTopic: "topo.jobs.dead"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.CreateTrigger(ctx, api.TriggerRequest{Name: "topo-web", Function: "gg", HTTP: &catalog.HTTPSpec{Path: "/topo", Method: "POST"}}); err != nil {
		t.Fatal(err)
	}
	if err := cli.Publish(ctx, "topo.jobs", []byte("echo:hello")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the result on topo.jobs.out", func() bool { return messages(t, "topo.jobs.out") == 1 })
	tb := newTab(t)
	tb.open("#/topology")
	tb.until("the drawing", `!!document.querySelector("#topology svg g.node")`)
	for _, id := range []string{"topic:topo.jobs", "trigger:topo-jobs", "function:topo-worker", "topic:topo.jobs.out", "topic:topo.jobs.dead",
		"route:POST /fn/topo", "trigger:topo-web", "function:gg", "workflow:shop", "workflow:kid", "function:wfguest"} {
		tb.until("the node "+id, fmt.Sprintf(`!!document.querySelector('#topology g.node[data-id=%q]')`, id))
	}
	if kind := eval[bool](tb, `document.querySelector('#topology g.node[data-id="trigger:topo-jobs"]').classList.contains("kind-trigger")`); !kind {
		t.Fatalf("the trigger's box has no kind-trigger class")
	}
	for _, e := range [][2]string{{"topic:topo.jobs", "trigger:topo-jobs"}, {"trigger:topo-jobs", "function:topo-worker"},
		{"function:topo-worker", "topic:topo.jobs.out"}, {"function:topo-worker", "topic:topo.jobs.dead"},
		{"route:POST /fn/topo", "trigger:topo-web"}, {"trigger:topo-web", "function:gg"},
		{"workflow:shop", "function:wfguest"}, {"workflow:shop", "workflow:kid"}} {
		tb.until("the edge "+e[0]+" -> "+e[1], fmt.Sprintf(`!!document.querySelector('#topology path.edge[data-from=%q][data-to=%q]')`, e[0], e[1]))
	}
	// left to right: the topic, its trigger, the function, its answers
	xs := eval[[]float64](tb, `["topic:topo.jobs", "trigger:topo-jobs", "function:topo-worker", "topic:topo.jobs.out"].map(id =>
		document.querySelector('#topology g.node[data-id="' + id + '"]').getBBox().x)`)
	for i := 1; i < len(xs); i++ {
		if xs[i] <= xs[i-1] {
			t.Fatalf("the flow is not drawn left to right: x %v", xs)
		}
	}
	tb.until("the list by kind", `document.querySelector("#topology-list").textContent.includes("topo.jobs.out")`)
	tb.screenshot("topology")

	tb.run("click the function", chromedp.Evaluate[chromedp.Void](`document.querySelector('#topology g.node[data-id="function:topo-worker"] a').dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true}))`))
	tb.until("the function's page", `location.hash === "#/functions/topo-worker" && !!document.querySelector("h1") && document.querySelector("h1").textContent.includes("topo-worker")`)
	tb.go_("#/topology")
	tb.until("the drawing again", `!!document.querySelector('#topology g.node[data-id="topic:topo.jobs.out"] a')`)
	tb.run("click the response topic", chromedp.Evaluate[chromedp.Void](`document.querySelector('#topology g.node[data-id="topic:topo.jobs.out"] a').dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true}))`))
	tb.until("the topic's page with its message", `location.hash === "#/topics/topo.jobs.out" && !!document.querySelector("#topic-tail") && document.querySelector("#topic-tail").textContent.includes("hello")`)
	if got := tb.text("#topic-messages"); got != "1" {
		t.Fatalf("the topic's page says %q messages, want 1", got)
	}
	tb.screenshot("topic")
}

// TestDeadLettersRedriveFromThePage: a queue trigger whose function fails
// dead-letters the message; the Dead letters page lists it; once the
// function is fixed, a redrive of the selected letter from the page
// produces the result on the response topic, the letter shows it was
// redriven, and the page offers no second redrive of it.
func TestDeadLettersRedriveFromThePage(t *testing.T) {
	setup(t)
	ctx := context.Background()
	if _, err := cli.Deploy(ctx, "dl-worker", testutil.Wasm(t, "goguest"), nil); err != nil {
		t.Fatal(err)
	}
	zero := 0
	if _, err := cli.CreateTrigger(ctx, api.TriggerRequest{Name: "dl-jobs", Function: "dl-worker", Queue: &api.QueueRequest{
		Topic: "dl.jobs", RespTopic: "dl.jobs.out", ErrorTopic: "dl.jobs.dead", MaxRetries: &zero}}); err != nil {
		t.Fatal(err)
	}
	if err := cli.Publish(ctx, "dl.jobs", []byte("error")); err != nil {
		t.Fatal(err)
	}
	var page api.DeadLetterPage
	testutil.Eventually(t, 30*time.Second, "the dead letter", func() bool {
		var err error
		page, err = cli.DeadLetters(ctx, "dl.jobs.dead", 0, 0)
		return err == nil && len(page.Letters) == 1
	})
	seq := page.Letters[0].Sequence
	tb := newTab(t)
	tb.open("#/dead-letters")
	tb.until("the error topic", `[...document.querySelectorAll("td a")].some(a => a.textContent === "dl.jobs.dead")`)
	tb.go_("#/dead-letters/dl.jobs.dead")
	box := fmt.Sprintf(`document.querySelector('input.pick[data-seq="%d"]')`, seq)
	tb.until("the letter", box+` && !`+box+`.disabled && document.querySelector("main").textContent.includes("dl-worker")`)
	tb.screenshot("dead-letters")

	// the fix: a version that succeeds on every payload
	if _, err := cli.Deploy(ctx, "dl-worker", testutil.Wasm(t, "echo-wat"), nil); err != nil {
		t.Fatal(err)
	}
	tb.run("select the letter and redrive it", chromedp.Click(chromedp.CSS(fmt.Sprintf(`input.pick[data-seq="%d"]`, seq))), chromedp.Click(chromedp.CSS("#redrive-selected")))
	tb.until("the redrive's outcome", `!!document.querySelector("#redrive-note") && document.querySelector("#redrive-note").textContent.includes("Redriven: 1")`)
	testutil.Eventually(t, 30*time.Second, "the redriven message's result on dl.jobs.out", func() bool { return messages(t, "dl.jobs.out") == 1 })
	tb.until("the letter shown redriven, its box disabled", box+` && `+box+`.disabled && `+box+`.closest("tr").textContent.includes("yes")`)
	tb.screenshot("dead-letters-redriven")
	page, err := cli.DeadLetters(ctx, "dl.jobs.dead", 0, 0)
	if err != nil || len(page.Letters) != 1 || page.Letters[0].Redrive == nil || !page.Letters[0].Redrive.Done || page.Letters[0].Redrive.Times != 1 {
		t.Fatalf("the letter after its redrive: %+v, %v", page.Letters, err)
	}
	tb.go_("#/topics/dl.jobs.out")
	tb.until("the result on the response topic", `!!document.querySelector("#topic-tail") && document.querySelector("#topic-tail").textContent.includes("error")`)
}

// messages is how many messages a topic holds (0 before it has any).
func messages(t *testing.T, topic string) uint64 {
	t.Helper()
	ts, err := cli.Topics(context.Background())
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	for _, x := range ts {
		if x.Name == topic {
			return x.Messages
		}
	}
	return 0
}
