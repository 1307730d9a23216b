package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/internal/catalog"
)

// Limits of GET /v1/invocations and /v2/invocations.
const (
	// DefaultInvocations is how many invocations a listing shows.
	DefaultInvocations = 100
	// MaxInvocations bounds a listing: invocations carry their input and
	// output (up to engine.MaxData each), and a listing of everything
	// retained once answered 61 MB.
	MaxInvocations = 1000
)

// NextCursorHeader carries, in an answer of GET /v1/invocations, the
// cursor of the next page (none on the last): the v1 answer is a bare
// list, kept as it was for the clients that read it.
const NextCursorHeader = "X-Sluice-Next-Cursor"

// InvocationPage is what GET /v2/invocations answers: a page of
// invocations without their tasks, newest first.
type InvocationPage struct {
	Invocations []*engine.Invocation `json:"invocations"`
	// NextCursor, given as cursor=, lists the next page; none on the
	// last.
	NextCursor string `json:"next_cursor,omitempty"`
	// Counts are the invocations of each status (engine.ListStatuses)
	// the filter keeps but for its statuses and cursor: running
	// includes compensating and catching, failed includes compensated.
	// None with counts=false.
	Counts map[string]int `json:"counts,omitempty"`
	// Since and Until are the bounds the listing used, as times: a
	// duration given ("1h") is resolved on the daemon's clock, and the
	// next pages ask with these to keep the same range.
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// listInvocations answers GET /v1/invocations: a bare list, as before
// paging (the next page's cursor is in NextCursorHeader), without counts.
func (s *Server) listInvocations(w http.ResponseWriter, r *http.Request, b *Backend) {
	p, _ := invocationPage(w, r, b, false)
	if p == nil {
		return
	}
	if p.Next != "" {
		w.Header().Set(NextCursorHeader, p.Next)
	}
	errcode.WriteJSON(w, http.StatusOK, p.Invocations)
}

// listInvocationPage answers GET /v2/invocations: an InvocationPage.
func (s *Server) listInvocationPage(w http.ResponseWriter, r *http.Request, b *Backend) {
	counts := true
	if v := r.URL.Query().Get("counts"); v != "" {
		var err error
		if counts, err = strconv.ParseBool(v); err != nil {
			errcode.Write(w, fmt.Errorf("%w: counts=%q: want true or false", catalog.ErrInvalid, v))
			return
		}
	}
	p, f := invocationPage(w, r, b, counts)
	if p == nil {
		return
	}
	out := InvocationPage{Invocations: p.Invocations, NextCursor: p.Next, Counts: p.Counts}
	if !f.Since.IsZero() {
		out.Since = &f.Since
	}
	if !f.Until.IsZero() {
		out.Until = &f.Until
	}
	errcode.WriteJSON(w, http.StatusOK, out)
}

// invocationPage lists the page a request asks for, or answers why not
// and returns nil.
func invocationPage(w http.ResponseWriter, r *http.Request, b *Backend, counts bool) (*engine.Page, engine.ListFilter) {
	var f engine.ListFilter
	e := engineOf(w, b)
	if e == nil {
		return nil, f
	}
	f, err := invocationFilter(r.URL.Query(), time.Now())
	if err != nil {
		errcode.Write(w, err)
		return nil, f
	}
	f.Counts = counts
	p, err := e.ListPage(f)
	if err != nil {
		errcode.Write(w, engineError(err))
		return nil, f
	}
	return p, f
}

// invocationFilter reads a listing's query: workflow, status (repeated or
// comma-separated), since and until (RFC 3339 times, or durations before
// now), top, limit and cursor.
func invocationFilter(q url.Values, now time.Time) (engine.ListFilter, error) {
	f := engine.ListFilter{Workflow: q.Get("workflow"), Limit: DefaultInvocations, Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxInvocations {
			return f, fmt.Errorf("%w: limit=%q: want a number from 1 to %d", catalog.ErrInvalid, v, MaxInvocations)
		}
		f.Limit = n
	}
	for _, v := range q["status"] {
		for st := range strings.SplitSeq(v, ",") {
			if st = strings.TrimSpace(st); st == "" {
				continue
			}
			if !slices.Contains(engine.ListStatuses, st) {
				return f, fmt.Errorf("%w: status=%q: want %s (several: status=failed,canceled or status= again)",
					catalog.ErrInvalid, st, strings.Join(engine.ListStatuses, ", "))
			}
			f.Statuses = append(f.Statuses, st)
		}
	}
	var err error
	if f.Since, err = when("since", q.Get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = when("until", q.Get("until"), now); err != nil {
		return f, err
	}
	if v := q.Get("top"); v != "" {
		if f.Top, err = strconv.ParseBool(v); err != nil {
			return f, fmt.Errorf("%w: top=%q: want true (only invocations that are not a child workflow's) or false", catalog.ErrInvalid, v)
		}
	}
	return f, nil
}

// when reads since= or until=: an RFC 3339 time, or a duration before
// now ("1h": an hour ago).
func when(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: %s=%q: want an RFC 3339 time (2026-12-01T10:00:00Z) or a positive duration before now (90s, 30m, 1h, 24h)",
		catalog.ErrInvalid, name, v)
}
