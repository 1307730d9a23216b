package engine

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Listing invocations a page at a time (ListPage): by workflow, status,
// creation time and parent, newest first, with an opaque cursor that
// stays right while invocations are added and forgotten.
//
// The state keeps an index of its invocations by creation time (byCreated),
// kept in order as they are created: a page is a binary search and a walk
// back from it, not a copy and sort of every invocation kept. Forgotten
// invocations leave their entry behind (a walk skips it) until the index
// is compacted, when it holds more dead entries than live ones: the cost
// of a forget stays O(1) and the index at most twice the invocations.

// The statuses ListFilter.Statuses takes: an invocation's own status, and
// the states wf status shows within one.
const (
	// ListCompensating: a failing invocation whose undo tasks run
	// (its status is running).
	ListCompensating = Compensating
	// ListCompensated: a failed invocation whose undo tasks ran.
	ListCompensated = Compensated
	// ListCatching: a running invocation with a task whose catch runs.
	ListCatching = TaskCatching
)

// ListStatuses are the statuses ListFilter.Statuses takes, in the order
// they are shown. running includes compensating and catching, failed
// includes compensated: Page.Counts overlap the same way.
var ListStatuses = []string{StatusRunning, StatusSucceeded, StatusFailed, StatusCanceled,
	ListCompensating, ListCompensated, ListCatching}

const (
	// listChunk is how many index entries a walk looks at per hold of the
	// engine's lock: 0.1 to 0.3 ms on a 2-core machine (an entry costs
	// 100 to 250 ns, most of it the map lookup of its invocation:
	// BenchmarkListPage), so a filter that matches little among 100,000
	// invocations (or Counts, which looks at every one in the time
	// range) never holds the lock long while invocations are created
	// and end.
	listChunk = 1024
	// listCompactSlack keeps a small index from being compacted at every
	// forget.
	listCompactSlack = 1024
)

// ListFilter says which invocations ListPage lists. Zero fields do not
// filter.
type ListFilter struct {
	// Workflow keeps one workflow's invocations.
	Workflow string
	// Statuses keeps the invocations with any of these (ListStatuses).
	Statuses []string
	// Since and Until keep those created at or after Since and before
	// Until.
	Since, Until time.Time
	// Top keeps only top-level invocations, not child workflows'.
	Top bool
	// Limit is the most a page holds (0: 100).
	Limit int
	// Cursor continues a listing after the page whose Page.Next it is.
	Cursor string
	// Counts asks for Page.Counts.
	Counts bool
}

// defaultListLimit is a page's size when ListFilter.Limit is 0.
const defaultListLimit = 100

// Page is a page of invocations, newest first, without their tasks.
type Page struct {
	Invocations []*Invocation
	// Next is the cursor of the next page; "" if this is the last.
	Next string
	// Counts are, if asked, the invocations of every status in
	// ListStatuses that the filter keeps but for its statuses and
	// cursor (what a console shows beside each status: "failed (12)").
	Counts map[string]int
}

// listKey is an invocation's place in the index: by creation time, then
// id.
type listKey struct {
	created time.Time
	id      string
}

