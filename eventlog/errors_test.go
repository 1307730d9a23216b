package eventlog

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/errcode"
)

// TestErrorCodes: every error of the contract carries the code a caller
// (the HTTP API) answers with, through wrapping.
func TestErrorCodes(t *testing.T) {
	for err, want := range map[error]errcode.Code{
		ErrNotConnected: errcode.Unavailable,
		ErrClosed:       errcode.Unavailable,
		ErrNotFound:     errcode.NotFound,
		ErrTooLarge:     errcode.PayloadTooLarge,
		ErrInvalidName:  errcode.InvalidArgument,
		ErrUnsupported:  errcode.BadRequest,
	} {
		wrapped := fmt.Errorf("blob resize.3: %w", err)
		if got := errcode.Of(wrapped); got != want {
			t.Errorf("%v: code %s, want %s", err, got, want)
		}
		if !errors.Is(wrapped, err) {
			t.Errorf("%v: not found by errors.Is once wrapped", err)
		}
	}
}
