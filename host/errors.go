package host

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/errcode"
)

// Errors of loading a module. They are wrapped with the details; test with
// errors.Is.
var (
	// ErrInvalidModule means the bytes are not a valid WebAssembly module.
	ErrInvalidModule = errcode.Sentinel(errcode.InvalidModule, "invalid WebAssembly module")
	// ErrNoABI means the module implements neither sluice ABI, or not the
	// one asked for (it wraps abi.ErrNoABI, abi.ErrImport or
	// abi.ErrSignature).
	ErrNoABI = errcode.Sentinel(errcode.NoABI, "module does not fit the sluice ABI")
	// ErrMemoryTooSmall means the module needs more memory at start than
	// the function's memory limit allows.
	ErrMemoryTooSmall = errcode.Sentinel(errcode.MemoryTooSmall, "memory limit below the module's initial memory")
	// ErrClosed means the function or host was closed; a caller retries on
	// the function's current version.
	ErrClosed = errors.New("function closed")
	// ErrInvalidConfig means a Spec the host cannot run: a limit out of
	// range, an environment variable it cannot pass.
	ErrInvalidConfig = errcode.Sentinel(errcode.InvalidArgument, "invalid function configuration")
)

// Errors of the host's resources: a load or call refused because the host
// has run out of something. They are retryable: the same request may
// succeed once calls end, instances are released, or the operator raised
// the limit.
var (
	// ErrMemoryBudget means the daemon-wide memory budget (compiled code
	// and instances, see Config.WithMemoryBudget) is full of what is in
	// use, with nothing idle left to release.
	ErrMemoryBudget = errcode.Sentinel(errcode.MemoryBudget, "memory budget full")
	// ErrOutOfFiles means the process ran out of file descriptors.
	ErrOutOfFiles = errcode.Sentinel(errcode.OutOfFiles, "out of file descriptors (raise the limit: ulimit -n, LimitNOFILE)")
)

// Errors of a call. A failed call returns a *CallError whose Unwrap gives
// one of these, so callers map them to statuses with errors.Is.
var (
	// ErrTimeout: the call ran past the function's timeout and was stopped.
	ErrTimeout = errcode.Sentinel(errcode.Timeout, "timeout")
	// ErrCanceled: the caller canceled the call and the guest was stopped.
	ErrCanceled = errcode.Sentinel(errcode.Canceled, "canceled")
	// ErrMemoryLimit: the guest failed after its memory reached the limit.
	ErrMemoryLimit = errcode.Sentinel(errcode.MemoryLimit, "memory limit reached")
	// ErrTrap: the guest trapped (unreachable, out-of-bounds access, ...).
	ErrTrap = errcode.Sentinel(errcode.Trap, "trap")
	// ErrExit: the guest exited with a non-zero code.
	ErrExit = errcode.Sentinel(errcode.Exit, "non-zero exit")
	// ErrFunctionFailed: a reactor guest reported failure.
	ErrFunctionFailed = errcode.Sentinel(errcode.FunctionError, "function failed")
	// ErrInputTooLarge and ErrOutputTooLarge: over the function's limits.
	ErrInputTooLarge  = errcode.Sentinel(errcode.InputTooLarge, "input too large")
	ErrOutputTooLarge = errcode.Sentinel(errcode.OutputTooLarge, "output too large")
	// ErrBusy: every slot of the function was taken and its queue of
	// waiting calls full; the call was refused at once, to be retried.
	ErrBusy = errcode.Sentinel(errcode.Busy, "busy")
)

// CallError is the error of a failed call. Its message is one line that
// names the function and says what happened, fit to show a user as is.
type CallError struct {
	// Function is the function's name and Version its version.
	Function string
	Version  int
	// Kind is one of the call error sentinels (ErrTimeout, ErrTrap, ...).
	Kind error
	// Detail says what happened in the guest: the trap message, the error
	// the guest reported, the last lines of its stderr.
	Detail string
	// ExitCode is the guest's exit code when Kind is ErrExit (or when a
	// guest that exited also hit its memory limit).
	ExitCode uint32
	// Limit is the limit that was broken, for ErrTimeout (a time.Duration),
	// ErrMemoryLimit, ErrInputTooLarge and ErrOutputTooLarge (bytes).
	Limit any
	// Code is the guest's own code for its failure (sluice.error_code,
	// ABI 1.2), when it gave one: Kind is ErrFunctionFailed (a reactor
	// that returned non-zero) or ErrExit (a WASI command that exited with
	// a non-zero code).
	Code string
}

// GuestCode returns the guest's own code for its failure, or "": what a
// workflow's retry filters and catch see instead of function_error.
func (e *CallError) GuestCode() string { return e.Code }

// Error implements error.
func (e *CallError) Error() string {
	name := fmt.Sprintf("function %q", e.Function)
	var msg string
	switch e.Kind {
	case ErrTimeout:
		msg = fmt.Sprintf("%s timed out after %s and was stopped (raise --timeout if it needs longer)", name, e.Limit)
	case ErrCanceled:
		msg = fmt.Sprintf("%s was stopped: the call was canceled", name)
	case ErrMemoryLimit:
		msg = fmt.Sprintf("%s ran out of memory: it reached its limit of %s (raise --memory)", name, formatLimit(e.Limit))
	case ErrTrap:
		msg = fmt.Sprintf("%s trapped", name)
	case ErrExit:
		msg = fmt.Sprintf("%s exited with code %d", name, e.ExitCode)
	case ErrFunctionFailed:
		msg = fmt.Sprintf("%s failed", name)
	case ErrInputTooLarge:
		msg = fmt.Sprintf("input too large for %s: the limit is %s (--max-input)", name, formatLimit(e.Limit))
	case ErrOutputTooLarge:
		msg = fmt.Sprintf("%s returned too much output: the limit is %s (--max-output)", name, formatLimit(e.Limit))
	case ErrBusy:
		msg = fmt.Sprintf("%s is busy: all its %v slots (--concurrency) are taken and its queue is full; retry shortly, or raise --concurrency", name, e.Limit)
	case ErrMemoryBudget:
		msg = fmt.Sprintf("%s cannot start: the daemon's memory budget is full of calls in progress; retry shortly, or raise --memory-budget", name)
	default:
		msg = fmt.Sprintf("%s: %v", name, e.Kind)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns the error's kind.
func (e *CallError) Unwrap() error { return e.Kind }

func formatLimit(v any) string {
	switch l := v.(type) {
	case uint64:
		return FormatBytes(l)
	case int:
		return FormatBytes(uint64(l))
	case int64:
		return FormatBytes(uint64(l))
	case time.Duration:
		return l.String()
	}
	return fmt.Sprint(v)
}
