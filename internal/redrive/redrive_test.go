package redrive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
	"github.com/sluicehq/sluice/testutil"
	"github.com/sluicehq/sluice/triggers"
)

var ctx = context.Background()

// TestFold: of claims made at once the first stored wins; a done letter
// is claimed again only with force; a pending claim is taken over only
// after its lease, and a takeover of a takeover completes the first; a
// done counts for the claim in force only.
func TestFold(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	claim := func(id string, force bool) record {
		return record{Op: opClaim, Seq: 1, ID: id, By: "req-" + id, To: "jobs", Force: force, LeaseMS: 10_000}
	}
	done := func(id string) record { return record{Op: opDone, Seq: 1, ID: id, Published: 9} }
	type step struct {
		r  record
		at int
	}
	tests := []struct {
		name         string
		steps        []step
		claim, takes string
		done         bool
		times        int
	}{
		{"first claim of two wins", []step{{claim("a", false), 0}, {claim("b", false), 0}}, "a", "", false, 0},
		{"done of the winner", []step{{claim("a", false), 0}, {claim("b", false), 0}, {done("a"), 1}}, "a", "", true, 1},
		{"done of the loser does not count", []step{{claim("a", false), 0}, {claim("b", false), 0}, {done("b"), 1}}, "a", "", false, 0},
		{"claim of a done letter loses", []step{{claim("a", false), 0}, {done("a"), 1}, {claim("b", false), 2}}, "a", "", true, 1},
		{"forced claim of a done letter wins", []step{{claim("a", false), 0}, {done("a"), 1}, {claim("b", true), 2}, {done("b"), 3}}, "b", "", true, 2},
		{"pending claim holds within its lease", []step{{claim("a", false), 0}, {claim("b", false), 9}}, "a", "", false, 0},
		{"pending claim taken over after its lease", []step{{claim("a", false), 0}, {claim("b", false), 10}}, "b", "a", false, 0},
		{"a late done of the taken-over claim does not count", []step{{claim("a", false), 0}, {claim("b", false), 10}, {done("a"), 11}}, "b", "a", false, 0},
		{"a takeover of a takeover completes the first", []step{{claim("a", false), 0}, {claim("b", false), 10}, {claim("c", false), 20}}, "c", "a", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			states := map[uint64]*State{}
			for _, s := range tt.steps {
				fold(states, s.r, at(s.at))
			}
			st := states[1]
			takes := ""
			if st.Claim.takes != nil {
				takes = st.Claim.takes.ID
			}
			if st.Claim.ID != tt.claim || takes != tt.takes || st.Done != tt.done || st.Times != tt.times {
				t.Fatalf("claim %s (takes %q), done %v, times %d; want claim %s (takes %q), done %v, times %d",
					st.Claim.ID, takes, st.Done, st.Times, tt.claim, tt.takes, tt.done, tt.times)
			}
		})
	}
}

// TestClaimFrom: a claim made when its target was empty looks for its
// payload from the target's first sequence, as one made past a message
// looks from the next; only a claim that does not say where its target
// stood (it could not be read, or an earlier record left a 0 out) looks
// by time.
func TestClaimFrom(t *testing.T) {
	for _, tt := range []struct {
		rec  string
		from uint64
	}{
		{`{"op":"claim","seq":1,"id":"a","to":"jobs","lease_ms":1000,"after":0}`, 1},
		{`{"op":"claim","seq":1,"id":"a","to":"jobs","lease_ms":1000,"after":7}`, 8},
		{`{"op":"claim","seq":1,"id":"a","to":"jobs","lease_ms":1000}`, 0},
	} {
		var r record
		if err := json.Unmarshal([]byte(tt.rec), &r); err != nil {
			t.Fatal(err)
		}
		states := map[uint64]*State{}
		fold(states, r, time.Now())
		if got := states[1].Claim.from; got != tt.from {
			t.Errorf("%s: from %d, want %d", tt.rec, got, tt.from)
		}
	}
	zero := uint64(0)
	data, _ := json.Marshal(record{Op: opClaim, Seq: 1, ID: "a", After: &zero})
	if !strings.Contains(string(data), `"after":0`) {
		t.Errorf("a claim on an empty target is written %s; want it to say after 0", data)
	}
}

