package wasmbin

// A minimal module builder for tests that need exact bytes: golden
// outputs, malformed inputs, and features wat2wasm (wabt 1.0.32) cannot
// write (try_table, typed function references).

// leb encodes v as an unsigned LEB128 number.
func leb(v uint32) []byte { return appendU32(nil, v) }

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// sec encodes a section with the given id and payload.
func sec(id byte, payload ...[]byte) []byte {
	p := cat(payload...)
	return cat([]byte{id}, leb(uint32(len(p))), p)
}

// vec encodes a vector: its length, then the items.
func vec(items ...[]byte) []byte {
	return cat(leb(uint32(len(items))), cat(items...))
}

// str encodes a name.
func str(s string) []byte { return cat(leb(uint32(len(s))), []byte(s)) }

// mod encodes a module from its sections.
func mod(sections ...[]byte) []byte {
	return cat([]byte{0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00}, cat(sections...))
}

// body encodes a function body: locals (already encoded, e.g. vec()) and code.
func body(locals []byte, code ...byte) []byte {
	b := cat(locals, code)
	return cat(leb(uint32(len(b))), b)
}

// funcType encodes a function type.
func funcType(params, results []byte) []byte {
	return cat([]byte{0x60}, leb(uint32(len(params))), params, leb(uint32(len(results))), results)
}

// b is shorthand for a byte slice literal.
func b(x ...byte) []byte { return x }

// exportEntry encodes one export.
func exportEntry(name string, kind byte, idx uint32) []byte {
	return cat(str(name), b(kind), leb(idx))
}
