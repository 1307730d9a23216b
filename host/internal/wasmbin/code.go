package wasmbin

import (
	"fmt"
	"math"
	"slices"
)

// Opcodes the instrumentation emits or looks for.
const (
	opUnreachable = 0x00
	opIf          = 0x04
	opElse        = 0x05
	opEnd         = 0x0B
	opBr          = 0x0C
	opDrop        = 0x1A
	opLocalGet    = 0x20
	opLocalSet    = 0x21
	opLocalTee    = 0x22
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI32LtU      = 0x49
	opI32LeS      = 0x4C
	opI32Add      = 0x6A
	opI32Sub      = 0x6B
	blockEmpty    = 0x40
	valI32        = 0x7F
)

// checkSeq returns the check inserted at every function entry (and at the
// loop headers of a function that cannot get a counter local, see
// rewriteBody), for interrupt flag global flag and countdown global
// counter:
//
//	global.get $counter
//	i32.const 1
//	i32.sub
//	global.set $counter
//	global.get $counter
//	i32.const 0
//	i32.le_s
//	if                            ;; the budget of YieldInterval is spent,
//	  i32.const YieldInterval     ;; or the host set it to 0:
//	  global.set $counter
//	  global.get $flag
//	  if
//	    unreachable               ;; the host asked for an interrupt
//	  end
//	  i32.const 0
//	  memory.grow 0               ;; exit to Go (see YieldInterval)
//	  drop
//	end
//
// The comparison is "<= 0", not "== 0": a flush (see appendFlush) can
// take the countdown from above 0 to below it, by less than
// YieldInterval. The flag is tested on the slow path only (see the
// package documentation).
func checkSeq(flag, counter uint32) []byte {
	b := make([]byte, 0, 48)
	b = append(b, opGlobalGet)
	b = appendU32(b, counter)
	b = append(b, opI32Const, 1, opI32Sub, opGlobalSet)
	b = appendU32(b, counter)
	b = append(b, opGlobalGet)
	b = appendU32(b, counter)
	b = append(b, opI32Const, 0, opI32LeS, opIf, blockEmpty, opI32Const)
	b = appendS32(b, YieldInterval)
	b = append(b, opGlobalSet)
	b = appendU32(b, counter)
	b = appendFlagCheck(b, flag)
	return append(b, opI32Const, 0, opMemoryGrow, 0x00, opDrop, opEnd)
}

// appendLoopCheck appends to b the check inserted at the loop headers of a
// function that has the counter local local, for interrupt flag global
// flag:
//
//	local.get $c
//	i32.const 1
//	i32.add
//	local.tee $c
//	i32.const YieldInterval
//	i32.lt_u
//	if                            ;; the fast path: nothing to do
//	else                          ;; every YieldInterval iterations:
//	  i32.const 0
//	  local.set $c
//	  global.get $flag
//	  if
//	    unreachable               ;; the host asked for an interrupt
//	  end
//	  i32.const 0
//	  memory.grow 0               ;; exit to Go (see YieldInterval)
//	  drop
//	  br 1                        ;; back to the loop header (if restart)
//	end
//
// The fast path is a register increment, compare and branch not taken:
// nothing is loaded or stored. The shape is chosen for wazero's
// optimizing compiler: with the slow path in the "else" arm, it lays the
// slow path out of line; with the slow path branching back to the loop
// header instead of rejoining the fast path, the values the loop keeps
// in registers do not have to be reloaded from the stack after the slow
// path's call on every iteration. Running the check again after the
// restart is harmless (the counter is then 1). restart is false for a
// loop with parameters, which a "br" from inside the if cannot pass: its
// slow path rejoins the fast path.
func appendLoopCheck(b []byte, flag, local uint32, restart bool) []byte {
	b = append(b, opLocalGet)
	b = appendU32(b, local)
	b = append(b, opI32Const, 1, opI32Add, opLocalTee)
	b = appendU32(b, local)
	b = append(b, opI32Const)
	b = appendS32(b, YieldInterval)
	b = append(b, opI32LtU, opIf, blockEmpty, opElse, opI32Const, 0, opLocalSet)
	b = appendU32(b, local)
	b = append(b, opGlobalGet)
	b = appendU32(b, flag)
	b = append(b, opIf, blockEmpty, opUnreachable, opEnd)
	b = append(b, opI32Const, 0, opMemoryGrow, 0x00, opDrop)
	if restart {
		b = append(b, opBr, 1)
	}
	return append(b, opEnd)
}