// connect starts a server of the tests' broker (SLUICE_TEST_BROKER) and
// returns n connections to it.
func connect(t *testing.T, n int) []eventlog.Log {
	t.Helper()
	var url string
	js := os.Getenv("SLUICE_TEST_BROKER") == "jetstream"
	if js {
		srv, err := jslog.StartEmbedded(jslog.EmbeddedOptions{Dir: t.TempDir(), Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		url = srv.URL()
	} else {
		srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Listen: "127.0.0.1:0", ClusterID: "test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		url = srv.URL()
	}
	var logs []eventlog.Log
	for i := 0; i < n; i++ {
		var (
			l   eventlog.Log
			err error
		)
		name := fmt.Sprintf("redriver-%d", i)
		if js {
			l, err = jslog.Connect(ctx, jslog.Options{URL: url, Name: name})
		} else {
			l, err = natslog.Connect(ctx, broker.Options{URL: url, ClusterID: "test", Name: name})
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		logs = append(logs, l)
	}
	return logs
}

// deadLetters publishes a dead letter per payload to jobs.dead, as a
// trigger on jobs does, and returns their sequences there.
func deadLetters(t *testing.T, l eventlog.Log, payloads ...string) []uint64 {
	t.Helper()
	var seqs []uint64
	for i, p := range payloads {
		dl, _ := json.Marshal(triggers.DeadLetter{Error: "boom", Code: "function_error", Function: "f", Trigger: "jobs", Topic: "jobs",
			Sequence: uint64(i + 1), Redeliveries: 2, Time: time.Now().UTC(), Payload: []byte(p)})
		if _, err := l.Publish(ctx, "jobs.dead", eventlog.Message{Data: dl}); err != nil {
			t.Fatal(err)
		}
		last, err := l.Last(ctx, "jobs.dead")
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, last)
	}
	return seqs
}

// collect records every message of a topic.
type collected struct {
	mu   sync.Mutex
	msgs []*eventlog.Msg
}

func collect(t *testing.T, l eventlog.Log, topic string) *collected {
	c := &collected{}
	sub, err := l.Subscribe(topic, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return c
}

func (c *collected) count(payload string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if string(m.Data) == payload {
			n++
		}
	}
	return n
}

func (c *collected) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// TestRedriveOnce: a letter is published back to its source topic once;
// redriving it again is refused, naming when and by which request, until
// forced; --all leaves it and takes the others.
func TestRedriveOnce(t *testing.T) {
	l := connect(t, 1)[0]
	seqs := deadLetters(t, l, "a", "b", "c")
	jobs := collect(t, l, "jobs")
	r := Redriver{Log: l}
	res, err := r.Redrive(ctx, Request{Topic: "jobs.dead", Seqs: []uint64{seqs[0]}, By: "req-1"})
	if err != nil || len(res.Redriven) != 1 || res.Redriven[0].To != "jobs" {
		t.Fatalf("redrive: %+v, %v", res, err)
	}
	testutil.Eventually(t, 10*time.Second, "a on jobs", func() bool { return jobs.count("a") == 1 })

	res, err = r.Redrive(ctx, Request{Topic: "jobs.dead", Seqs: []uint64{seqs[0]}, By: "req-2"})
	if !errors.Is(err, ErrAlreadyRedriven) || !strings.Contains(err.Error(), "by request req-1") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second redrive: %+v, %v; want it refused, naming req-1", res, err)
	}

	res, err = r.Redrive(ctx, Request{Topic: "jobs.dead", All: true, By: "req-3"})
	if err != nil || len(res.Redriven) != 2 || len(res.Skipped) != 0 {
		t.Fatalf("redrive --all: %+v, %v; want b and c", res, err)
	}
	testutil.Eventually(t, 10*time.Second, "b and c on jobs", func() bool { return jobs.count("b") == 1 && jobs.count("c") == 1 })

	if _, err := r.Redrive(ctx, Request{Topic: "jobs.dead", All: true, Force: true}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("redrive all with force: %v; want it refused", err)
	}
	res, err = r.Redrive(ctx, Request{Topic: "jobs.dead", Seqs: []uint64{seqs[0]}, Force: true, By: "req-4", To: "jobs.retry"})
	if err != nil || len(res.Redriven) != 1 || res.Redriven[0].To != "jobs.retry" {
		t.Fatalf("forced redrive: %+v, %v", res, err)
	}
	states, err := States(ctx, l, "jobs.dead")
	if err != nil || states[seqs[0]].Times != 2 || states[seqs[0]].Claim.By != "req-4" || !states[seqs[1]].Done {
		t.Fatalf("states: %v", err)
	}
	if jobs.count("a") != 1 || jobs.len() != 3 {
		t.Fatalf("jobs holds %d messages, a %d times; want a, b, c once each", jobs.len(), jobs.count("a"))
	}
}

// TestRedriversAtOnce: redrivers on several connections (as several
// daemons) redriving the same letters at once publish each exactly once.
func TestRedriversAtOnce(t *testing.T) {
	const redrivers = 4
	logs := connect(t, redrivers)
	var payloads []string
	for i := 0; i < 20; i++ {
		payloads = append(payloads, fmt.Sprintf("m%02d", i))
	}
	seqs := deadLetters(t, logs[0], payloads...)
	jobs := collect(t, logs[0], "jobs")
	var wg sync.WaitGroup
	results := make([]Result, redrivers)
	errs := make([]error, redrivers)
	for i, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Redriver{Log: l}
			results[i], errs[i] = r.Redrive(ctx, Request{Topic: "jobs.dead", Seqs: seqs, By: fmt.Sprintf("req-%d", i)})
		}()
	}
	wg.Wait()
	redriven := 0
	for i := range results {
		if errs[i] != nil && !errors.Is(errs[i], ErrAlreadyRedriven) {
			t.Fatalf("redriver %d: %v", i, errs[i])
		}
		if len(results[i].Failed) > 0 {
			t.Fatalf("redriver %d failed: %+v", i, results[i].Failed)
		}
		redriven += len(results[i].Redriven)
	}
	if redriven != len(seqs) {
		t.Fatalf("%d letters redriven in all, want %d", redriven, len(seqs))
	}
	testutil.Eventually(t, 10*time.Second, "every letter on jobs", func() bool { return jobs.len() >= len(seqs) })
	for _, p := range payloads {
		if n := jobs.count(p); n != 1 {
			t.Fatalf("%s published %d times", p, n)
		}
	}
}

