package httperr

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/catalog"
)

// A refused delete answers 409 conflict with its dependents as data,
// and an overload 503 with Retry-After.
func TestWrite(t *testing.T) {
	inUse := &catalog.InUseError{Kind: "function", Name: "price", Dependents: []catalog.Dependent{{Kind: "workflow", Name: "order"}, {Kind: "trigger", Name: "t1"}}}
	w := httptest.NewRecorder()
	Write(w, fmt.Errorf("while deleting: %w", inUse))
	var body Body
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := Body{Error: `while deleting: function "price" is used by workflow "order" and trigger "t1": delete them first, or delete with --force`,
		Code: "conflict", Dependents: inUse.Dependents}
	if w.Code != http.StatusConflict || !reflect.DeepEqual(body, want) {
		t.Fatalf("%d %+v, want 409 %+v", w.Code, body, want)
	}
	w = httptest.NewRecorder()
	Write(w, &Error{Status: http.StatusServiceUnavailable, Code: "overloaded", Msg: "busy", RetryAfter: 1500 * time.Millisecond})
	if w.Code != 503 || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("overload: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if err := ReadError("input", fmt.Errorf("read: %w", &Error{Status: 408, Code: "request_timeout", Msg: "slow"})); err.(*Error).Status != 408 {
		t.Fatalf("a body read's own answer was lost: %v", err)
	}
	if status, code := Classify(ReadError("input", fmt.Errorf("unexpected EOF"))); status != 400 || code != "bad_request" {
		t.Fatalf("a failed read: %d %s", status, code)
	}
}