// appendFlush appends to b the flush inserted, in a function with the
// counter local local, before every direct call of a function the module
// defines, for countdown global counter: it charges the loop iterations
// counted since the last flush to the countdown and restarts the count.
// The callee's entry check then tests the countdown (and the flag).
//
//	global.get $counter
//	local.get $c
//	i32.sub
//	global.set $counter
//	i32.const 0
//	local.set $c
//
// With exit, for interrupt flag global flag, it is the flush inserted
// before every way out of the function other than such a call (return, a
// branch to the function's label, the final end, other tail calls, a
// throw), and tests the countdown itself, since no entry check may
// follow:
//
//	(the flush above)
//	global.get $counter
//	i32.const 0
//	i32.le_s
//	if                            ;; the budget is spent:
//	  i32.const YieldInterval
//	  global.set $counter
//	  global.get $flag
//	  if
//	    unreachable               ;; the host asked for an interrupt
//	  end
//	  i32.const 0
//	  memory.grow 0               ;; exit to Go
//	  drop
//	end
//
// The count also restarts where the function goes on: at a branch to its
// label that is not taken, at a throw caught in the function. In a loop,
// the test then stands in for the loop check: the countdown reaches 0
// within YieldInterval iterations.
func appendFlush(b []byte, counter, local uint32, exit bool, flag uint32) []byte {
	b = append(b, opGlobalGet)
	b = appendU32(b, counter)
	b = append(b, opLocalGet)
	b = appendU32(b, local)
	b = append(b, opI32Sub, opGlobalSet)
	b = appendU32(b, counter)
	b = append(b, opI32Const, 0, opLocalSet)
	b = appendU32(b, local)
	if !exit {
		return b
	}
	b = append(b, opGlobalGet)
	b = appendU32(b, counter)
	b = append(b, opI32Const, 0, opI32LeS, opIf, blockEmpty, opI32Const)
	b = appendS32(b, YieldInterval)
	b = append(b, opGlobalSet)
	b = appendU32(b, counter)
	b = append(b, opGlobalGet)
	b = appendU32(b, flag)
	b = append(b, opIf, blockEmpty, opUnreachable, opEnd)
	return append(b, opI32Const, 0, opMemoryGrow, 0x00, opDrop, opEnd)
}

// maxLocals is the most locals (parameters included) a function can have
// once its counter local is added: wazero v1.12 refuses a body declaring
// more than 2^32-1 locals, and a local index is a u32.
const maxLocals = 1<<32 - 1

// codeRewriter inserts the interrupt checks into function bodies.
type codeRewriter struct {
	check   []byte // the function entry check, also the loop check without a counter local
	flag    uint32 // index of the interrupt flag global
	counter uint32 // index of the countdown global
	// params holds the parameter count of each defined function, and types
	// that of each type, or unknownParams (see funcParams). A function
	// params does not cover gets no counter local; a loop whose type types
	// does not cover is taken to have parameters.
	params, types []int64
	// maxLocals bounds the locals of a function given a counter local
	// (maxLocals; lower in tests, to reach the fallback).
	maxLocals uint64
	// imports is the number of imported functions: a call of a function
	// below it calls the host, where no entry check runs.
	imports uint32

	// The sequences for the function being rewritten, if it has a counter
	// local: the loop check for loops without and with parameters, the
	// flushes before calls and exits, and the flag check before calls of
	// the host.
	loopCheck, paramLoopCheck, callFlush, exitFlush []byte
	hostCheck                                       []byte

	checks int // checks inserted so far
	loops  int // loop checks inserted so far
}

// setCounter prepares the sequences for a function with counter local local.
func (c *codeRewriter) setCounter(local uint32) {
	c.loopCheck = appendLoopCheck(c.loopCheck[:0], c.flag, local, true)
	c.paramLoopCheck = appendLoopCheck(c.paramLoopCheck[:0], c.flag, local, false)
	c.callFlush = appendFlush(c.callFlush[:0], c.counter, local, false, c.flag)
	c.exitFlush = appendFlush(c.exitFlush[:0], c.counter, local, true, c.flag)
	c.hostCheck = appendFlagCheck(c.hostCheck[:0], c.flag)
}

