package wasmbin

import "fmt"

// parser reads the fields of one section with a sticky error: after the
// first failure every read returns a zero value and err keeps the first
// error. b is sliced to the end of the section, so no read crosses it.
type parser struct {
	b     []byte
	p     int
	where string
	err   error
}

// newParser returns a parser over in[payload:end], positioned at payload.
// Offsets in its errors are offsets in in.
func newParser(in []byte, s section) *parser {
	return &parser{b: in[:s.end], p: s.payload, where: s.name()}
}

// fail records a malformed-input error at the current offset.
func (r *parser) fail(format string, args ...any) {
	if r.err == nil {
		r.err = malformedf(r.where, r.p, format, args...)
	}
}

// failUnsupported records an unsupported-feature error at offset off.
func (r *parser) failUnsupported(off int, format string, args ...any) {
	if r.err == nil {
		r.err = unsupportedf(r.where, off, format, args...)
	}
}

// u32 reads an unsigned 32-bit LEB128 number; what names it for errors.
func (r *parser) u32(what string) uint32 {
	if r.err != nil {
		return 0
	}
	v, p, ok := readU32(r.b, r.p)
	if !ok {
		r.fail("invalid or truncated %s (u32 LEB128)", what)
		return 0
	}
	r.p = p
	return v
}

// u64 reads an unsigned 64-bit LEB128 number.
func (r *parser) u64(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, p, ok := readU64(r.b, r.p)
	if !ok {
		r.fail("invalid or truncated %s (u64 LEB128)", what)
		return 0
	}
	r.p = p
	return v
}

// byte1 reads one byte.
func (r *parser) byte1(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.p >= len(r.b) {
		r.fail("truncated %s", what)
		return 0
	}
	c := r.b[r.p]
	r.p++
	return c
}

// name reads a length-prefixed byte string and returns it (a sub-slice of
// the input, not a copy).
func (r *parser) name(what string) []byte {
	n := r.u32(what + " length")
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)-r.p) {
		r.fail("%s of %d bytes runs past the end of the section", what, n)
		return nil
	}
	s := r.b[r.p : r.p+int(n)]
	r.p += int(n)
	return s
}

// valType skips a value type: one byte, or 0x63/0x64 followed by a heap type.
func (r *parser) valType(what string) {
	if r.err != nil {
		return
	}
	p, ok := skipValType(r.b, r.p)
	if !ok {
		r.fail("invalid or truncated %s", what)
		return
	}
	r.p = p
}

// limits is a decoded limits structure (of a memory or a table).
type limits struct {
	flags  byte
	min    uint64
	max    uint64
	hasMax bool
	is64   bool
}

// Limits flag bits.
const (
	limitsHasMax = 0x01
	limitsShared = 0x02
	limits64     = 0x04
)

// limits reads a limits structure. Flags 0x00..0x07 are understood; other
// flags (e.g. 0x08, custom page sizes) are reported as unsupported.
func (r *parser) limits(what string) limits {
	at := r.p
	flags := r.byte1(what + " flags")
	if r.err != nil {
		return limits{}
	}
	if flags > 0x07 {
		r.failUnsupported(at, "%s flags %#02x", what, flags)
		return limits{}
	}
	l := limits{flags: flags, hasMax: flags&limitsHasMax != 0, is64: flags&limits64 != 0}
	if l.is64 {
		l.min = r.u64(what + " minimum")
		if l.hasMax {
			l.max = r.u64(what + " maximum")
		}
	} else {
		l.min = uint64(r.u32(what + " minimum"))
		if l.hasMax {
			l.max = uint64(r.u32(what + " maximum"))
		}
	}
	return l
}

// constExpr skips a constant expression: instructions up to the end that
// closes it.
func (r *parser) constExpr(what string) {
	if r.err != nil {
		return
	}
	at := r.p
	depth := 0
	for r.p < len(r.b) {
		op := r.b[r.p]
		p, msg := skipInstr(r.b, r.p+1, op)
		if msg != "" {
			r.fail("%s: %s", what, msg)
			return
		}
		r.p = p
		switch op {
		case opEnd:
			if depth == 0 {
				return
			}
			depth--
		case 0x02, 0x03, 0x04, 0x06, 0x1F:
			depth++
		}
	}
	r.p = at
	r.fail("%s has no end", what)
}

// done fails unless the whole section was consumed.
func (r *parser) done() error {
	if r.err == nil && r.p != len(r.b) {
		r.fail("%d unexpected bytes at the end of the section", len(r.b)-r.p)
	}
	return r.err
}

// skipValType skips a value type in b at p: a single byte, or 0x63 (ref
// null) / 0x64 (ref) followed by a heap type. Other bytes are not checked
// here; the runtime validates types.
func skipValType(b []byte, p int) (int, bool) {
	if p >= len(b) {
		return p, false
	}
	c := b[p]
	if c == 0x63 || c == 0x64 {
		return skipHeapType(b, p+1)
	}
	return p + 1, true
}

// skipHeapType skips a heap type: an s33 (negative for abstract types, a
// type index otherwise).
func skipHeapType(b []byte, p int) (int, bool) {
	_, p, ok := readS33(b, p)
	return p, ok
}

// skipBlockType skips a block type: 0x40 (empty), a value type, or a
// non-negative s33 type index.
func skipBlockType(b []byte, p int) (int, bool) {
	if p >= len(b) {
		return p, false
	}
	c := b[p]
	switch {
	case c == 0x63 || c == 0x64:
		return skipHeapType(b, p+1)
	case c&0xC0 == 0x40:
		// 0x40 (empty) or a one-byte value type: one-byte negative s33.
		return p + 1, true
	}
	v, p, ok := readS33(b, p)
	return p, ok && v >= 0
}

// sectionNames names the known section ids for error messages.
var sectionNames = [...]string{
	0:  "custom section",
	1:  "type section",
	2:  "import section",
	3:  "function section",
	4:  "table section",
	5:  "memory section",
	6:  "global section",
	7:  "export section",
	8:  "start section",
	9:  "element section",
	10: "code section",
	11: "data section",
	12: "data count section",
	13: "tag section",
}

// sectionName names section id for error messages.
func sectionName(id byte) string {
	if int(id) < len(sectionNames) {
		return sectionNames[id]
	}
	return fmt.Sprintf("section %d", id)
}
