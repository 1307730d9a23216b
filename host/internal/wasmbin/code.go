package wasmbin

import (
	"fmt"
	"math"
)

// Opcodes the instrumentation emits.
const (
	opUnreachable = 0x00
	opIf          = 0x04
	opEnd         = 0x0B
	opDrop        = 0x1A
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI32Eqz      = 0x45
	opI32Sub      = 0x6B
	blockEmpty    = 0x40
)

// checkSeq returns the check inserted at function entries and loop
// headers, for interrupt flag global flag and countdown global counter:
//
//	global.get $flag
//	if
//	  unreachable                 ;; the host asked for an interrupt
//	end
//	global.get $counter
//	i32.const 1
//	i32.sub
//	global.set $counter
//	global.get $counter
//	i32.eqz
//	if                            ;; every YieldInterval checks:
//	  i32.const YieldInterval
//	  global.set $counter
//	  i32.const 0
//	  memory.grow 0               ;; exit to Go (see YieldInterval)
//	  drop
//	end
func checkSeq(flag, counter uint32) []byte {
	b := make([]byte, 0, 48)
	b = append(b, opGlobalGet)
	b = appendU32(b, flag)
	b = append(b, opIf, blockEmpty, opUnreachable, opEnd)
	b = append(b, opGlobalGet)
	b = appendU32(b, counter)
	b = append(b, opI32Const, 1, opI32Sub, opGlobalSet)
	b = appendU32(b, counter)
	b = append(b, opGlobalGet)
	b = appendU32(b, counter)
	b = append(b, opI32Eqz, opIf, blockEmpty, opI32Const)
	b = appendS32(b, YieldInterval)
	b = append(b, opGlobalSet)
	b = appendU32(b, counter)
	return append(b, opI32Const, 0, opMemoryGrow, 0x00, opDrop, opEnd)
}

// codeRewriter inserts the interrupt check into function bodies.
type codeRewriter struct {
	check  []byte // the check sequence
	checks int    // checks inserted so far
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
		var err error
		if out, err = c.rewriteBody(out, in[:end], q, fn); err != nil {
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
// ends) with its size, the check after the locals and after every loop.
func (c *codeRewriter) rewriteBody(out, b []byte, p int, fn uint64) ([]byte, error) {
	sizeAt := len(out)
	out = append(out, 0, 0, 0, 0, 0) // body size, patched below
	q, err := skipLocals(b, p)
	if err != nil {
		return out, fmt.Errorf("%w: code section: function %d: %v", ErrMalformed, fn, err)
	}
	out = append(out, b[p:q]...)
	out = append(out, c.check...)
	c.checks++
	if out, err = c.rewriteExpr(out, b, q, fn); err != nil {
		return out, err
	}
	return patchSize(out, sizeAt, "code section")
}

// skipLocals skips the local declarations at the start of a body.
func skipLocals(b []byte, p int) (int, error) {
	n, p, ok := readU32(b, p)
	if !ok {
		return p, fmt.Errorf("offset %#x: invalid or truncated local declaration count", p)
	}
	for i := uint32(0); i < n; i++ {
		if p, ok = skipU32(b, p); !ok {
			return p, fmt.Errorf("offset %#x: invalid or truncated local count", p)
		}
		if p, ok = skipValType(b, p); !ok {
			return p, fmt.Errorf("offset %#x: invalid or truncated local type", p)
		}
	}
	return p, nil
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
// inserting the check after each loop's block type. It copies runs of
// bytes between insertion points and allocates nothing on success.
func (c *codeRewriter) rewriteExpr(out, b []byte, p int, fn uint64) ([]byte, error) {
	last := p
	for p < len(b) {
		at := p
		op := b[p]
		p++
		kind := opKinds[op]
		if kind == immNone {
			continue
		}
		ok := true
		switch kind {
		case immU32:
			p, ok = skipU32(b, p)
		case immU32x2:
			if p, ok = skipU32(b, p); ok {
				p, ok = skipU32(b, p)
			}
		case immBlock:
			p, ok = skipBlockType(b, p)
		case immLoop:
			if p, ok = skipBlockType(b, p); ok {
				out = append(out, b[last:p]...)
				out = append(out, c.check...)
				c.checks++
				last = p
			}
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
			p, ok, known = skipPrefixed(b, p, op)
			if ok && !known {
				return out, codeErr(ErrMalformed, fn, at, "unknown opcode %#02x %d", op, subOpcode(b, at+1))
			}
		case immPrefixFB:
			return out, codeErr(ErrUnsupported, fn, at, "GC instruction (prefix 0xfb) is not supported")
		default:
			return out, codeErr(ErrMalformed, fn, at, "unknown opcode %#02x", op)
		}
		if !ok {
			return out, codeErr(ErrMalformed, fn, at, "invalid or truncated immediate of opcode %#02x", op)
		}
	}
	return append(out, b[last:]...), nil
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