// appendFlagCheck appends to b the check of flag global flag alone:
// global.get $flag; if; unreachable; end.
func appendFlagCheck(b []byte, flag uint32) []byte {
	b = append(b, opGlobalGet)
	b = appendU32(b, flag)
	return append(b, opIf, blockEmpty, opUnreachable, opEnd)
}

// rewriteSection appends the code section s of in, with checks inserted, to
// out. firstFunc is the index of its first function (the number of imported
// functions), used in error messages.
func (c *codeRewriter) rewriteSection(out, in []byte, s section, firstFunc uint32) ([]byte, error) {
	b := in[:s.end]
	count, p, ok := readU32(b, s.payload)
	if !ok {
		return out, malformedf(s.name(), s.payload, "invalid or truncated function count")
	}
	out = append(out, secCode)
	sizeAt := len(out)
	out = append(out, 0, 0, 0, 0, 0) // section size, patched below
	out = appendU32(out, count)
	for i := uint32(0); i < count; i++ {
		fn := uint64(firstFunc) + uint64(i)
		size, q, ok := readU32(b, p)
		if !ok {
			return out, malformedf(fmt.Sprintf("%s: function %d", s.name(), fn), p, "invalid or truncated body size")
		}
		if uint64(size) > uint64(s.end-q) {
			return out, malformedf(fmt.Sprintf("%s: function %d", s.name(), fn), p, "body size %d runs past the end of the section", size)
		}
		end := q + int(size)
		params := int64(unknownParams)
		if uint64(i) < uint64(len(c.params)) {
			params = c.params[i]
		}
		var err error
		if out, err = c.rewriteBody(out, in[:end], q, fn, params); err != nil {
			return out, err
		}
		p = end
	}
	if p != s.end {
		return out, malformedf(s.name(), p, "%d unexpected bytes after the last function body", s.end-p)
	}
	return patchSize(out, sizeAt, s.name())
}

// rewriteBody appends one function body (b[p:], b ending where the body
// ends) with its size, the entry check after the locals and the loop check
// after every loop. params is the function's parameter count, or
// unknownParams.
//
// If the body has a loop, it gets a counter local: an i32 appended to its
// locals, whose index is params plus the locals the body declares, which
// the loop checks count in and the flushes charge to the countdown. Where
// that cannot be done (params unknown, or too many locals already) the
// loop check is the entry check instead, and there are no flushes.
func (c *codeRewriter) rewriteBody(out, b []byte, p int, fn uint64, params int64) ([]byte, error) {
	sizeAt := len(out)
	out = append(out, 0, 0, 0, 0, 0) // body size, patched below
	decls, locals, q, err := readLocals(b, p)
	if err != nil {
		return out, fmt.Errorf("%w: code section: function %d: %v", ErrMalformed, fn, err)
	}
	localsAt := len(out)
	out = append(out, b[p:q]...)
	out = append(out, c.check...)
	c.checks++
	codeAt := len(out)
	if params >= 0 && decls < math.MaxUint32 && uint64(params)+locals < c.maxLocals {
		c.setCounter(uint32(uint64(params) + locals))
		loops := c.loops
		if out, err = c.rewriteExpr(out, b, q, fn, true); err != nil {
			return out, err
		}
		if c.loops > loops {
			out = addCounterLocal(out, localsAt, b[p:q], decls)
		} else { // no loop: no counter, and nothing to insert
			out = append(out[:codeAt], b[q:]...)
		}
	} else if out, err = c.rewriteExpr(out, b, q, fn, false); err != nil {
		return out, err
	}
	return patchSize(out, sizeAt, "code section")
}

