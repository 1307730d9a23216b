package wasmbin

// Function signatures, as far as the loop check needs them: the index of a
// local appended to a function's locals is the number of its parameters
// plus the number of locals it declares, so the parameter count of every
// defined function has to be known exactly.
//
// These sections are read leniently: Instrument did not look at them
// before and must not start refusing modules because of them, so what
// cannot be decoded is only marked unknown (and the functions concerned
// keep the global-counter check at their loops, which needs no local).

// unknownParams marks a function whose parameter count is unknown.
const unknownParams = -1

// Type section encodings.
const (
	typeFunc     = 0x60 // func type: vec(valtype) vec(valtype)
	typeRecGroup = 0x4E // rec group: vec(subtype), each a type index
)

// funcParams returns the number of parameters of each type (in index
// order, up to the first type it cannot decode) and of each function the
// module defines (in function section order: unknownParams where the type
// and function sections do not say: absent, truncated, malformed, or a
// type this package does not decode). It never fails and allocates in
// proportion to the sections' sizes, never to the counts they declare.
func (m *module) funcParams() (funcs, types []int64) {
	if ts, ok := m.sectionByID(secType); ok {
		types = m.typeParams(ts)
	}
	fs, ok := m.sectionByID(secFunction)
	if !ok {
		return nil, types
	}
	b := m.in[:fs.end]
	n, p, ok := readU32(b, fs.payload)
	if !ok {
		return nil, types
	}
	var out []int64
	for i := uint32(0); i < n; i++ {
		idx, q, ok := readU32(b, p)
		if !ok {
			break
		}
		p = q
		params := int64(unknownParams)
		if uint64(idx) < uint64(len(types)) {
			params = types[idx]
		}
		out = append(out, params)
	}
	return out, types
}

// typeParams returns the parameter count of each type of type section s,
// in index order, up to the first type it cannot decode: a plain func
// type, or a rec group of plain func types (what wazero v1.12 accepts).
// Types after that one are left out, since their indices are then unknown.
func (m *module) typeParams(s section) []int64 {
	b := m.in[:s.end]
	n, p, ok := readU32(b, s.payload)
	if !ok {
		return nil
	}
	var out []int64
	for i := uint32(0); i < n && p < len(b); i++ {
		if b[p] != typeRecGroup {
			params, q, ok := skipFuncType(b, p)
			if !ok {
				return out
			}
			out = append(out, params)
			p = q
			continue
		}
		members, q, ok := readU32(b, p+1)
		if !ok {
			return out
		}
		p = q
		for j := uint32(0); j < members; j++ {
			params, q, ok := skipFuncType(b, p)
			if !ok {
				return out
			}
			out = append(out, params)
			p = q
		}
	}
	return out
}

// skipFuncType decodes a func type at p (0x60, parameter types, result
// types) and returns its parameter count and the offset past it.
func skipFuncType(b []byte, p int) (int64, int, bool) {
	if p >= len(b) || b[p] != typeFunc {
		return 0, p, false
	}
	params, p, ok := skipValTypes(b, p+1)
	if !ok {
		return 0, p, false
	}
	_, p, ok = skipValTypes(b, p)
	return int64(params), p, ok
}

// skipValTypes skips a vec(valtype) and returns its length.
func skipValTypes(b []byte, p int) (uint32, int, bool) {
	n, p, ok := readU32(b, p)
	if !ok || uint64(n) > uint64(len(b)-p) { // every type takes at least a byte
		return 0, p, false
	}
	for i := uint32(0); i < n; i++ {
		if p, ok = skipValType(b, p); !ok {
			return 0, p, false
		}
	}
	return n, p, true
}
