// Package wasmbin rewrites WebAssembly module binaries before sluice
// compiles them, so that one wazero runtime can serve every function while
// still enforcing per-function limits cheaply.
//
// # Interruption
//
// With Options.Interrupt, two mutable i32 globals are appended: the
// interrupt flag (exported as InterruptExport, initially 0) and the
// countdown (exported as CountdownExport, initially YieldInterval); and
// every function that has a loop gets one more i32 local, its loop
// counter, which is 0 at every call. This check is inserted at every
// function entry:
//
//	countdown = countdown - 1
//	if (countdown <= 0) {
//	  countdown = YieldInterval
//	  if (flag != 0) unreachable
//	  memory.grow 0
//	}
//
// and this one at every loop header:
//
//	counter = counter + 1
//	if (counter >= YieldInterval) {
//	  counter = 0
//	  if (flag != 0) unreachable
//	  memory.grow 0
//	}
//
// The host sets the flag to 1, then the countdown to 0, from another
// goroutine (api.MutableGlobal.Set) when a call's deadline passes; the
// guest traps ("unreachable") at its next entry into one of its
// functions or, in a
// function with a loop, its next call of the host (see below), and at
// the latest after YieldInterval more iterations of the loops of the
// function it is running (all its loops counted together). This replaces
// wazero's WithCloseOnContextDone, which makes every loop iteration exit
// to Go (tens of times slower on tight loops) and starts a goroutine per
// call. The flag does not interrupt a host function that blocks: that is
// the host function's business.
//
// The loop check reads the flag only every YieldInterval iterations so
// that its usual path is a register increment, compare and branch: wazero
// keeps globals in memory and locals in registers, and a global read and
// written at every iteration chains the iterations through memory, which
// made tight loops more than twice as slow. (The slow path branches back to
// the loop header rather than rejoining the loop body, which keeps
// wazero from reloading the loop's registers from the stack at every
// iteration.) What the check costs in practice is mostly not its
// instructions but its slow path's exit to Go: that is a call, and
// wazero v1.12's register allocator stores a value the loop carries at
// every back edge once the value is live across any call. A Go function
// is one loop that every jump of the Go code goes through, so a Go guest
// pays about three more stores per jump (bench/results/instrumentation.txt
// measures it: about half of upper-go's checks). The exit cannot go (see
// the countdown below); a cheaper scheme is the allocator's to make.
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
// A loop counter alone would not bound it: a function whose loops run
// fewer than YieldInterval iterations per call never reaches its slow
// path, and if it is called from a loop, only the calls would count. So
// the iterations a function counts are charged to the countdown
// ("countdown = countdown - counter; counter = 0") before it calls a
// function the module defines, whose entry check then tests the
// countdown, and before every way out of it (return, a branch to the
// function's label, its end, a tail call, a throw), where the countdown
// is tested at once, with the flag in the slow path. Between two exits to
// Go, a guest thus runs about 2 × YieldInterval checks (function entries
// and charged iterations), plus fewer than YieldInterval uncharged
// iterations in each call in progress. Calls through a table or a
// function reference (call_indirect, call_ref) do not charge the
// caller's count, since the callee may be a host function without an
// entry check, and exceptions unwinding a call lose its count: a
// recursion through indirect calls whose every level loops thousands of
// times before recursing can run up to YieldInterval such iterations per
// level before an exit. In a function with a loop, a call of the host
// (direct, or maybe indirect) and an instruction that can take long (bulk
// memory and table operations, atomic waits) are preceded by a check of
// the flag alone, so that a loop whose iterations wait in the host or copy
// megabytes does not run thousands of them after an interrupt.
//
// The entry check tests the flag only on its slow path: the usual path is
// one global's decrement and test, where testing the flag at every entry
// too cost a Go guest, which enters thousands of functions per call, a
// tenth of its instrumentation. The host's 0 makes the next check take
// the slow path. The guest's own decrement is not atomic: one that read
// the countdown just before the host wrote it writes back a count that
// undoes the host's 0, and the guest then finds the flag at the latest
// YieldInterval checks later, as a loop does.
//
// A function that cannot get a local (it has 2^32-1 locals already, or its
// type cannot be read from the type section) has its loops checked the
// old way: with the function entry check, the flag and the countdown at
// every iteration.
//
// # Memory limit
//
// With Options.MaxMemoryPages, the maximum of every memory the module
// defines is clamped to that many pages.
//
// With Options.MaxTableElements, the tables the module defines may hold
// that many elements together: a module whose tables start larger is
// refused, and the maximum of every table is clamped to its minimum, so
// that table.grow fails (returns -1, as the spec allows) rather than take
// memory the limit does not cover. wazero holds 8 bytes per element: a
// 128-byte module declaring a table of 2^27 elements took 1 GiB of heap
// per instance.
// Toolchains size their tables at link time and never grow them.
//
// # Limits
//
// Check reads a module once, allocating nothing in proportion to the
// counts it declares, and refuses one over its Limits: too many
// functions, locals, types, globals, elements, ...; a body too large; or
// nesting and branch tables that would make wazero's compiler take
// seconds per function (its time grows with the square of nesting depth).
// The host runs it before Instrument and before wazero sees the module:
// wazero's decoder allocates every vector by its declared length, so 94
// bytes declaring 2^32-2 locals were enough to end the process.
// DefaultLimits documents each limit with the measurements behind it.
//
// Instrument and Check never panic, whatever their input, and are
// deterministic.
package wasmbin

