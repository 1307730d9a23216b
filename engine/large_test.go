package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/testutil"
)

// Values over MaxData are stored apart, in the log's blob store, and
// events carry their reference (blobs.go).

const chainOfTwo = `apiVersion: sluice/v1
kind: Workflow
name: chain
output: ${ tasks.b.output }
tasks:
  a: { run: echo-wat, inputs: "${ input }" }
  b: { run: echo-wat, inputs: "${ tasks.a.output }", requires: [a] }
`

// randomBytes are n bytes of a fixed seed: not UTF-8, so stored as base64
// if they were inline.
func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// invokeBytes runs a workflow on input bytes (InputAuto) to its end.
func (r *rig) invokeBytes(workflow string, input []byte) *Invocation {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inv, err := r.e.Invoke(ctx, workflow, input, InvokeOptions{Input: InputAuto})
	if err != nil {
		r.t.Fatalf("invoke %s: %v", workflow, err)
	}
	if inv, err = r.e.Wait(ctx, inv.ID); err != nil {
		r.t.Fatalf("wait %s: %v", workflow, err)
	}
	return inv
}

// refsOf lists the blob references the events carry, and the size of the
// largest event as stored.
func refsOf(t *testing.T, evs []*Event) (refs []string, largest int) {
	t.Helper()
	for _, ev := range evs {
		b, err := encodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, len(b))
		for _, d := range []*Data{ev.InputData, ev.OutputData} {
			if d != nil && d.Blob != "" {
				refs = append(refs, d.Blob)
			}
		}
	}
	return refs, largest
}

func TestLargeValueThroughTasks(t *testing.T) {
	for _, backend := range []string{memory, natsStreaming} {
		t.Run(backend, func(t *testing.T) {
			r := newRigOn(t, backend, false)
			r.defs.put(t, chainOfTwo)
			in := randomBytes(1<<20, 1)
			inv := r.invokeBytes("chain", in)
			if inv.Status != StatusSucceeded {
				t.Fatalf("%s: %s", inv.Status, inv.Error)
			}
			if got := inv.outputBytes(); !bytes.Equal(got, in) {
				t.Fatalf("output: %d bytes, sha256 %s; want %d bytes, sha256 %s", len(got), sha(got), len(in), sha(in))
			}
			if inv.OutputForm != FormBlob || !strings.Contains(string(inv.Output), `"size":1048576`) {
				t.Errorf("output as the API shows it: %s (form %q)", inv.Output, inv.OutputForm)
			}

			// Events carry the reference, stored once: the value went
			// in, through two tasks and out unchanged.
			refs, largest := refsOf(t, r.events(inv.ID))
			if largest > 2<<10 {
				t.Errorf("the largest event is %d bytes: values are not stored apart", largest)
			}
			if len(refs) != 6 { // input, a's input and output, b's, the output
				t.Errorf("%d references in the events, want 6", len(refs))
			}
			for _, ref := range refs {
				if ref != sha(in) {
					t.Fatalf("reference %s, want the input's sha256 %s", ref, sha(in))
				}
			}
			stored, err := r.conn.Blobs().Get(context.Background(), blobName(inv.ID, sha(in)))
			if err != nil || !bytes.Equal(stored, in) {
				t.Fatalf("the blob: %d bytes, %v", len(stored), err)
			}

			// A replay reads it back.
			r.restart()
			again, err := r.e.Get(inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := again.outputBytes(); !bytes.Equal(got, in) {
				t.Fatalf("replayed output: %d bytes, want the input's %d", len(got), len(in))
			}
			if got := again.inputBytes(); !bytes.Equal(got, in) {
				t.Fatalf("replayed input: %d bytes, want %d", len(got), len(in))
			}
		})
	}
}

// A function's large output made from a small input is stored apart too,
// and read by an expression.
func TestLargeOutputReadByExpression(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: grow
output: '${ len(tasks.big.output) }'
tasks:
  big: { run: wfguest, inputs: { op: text, s: "${ input }" } }
`)
	text := strings.Repeat("sluice ", 150_000) // 1,050,000 bytes of text
	b, _ := json.Marshal(text)
	inv := r.invokeBytes("grow", b)
	if inv.Status != StatusSucceeded {
		t.Fatalf("%s: %s", inv.Status, inv.Error)
	}
	wantJSON(t, inv.Output, "1050000")
	_, largest := refsOf(t, r.events(inv.ID))
	if largest > 2<<10 {
		t.Errorf("the largest event is %d bytes", largest)
	}
}

// An expression reading a value stored apart that is over its budget
// fails saying so, and what to do instead.
func TestLargeValueOverExpressionBudget(t *testing.T) {
	t.Parallel()
	r := newRigOn(t, memory, false)
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: measure
output: ${ len(input) }
tasks:
  a: { run: noop }
`)
	inv := r.invokeBytes("measure", randomBytes(evalMaxBytes+1, 2))
	if inv.Status != StatusFailed || !strings.Contains(inv.Error, "input is 33554433 bytes (stored apart), more than the 32 MiB one evaluation may make") ||
		!strings.Contains(inv.Error, "pass it on as it is") {
		t.Fatalf("%s: %s", inv.Status, inv.Error)
	}
}

