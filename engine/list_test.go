package engine

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// listBase is the creation time of the first invocation a listing test
// folds in; the i-th is created i seconds later.
var listBase = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// folded is an engine whose state is folded from events written here
// (no log): for the listing's logic, which reads only the state.
type folded struct {
	t   testing.TB
	e   *Engine
	seq uint64
}

func newFolded(t testing.TB, retain int) *folded {
	return &folded{t: t, e: &Engine{st: newState(retain, 0)}}
}

func (f *folded) apply(ev *Event) {
	f.t.Helper()
	f.seq++
	ev.Seq = f.seq
	f.e.mu.Lock()
	defer f.e.mu.Unlock()
	if err := f.e.st.apply(ev); err != nil {
		f.t.Fatalf("apply %s %s: %v", ev.Type, ev.Invocation, err)
	}
}

// create folds an invocation's creation at listBase + sec seconds.
func (f *folded) create(id, workflow, parent string, sec int) {
	f.apply(&Event{Type: EventInvocationCreated, Invocation: id, Workflow: workflow, Parent: parent,
		Owner: "node-a", Time: listBase.Add(time.Duration(sec) * time.Second)})
}

// end folds an invocation's end with a status.
func (f *folded) end(id, status string) {
	typ := map[string]string{StatusSucceeded: EventInvocationSucceeded, StatusFailed: EventInvocationFailed,
		StatusCanceled: EventInvocationCanceled}[status]
	f.apply(&Event{Type: typ, Invocation: id, Error: "no", Time: listBase.Add(time.Hour)})
}

func ids(invs []*Invocation) []string {
	out := make([]string, len(invs))
	for i, inv := range invs {
		out[i] = inv.ID
	}
	return out
}

// pages lists every page of a filter, and returns the ids in order.
func pages(t testing.TB, e *Engine, f ListFilter) []string {
	t.Helper()
	var out []string
	for n := 0; ; n++ {
		p, err := e.ListPage(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Invocations) > max(f.Limit, 1) || (p.Next != "" && len(p.Invocations) != f.Limit) {
			t.Fatalf("page %d: %d invocations, next %q, limit %d", n, len(p.Invocations), p.Next, f.Limit)
		}
		out = append(out, ids(p.Invocations)...)
		if p.Next == "" {
			return out
		}
		f.Cursor = p.Next
	}
}

