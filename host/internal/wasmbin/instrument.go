// Package wasmbin rewrites WebAssembly module binaries before sluice
// compiles them, so that one wazero runtime can serve every function while
// still enforcing per-function limits cheaply.
//
// # Interruption
//
// With Options.Interrupt, two mutable i32 globals are appended: the
// interrupt flag (exported as InterruptExport, initially 0) and a private
// countdown (initially YieldInterval). At every function entry and every
// loop header this check is inserted:
//
//	if (flag != 0) unreachable
//	counter = counter - 1
//	if (counter == 0) { counter = YieldInterval; memory.grow 0 }
//
// The host sets the flag to 1 from another goroutine
// (api.MutableGlobal.Set) when a call's deadline passes; the guest traps
// ("unreachable") at its next loop iteration or call. This replaces
// wazero's WithCloseOnContextDone, which makes every loop iteration exit
// to Go (tens of times slower on tight loops) and starts a goroutine per
// call. The flag does not interrupt a host function that blocks: that is
// the host function's business.
//
// The countdown is not optional. Go cannot preempt a goroutine while it
// runs wazero-compiled code, so a guest that never leaves it (a loop with
// no calls into the host) blocks every stop-the-world of the Go runtime:
// a garbage collection started meanwhile waits for the guest, every other
// goroutine stops, including the one that would set the flag, and the
// process hangs for as long as the guest runs (forever for an infinite
// loop). "memory.grow 0" is an effect-free instruction that wazero
// implements by returning to Go, where the scheduler can stop the
// goroutine; doing it every YieldInterval checks bounds how long the guest
// can hold up the rest of the process. A module without a memory gets an
// empty one (0 pages, maximum 0) for this.
//
// # Memory limit
//
// With Options.MaxMemoryPages, the maximum of every memory the module
// defines is clamped to that many pages.
//
// Instrument never panics, whatever its input, and is deterministic.
package wasmbin

import "math"

// InterruptExport is the export name of the interrupt flag global.
const InterruptExport = "__sluice_interrupt"

// StartExport is the export name under which the module's start function
// is exported once its start section has been removed.
const StartExport = "__sluice_start"

// Options says what Instrument does.
type Options struct {
	// MaxMemoryPages clamps the maximum of the memories the module defines to
	// this many 64 KiB pages (and at most 65536, the 32-bit limit). 0 means
	// no clamping. A module whose memory minimum exceeds it is refused with
	// *MemoryTooSmallError. An imported memory is left alone: its limits are
	// the host's business when it provides the memory.
	MaxMemoryPages uint32
	// Interrupt adds the interrupt flag global, exports it as
	// InterruptExport, and inserts a check of it (and of the yield countdown,
	// see the package documentation) at every function entry and every loop
	// header. It also drops the DWARF custom sections (".debug_*"), whose
	// code offsets would be wrong after the rewrite, and adds an empty
	// memory to a module that has none.
	Interrupt bool
}

// Result is the output of Instrument.
type Result struct {
	// Wasm is the rewritten module. It never aliases the input.
	Wasm []byte
	// InterruptGlobal is the export name of the interrupt flag global
	// (InterruptExport), or "" unless Options.Interrupt was set. Setting it
	// to any non-zero value makes the guest trap with "unreachable" at its
	// next check; set it back to 0 before the next call. Set is a plain
	// memory write: calls to Set from different goroutines need their own
	// synchronization.
	InterruptGlobal string
	// StartExport is StartExport if the module had a start section, "" otherwise.
	// Instrument always removes the start section and exports the start
	// function under this name instead: the host must instantiate the module
	// and then call that export (with the interrupt flag live, so a start
	// function that does not return can be stopped). wazero's own start
	// functions (WASI "_start") are unaffected.
	StartExport string
	// Checks is the number of interrupt checks inserted: one per function
	// body plus one per loop.
	Checks int
}

// YieldInterval is how many checks the guest runs between two exits to
// Go (see the package documentation). At about a nanosecond per check in a
// tight loop, an exit every 10,000 checks costs little and keeps the
// guest from delaying a stop-the-world by more than tens of microseconds
// in tight loops; loops with heavier iterations delay it proportionally
// longer, up to 10,000 iterations.
const YieldInterval = 10000

// flagGlobal is the appended interrupt flag: i32, mutable, i32.const 0.
var flagGlobal = []byte{0x7F, 0x01, opI32Const, 0x00, opEnd}

// counterGlobal is the appended countdown: i32, mutable, i32.const
// YieldInterval.
var counterGlobal = append(appendS32([]byte{0x7F, 0x01, opI32Const}, YieldInterval), opEnd)

// emptyMemory is the memory added to a module that has none, so that the
// check has a memory to "grow" by 0 pages: limits {min 0, max 0}.
var emptyMemory = []byte{limitsHasMax, 0x00, 0x00}

// Instrument rewrites the module binary wasm as opts says. Errors wrap
// ErrMalformed (input it cannot decode), ErrUnsupported (memory64, GC
// instructions, components) or ErrReservedExport, or are a
// *MemoryTooSmallError.
func Instrument(wasm []byte, opts Options) (Result, error) {
	m, err := parseModule(wasm)
	if err != nil {
		return Result{}, err
	}
	mems, memChanged, err := clampMemories(m.memories, opts.MaxMemoryPages)
	if err != nil {
		return Result{}, err
	}
	w := &writer{m: m, opts: opts, mems: mems, memChanged: memChanged}
	if opts.Interrupt {
		w.flag = m.importedGlobals + m.definedGlobals
		w.code.check = checkSeq(w.flag, w.flag+1)
	}
	out, err := w.write()
	if err != nil {
		return Result{}, err
	}
	res := Result{Wasm: out, Checks: w.code.checks}
	if opts.Interrupt {
		res.InterruptGlobal = InterruptExport
	}
	if m.hasStart {
		res.StartExport = StartExport
	}
	return res, nil
}

// clampMemories returns the defined memories with their maximum clamped to
// limit pages, and whether any changed.
func clampMemories(mems []memory, limit uint32) ([]memory, bool, error) {
	if limit == 0 || len(mems) == 0 {
		return mems, false, nil
	}
	clampTo := uint64(limit)
	if clampTo > maxPages32 {
		clampTo = maxPages32
	}
	changed := false
	out := make([]memory, len(mems))
	for i, mem := range mems {
		if mem.min > uint64(limit) {
			need := uint32(math.MaxUint32)
			if mem.min < math.MaxUint32 {
				need = uint32(mem.min)
			}
			return nil, false, &MemoryTooSmallError{NeededPages: need, LimitPages: limit}
		}
		if !mem.hasMax || mem.max > clampTo {
			mem.hasMax = true
			mem.max = clampTo
			mem.flags |= limitsHasMax
			changed = true
		}
		out[i] = mem
	}
	return out, changed, nil
}