// addCounterLocal rewrites the local declarations out[at:at+len(old)],
// a copy of old (decls declarations, as read by readLocals), with one more
// appended: (1, i32). The code after them moves by the length difference.
func addCounterLocal(out []byte, at int, old []byte, decls uint32) []byte {
	_, countEnd, _ := readU32(old, 0)
	entries := old[countEnd:]
	var count [5]byte
	newCount := appendU32(count[:0], decls+1)
	newLen := len(newCount) + len(entries) + 2
	codeAt := at + len(old)
	codeLen := len(out) - codeAt
	if grow := newLen - len(old); grow > 0 { // less only for a padded count
		out = slices.Grow(out, grow)[:len(out)+grow]
	}
	copy(out[at+newLen:], out[codeAt:codeAt+codeLen])
	out = out[:at+newLen+codeLen]
	n := copy(out[at:], newCount)
	n += copy(out[at+n:], entries)
	out[at+n], out[at+n+1] = 0x01, valI32
	return out
}

// readLocals reads the local declarations at the start of a body: their
// number, the number of locals they declare in all, and the offset past
// them.
func readLocals(b []byte, p int) (decls uint32, locals uint64, end int, err error) {
	decls, p, ok := readU32(b, p)
	if !ok {
		return 0, 0, p, fmt.Errorf("offset %#x: invalid or truncated local declaration count", p)
	}
	for i := uint32(0); i < decls; i++ {
		var n uint32
		if n, p, ok = readU32(b, p); !ok {
			return 0, 0, p, fmt.Errorf("offset %#x: invalid or truncated local count", p)
		}
		locals += uint64(n)
		if p, ok = skipValType(b, p); !ok {
			return 0, 0, p, fmt.Errorf("offset %#x: invalid or truncated local type", p)
		}
	}
	return decls, locals, p, nil
}

// patchSize writes the size of out[sizeAt+5:] as a LEB128 number into the
// 5 bytes reserved at sizeAt, then closes the gap if the number is shorter.
func patchSize(out []byte, sizeAt int, where string) ([]byte, error) {
	start := sizeAt + 5
	n := len(out) - start
	if uint64(n) > math.MaxUint32 {
		return out, fmt.Errorf("%w: %s: rewritten size %d exceeds 4 GiB", ErrUnsupported, where, n)
	}
	var tmp [5]byte
	enc := appendU32(tmp[:0], uint32(n))
	copy(out[sizeAt:], enc)
	if k := len(enc); k < 5 {
		copy(out[sizeAt+k:], out[start:])
		out = out[:len(out)-(5-k)]
	}
	return out, nil
}

// rewriteExpr decodes the instructions of b[p:] and appends them to out,
// inserting the loop check after each loop's block type, and with counter
// (the function has a counter local) the flushes. It copies runs of bytes
// between insertion points and allocates nothing on success.
func (c *codeRewriter) rewriteExpr(out, b []byte, p int, fn uint64, counter bool) ([]byte, error) {
	last := p
	depth := 0 // blocks open in the body, with counter
	for p < len(b) {
		at := p
		op := b[p]
		p++
		if counter && flowKinds[op] != flowNone {
			if flush := c.flushBefore(b, p, op, &depth); flush != nil {
				out = append(out, b[last:at]...)
				out = append(out, flush...)
				last = at
			}
		}
		switch opKinds[op] {
		case immNone:
			continue
		case immLoop:
			var ok bool
			if p, ok = skipBlockType(b, p); !ok {
				return out, codeErr(ErrMalformed, fn, at, "invalid or truncated immediate of opcode %#02x", op)
			}
			check := c.check
			if counter {
				check = c.loopCheck
				if c.loopHasParams(b, at+1) {
					check = c.paramLoopCheck
				}
			}
			out = append(out, b[last:p]...)
			out = append(out, check...)
			c.checks++
			c.loops++
			last = p
		case immPrefixFB:
			return out, codeErr(ErrUnsupported, fn, at, "GC instruction (prefix 0xfb) is not supported")
		default:
			var msg string
			if p, msg = skipInstr(b, p, op); msg != "" {
				return out, codeErr(ErrMalformed, fn, at, "%s", msg)
			}
		}
	}
	return append(out, b[last:]...), nil
}

