package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// countItemDrives counts, until the test ends, the items the foreaches of
// invocation id drive (the id is read when an item is driven: set it
// once the invocation exists).
func countItemDrives(t *testing.T) (setID func(string), count func() int) {
	var mu sync.Mutex
	var id string
	n := 0
	testKidDriven = func(inv string) {
		mu.Lock()
		defer mu.Unlock()
		if inv == id {
			n++
		}
	}
	t.Cleanup(func() { testKidDriven = nil })
	return func(s string) {
			mu.Lock()
			defer mu.Unlock()
			id = s
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return n
		}
}

// TestForeachDrivesOnlyChangedItems runs a foreach of 200 function items
// without parallel: all run at once. Each change (an item's call ending)
// drives the items it concerns, not every item still running: the items
// driven in all stay a few per item. Driving every running item on each
// change drove n(n+1)/2 = 20,100 of them.
func TestForeachDrivesOnlyChangedItems(t *testing.T) {
	const n = 200
	r := newRig(t, false)
	r.defs.put(t, fmt.Sprintf(`
apiVersion: sluice/v1
kind: Workflow
name: wide
tasks:
  each: { run: foreach, inputs: { foreach: "${ 0..%d }", do: { run: echo-wat, inputs: "${ item }" } } }
`, n-1))
	setID, drives := countItemDrives(t)
	hold := r.fns.gate("each/0") // so that the invocation's id is known before its items end
	ctx := context.Background()
	inv, err := r.e.Invoke(ctx, "wide", nil, InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setID(inv.ID)
	hold()
	done, err := r.e.Wait(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, done, StatusSucceeded)
	var want []string
	for i := 0; i < n; i++ {
		want = append(want, fmt.Sprint(i))
	}
	wantJSON(t, done.Tasks["each"].Output, "["+strings.Join(want, ",")+"]")
	t.Logf("%d items: %d drives of an item", n, drives())
	if got := drives(); got > 4*n {
		t.Errorf("the foreach drove its items %d times in all for %d items, want at most %d (each change drives the items it concerns)", got, n, 4*n)
	}
}

// TestForeachItemsWake runs foreaches without parallel whose items are
// woken by every kind of change a foreach drives an item for: a sleep's
// timer, a retry's backoff, a task's timeout into its catch, a while's
// condition evaluated, a child workflow's end, a nested foreach's items,
// signals. An item the change does not mark would never go on: the
// invocation would not end.
func TestForeachItemsWake(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, `
apiVersion: sluice/v1
kind: Workflow
name: child
tasks:
  n: { run: wfguest, inputs: { op: add, n: "${ input }" } }
`)
	cases := []struct {
		name, do, want string
		signals        int
	}{
		{"sleep", `{ run: sleep, inputs: "${ item * 20 }ms" }`, `[null,null,null,null]`, 0},
		{"retry", `{ run: wfguest, inputs: { op: flaky, fails: 1 }, retry: { max: 2, backoff: 20ms } }`,
			`[{"attempt":2},{"attempt":2},{"attempt":2},{"attempt":2}]`, 0},
		{"timeout", `{ run: sleep, inputs: 1h, timeout: 30ms, catch: { run: noop, inputs: "${ error.code }" } }`,
			`["timeout","timeout","timeout","timeout"]`, 0},
		{"evaluation", `{ run: while, inputs: { while: "${ index < item }", limit: 10, do: { run: noop, inputs: "${ index }" } } }`,
			`[null,0,1,2]`, 0},
		{"child", `{ run: workflow, inputs: { workflow: child, input: "${ item }" } }`, `[{"n":1},{"n":2},{"n":3},{"n":4}]`, 0},
		{"nested", `{ run: foreach, inputs: { foreach: "${ 0..item }", do: { run: wfguest, inputs: { op: add, n: "${ item }" } } } }`,
			`[[{"n":1}],[{"n":1},{"n":2}],[{"n":1},{"n":2},{"n":3}],[{"n":1},{"n":2},{"n":3},{"n":4}]]`, 0},
		{"signal", `{ run: wait, inputs: { signal: go } }`, `[0,1,2,3]`, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.defs.put(t, fmt.Sprintf(`
apiVersion: sluice/v1
kind: Workflow
name: wake-%s
tasks:
  each: { run: foreach, inputs: { foreach: "${ 0..3 }", do: %s } }
`, c.name, c.do))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			inv, err := r.e.Invoke(ctx, "wake-"+c.name, nil, InvokeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if c.signals > 0 {
				testutil.Eventually(t, 30*time.Second, "every wait to start", func() bool {
					return strings.Count(strings.Join(types(r.events(inv.ID)), ","), "TaskStarted each/") == c.signals
				})
				for i := 0; i < c.signals; i++ {
					if err := r.e.Signal(ctx, inv.ID, "go", []byte(fmt.Sprint(i)), InputJSON); err != nil {
						t.Fatal(err)
					}
				}
			}
			done, err := r.e.Wait(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, done, StatusSucceeded)
			wantJSON(t, done.Tasks["each"].Output, c.want)
		})
	}
}

// BenchmarkForeachUnbounded runs a foreach of n echo-wat items without
// parallel: all n items are scheduled at once (their input is fixed: no
// evaluation) and their calls end one by one, each a change of the
// invocation. Driving every running item on each change made it O(n²).
// (Sleeps would not show it: the first timer to fire ended every sleep
// due in one drive.) Calls beyond the function's queue are busy: retried.
//
//	go test -run '^$' -bench 'ForeachUnbounded' -benchtime 1x -count 5 ./engine/
func BenchmarkForeachUnbounded(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			r := newRigOn(b, natsStreaming, false)
			r.defs.put(b, `
apiVersion: sluice/v1
kind: Workflow
name: calls
tasks:
  each: { run: foreach, inputs: { foreach: "${ 0..(input - 1) }", do: { run: echo-wat, inputs: 1, retry: { max: 100, backoff: 10ms } } } }
`)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			var took time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				inv, err := r.e.Invoke(ctx, "calls", []byte(fmt.Sprint(n)), InvokeOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if inv, err = r.e.Wait(ctx, inv.ID); err != nil || inv.Status != StatusSucceeded {
					b.Fatalf("%v %+v", err, inv)
				}
				took += time.Since(start)
			}
			b.StopTimer()
			b.ReportMetric(took.Seconds()*1e3/float64(b.N), "ms/invocation")
			b.ReportMetric(float64(took.Microseconds())/float64(b.N*n), "µs/item")
		})
	}
}
