package wasmbin

// LEB128 helpers. Every reader takes the buffer and a position and returns
// the new position and whether the read succeeded; the buffer is always
// sliced to the end of the enclosing construct (section, function body) so
// that the length check also stops a read from running into the next one.

// readU32 decodes an unsigned LEB128 number of at most 32 bits (at most 5
// bytes, unused bits of the last byte zero), as the spec requires.
func readU32(b []byte, p int) (uint32, int, bool) {
	var v uint32
	for shift := uint(0); shift < 35; shift += 7 {
		if p >= len(b) {
			return 0, p, false
		}
		c := b[p]
		p++
		if shift == 28 && c&0xF0 != 0 {
			return 0, p, false // too many bits or a sixth byte
		}
		v |= uint32(c&0x7F) << shift
		if c < 0x80 {
			return v, p, true
		}
	}
	return 0, p, false
}

// readU64 decodes an unsigned LEB128 number of at most 64 bits.
func readU64(b []byte, p int) (uint64, int, bool) {
	var v uint64
	for shift := uint(0); shift < 70; shift += 7 {
		if p >= len(b) {
			return 0, p, false
		}
		c := b[p]
		p++
		if shift == 63 && c&0xFE != 0 {
			return 0, p, false
		}
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return v, p, true
		}
	}
	return 0, p, false
}

// skipU32 skips an unsigned 32-bit LEB128 number.
func skipU32(b []byte, p int) (int, bool) {
	// Fast path for the very common one-byte case.
	if p < len(b) && b[p] < 0x80 {
		return p + 1, true
	}
	_, p, ok := readU32(b, p)
	return p, ok
}

// skipLEB skips a (signed or unsigned) LEB128 number of at most maxBytes
// bytes. It checks the length only, not the unused bits of the last byte:
// the value is copied unchanged, and the runtime validates it.
func skipLEB(b []byte, p, maxBytes int) (int, bool) {
	for i := 0; i < maxBytes; i++ {
		if p >= len(b) {
			return p, false
		}
		c := b[p]
		p++
		if c < 0x80 {
			return p, true
		}
	}
	return p, false
}

// readS33 decodes a signed LEB128 number of at most 33 bits (5 bytes), as
// used for block types and heap types.
func readS33(b []byte, p int) (int64, int, bool) {
	var v int64
	var shift uint
	for i := 0; i < 5; i++ {
		if p >= len(b) {
			return 0, p, false
		}
		c := b[p]
		p++
		v |= int64(c&0x7F) << shift
		shift += 7
		if c < 0x80 {
			if c&0x40 != 0 {
				v |= -1 << shift // sign-extend
			}
			if v < -(1<<32) || v >= 1<<32 {
				return 0, p, false
			}
			return v, p, true
		}
	}
	return 0, p, false
}

// appendU32 appends v as an unsigned LEB128 number in its shortest form.
func appendU32(out []byte, v uint32) []byte {
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

// appendU64 appends v as an unsigned LEB128 number in its shortest form.
func appendU64(out []byte, v uint64) []byte {
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

// sizeU32 is the length of v's shortest unsigned LEB128 encoding.
func sizeU32(v uint32) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// appendS32 appends v as a signed LEB128 number in its shortest form.
func appendS32(out []byte, v int32) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}