// claimLike writes the claim a redrive that then stopped would have
// written; published also publishes its payload, as a redrive that
// stopped before its done would have.
func claimLike(t *testing.T, l eventlog.Log, seq uint64, id string, lease time.Duration, published string) {
	t.Helper()
	after, err := l.Last(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(record{Op: opClaim, Seq: seq, ID: id, By: "req-crashed", To: "jobs", LeaseMS: lease.Milliseconds(), After: &after})
	if _, err := l.Publish(ctx, RecordStream("jobs.dead"), eventlog.Message{Data: data}); err != nil {
		t.Fatal(err)
	}
	if published != "" {
		h := map[string]string{RedrivenHeader: fmt.Sprintf("jobs.dead:%d", seq)}
		if _, err := l.Publish(ctx, "jobs", eventlog.Message{Data: []byte(published), ID: id, Header: h}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRedriveCutShort: a redrive that stopped after its claim holds the
// letter for its lease (refused as being redriven, naming the request);
// after it, the next redrive publishes the payload if the stopped one had
// not, and only records it if it had: none lost, none twice.
func TestRedriveCutShort(t *testing.T) {
	l := connect(t, 1)[0]
	seqs := deadLetters(t, l, "held", "lost", "made")
	jobs := collect(t, l, "jobs")
	r := Redriver{Log: l}

	claimLike(t, l, seqs[0], "held-claim", time.Hour, "")
	_, err := r.Redrive(ctx, Request{Topic: "jobs.dead", Seqs: []uint64{seqs[0]}, By: "req-2"})
	if !errors.Is(err, ErrAlreadyRedriven) || !strings.Contains(err.Error(), "being redriven") || !strings.Contains(err.Error(), "req-crashed") {
		t.Fatalf("redrive of a letter claimed within its lease: %v", err)
	}

	// stopped between the claim and the publish: the payload is published
	claimLike(t, l, seqs[1], "lost-claim", time.Millisecond, "")
	// stopped between the publish and the done: it is not published again
	claimLike(t, l, seqs[2], "made-claim", time.Millisecond, "made")
	testutil.Eventually(t, 10*time.Second, "made on jobs", func() bool { return jobs.count("made") == 1 })
	var res Result
	testutil.Eventually(t, 10*time.Second, "the pending claims taken over", func() bool {
		res, err = r.Redrive(ctx, Request{Topic: "jobs.dead", Seqs: seqs[1:], By: "req-3"})
		return err == nil && len(res.Redriven) == 2
	})
	for _, rd := range res.Redriven {
		if !rd.Completed || rd.Found != (rd.Sequence == seqs[2]) {
			t.Fatalf("redriven %+v: want completed, found only for the letter whose payload was published", rd)
		}
	}
	testutil.Eventually(t, 10*time.Second, "lost on jobs", func() bool { return jobs.count("lost") == 1 })
	if _, err := r.Redrive(ctx, Request{Topic: "jobs.dead", Seqs: seqs[1:], By: "req-4"}); !errors.Is(err, ErrAlreadyRedriven) {
		t.Fatalf("redrive of the completed letters: %v; want them refused", err)
	}
	if jobs.count("made") != 1 || jobs.count("lost") != 1 || jobs.len() != 2 {
		t.Fatalf("jobs holds %d messages (made %d, lost %d); want each once", jobs.len(), jobs.count("made"), jobs.count("lost"))
	}
}