func TestListPageFilters(t *testing.T) {
	f := newFolded(t, 0)
	// i0..i9, one a second: even ones of "order", odd ones of "ship";
	// i3's child c3 at second 3 too (the same time as its parent)
	for i := range 10 {
		wf := "order"
		if i%2 == 1 {
			wf = "ship"
		}
		f.create(fmt.Sprintf("i%d", i), wf, "", i)
	}
	f.create("c3", "ship", "i3/sub", 3)
	f.end("i0", StatusSucceeded)
	f.end("i1", StatusFailed)
	f.end("i2", StatusCanceled)
	f.end("i4", StatusFailed)
	f.end("c3", StatusFailed)
	// i5 compensates, i6 compensated, i7 catches (set on the fold: the
	// events that get there are failure_test's)
	f.e.st.invs["i5"].comp.state = Compensating
	f.end("i6", StatusFailed)
	f.e.st.invs["i6"].comp.state = Compensated
	f.e.st.invs["i7"].tasks["pay"] = &taskState{id: "pay", status: TaskCatching}

	at := func(sec int) time.Time { return listBase.Add(time.Duration(sec) * time.Second) }
	cases := []struct {
		name string
		f    ListFilter
		want []string
	}{
		{"all, newest first (by id at one time)", ListFilter{}, []string{"i9", "i8", "i7", "i6", "i5", "i4", "i3", "c3", "i2", "i1", "i0"}},
		{"a workflow", ListFilter{Workflow: "ship"}, []string{"i9", "i7", "i5", "i3", "c3", "i1"}},
		{"top-level only", ListFilter{Workflow: "ship", Top: true}, []string{"i9", "i7", "i5", "i3", "i1"}},
		{"one status", ListFilter{Statuses: []string{StatusFailed}}, []string{"i6", "i4", "c3", "i1"}},
		{"two statuses", ListFilter{Statuses: []string{StatusCanceled, StatusSucceeded}}, []string{"i2", "i0"}},
		{"running includes compensating and catching", ListFilter{Statuses: []string{StatusRunning}}, []string{"i9", "i8", "i7", "i5", "i3"}},
		{"compensating", ListFilter{Statuses: []string{ListCompensating}}, []string{"i5"}},
		{"compensated", ListFilter{Statuses: []string{ListCompensated}}, []string{"i6"}},
		{"catching", ListFilter{Statuses: []string{ListCatching}}, []string{"i7"}},
		{"since (inclusive)", ListFilter{Since: at(7)}, []string{"i9", "i8", "i7"}},
		{"until (exclusive)", ListFilter{Until: at(3)}, []string{"i2", "i1", "i0"}},
		{"since and until", ListFilter{Since: at(3), Until: at(5)}, []string{"i4", "i3", "c3"}},
		{"all filters", ListFilter{Workflow: "order", Statuses: []string{StatusFailed}, Since: at(1), Until: at(9), Top: true}, []string{"i6", "i4"}},
		{"a limit", ListFilter{Limit: 3}, []string{"i9", "i8", "i7"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := f.e.ListPage(c.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p.Invocations); !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			if (p.Next != "") != (c.f.Limit != 0) {
				t.Fatalf("next %q with limit %d", p.Next, c.f.Limit)
			}
			if c.f.Limit != 0 {
				return
			}
			// pages of 2 list the same, in the same order
			c.f.Limit = 2
			if got := pages(t, f.e, c.f); !slices.Equal(got, c.want) {
				t.Fatalf("by pages of 2: got %v, want %v", got, c.want)
			}
		})
	}

	t.Run("parent", func(t *testing.T) {
		p, _ := f.e.ListPage(ListFilter{Since: at(3), Until: at(4)})
		if p.Invocations[1].ID != "c3" || p.Invocations[1].Parent != "i3/sub" || p.Invocations[0].Parent != "" {
			t.Fatalf("parents: %+v %+v", p.Invocations[0], p.Invocations[1])
		}
	})

	t.Run("counts", func(t *testing.T) {
		// counts ignore the statuses and the cursor, not the rest
		p, err := f.e.ListPage(ListFilter{Workflow: "ship", Statuses: []string{StatusSucceeded}, Limit: 1, Counts: true,
			Cursor: formatCursor(listKey{at(5), "i5"})})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{StatusRunning: 4, StatusSucceeded: 0, StatusFailed: 2, StatusCanceled: 0,
			ListCompensating: 1, ListCompensated: 0, ListCatching: 1}
		if fmt.Sprint(p.Counts) != fmt.Sprint(want) {
			t.Fatalf("counts %v, want %v", p.Counts, want)
		}
		if p, _ := f.e.ListPage(ListFilter{}); p.Counts != nil {
			t.Fatalf("counts not asked for: %v", p.Counts)
		}
	})
}

func TestListPageRefuses(t *testing.T) {
	e := newFolded(t, 0).e
	cases := []struct {
		name string
		f    ListFilter
		want string
	}{
		{"status", ListFilter{Statuses: []string{"done"}}, `status "done": want running, succeeded, failed, canceled, compensating, compensated, catching`},
		{"cursor not base64", ListFilter{Cursor: "!!"}, `cursor "!!" is not one a listing gave`},
		{"cursor without id", ListFilter{Cursor: "MjAyNi0xMi0wMVQxMDowMDowMFo"}, "is not one a listing gave"},
		{"cursor with a bad time", ListFilter{Cursor: "eWVzdGVyZGF5IGkx"}, "is not one a listing gave"},
		{"since after until", ListFilter{Since: listBase.Add(time.Hour), Until: listBase}, "since 2026-12-01T11:00:00Z is not before until 2026-12-01T10:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.ListPage(c.f)
			if !errors.Is(err, ErrInvalid) || !contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrInvalid with %q", err, c.want)
			}
		})
	}
}

