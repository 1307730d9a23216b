package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestIdempotencyConflict: an invocation id (the API's Idempotency-Key)
// given again with the same workflow and input returns the invocation it
// names; with another input or another workflow it is a conflict that
// says so and when the id was used, also for an input stored apart
// (compared by its sha256) and after a restart (the input read back from
// the log).
func TestIdempotencyConflict(t *testing.T) {
	r := newRig(t, false)
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: same\ntasks:\n  x: { run: noop, inputs: \"${ input }\" }\n")
	r.defs.put(t, "apiVersion: sluice/v1\nkind: Workflow\nname: other\ntasks:\n  x: { run: noop, inputs: \"${ input }\" }\n")
	ctx := context.Background()
	big := bytes.Repeat([]byte("a"), MaxData+10) // stored apart
	bigOther := bytes.Clone(big)
	bigOther[len(bigOther)-1] = 'b'
	invoke := func(workflow, id string, in []byte, f InputFormat) (*Invocation, error) {
		return r.e.Invoke(ctx, workflow, in, InvokeOptions{ID: id, Input: f})
	}
	for _, c := range []struct {
		id     string
		in     []byte
		format InputFormat
	}{
		{"json-1", []byte(` {"a": 1} `), InputJSON},
		{"text-1", []byte("hello"), InputString},
		{"none-1", nil, InputJSON},
		{"big-1", big, InputString},
	} {
		first, err := invoke("same", c.id, c.in, c.format)
		if err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		if _, err := r.e.Wait(ctx, first.ID); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			name     string
			workflow string
			id       string
			in       []byte
			format   InputFormat
			conflict string
		}{
			{"same json", "same", "json-1", []byte(` {"a": 1} `), InputJSON, ""},
			{"json spaced otherwise", "same", "json-1", []byte(`{"a": 1}`), InputJSON, "with another input"},
			{"other json", "same", "json-1", []byte(`{"a": 2}`), InputJSON, "with another input"},
			{"same text", "same", "text-1", []byte("hello"), InputString, ""},
			{"other text", "same", "text-1", []byte("hellO"), InputString, "with another input"},
			{"same none", "same", "none-1", nil, InputJSON, ""},
			{"null for none", "same", "none-1", []byte("null"), InputJSON, "with another input"},
			{"same large", "same", "big-1", big, InputString, ""},
			{"other large", "same", "big-1", bigOther, InputString, "with another input"},
			{"other workflow", "other", "json-1", []byte(` {"a": 1} `), InputJSON, "runs workflow same, not other"},
		} {
			inv, err := invoke(c.workflow, c.id, c.in, c.format)
			if c.conflict == "" {
				if err != nil || inv.ID != c.id || inv.Status != StatusSucceeded {
					t.Fatalf("%s, %s: %v %+v, want the existing invocation", when, c.name, err, inv)
				}
				continue
			}
			if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), c.conflict) ||
				!strings.Contains(err.Error(), "invocation "+c.id+" exists (created 20") {
				t.Fatalf("%s, %s: error %v, want a conflict saying %q and when", when, c.name, err, c.conflict)
			}
		}
	}
	check("live")
	r.restart()
	check("after a restart")
}