import "math"

// InterruptExport is the export name of the interrupt flag global.
const InterruptExport = "__sluice_interrupt"

// CountdownExport is the export name of the countdown global, which the
// host sets to 0 after raising the flag so that the guest's next check
// looks at the flag.
const CountdownExport = "__sluice_countdown"

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
	// MaxTableElements bounds the elements of the tables the module
	// defines, together: 0 means no bound. A module whose tables start
	// with more is refused with *TablesTooLargeError; with a bound, every
	// table's maximum is clamped to its minimum. An imported table is left
	// alone.
	MaxTableElements uint64
	// Interrupt adds the interrupt flag and countdown globals, exports
	// them as InterruptExport and CountdownExport, and inserts a check of it (and of the yield countdown,
	// see the package documentation) at every function entry and every loop
	// header, with a counter local in every function that has a loop. It
	// also drops the DWARF custom sections (".debug_*"), whose code offsets
	// would be wrong after the rewrite, and adds an empty memory to a
	// module that has none.
	Interrupt bool
	// Snapshot exports the module's mutable globals under
	// GlobalExportPrefix and reports whether instances of it can be made
	// from a snapshot (see the section on snapshots in snapshot.go).
	Snapshot bool
	// CoalesceData merges the module's data segments into as few as
	// possible when nothing can tell (see the section on data segments in
	// data.go): memory after instantiation is the same, byte for byte.
	CoalesceData bool
}

// Result is the output of Instrument.
type Result struct {
	// Wasm is the rewritten module. It never aliases the input.
	Wasm []byte
	// InterruptGlobal is the export name of the interrupt flag global
	// (InterruptExport), or "" unless Options.Interrupt was set. Setting it
	// to any non-zero value, then CountdownGlobal to 0, makes the guest
	// trap with "unreachable" at its next check (see the package
	// documentation); set it back to 0 before the next call. Set is a
	// plain memory write: calls to Set from different goroutines need
	// their own synchronization.
	InterruptGlobal string
	// CountdownGlobal is the export name of the countdown global
	// (CountdownExport), or "" unless Options.Interrupt was set.
	CountdownGlobal string
	// StartExport is StartExport if the module had a start section, "" otherwise.
	// Instrument always removes the start section and exports the start
	// function under this name instead: the host must instantiate the module
	// and then call that export (with the interrupt flag live, so a start
	// function that does not return can be stopped). wazero's own start
	// functions (WASI "_start") are unaffected.
	StartExport string
	// Checks is the number of interrupt checks inserted: one per function
	// body plus one per loop (the flushes of the loop counters are not
	// counted).
	Checks int
	// Globals are, with Options.Snapshot, the mutable globals the module
	// defines, exported for the host to read and set (the interrupt flag
	// and countdown Instrument adds are not among them). Empty when
	// NoSnapshot is set.
	Globals []Global
	// NoSnapshot says, with Options.Snapshot, why instances of the module
	// cannot be made from a snapshot ("" if they can): "function 12 uses
	// table.grow".
	NoSnapshot string
	// GoRuntime is, with Options.Snapshot, whether the module was built by
	// the Go toolchain (it has a "go:buildid" custom section): a snapshot
	// knows the layout of its runtime's random generators.
	GoRuntime bool
	// DataSegments and MergedSegments are, with Options.CoalesceData, the
	// number of data segments in the input and in the output when they
	// were merged (both 0 when they were not).
	DataSegments, MergedSegments int
}