func TestMaxValue(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.maxValue = 1 << 20
	r.restart()
	r.defs.put(t, chainOfTwo)
	_, err := r.e.Invoke(context.Background(), "chain", make([]byte, 1<<20+1), InvokeOptions{Input: InputAuto})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "input of 1048577 bytes is over the 1 MiB a workflow value may be (sluice daemon --max-value)") {
		t.Fatalf("input over MaxValue: %v", err)
	}
	if r.e.MaxValue() != 1<<20 {
		t.Fatalf("MaxValue %d", r.e.MaxValue())
	}
	// so does a function's input an expression makes
	r.defs.put(t, `apiVersion: sluice/v1
kind: Workflow
name: grow
tasks:
  big: { run: echo-wat, inputs: '${ repeat("x", 1048577) }' }
`)
	inv := r.invokeBytes("grow", nil)
	if inv.Status != StatusFailed || !strings.Contains(inv.Error, "more than 1 MiB, the most a workflow value may be (sluice daemon --max-value)") {
		t.Fatalf("%s: %s", inv.Status, inv.Error)
	}
}

// Forgetting an invocation deletes its values where the log can (memlog,
// JetStream); a value passed on by a child workflow is its root's.
func TestForgetDeletesValues(t *testing.T) {
	for _, backend := range []string{memory, jetStream} {
		t.Run(backend, func(t *testing.T) { testForgetDeletesValues(t, backend) })
	}
}

func testForgetDeletesValues(t *testing.T, backend string) {
	r := newRigOn(t, backend, false)
	r.retain = 1
	r.restart()
	r.defs.put(t, chainOfTwo)
	first, second := randomBytes(600<<10, 3), randomBytes(600<<10, 4)
	inv1 := r.invokeBytes("chain", first)
	name1 := blobName(inv1.ID, sha(first))
	if _, err := r.conn.Blobs().Get(context.Background(), name1); err != nil {
		t.Fatalf("the first value: %v", err)
	}
	inv2 := r.invokeBytes("chain", second)
	if inv1.Status != StatusSucceeded || inv2.Status != StatusSucceeded {
		t.Fatalf("%s %s", inv1.Status, inv2.Status)
	}
	testutil.Eventually(t, 10*time.Second, "the forgotten invocation's value deleted", func() bool {
		_, err := r.conn.Blobs().Get(context.Background(), name1)
		return errors.Is(err, eventlog.ErrNotFound)
	})
	if got := inv2.outputBytes(); !bytes.Equal(got, second) {
		t.Fatal("the retained invocation's value is gone")
	}
}

// A reference whose blob is missing (deleted by hand) fails the task that
// needs it, naming it.
func TestMissingValueFailsTask(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, chainOfTwo)
	rev, _ := r.defs.Current("chain")
	missing := sha([]byte("never stored"))
	ev := &Event{Type: EventInvocationCreated, Invocation: "lost", Workflow: "chain", Revision: rev.Revision, Owner: r.node,
		Node: r.node, Time: time.Now(), InputData: &Data{Blob: missing, Size: 1 << 20, Form: FormBase64}}
	b, err := encodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.conn.Publish(context.Background(), EventStream(r.conn.Features(), "lost"), eventlog.Message{Data: b}); err != nil {
		t.Fatal(err)
	}
	r.restart()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inv, err := r.e.Wait(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Status != StatusFailed || inv.FailedTask != "a" || !strings.Contains(inv.Error, ErrValueMissing.Error()) ||
		!strings.Contains(inv.Error, blobName("lost", missing)) {
		t.Fatalf("%s %s: %s", inv.Status, inv.FailedTask, inv.Error)
	}
}

