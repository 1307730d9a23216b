package eventlog

import "github.com/sluicehq/sluice/errcode"

// Errors of the contract. Implementations wrap them with what was being
// done; test with errors.Is.
var (
	// ErrNotConnected: the connection to the broker is down (it is being
	// re-established) and the operation could not wait.
	ErrNotConnected = errcode.Sentinel(errcode.Unavailable, "not connected to the broker")
	// ErrClosed: the Log was closed.
	ErrClosed = errcode.Sentinel(errcode.Unavailable, "event log closed")
	// ErrNotFound: a blob with that name does not exist.
	ErrNotFound = errcode.Sentinel(errcode.NotFound, "not found")
	// ErrTooLarge: a message over Features.MaxPayload.
	ErrTooLarge = errcode.Sentinel(errcode.PayloadTooLarge, "message too large for the broker")
	// ErrInvalidName: a stream, queue or blob name the contract does not
	// allow (see ValidName).
	ErrInvalidName = errcode.Sentinel(errcode.InvalidArgument, "invalid stream name")
	// ErrUnsupported: the implementation does not offer the operation
	// (see Features). Asking again will not help: a bad request for
	// this broker.
	ErrUnsupported = errcode.Sentinel(errcode.BadRequest, "not supported by this broker")
)

// ValidName tells whether a name may name a stream, a queue or a blob:
// 1 to 255 letters, digits, '.', '-' and '_', not starting or ending with
// '.', without "..".
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 255 || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if s[i+1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}
