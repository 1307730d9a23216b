package engine

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// TestTopicWaitLimit: a daemon holds at most its limit of waits on
// topics (lowered here from maxTopicWaits to 3); the one over it fails,
// code task_error, saying which limit and what to do, and the waits
// already held go on. A wait that ends (matched, canceled) frees its
// slot: new waits start again, up to the limit and no further.
func TestTopicWaitLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	r.e.mu.Lock()
	r.e.topics.max = 3
	r.e.mu.Unlock()
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: listen
tasks:
  got: { run: wait, inputs: { topic: "limit.${ input }" } }
`)
	listen := func(n int) string {
		t.Helper()
		id := invokeOn(t, r.e, "listen", strconv.Itoa(n))
		watching(t, r.e, id, "got", "limit."+strconv.Itoa(n))
		return id
	}
	overLimit := func(n int) {
		t.Helper()
		done := waitDone(t, r.e, invokeOn(t, r.e, "listen", strconv.Itoa(n)))
		wantStatus(t, done, StatusFailed)
		task := done.Tasks["got"]
		want := "wait on topic limit." + strconv.Itoa(n) + ": this daemon already holds 3 waits on topics, its limit (each is a subscription on the broker): bound the foreach that starts them with parallel:"
		if task.ErrorCode != codeTaskError || !strings.HasPrefix(task.Error, want) {
			t.Fatalf("the wait over the limit: [%s] %q, want [%s] %q...", task.ErrorCode, task.Error, codeTaskError, want)
		}
		if n := heldTopicWaits(r.e); n != 3 {
			t.Fatalf("%d waits held after one was refused, want 3", n)
		}
	}
	ids := []string{listen(0), listen(1), listen(2)}
	overLimit(3)

	r.publish("limit.0", `"matched"`)
	wantStatus(t, waitDone(t, r.e, ids[0]), StatusSucceeded)
	if _, err := r.e.Cancel(context.Background(), ids[1]); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, waitDone(t, r.e, ids[1]), StatusCanceled)
	testutil.Eventually(t, 10*time.Second, "the ended waits to free their slots", func() bool { return heldTopicWaits(r.e) == 1 })

	ids = append(ids, listen(4), listen(5))
	overLimit(6)
	for i, id := range []string{ids[2], ids[3], ids[4]} {
		topic := []string{"limit.2", "limit.4", "limit.5"}[i]
		r.publish(topic, `"matched"`)
		wantStatus(t, waitDone(t, r.e, id), StatusSucceeded)
	}
	testutil.Eventually(t, 10*time.Second, "every slot to be free", func() bool { return heldTopicWaits(r.e) == 0 })
}

// TestTopicWaitLimitDocumented: the limit a daemon runs with unless told
// otherwise is maxTopicWaits, and the language's reference and the
// engine's README state that number.
func TestTopicWaitLimitDocumented(t *testing.T) {
	var e Engine
	if got := e.topics.limit(); got != maxTopicWaits {
		t.Fatalf("the default limit is %d, want maxTopicWaits (%d)", got, maxTopicWaits)
	}
	n := strconv.Itoa(maxTopicWaits)
	for i := len(n) - 3; i > 0; i -= 3 {
		n = n[:i] + "," + n[i:]
	}
	want := "holds at most " + n + " waits on topics"
	for _, doc := range []string{"../docs/workflows.md", "README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if text := strings.Join(strings.Fields(string(b)), " "); !strings.Contains(text, want) {
			t.Errorf("%s does not say %q (maxTopicWaits is %d)", doc, want, maxTopicWaits)
		}
	}
}