// skipInstr skips the immediates of opcode op, which start at b[p], and
// returns the offset of the next instruction, or a message saying why it
// cannot ("" when it can).
func skipInstr(b []byte, p int, op byte) (int, string) {
	ok := true
	switch opKinds[op] {
	case immNone:
	case immU32:
		p, ok = skipU32(b, p)
	case immU32x2:
		if p, ok = skipU32(b, p); ok {
			p, ok = skipU32(b, p)
		}
	case immBlock, immLoop:
		p, ok = skipBlockType(b, p)
	case immBrTable:
		p, ok = skipBrTable(b, p)
	case immMemarg:
		p, ok = skipMemarg(b, p)
	case immI32:
		p, ok = skipLEB(b, p, 5)
	case immI64:
		p, ok = skipLEB(b, p, 10)
	case immF32:
		p, ok = skipN(b, p, 4)
	case immF64:
		p, ok = skipN(b, p, 8)
	case immHeapType:
		p, ok = skipHeapType(b, p)
	case immSelectT:
		p, ok = skipSelectTypes(b, p)
	case immTryTable:
		p, ok = skipTryTable(b, p)
	case immPrefixFC, immPrefixFD, immPrefixFE:
		var known bool
		at := p - 1
		if p, ok, known = skipPrefixed(b, p, op); ok && !known {
			return p, fmt.Sprintf("unknown opcode %#02x %d", op, subOpcode(b, at+1))
		}
	case immPrefixFB:
		return p, "GC instruction (prefix 0xfb) is not supported"
	default:
		return p, fmt.Sprintf("unknown opcode %#02x", op)
	}
	if !ok {
		return p, fmt.Sprintf("invalid or truncated immediate of opcode %#02x", op)
	}
	return p, ""
}

// What an opcode means to the flushes (see flushBefore).
const (
	flowNone   = iota
	flowOpen   // block, loop, if, try, try_table: one more label
	flowEnd    // end: one label fewer, or the end of the function
	flowClose  // delegate: ends a try
	flowCall   // call, return_call: a flush if it calls a defined function
	flowCallIn // call_indirect, call_ref: maybe a call of the host
	flowLong   // 0xFC, 0xFE prefixes: bulk memory and table operations, atomic waits take long
	flowExit   // return, return_call_indirect, return_call_ref, throws: an exit (maybe)
	flowBranch // br, br_if, br_on_null, br_on_non_null: an exit if the label is the function's
	flowTable  // br_table: an exit if one of its labels is the function's
)

// flowKinds maps every one-byte opcode to its flow kind. A throw (throw,
// rethrow, throw_ref) may leave the function or not: it gets the exit
// flush, whose test stands in for the loop check if the exception is
// caught in a loop of the same function. A call of the host, direct or
// maybe indirect, gets no flush (the host function has no entry check,
// and restarting the count without a test could keep a loop that calls
// it from ever reaching its slow path) but a check of the flag: a loop
// whose iterations wait in the host (a sleep, a read) must not run
// YieldInterval of them before it notices an interrupt. So do the
// instructions whose time depends on their operands rather than being a
// few cycles: memory.init, memory.copy, memory.fill, table.init,
// table.copy, table.fill, and the atomic waits, which block.
var flowKinds = func() (k [256]uint8) {
	for _, op := range []byte{0x02, 0x03, 0x04, 0x06, 0x1F} {
		k[op] = flowOpen
	}
	k[0x0B] = flowEnd
	k[0x18] = flowClose
	k[0x10] = flowCall
	k[0x12] = flowCall
	k[0x11] = flowCallIn
	k[0x14] = flowCallIn
	k[0xFC] = flowLong
	k[0xFE] = flowLong
	for _, op := range []byte{0x08, 0x09, 0x0A, 0x0F, 0x13, 0x15} {
		k[op] = flowExit
	}
	for _, op := range []byte{0x0C, 0x0D, 0xD5, 0xD6} {
		k[op] = flowBranch
	}
	k[0x0E] = flowTable
	return k
}()

