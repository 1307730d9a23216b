package redrive

import "github.com/sluicehq/sluice/errcode"

// Errors of reading and redriving dead letters.
var (
	// ErrInvalid: the request is malformed (no sequence given, a bad
	// topic name, a limit out of range).
	ErrInvalid = errcode.Sentinel(errcode.InvalidArgument, "invalid")
	// ErrAlreadyRedriven: every letter asked for was redriven already, or
	// is being redriven now; the message says when and by whom.
	ErrAlreadyRedriven = errcode.Sentinel(errcode.Conflict, "already redriven")
)
