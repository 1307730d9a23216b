package engine

import "errors"

// Errors of the engine's operations.
var (
	// ErrNotFound: no such invocation or workflow.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a definition or an input that cannot be used.
	ErrInvalid = errors.New("invalid")
	// ErrConflict: the operation does not fit the invocation's state
	// (cancelling a finished one).
	ErrConflict = errors.New("conflict")
	// ErrLimit: an evaluation went over one of its limits (steps, bytes,
	// time); the task (or the invocation, for its output) fails with a
	// message naming the expression and the limit.
	ErrLimit = errors.New("over a limit")
	// ErrTooLarge: a value over the largest a workflow carries
	// (Options.MaxValue, sluice daemon --max-value); the message says
	// which value and the limit.
	ErrTooLarge = errors.New("value too large")
)

// tooLargeError is an ErrTooLarge with its own message.
type tooLargeError struct{ msg string }

func (e *tooLargeError) Error() string        { return e.msg }
func (e *tooLargeError) Is(target error) bool { return target == ErrTooLarge }
