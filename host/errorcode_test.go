package host

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// codeWAT fails every call with the message "declined" and, as the code,
// the call's input (error_code); an input starting with "ok" succeeds
// after giving a code, which is then not the call's.
const codeWAT = `(module
  (import "sluice" "fail" (func $fail (param i32 i32)))
  (import "sluice" "error_code" (func $code (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "declined")
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $p i32) (param $n i32) (result i32)
    (call $code (local.get $p) (local.get $n))
    (if (i32.and (i32.ge_u (local.get $n) (i32.const 2))
                 (i32.eq (i32.load16_u (local.get $p)) (i32.const 0x6b6f)))
      (then (return (i32.const 0))))
    (call $fail (i32.const 0) (i32.const 8))
    (i32.const 1)))`

// A guest's own code rides on its failure: kept when it is a code,
// dropped (and said so) when not, never on a success, never on the next
// call.
func TestGuestErrorCode(t *testing.T) {
	h, _ := newHost(t)
	f, err := h.Load(context.Background(), Spec{Name: "coder", Version: 1, Limits: Limits{Concurrency: 1}}, testutil.WAT(t, codeWAT))
	if err != nil {
		t.Fatal(err)
	}
	_, err = invoke(t, f, "card_declined")
	ce := wantCallError(t, err, ErrFunctionFailed, "declined")
	if ce.GuestCode() != "card_declined" {
		t.Fatalf("code %q, want card_declined", ce.GuestCode())
	}
	_, err = invoke(t, f, "Card Declined")
	ce = wantCallError(t, err, ErrFunctionFailed, `its error code "Card Declined" was dropped`)
	if ce.GuestCode() != "" {
		t.Fatalf("a code that is not one was kept: %q", ce.GuestCode())
	}
	if _, err := invoke(t, f, "ok_code"); err != nil {
		t.Fatalf("a call that succeeds after giving a code: %v", err)
	}
	_, err = invoke(t, f, "x")
	if ce = wantCallError(t, err, ErrFunctionFailed); ce.GuestCode() != "x" {
		t.Fatalf("code %q, want x (the last call's)", ce.GuestCode())
	}
}