// flushBefore returns the flush to insert before opcode op (its
// immediates at b[p:]), or nil, and keeps depth, the number of blocks
// open, up to date. A branch whose label is depth leaves the function.
// Malformed immediates insert nothing: rewriteExpr reports them.
func (c *codeRewriter) flushBefore(b []byte, p int, op byte, depth *int) []byte {
	switch flowKinds[op] {
	case flowOpen:
		*depth++
	case flowEnd:
		*depth--
		if *depth == -1 { // the function's end
			return c.exitFlush
		}
	case flowClose:
		*depth--
	case flowCall:
		fn, _, ok := readU32(b, p)
		switch {
		case !ok:
		case fn >= c.imports:
			return c.callFlush
		case op == 0x12: // a tail call of the host
			return c.exitFlush
		default:
			return c.hostCheck
		}
	case flowCallIn:
		return c.hostCheck
	case flowLong:
		if sub, _, ok := readU32(b, p); ok && takesLong(op, sub) {
			return c.hostCheck
		}
	case flowExit:
		return c.exitFlush
	case flowBranch:
		if label, _, ok := readU32(b, p); ok && *depth >= 0 && uint64(label) == uint64(*depth) {
			return c.exitFlush
		}
	case flowTable:
		if brTableHasLabel(b, p, *depth) {
			return c.exitFlush
		}
	}
	return nil
}

// takesLong reports whether the instruction with prefix op and sub-opcode
// sub can take long: memory.init (0xFC 8), memory.copy (10), memory.fill
// (11), table.init (12), table.copy (14), table.fill (17),
// memory.atomic.wait32 (0xFE 1) and memory.atomic.wait64 (2).
func takesLong(op byte, sub uint32) bool {
	if op == 0xFE {
		return sub == 1 || sub == 2
	}
	switch sub {
	case 8, 10, 11, 12, 14, 17:
		return true
	}
	return false
}

// brTableHasLabel reports whether the br_table immediates at b[p:] name
// label depth.
func brTableHasLabel(b []byte, p, depth int) bool {
	n, p, ok := readU32(b, p)
	if !ok || depth < 0 || uint64(n) > uint64(len(b)-p) {
		return false
	}
	for i := uint32(0); i <= n; i++ {
		var label uint32
		if label, p, ok = readU32(b, p); !ok {
			return false
		}
		if uint64(label) == uint64(depth) {
			return true
		}
	}
	return false
}

// loopHasParams reports whether the loop whose block type is at b[p:]
// may take parameters: its type is a type index whose parameter count is
// not known to be 0.
func (c *codeRewriter) loopHasParams(b []byte, p int) bool {
	if p >= len(b) {
		return true
	}
	if t := b[p]; t == 0x63 || t == 0x64 || t&0xC0 == 0x40 { // empty or a value type
		return false
	}
	idx, _, ok := readS33(b, p)
	return !ok || idx < 0 || idx >= int64(len(c.types)) || c.types[idx] != 0
}

// codeErr builds an error located in function fn at input offset at.
func codeErr(kind error, fn uint64, at int, format string, args ...any) error {
	return fmt.Errorf("%w: code section: function %d: offset %#x: %s", kind, fn, at, fmt.Sprintf(format, args...))
}

// subOpcode decodes a prefixed instruction's sub-opcode for messages.
func subOpcode(b []byte, p int) uint32 {
	v, _, _ := readU32(b, p)
	return v
}

// skipN skips n raw bytes.
func skipN(b []byte, p, n int) (int, bool) {
	if n > len(b)-p {
		return len(b), false
	}
	return p + n, true
}

// skipBrTable skips br_table's immediates: vec(labelidx) labelidx.
func skipBrTable(b []byte, p int) (int, bool) {
	n, p, ok := readU32(b, p)
	if !ok || uint64(n) > uint64(len(b)-p) { // every label takes at least one byte
		return p, false
	}
	for i := uint32(0); i <= n; i++ {
		if p, ok = skipU32(b, p); !ok {
			return p, false
		}
	}
	return p, true
}

// skipMemarg skips a memarg: the alignment (bit 6 set: a memory index
// follows) and the offset. Memory64 (u64 offsets) is refused earlier.
func skipMemarg(b []byte, p int) (int, bool) {
	align, p, ok := readU32(b, p)
	if !ok {
		return p, false
	}
	if align&0x40 != 0 {
		if p, ok = skipU32(b, p); !ok {
			return p, false
		}
	}
	return skipU32(b, p)
}

