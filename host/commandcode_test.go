package host

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// commandCodeWAT is a WASI command that gives an error code (error_code)
// and then exits with exitCode; an empty code gives none.
func commandCodeWAT(code string, exitCode int) string {
	give := ""
	if code != "" {
		give = fmt.Sprintf("(call $code (i32.const 16) (i32.const %d))", len(code))
	}
	return fmt.Sprintf(`(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "sluice" "error_code" (func $code (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) %q)
  (func (export "_start")
    %s
    (call $exit (i32.const %d))))`, code, give, exitCode)
}

// A WASI command that gives an error code before it exits with a non-zero
// code fails with that code, as a reactor's failure has the code it gave;
// a string that is not a code is dropped and said so; a command that
// exits 0 succeeds whatever code it gave.
func TestCommandErrorCode(t *testing.T) {
	h, _ := newHost(t)
	for _, tc := range []struct {
		name, code string
		exit       int
		want       string // the failure's code; "ok" for a success
		says       string
	}{
		{name: "code then exit 3", code: "card_declined", exit: 3, want: "card_declined", says: "exited with code 3"},
		{name: "no code", exit: 1, want: "", says: "exited with code 1"},
		{name: "not a code", code: "Card Declined", exit: 2, want: "", says: `its error code "Card Declined" was dropped`},
		{name: "code then exit 0", code: "card_declined", exit: 0, want: "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := h.Load(context.Background(), Spec{Name: "cmdcode", Version: 1, Limits: Limits{Concurrency: 1}}, testutil.WAT(t, commandCodeWAT(tc.code, tc.exit)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close(context.Background())
			_, err = invoke(t, f, "")
			if tc.want == "ok" {
				if err != nil {
					t.Fatalf("a command that exits 0 after giving a code: %v", err)
				}
				return
			}
			ce := wantCallError(t, err, ErrExit, tc.says)
			if ce.GuestCode() != tc.want {
				t.Fatalf("code %q, want %q (%v)", ce.GuestCode(), tc.want, err)
			}
		})
	}
}
