package wasmbin

// immKind says what immediates follow a one-byte opcode.
type immKind uint8

const (
	immInvalid  immKind = iota // not an opcode
	immNone                    // no immediate
	immU32                     // one u32 LEB (an index)
	immU32x2                   // two u32 LEBs
	immBlock                   // a block type (block, if, try)
	immLoop                    // loop: a block type, then the check goes in
	immBrTable                 // vec(labelidx) labelidx
	immMemarg                  // memarg
	immI32                     // s32 LEB
	immI64                     // s64 LEB
	immF32                     // 4 bytes
	immF64                     // 8 bytes
	immHeapType                // s33 heap type (ref.null)
	immSelectT                 // vec(valtype)
	immTryTable                // blocktype vec(catch)
	immPrefixFC                // 0xFC: saturating truncation, bulk memory, tables
	immPrefixFD                // 0xFD: SIMD
	immPrefixFE                // 0xFE: threads
	immPrefixFB                // 0xFB: GC, unsupported
)

// opKinds maps every one-byte opcode to its immediates.
var opKinds = buildOpKinds()

// buildOpKinds fills the opcode table from the spec's binary format
// (WebAssembly 3.0: MVP, sign extension, reference types, tail calls,
// function references, exception handling legacy and new).
func buildOpKinds() [256]immKind {
	var k [256]immKind
	set := func(kind immKind, ops ...byte) {
		for _, op := range ops {
			k[op] = kind
		}
	}
	setRange := func(kind immKind, lo, hi byte) {
		for op := int(lo); op <= int(hi); op++ {
			k[op] = kind
		}
	}
	// Control.
	set(immNone, 0x00, 0x01, 0x05, 0x0A, 0x0B, 0x0F, 0x19) // unreachable nop else throw_ref end return catch_all
	set(immBlock, 0x02, 0x04, 0x06)                        // block if try
	set(immLoop, 0x03)
	set(immU32, 0x07, 0x08, 0x09)   // catch throw rethrow
	set(immU32, 0x0C, 0x0D)         // br br_if
	set(immBrTable, 0x0E)           //
	set(immU32, 0x10, 0x12)         // call return_call
	set(immU32x2, 0x11, 0x13)       // call_indirect return_call_indirect
	set(immU32, 0x14, 0x15)         // call_ref return_call_ref
	set(immU32, 0x18)               // delegate
	set(immNone, 0x1A, 0x1B)        // drop select
	set(immSelectT, 0x1C)           // select t*
	set(immTryTable, 0x1F)          // try_table
	setRange(immU32, 0x20, 0x26)    // local.get/set/tee global.get/set table.get/set
	setRange(immMemarg, 0x28, 0x3E) // loads and stores
	set(immU32, 0x3F, 0x40)         // memory.size memory.grow (memory index)
	set(immI32, 0x41)               // i32.const
	set(immI64, 0x42)               // i64.const
	set(immF32, 0x43)               // f32.const
	set(immF64, 0x44)               // f64.const
	setRange(immNone, 0x45, 0xC4)   // numeric, sign extension
	set(immHeapType, 0xD0)          // ref.null
	set(immNone, 0xD1, 0xD3, 0xD4)  // ref.is_null ref.eq ref.as_non_null
	set(immU32, 0xD2, 0xD5, 0xD6)   // ref.func br_on_null br_on_non_null
	set(immPrefixFB, 0xFB)          //
	set(immPrefixFC, 0xFC)          //
	set(immPrefixFD, 0xFD)          //
	set(immPrefixFE, 0xFE)          //
	return k
}