// YieldInterval is about how many checks (function entries and loop
// iterations) the guest runs between two exits to Go, and how many loop
// iterations it may run after the interrupt flag is set (see the package
// documentation). At about a nanosecond per iteration of a tight loop, an
// exit every 10,000 costs little and keeps the guest from delaying a
// stop-the-world by more than tens of microseconds in tight loops; loops
// with heavier iterations delay it proportionally longer.
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
	return instrument(wasm, opts, maxLocals)
}

// instrument is Instrument with the bound on the locals of a function given
// a counter local (see codeRewriter.maxLocals) as a parameter.
func instrument(wasm []byte, opts Options, localLimit uint64) (Result, error) {
	m, err := parseModule(wasm)
	if err != nil {
		return Result{}, err
	}
	mems, memChanged, err := clampMemories(m.memories, opts.MaxMemoryPages)
	if err != nil {
		return Result{}, err
	}
	tables, tablesChanged, err := clampTables(m.tables, opts.MaxTableElements)
	if err != nil {
		return Result{}, err
	}
	w := &writer{m: m, opts: opts, mems: mems, memChanged: memChanged, tables: tables, tablesChanged: tablesChanged}
	if opts.Snapshot {
		if w.snap, err = planSnapshot(m); err != nil {
			return Result{}, err
		}
	}
	if opts.CoalesceData {
		w.data = planData(m)
	}
	if opts.Interrupt {
		w.flag = m.importedGlobals + m.definedGlobals
		w.code.check = checkSeq(w.flag, w.flag+1)
		w.code.flag = w.flag
		w.code.counter = w.flag + 1
		w.code.imports = m.importedFuncs
		w.code.params, w.code.types = m.funcParams()
		w.code.maxLocals = localLimit
	}
	out, err := w.write()
	if err != nil {
		return Result{}, err
	}
	res := Result{Wasm: out, Checks: w.code.checks, Globals: w.snap.globals, NoSnapshot: w.snap.refusal, GoRuntime: w.snap.goRuntime}
	if opts.Interrupt {
		res.InterruptGlobal, res.CountdownGlobal = InterruptExport, CountdownExport
	}
	if w.data != nil {
		res.DataSegments, res.MergedSegments = w.data.before, len(w.data.segments)
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

// clampTables returns the defined tables with their maximum clamped to
// their minimum, and whether any changed, or an error if together they
// start with more than limit elements (0: no limit, nothing clamped).
func clampTables(tables []table, limit uint64) ([]table, bool, error) {
	if limit == 0 || len(tables) == 0 {
		return tables, false, nil
	}
	var total uint64
	for _, t := range tables {
		total += t.min
	}
	if total > limit {
		return nil, false, &TablesTooLargeError{Elements: total, Limit: limit}
	}
	changed := false
	out := make([]table, len(tables))
	for i, t := range tables {
		if !t.hasMax || t.max != t.min {
			t.hasMax, t.max = true, t.min
			t.flags |= limitsHasMax
			changed = true
		}
		out[i] = t
	}
	return out, changed, nil
}
