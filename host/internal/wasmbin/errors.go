package wasmbin

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrMalformed is wrapped by every error Instrument returns for input it
// cannot decode: a bad header, a truncated or oversized section, an invalid
// LEB128 number, an unknown opcode. The wrapping error says where (section,
// function index, byte offset in the input).
var ErrMalformed = errors.New("wasmbin: malformed module")

// ErrUnsupported is wrapped by every error Instrument returns for a
// well-formed module that uses a feature Instrument deliberately does not
// handle: memory64, custom page sizes, GC instructions (0xFB prefix) and the
// component-model binary format.
var ErrUnsupported = errors.New("wasmbin: unsupported feature")

// ErrReservedExport is wrapped by the error Instrument returns when the module
// already exports a name Instrument needs (InterruptExport, CountdownExport
// or StartExport).
var ErrReservedExport = errors.New("wasmbin: export name reserved by sluice")

// MemoryTooSmallError is returned by Instrument when the minimum (initial)
// size of a memory the module defines is above Options.MaxMemoryPages: the
// module could never be instantiated under that limit.
type MemoryTooSmallError struct {
	// NeededPages is the memory's declared minimum, in 64 KiB pages.
	NeededPages uint32
	// LimitPages is Options.MaxMemoryPages.
	LimitPages uint32
}

// Error implements error. The message gives both sizes in MiB and pages and
// says how to resolve it.
func (e *MemoryTooSmallError) Error() string {
	return fmt.Sprintf("module needs at least %s MiB of memory at start but the limit is %s MiB "+
		"(%d pages of 64 KiB needed, %d allowed): raise the function's memory limit or build the module with a smaller initial memory",
		pagesToMiB(e.NeededPages), pagesToMiB(e.LimitPages), e.NeededPages, e.LimitPages)
}

// TablesTooLargeError is returned by Instrument when the tables a module
// defines start with more elements than Options.MaxTableElements.
type TablesTooLargeError struct {
	// Elements is what the tables hold at start, together; Limit is
	// Options.MaxTableElements.
	Elements, Limit uint64
}

// Error implements error.
func (e *TablesTooLargeError) Error() string {
	return fmt.Sprintf("module's tables start with %d elements but the limit is %d", e.Elements, e.Limit)
}

// pagesToMiB formats a number of 64 KiB pages as MiB, without a fraction
// when the number is whole.
func pagesToMiB(pages uint32) string {
	if pages%16 == 0 {
		return strconv.FormatUint(uint64(pages/16), 10)
	}
	return strconv.FormatFloat(float64(pages)/16, 'f', -1, 64)
}

// malformedf returns an error wrapping ErrMalformed. where names the place
// (e.g. "import section") and off is the byte offset in the input.
func malformedf(where string, off int, format string, args ...any) error {
	return fmt.Errorf("%w: %s: offset %#x: %s", ErrMalformed, where, off, fmt.Sprintf(format, args...))
}

// unsupportedf returns an error wrapping ErrUnsupported, located like malformedf.
func unsupportedf(where string, off int, format string, args ...any) error {
	return fmt.Errorf("%w: %s: offset %#x: %s", ErrUnsupported, where, off, fmt.Sprintf(format, args...))
}