// skipSelectTypes skips select's vec(valtype).
func skipSelectTypes(b []byte, p int) (int, bool) {
	n, p, ok := readU32(b, p)
	if !ok || uint64(n) > uint64(len(b)-p) {
		return p, false
	}
	for i := uint32(0); i < n; i++ {
		if p, ok = skipValType(b, p); !ok {
			return p, false
		}
	}
	return p, true
}

// skipTryTable skips try_table's immediates: a block type and a vector of
// catch clauses (0x00 catch and 0x01 catch_ref: tag and label; 0x02
// catch_all and 0x03 catch_all_ref: label).
func skipTryTable(b []byte, p int) (int, bool) {
	p, ok := skipBlockType(b, p)
	if !ok {
		return p, false
	}
	n, p, ok := readU32(b, p)
	if !ok || uint64(n) > uint64(len(b)-p) {
		return p, false
	}
	for i := uint32(0); i < n; i++ {
		if p >= len(b) {
			return p, false
		}
		kind := b[p]
		p++
		switch kind {
		case 0x00, 0x01:
			if p, ok = skipU32(b, p); !ok {
				return p, false
			}
		case 0x02, 0x03:
		default:
			return p, false
		}
		if p, ok = skipU32(b, p); !ok {
			return p, false
		}
	}
	return p, true
}

// skipPrefixed skips a 0xFC, 0xFD or 0xFE instruction's sub-opcode and
// immediates. known is false for a sub-opcode this package does not know.
func skipPrefixed(b []byte, p int, prefix byte) (next int, ok, known bool) {
	sub, p, ok := readU32(b, p)
	if !ok {
		return p, false, true
	}
	switch prefix {
	case 0xFC:
		return skipFC(b, p, sub)
	case 0xFD:
		return skipFD(b, p, sub)
	default:
		return skipFE(b, p, sub)
	}
}

// skipFC skips the immediates of 0xFC sub-opcode sub: saturating
// truncation (0-7, none), memory.init (data, memory), data.drop (data),
// memory.copy (2 memories), memory.fill (memory), table.init (elem,
// table), elem.drop (elem), table.copy (2 tables), table.grow/size/fill
// (table).
func skipFC(b []byte, p int, sub uint32) (int, bool, bool) {
	switch {
	case sub <= 7:
		return p, true, true
	case sub == 8, sub == 10, sub == 12, sub == 14:
		p, ok := skipU32(b, p)
		if !ok {
			return p, false, true
		}
		p, ok = skipU32(b, p)
		return p, ok, true
	case sub <= 17:
		p, ok := skipU32(b, p)
		return p, ok, true
	}
	return p, true, false
}

// skipFD skips the immediates of SIMD sub-opcode sub.
func skipFD(b []byte, p int, sub uint32) (int, bool, bool) {
	switch {
	case sub <= 11: // v128.load*, v128.store: memarg
		p, ok := skipMemarg(b, p)
		return p, ok, true
	case sub <= 13: // v128.const, i8x16.shuffle: 16 bytes
		p, ok := skipN(b, p, 16)
		return p, ok, true
	case sub <= 20: // swizzle, splats
		return p, true, true
	case sub <= 34: // extract_lane, replace_lane: lane index
		p, ok := skipN(b, p, 1)
		return p, ok, true
	case sub <= 83:
		return p, true, true
	case sub <= 91: // load/store lane: memarg, lane index
		p, ok := skipMemarg(b, p)
		if !ok {
			return p, false, true
		}
		p, ok = skipN(b, p, 1)
		return p, ok, true
	case sub <= 93: // v128.load32_zero, v128.load64_zero: memarg
		p, ok := skipMemarg(b, p)
		return p, ok, true
	case sub <= 0x113: // the rest of SIMD and relaxed SIMD: no immediate
		return p, true, true
	}
	return p, true, false
}

// skipFE skips the immediates of threads sub-opcode sub.
func skipFE(b []byte, p int, sub uint32) (int, bool, bool) {
	switch {
	case sub <= 2, sub >= 0x10 && sub <= 0x4E: // notify, wait, atomic loads/stores/rmw
		p, ok := skipMemarg(b, p)
		return p, ok, true
	case sub == 3: // atomic.fence: a reserved byte
		p, ok := skipN(b, p, 1)
		return p, ok, true
	}
	return p, true, false
}