func (a listKey) cmp(b listKey) int {
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// indexCreated adds a new invocation to the index by creation time.
// Invocations come mostly in order: an append.
func (s *state) indexCreated(inv *invState) {
	k := listKey{inv.created, inv.id}
	n := len(s.byCreated)
	if n == 0 || s.byCreated[n-1].cmp(k) < 0 {
		s.byCreated = append(s.byCreated, k)
	} else {
		i, found := slices.BinarySearchFunc(s.byCreated, k, listKey.cmp)
		if found {
			return
		}
		s.byCreated = slices.Insert(s.byCreated, i, k)
	}
	if len(s.byCreated) > 2*len(s.invs)+listCompactSlack {
		s.byCreated = slices.DeleteFunc(s.byCreated, func(k listKey) bool { return s.listed(k) == nil })
	}
}

// listed returns the invocation an index entry stands for, nil if it was
// forgotten.
func (s *state) listed(k listKey) *invState {
	inv := s.invs[k.id]
	if inv == nil || !inv.created.Equal(k.created) {
		return nil
	}
	return inv
}

// has tells whether an invocation has a status of ListStatuses.
func (inv *invState) has(status string) bool {
	switch status {
	case ListCompensating, ListCompensated:
		return inv.comp.state == status
	case ListCatching:
		if inv.status != StatusRunning {
			return false
		}
		for _, t := range inv.tasks {
			if t.status == TaskCatching {
				return true
			}
		}
		return false
	}
	return inv.status == status
}

// keeps tells whether the filter keeps an invocation, but for its
// statuses and time range.
func (f *ListFilter) keeps(inv *invState) bool {
	return (f.Workflow == "" || inv.workflow == f.Workflow) && (!f.Top || inv.parent == "")
}

func (f *ListFilter) keepsStatus(inv *invState) bool {
	if len(f.Statuses) == 0 {
		return true
	}
	for _, st := range f.Statuses {
		if inv.has(st) {
			return true
		}
	}
	return false
}

// ListPage lists a page of the invocations the filter keeps, newest
// first, and the cursor of the next. The engine's lock is held for at
// most listChunk entries at a time; a page is what the invocations were
// as each was looked at. A cursor stays right while invocations are
// created and forgotten: the next page starts after the last one listed,
// by creation time and id, so none is listed twice or skipped (one
// created meanwhile is newer, on no later page). Errors are ErrInvalid:
// a status or a cursor that is not one.
func (e *Engine) ListPage(f ListFilter) (*Page, error) {
	for _, st := range f.Statuses {
		if !slices.Contains(ListStatuses, st) {
			return nil, fmt.Errorf("%w: status %q: want %s", ErrInvalid, st, strings.Join(ListStatuses, ", "))
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return nil, fmt.Errorf("%w: since %s is not before until %s: no invocation is created in between",
			ErrInvalid, f.Since.Format(time.RFC3339Nano), f.Until.Format(time.RFC3339Nano))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	// the invocations before upper in the index (all of them if all),
	// from the cursor's on if it is lower
	upper, all := listKey{created: f.Until}, f.Until.IsZero()
	from, fromAll := upper, all
	if f.Cursor != "" {
		k, err := parseCursor(f.Cursor)
		if err != nil {
			return nil, err
		}
		if fromAll || k.cmp(upper) < 0 {
			from, fromAll = k, false
		}
	}
	p := &Page{Invocations: []*Invocation{}}
	var last listKey
	e.walk(from, fromAll, f.Since, func(k listKey, inv *invState) bool {
		if !f.keeps(inv) || !f.keepsStatus(inv) {
			return true
		}
		if len(p.Invocations) == limit {
			p.Next = formatCursor(last)
			return false
		}
		p.Invocations = append(p.Invocations, e.snap(inv, false))
		last = k
		return true
	})
	if f.Counts {
		p.Counts = make(map[string]int, len(ListStatuses))
		for _, st := range ListStatuses {
			p.Counts[st] = 0
		}
		e.walk(upper, all, f.Since, func(_ listKey, inv *invState) bool {
			if f.keeps(inv) {
				p.Counts[inv.status]++
				if inv.comp.state != "" {
					p.Counts[inv.comp.state]++
				}
				if inv.has(ListCatching) {
					p.Counts[ListCatching]++
				}
			}
			return true
		})
	}
	return p, nil
}

// walk calls fn on the invocations before the key (all of them if all)
// and created at or after since, newest first, under the engine's lock
// but released every listChunk entries, until fn returns false.
func (e *Engine) walk(before listKey, all bool, since time.Time, fn func(listKey, *invState) bool) {
	for {
		e.mu.Lock()
		idx := e.st.byCreated
		i := len(idx)
		if !all {
			i, _ = slices.BinarySearchFunc(idx, before, listKey.cmp)
		}
		done := true
		for n := 0; i > 0; n++ {
			if n == listChunk {
				done = false
				break
			}
			i--
			k := idx[i]
			if k.created.Before(since) {
				break
			}
			inv := e.st.listed(k)
			if inv == nil {
				continue
			}
			if !fn(k, inv) {
				break
			}
		}
		if !done {
			before, all = idx[i], false
		}
		e.mu.Unlock()
		if done {
			return
		}
	}
}

// A cursor is the base64 (URL alphabet) of the creation time (RFC 3339,
// nanoseconds, UTC) and id of the last invocation of a page, separated
// by a space.
func formatCursor(k listKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte(k.created.UTC().Format(time.RFC3339Nano) + " " + k.id))
}

func parseCursor(c string) (listKey, error) {
	bad := func() (listKey, error) {
		return listKey{}, fmt.Errorf("%w: cursor %q is not one a listing gave: pass next_cursor as it came, or no cursor for the first page", ErrInvalid, c)
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return bad()
	}
	ts, id, ok := strings.Cut(string(b), " ")
	if !ok || id == "" {
		return bad()
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return bad()
	}
	return listKey{created: t, id: id}, nil
}
