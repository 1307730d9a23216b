package daemon

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
)

// TestInvocationPages: GET /v2/invocations pages through a daemon's
// invocations, newest first, while more are invoked between pages (none
// listed twice or skipped), filters them by workflow, statuses, time and
// parent, counts them per status; GET /v1/invocations keeps its bare list
// and gives the cursor in a header; bad values are refused with 400 and
// say what to give.
func TestInvocationPages(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	// in order: mom runs kid, which must exist when mom is created
	for _, w := range []struct{ name, src string }{
		{"kid", "tasks:\n  x: { run: noop }\n"},
		{"mom", "tasks:\n  sub: { run: workflow, inputs: { workflow: kid } }\n"},
		{"sour", "tasks:\n  no: { run: fail, inputs: sour on purpose }\n"},
	} {
		if _, _, err := c.CreateWorkflow(ctx, w.name, []byte("apiVersion: sluice/v1\nkind: Workflow\nname: "+w.name+"\n"+w.src)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(workflow string) *engine.Invocation {
		t.Helper()
		inv, err := c.InvokeWorkflow(ctx, workflow, []byte("null"), client.InvokeOptions{Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		return inv
	}
	for range 5 {
		run("mom")
		run("sour")
	}
	all, err := c.InvocationPage(ctx, client.InvocationFilter{Limit: api.MaxInvocations})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Invocations) != 15 || all.NextCursor != "" ||
		all.Counts[engine.StatusSucceeded] != 10 || all.Counts[engine.StatusFailed] != 5 || all.Counts[engine.StatusRunning] != 0 {
		t.Fatalf("5 moms, their 5 kids and 5 sours: %d listed, next %q, counts %v", len(all.Invocations), all.NextCursor, all.Counts)
	}
	for i, inv := range all.Invocations {
		if i > 0 && inv.Created.After(all.Invocations[i-1].Created) {
			t.Fatalf("not newest first at %d: %v after %v", i, inv.Created, all.Invocations[i-1].Created)
		}
		if (inv.Workflow == "kid") != (inv.Parent != "") || inv.Workflow == "kid" && !strings.HasSuffix(inv.Parent, "/sub") {
			t.Fatalf("invocation %s of %s has parent %q", inv.ID, inv.Workflow, inv.Parent)
		}
	}

	t.Run("pages while invoking", func(t *testing.T) {
		var got []string
		f := client.InvocationFilter{Limit: 4}
		for {
			p, err := c.InvocationPage(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, inv := range p.Invocations {
				got = append(got, inv.ID)
			}
			if p.NextCursor == "" {
				break
			}
			f.Cursor = p.NextCursor
			run("mom")
		}
		var want []string
		for _, inv := range all.Invocations {
			want = append(want, inv.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("by pages of 4:\n%v\nwant\n%v", got, want)
		}
	})

	t.Run("filters", func(t *testing.T) {
		first := all.Invocations[len(all.Invocations)-1].Created
		for _, tc := range []struct {
			query string
			n     int
			want  func(*engine.Invocation) bool
		}{
			{"workflow=sour", 5, func(i *engine.Invocation) bool { return i.Workflow == "sour" }},
			{"status=failed", 5, func(i *engine.Invocation) bool { return i.Status == "failed" && i.Workflow == "sour" }},
			{"status=failed,succeeded&top=true&until=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), 0, func(i *engine.Invocation) bool { return i.Parent == "" }},
			{"status=canceled&status=failed&workflow=mom", 0, nil},
			{"since=1h&workflow=kid&top=true", 0, nil},
			{"since=1h&workflow=kid", 0, func(i *engine.Invocation) bool { return i.Workflow == "kid" }},
			{"until=" + url.QueryEscape(first.Format(time.RFC3339Nano)), 0, nil},
			{"since=" + url.QueryEscape(first.Format(time.RFC3339Nano)) + "&limit=1", 1, nil},
		} {
			var p api.InvocationPage
			status, body, _ := request(t, "GET", "http://"+d.Addr()+"/v2/invocations?"+tc.query, "", nil)
			if status != http.StatusOK || json.Unmarshal([]byte(body), &p) != nil {
				t.Fatalf("%s: %d %s", tc.query, status, body)
			}
			n := tc.n
			if tc.want != nil && n == 0 {
				n = -1 // at least one, each as wanted
			}
			if n >= 0 && len(p.Invocations) != n || n < 0 && len(p.Invocations) == 0 {
				t.Fatalf("%s: %d invocations, want %d", tc.query, len(p.Invocations), tc.n)
			}
			for _, inv := range p.Invocations {
				if tc.want != nil && !tc.want(inv) {
					t.Fatalf("%s: listed %s of %s, %s, parent %q", tc.query, inv.ID, inv.Workflow, inv.Status, inv.Parent)
				}
			}
		}
	})

	t.Run("v1 keeps its list", func(t *testing.T) {
		var list []*engine.Invocation
		status, body, h := request(t, "GET", "http://"+d.Addr()+"/v1/invocations?limit=2&workflow=sour", "", nil)
		if status != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list) != 2 || h.Get(api.NextCursorHeader) == "" {
			t.Fatalf("v1: %d %s, next %q", status, body, h.Get(api.NextCursorHeader))
		}
		q := "limit=2&workflow=sour&cursor=" + h.Get(api.NextCursorHeader)
		status, body, _ = request(t, "GET", "http://"+d.Addr()+"/v1/invocations?"+q, "", nil)
		var next []*engine.Invocation
		if status != http.StatusOK || json.Unmarshal([]byte(body), &next) != nil || len(next) != 2 || next[0].ID == list[1].ID {
			t.Fatalf("v1's next page: %d %s", status, body)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct{ query, says string }{
			{"status=done", `status=\"done\": want running, succeeded, failed, canceled, compensating, compensated, catching`},
			{"since=yesterday", `since=\"yesterday\": want an RFC 3339 time (2026-12-01T10:00:00Z) or a positive duration before now`},
			{"until=-1h", `until=\"-1h\"`},
			{"since=1h&until=2h", "is not before until"},
			{"limit=0", `limit=\"0\": want a number from 1 to 1000`},
			{"limit=1001", "want a number from 1 to 1000"},
			{"cursor=nonsense", `cursor \"nonsense\" is not one a listing gave: pass next_cursor as it came`},
			{"top=maybe", `top=\"maybe\": want true`},
			{"counts=some", `counts=\"some\": want true or false`},
		} {
			status, body, _ := request(t, "GET", "http://"+d.Addr()+"/v2/invocations?"+tc.query, "", nil)
			if status != http.StatusBadRequest || !strings.Contains(body, tc.says) || !strings.Contains(body, `"invalid_argument"`) {
				t.Fatalf("%s: %d %s, want 400 saying %s", tc.query, status, body, tc.says)
			}
		}
	})
}