// The reference's encoding: read back as written, and refused when it is
// not one.
func TestDataReference(t *testing.T) {
	s := sha([]byte("x"))
	for _, d := range []Data{{Blob: s, Size: 3, Form: FormText, Root: "inv-1"}, {Blob: s, Size: 0}, {Blob: s, Size: 9, JSON: true}} {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back Data
		if err := json.Unmarshal(b, &back); err != nil || back.Blob != d.Blob || back.Size != d.Size || back.Form != d.Form || back.JSON != d.JSON || back.Root != d.Root {
			t.Fatalf("%s: %+v %v", b, back, err)
		}
	}
	for _, bad := range []string{`{"blob":"abc","size":1}`, `{"blob":"` + s + `","size":-1}`, `{"blob":"` + s + `","size":1,"form":"weird"}`,
		`{"blob":"` + s + `","size":1,"extra":1}`, `{"blob":"` + s + `","size":1,"root":"a/b"}`} {
		var d Data
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// flakyLog is a real log whose blob reads fail the first times, as when
// the broker cannot be reached.
type flakyLog struct {
	eventlog.Log
	mu    sync.Mutex
	fails int
}

func (l *flakyLog) Blobs() eventlog.Blobs { return flakyBlobs{l.Log.Blobs(), l} }

type flakyBlobs struct {
	eventlog.Blobs
	l *flakyLog
}

func (b flakyBlobs) Get(ctx context.Context, name string) ([]byte, error) {
	b.l.mu.Lock()
	fail := b.l.fails > 0
	b.l.fails--
	b.l.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("get blob %s: %w", name, eventlog.ErrNotConnected)
	}
	return b.Blobs.Get(ctx, name)
}

// A value that cannot be read while the broker is away is waited for: the
// task runs once it can, with the right bytes.
func TestValueReadWaitsForTheBroker(t *testing.T) {
	r := newRigOn(t, memory, false)
	flaky := &flakyLog{Log: r.conn, fails: 2}
	r.conn = flaky
	r.restart()
	r.e.values = newValueCache(0) // every task reads the broker
	r.defs.put(t, chainOfTwo)
	in := randomBytes(1<<20, 5)
	inv := r.invokeBytes("chain", in)
	if inv.Status != StatusSucceeded || !bytes.Equal(inv.outputBytes(), in) {
		t.Fatalf("%s: %s", inv.Status, inv.Error)
	}
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	if flaky.fails > 0 {
		t.Fatal("no read of a value failed: the test tested nothing")
	}
}

func TestValueCache(t *testing.T) {
	c := newValueCache(10)
	c.add("a", []byte("12345"))
	c.add("b", []byte("6789"))
	if _, ok := c.get("a"); !ok { // a is now the most recent
		t.Fatal("a is not kept")
	}
	c.add("c", []byte("xy")) // 11 bytes: b, the least recent, goes
	if _, ok := c.get("b"); ok {
		t.Fatal("b is kept over the limit")
	}
	if b, ok := c.get("a"); !ok || string(b) != "12345" {
		t.Fatalf("a: %q %v", b, ok)
	}
	c.add("big", make([]byte, 11)) // over the limit alone: not kept
	if _, ok := c.get("big"); ok || c.size != 7 {
		t.Fatalf("size %d", c.size)
	}
	c.remove("a")
	if _, ok := c.get("a"); ok || c.size != 2 {
		t.Fatalf("after remove: size %d", c.size)
	}
}

// A value under MaxValue but over a function's own --max-input fails the
// task naming the function's limit.
func TestLargeValueOverFunctionLimit(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, chainOfTwo)
	inv := r.invokeBytes("chain", randomBytes(7<<20, 6))
	if inv.Status != StatusFailed || inv.FailedTask != "a" ||
		!strings.Contains(inv.Error, `input too large for function "echo-wat": the limit is 6 MiB (--max-input)`) {
		t.Fatalf("%s %s: %s", inv.Status, inv.FailedTask, inv.Error)
	}
}

// The footprint counts a value stored apart as its reference: within a
// factor of two of the memory it holds, as TestFootprint checks for
// values held inline.
func TestFootprintOfReferences(t *testing.T) {
	const n = 2000
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	measured, counted := retained(func() *state {
		s := newState(0, 0)
		seq := uint64(0)
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("inv-%06d", i)
			ref := func() *Data { return &Data{Blob: sha([]byte(id)), Size: 1 << 20, Root: id, Form: FormBase64} }
			for _, ev := range finishedChain(id, "node-a", at, "carry", strings.Repeat("r", 64), "work", ref) {
				seq++
				applyAsRead(t, s, ev, seq)
			}
		}
		return s
	})
	per, est := float64(measured)/n, float64(counted)/n
	t.Logf("%d invocations of 2 tasks carrying 1 MiB values stored apart: %.0f B each in memory, %.0f B counted (%.2f)", n, per, est, per/est)
	if per > 2*est || per < est/2 {
		t.Fatalf("footprint %.0f B is not within a factor of 2 of the %.0f B measured", est, per)
	}
}