// TestListPageWhileForgetting: invocations forgotten between pages are
// not listed, the others are listed once each, and the index stays
// bounded (compacted) whatever the number forgotten.
func TestListPageWhileForgetting(t *testing.T) {
	f := newFolded(t, 100)
	n := 0
	add := func(k int) {
		for range k {
			id := fmt.Sprintf("i%06d", n)
			f.create(id, "w", "", n)
			f.end(id, StatusSucceeded)
			n++
		}
	}
	add(5000)
	if l := len(f.e.st.byCreated); l > 2*len(f.e.st.invs)+listCompactSlack {
		t.Fatalf("the index holds %d entries for %d invocations", l, len(f.e.st.invs))
	}
	// page through while 30 more end per page: the oldest 30 are forgotten
	var got []string
	fl := ListFilter{Limit: 20}
	for {
		p, err := f.e.ListPage(fl)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(p.Invocations)...)
		if p.Next == "" {
			break
		}
		fl.Cursor = p.Next
		add(30)
	}
	// 4900..4999 are kept when the listing starts. Page 1 lists
	// 4999..4980; then 4900..4929 are forgotten, page 2 lists
	// 4979..4960; then 4930..4959 are: page 3 is empty, the last
	var want []string
	for i := 4999; i >= 4960; i-- {
		want = append(want, fmt.Sprintf("i%06d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
}

// TestListPageWhileInvoking: a real engine lists its invocations page by
// page while new ones are invoked between pages: each invocation that
// was there when the listing started is listed once, in order, and none
// invoked meanwhile (newer) is.
func TestListPageWhileInvoking(t *testing.T) {
	r := newRigOn(t, memory, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: kid\ntasks:\n  x: { run: noop }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: mom\ntasks:\n  sub: { run: workflow, inputs: { workflow: kid } }\n")
	for range 12 {
		r.run("mom", "null")
	}
	before, err := r.e.ListPage(ListFilter{Limit: 1000, Counts: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Invocations) != 24 || before.Counts[StatusSucceeded] != 24 {
		t.Fatalf("12 invocations and their children: %d listed, counts %v", len(before.Invocations), before.Counts)
	}
	if top, _ := r.e.ListPage(ListFilter{Top: true, Limit: 1000}); len(top.Invocations) != 12 {
		t.Fatalf("top-level: %d, want 12", len(top.Invocations))
	}
	var got []string
	f := ListFilter{Limit: 5}
	for {
		p, err := r.e.ListPage(f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(p.Invocations)...)
		if p.Next == "" {
			break
		}
		f.Cursor = p.Next
		r.run("mom", "null")
	}
	if want := ids(before.Invocations); !slices.Equal(got, want) {
		t.Fatalf("listed by pages while invoking:\n%v\nwant\n%v", got, want)
	}
	if p, _ := r.e.ListPage(ListFilter{Limit: 1000}); len(p.Invocations) != 24+2*4 {
		t.Fatalf("after: %d invocations, want 32", len(p.Invocations))
	}
}

// BenchmarkListPage: a page of 20 among 100,000 retained invocations
// (1% failed, 1% of workflow "rare"), against List, which copied every
// one of a workflow and sorted them.
func BenchmarkListPage(b *testing.B) {
	const n = 100_000
	f := newFolded(b, 0)
	for i := range n {
		id := fmt.Sprintf("i%06d", i)
		wf := "common"
		if i%100 == 50 {
			wf = "rare"
		}
		f.create(id, wf, "", i)
		if i%100 == 0 {
			f.end(id, StatusFailed)
		} else {
			f.end(id, StatusSucceeded)
		}
	}
	e := f.e
	cursor := func(fl ListFilter) string {
		p, _ := e.ListPage(fl)
		return p.Next
	}
	for _, c := range []struct {
		name string
		f    ListFilter
	}{
		{"newest", ListFilter{Limit: 20}},
		{"page-100", ListFilter{Limit: 20, Cursor: cursor(ListFilter{Limit: 2000})}},
		{"failed", ListFilter{Limit: 20, Statuses: []string{StatusFailed}}},
		{"workflow-rare", ListFilter{Limit: 20, Workflow: "rare"}},
		{"last-hour", ListFilter{Limit: 20, Since: listBase.Add((n - 3600) * time.Second)}},
		{"newest-with-counts", ListFilter{Limit: 20, Counts: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				p, err := e.ListPage(c.f)
				if err != nil || len(p.Invocations) != 20 {
					b.Fatal(err, len(p.Invocations))
				}
			}
		})
	}
	b.Run("List-all-then-20", func(b *testing.B) {
		for b.Loop() {
			if l := e.List(""); len(l[:20]) != 20 {
				b.Fatal(len(l))
			}
		}
	})
}

// TestListPageAcrossChunks: a filter that matches little walks the index
// over several holds of the lock (listChunk entries each) and still lists
// every match once, in order.
func TestListPageAcrossChunks(t *testing.T) {
	f := newFolded(t, 0)
	var want []string
	for i := range 3*listChunk + 10 {
		id, wf := fmt.Sprintf("i%06d", i), "common"
		if i%1000 == 7 {
			wf = "rare"
			want = append([]string{id}, want...)
		}
		f.create(id, wf, "", i)
	}
	if got := pages(t, f.e, ListFilter{Workflow: "rare", Limit: 3}); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	p, _ := f.e.ListPage(ListFilter{Workflow: "rare", Counts: true})
	if p.Counts[StatusRunning] != len(want) {
		t.Fatalf("counts %v, want %d running", p.Counts, len(want))
	}
}
