package host

import (
	"context"
	"slices"
	"testing"
)

// A reactor's status and headers belong to its call: the next call on the
// same instance starts with none, a call that fails returns none, and one
// whose response was refused leaves the instance in the pool.
func TestHTTPResponsePerCall(t *testing.T) {
	h, _ := newHost(t)
	f := load(t, h, "http-wat", Spec{Limits: Limits{Concurrency: 1}})
	ok := func(in string) Result {
		t.Helper()
		res, err := invoke(t, f, in)
		if err != nil {
			t.Fatalf("invoke %q: %v", in, err)
		}
		return res
	}
	res := ok("ok")
	if res.Status != 201 || !slices.Equal(res.Header["Set-Cookie"], []string{"a=1", "b=2"}) || res.Header["Location"][0] != "/files/" {
		t.Fatalf("first call: %d %v", res.Status, res.Header)
	}
	res = ok("bad")
	if res.Status != 400 || len(res.Header) != 1 || res.Header["Content-Type"][0] != "application/json" {
		t.Fatalf("second call on the instance: %d %v, want 400 and its Content-Type alone", res.Status, res.Header)
	}
	for in, says := range map[string]string{
		"s": "sluice.http_status: 1000 is not an HTTP status",
		"r": "sluice.http_header: the value of header X-Evil holds the control byte '\\r'",
		"n": "sluice.http_header: more than 100 response header values",
	} {
		res, err := invoke(t, f, in)
		wantCallError(t, err, ErrFunctionFailed, says)
		if res.Status != 0 || res.Header != nil {
			t.Fatalf("%q: a failed call returned %d %v", in, res.Status, res.Header)
		}
	}
	res, err := invoke(t, f, "fail")
	wantCallError(t, err, ErrFunctionFailed, "refused")
	if res.Status != 0 {
		t.Fatalf("a failed call returned the status it set: %d", res.Status)
	}
	if res := ok("ok"); res.Status != 201 || len(res.Header["Set-Cookie"]) != 2 {
		t.Fatalf("after the refused calls: %d %v", res.Status, res.Header)
	}
	if st := f.Stats(); st.ColdStarts != 1 {
		t.Fatalf("%d cold starts, want 1: the instance stays in the pool after refused responses", st.ColdStarts)
	}
	// a module that sets nothing answers no status and no headers
	echo := load(t, h, "echo-wat", Spec{})
	if res, err := echo.Invoke(context.Background(), Call{Input: []byte("x")}); err != nil || res.Status != 0 || res.Header != nil {
		t.Fatalf("echo: %d %v %v", res.Status, res.Header, err)
	}
}
