package wasmbin

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// checkFor is the check sequence for flag global f and counter global c
// (both below 128), written out independently of checkSeq.
func checkFor(f, c byte) []byte {
	return b(
		0x23, c, 0x41, 0x01, 0x6B, 0x24, c, // counter -= 1
		0x23, c, 0x41, 0x00, 0x4C, 0x04, 0x40, // if counter <= 0
		0x41, 0x90, 0xCE, 0x00, 0x24, c, // counter = 10000
		0x23, f, 0x04, 0x40, 0x00, 0x0B, // global.get f; if; unreachable; end
		0x41, 0x00, 0x40, 0x00, 0x1A, // drop (memory.grow 0)
		0x0B, // end
	)
}

// loopCheckFor is the loop check for flag global f (below 128) and counter
// local l (its LEB128 encoding, written by the caller), written out
// independently of appendLoopCheck, for a loop without parameters.
func loopCheckFor(f byte, l ...byte) []byte {
	c := paramLoopCheckFor(f, l...)
	return cat(c[:len(c)-1], b(0x0C, 0x01, 0x0B)) // ...; br 1; end
}

// paramLoopCheckFor is loopCheckFor for a loop with parameters.
func paramLoopCheckFor(f byte, l ...byte) []byte {
	return cat(
		b(0x20), l, b(0x41, 0x01, 0x6A, 0x22), l, // local.get l; i32.const 1; i32.add; local.tee l
		b(0x41, 0x90, 0xCE, 0x00, 0x49, 0x04, 0x40, 0x05), // i32.const 10000; i32.lt_u; if; else
		b(0x41, 0x00, 0x21), l, // i32.const 0; local.set l
		b(0x23, f, 0x04, 0x40, 0x00, 0x0B), // global.get f; if; unreachable; end
		b(0x41, 0x00, 0x40, 0x00, 0x1A),    // drop (memory.grow 0)
		b(0x0B),                            // end
	)
}

// callFlushFor is the flush before a call, for counter global c (below
// 128) and counter local l, written out independently of appendFlush.
func callFlushFor(c byte, l ...byte) []byte {
	return cat(
		b(0x23, c, 0x20), l, b(0x6B, 0x24, c), // counter -= l
		b(0x41, 0x00, 0x21), l, // l = 0
	)
}

// exitFlushFor is the flush before an exit, for flag global f.
func exitFlushFor(f, c byte, l ...byte) []byte {
	return cat(
		callFlushFor(c, l...),
		b(0x23, c, 0x41, 0x00, 0x4C, 0x04, 0x40), // if counter <= 0
		b(0x41, 0x90, 0xCE, 0x00, 0x24, c),       // counter = 10000
		b(0x23, f, 0x04, 0x40, 0x00, 0x0B),       // global.get f; if; unreachable; end
		b(0x41, 0x00, 0x40, 0x00, 0x1A),          // drop (memory.grow 0)
		b(0x0B),                                  // end
	)
}

// newGlobals are the two globals Instrument appends.
var newGlobals = [][]byte{b(0x7F, 0x01, 0x41, 0x00, 0x0B), b(0x7F, 0x01, 0x41, 0x90, 0xCE, 0x00, 0x0B)}

// emptyMemorySec is the memory section added to a module without memory.
var emptyMemorySec = sec(secMemory, vec(b(0x01, 0x00, 0x00)))

// check0 is the check sequence for flag 0 and counter 1.
var check0 = checkFor(0, 1)

// flagCheck0 is the check of flag 0 alone.
var flagCheck0 = b(0x23, 0x00, 0x04, 0x40, 0x00, 0x0B) // global.get 0; if; unreachable; end

// TestGolden compares the output for small hand-written modules with the
// exact expected bytes.
func TestGolden(t *testing.T) {
	typeSec := sec(secType, vec(funcType(nil, nil)))
	funcSec := sec(secFunction, vec(b(0)))
	loopBody := body(vec(), 0x03, 0x40, 0x0C, 0x00, 0x0B, 0x0B) // loop br 0 end end
	newGlobalSec := sec(secGlobal, vec(newGlobals...))
	tests := []struct {
		name       string
		in         []byte
		opts       Options
		want       []byte
		wantChecks int
	}{
		{
			name: "loop, no globals or exports",
			in:   mod(typeSec, funcSec, sec(secCode, vec(loopBody))),
			opts: Options{Interrupt: true},
			want: mod(typeSec, funcSec, emptyMemorySec, newGlobalSec,
				sec(secExport, vec(exportEntry(InterruptExport, kindGlobal, 0), exportEntry(CountdownExport, kindGlobal, 0+1))),
				// The loop gets the counter local 0 (no params, no locals),
				// which the function's end charges to the countdown.
				sec(secCode, vec(body(vec(b(0x01, 0x7F)), cat(check0, b(0x03, 0x40), loopCheckFor(0, 0), b(0x0C, 0x00, 0x0B),
					exitFlushFor(0, 1, 0), b(0x0B))...)))),
			wantChecks: 2,
		},
		{
			name: "locals, existing global and export, start section, custom sections",
			in: mod(
				sec(secCustom, str("before")),
				typeSec, funcSec,
				sec(secGlobal, vec(b(0x7E, 0x00, 0x42, 0x05, 0x0B))), // i64 const 5
				sec(secExport, vec(exportEntry("f", kindFunc, 0))),
				sec(secStart, leb(0)),
				sec(secCustom, str(".debug_info"), b(1, 2, 3)),
				sec(secCode, vec(body(vec(b(0x02, 0x7F)), 0x01, 0x0B))), // 2 x i32; nop end
				sec(secCustom, str("name")),
			),
			opts: Options{Interrupt: true},
			want: mod(
				sec(secCustom, str("before")),
				typeSec, funcSec, emptyMemorySec,
				sec(secGlobal, vec(b(0x7E, 0x00, 0x42, 0x05, 0x0B), newGlobals[0], newGlobals[1])),
				sec(secExport, vec(exportEntry("f", kindFunc, 0), exportEntry(InterruptExport, kindGlobal, 1), exportEntry(CountdownExport, kindGlobal, 1+1), exportEntry(StartExport, kindFunc, 0))),
				sec(secCode, vec(body(vec(b(0x02, 0x7F)), cat(checkFor(1, 2), b(0x01, 0x0B))...))),
				sec(secCustom, str("name")),
			),
			wantChecks: 1,
		},
		{
			name: "memory clamp only, start section, debug kept",
			in: mod(
				typeSec, funcSec,
				sec(secMemory, vec(b(0x00, 0x01), b(0x01, 0x02, 0x80, 0x08))), // {min 1} {min 2 max 1024}
				sec(secStart, leb(0)),
				sec(secCustom, str(".debug_line")),
				sec(secCode, vec(loopBody)),
			),
			opts: Options{MaxMemoryPages: 16},
			want: mod(
				typeSec, funcSec,
				sec(secMemory, vec(b(0x01, 0x01, 0x10), b(0x01, 0x02, 0x10))),
				sec(secExport, vec(exportEntry(StartExport, kindFunc, 0))),
				sec(secCustom, str(".debug_line")),
				sec(secCode, vec(loopBody)),
			),
		},
		{
			name: "shared memory keeps its flag; tag section precedes the new global",
			in: mod(
				typeSec,
				sec(secMemory, vec(b(0x03, 0x01, 0x80, 0x02))), // shared {min 1 max 256}
				sec(secTag, vec(b(0x00, 0x00))),
			),
			opts: Options{Interrupt: true, MaxMemoryPages: 100000},
			want: mod(
				typeSec,
				sec(secMemory, vec(b(0x03, 0x01, 0x80, 0x02))),
				sec(secTag, vec(b(0x00, 0x00))),
				newGlobalSec,
				sec(secExport, vec(exportEntry(InterruptExport, kindGlobal, 0), exportEntry(CountdownExport, kindGlobal, 0+1))),
			),
		},
		{
			name: "no max and a limit above 4 GiB is clamped to 65536 pages",
			in:   mod(sec(secMemory, vec(b(0x00, 0x01)))),
			opts: Options{MaxMemoryPages: 1 << 20},
			want: mod(sec(secMemory, vec(b(0x01, 0x01, 0x80, 0x80, 0x04)))),
		},
		{
			name: "imported globals and functions shift the indices",
			in: mod(
				sec(secType, vec(funcType(nil, nil))),
				sec(secImport, vec(
					cat(str("env"), str("f"), b(kindFunc, 0)),
					cat(str("env"), str("g"), b(kindGlobal, 0x7F, 0x00)),
					cat(str("env"), str("t"), b(kindTable, 0x70, 0x00, 0x01)),
					cat(str("env"), str("m"), b(kindMemory, 0x00, 0x01)),
					cat(str("env"), str("h"), b(kindGlobal, 0x7E, 0x01)),
				)),
				funcSec,
				sec(secGlobal, vec(b(0x7F, 0x00, 0x41, 0x00, 0x0B))),
				sec(secCode, vec(body(vec(), 0x0B))),
			),
			opts: Options{Interrupt: true, MaxMemoryPages: 1},
			want: mod(
				sec(secType, vec(funcType(nil, nil))),
				sec(secImport, vec(
					cat(str("env"), str("f"), b(kindFunc, 0)),
					cat(str("env"), str("g"), b(kindGlobal, 0x7F, 0x00)),
					cat(str("env"), str("t"), b(kindTable, 0x70, 0x00, 0x01)),
					cat(str("env"), str("m"), b(kindMemory, 0x00, 0x01)),
					cat(str("env"), str("h"), b(kindGlobal, 0x7E, 0x01)),
				)),
				funcSec,
				sec(secGlobal, vec(b(0x7F, 0x00, 0x41, 0x00, 0x0B), newGlobals[0], newGlobals[1])),
				sec(secExport, vec(exportEntry(InterruptExport, kindGlobal, 3), exportEntry(CountdownExport, kindGlobal, 3+1))),
				sec(secCode, vec(body(vec(), cat(checkFor(3, 4), b(0x0B))...))),
			),
			wantChecks: 1,
		},
		{
			name: "a memory section declaring no memory gets one",
			in:   mod(sec(secMemory, vec())),
			opts: Options{Interrupt: true},
			want: mod(emptyMemorySec, newGlobalSec, sec(secExport, vec(exportEntry(InterruptExport, kindGlobal, 0), exportEntry(CountdownExport, kindGlobal, 0+1)))),
		},
		{
			name: "empty module",
			in:   mod(),
			opts: Options{Interrupt: true, MaxMemoryPages: 1},
			want: mod(emptyMemorySec, newGlobalSec, sec(secExport, vec(exportEntry(InterruptExport, kindGlobal, 0), exportEntry(CountdownExport, kindGlobal, 0+1)))),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := mustInstrument(t, tc.in, tc.opts)
			if !bytes.Equal(res.Wasm, tc.want) {
				t.Fatalf("output differs\n got % x\nwant % x", res.Wasm, tc.want)
			}
			if res.Checks != tc.wantChecks {
				t.Errorf("Checks = %d, want %d", res.Checks, tc.wantChecks)
			}
			wantGlobal := ""
			if tc.opts.Interrupt {
				wantGlobal = InterruptExport
			}
			if res.InterruptGlobal != wantGlobal {
				t.Errorf("InterruptGlobal = %q, want %q", res.InterruptGlobal, wantGlobal)
			}
		})
	}
}

// TestErrors checks that bad or unsupported input is refused with the
// right error kind and a message that says where.
func TestErrors(t *testing.T) {
	typeSec := sec(secType, vec(funcType(nil, nil)))
	funcSec := sec(secFunction, vec(b(0)))
	code := func(ops ...byte) []byte { return sec(secCode, vec(body(vec(), ops...))) }
	tests := []struct {
		name    string
		in      []byte
		opts    Options
		kind    error
		message string
	}{
		{"empty input", nil, Options{}, ErrMalformed, "header: offset 0x0"},
		{"bad magic", []byte("\x00asn\x01\x00\x00\x00"), Options{}, ErrMalformed, "bad magic"},
		{"bad version", b(0, 'a', 's', 'm', 2, 0, 0, 0), Options{}, ErrMalformed, "unknown binary version"},
		{"component", b(0, 'a', 's', 'm', 0x0d, 0, 1, 0), Options{}, ErrUnsupported, "component"},
		{"section past end", cat(mod(), b(1, 10, 0)), Options{}, ErrMalformed, "type section: offset 0x8: section size 10 runs past"},
		{"bad section size", cat(mod(), b(1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)), Options{}, ErrMalformed, "invalid or truncated section size"},
		{"unknown section", cat(mod(), sec(14)), Options{}, ErrMalformed, "unknown section id 14"},
		{"out of order", mod(funcSec, typeSec), Options{}, ErrMalformed, "type section: offset 0xc: section out of order"},
		{"repeated", mod(typeSec, typeSec), Options{}, ErrMalformed, "out of order or repeated"},
		{"import kind", mod(sec(secImport, vec(cat(str("a"), str("b"), b(9))))), Options{}, ErrMalformed, "unknown import kind 0x09"},
		{"import truncated", mod(sec(secImport, b(1, 1))), Options{}, ErrMalformed, "import section"},
		{"trailing bytes", mod(sec(secStart, b(0, 0))), Options{}, ErrMalformed, "start section: offset 0xb: 1 unexpected bytes"},
		{"memory64", mod(sec(secMemory, vec(b(0x04, 0x01)))), Options{}, ErrUnsupported, "memory64"},
		{"imported memory64", mod(sec(secImport, vec(cat(str("a"), str("m"), b(kindMemory, 0x05, 0x01, 0x02))))), Options{}, ErrUnsupported, "memory64"},
		{"custom page size", mod(sec(secMemory, vec(b(0x08, 0x01, 0x10)))), Options{}, ErrUnsupported, "memory limits flags 0x08"},
		{"reserved export", mod(typeSec, funcSec, sec(secExport, vec(exportEntry(InterruptExport, kindFunc, 0)))), Options{}, ErrReservedExport, `already exports "__sluice_interrupt"`},
		{"reserved countdown export", mod(typeSec, funcSec, sec(secExport, vec(exportEntry(CountdownExport, kindFunc, 0)))), Options{}, ErrReservedExport, `already exports "__sluice_countdown"`},
		{"reserved start export", mod(typeSec, funcSec, sec(secExport, vec(exportEntry(StartExport, kindFunc, 0)))), Options{}, ErrReservedExport, "__sluice_start"},
		{"unknown opcode", mod(typeSec, funcSec, code(0x01, 0x27, 0x0B)), Options{Interrupt: true}, ErrMalformed, "code section: function 0: offset 0x18: unknown opcode 0x27"},
		{"gc opcode", mod(typeSec, funcSec, code(0xFB, 0x00, 0x0B)), Options{Interrupt: true}, ErrUnsupported, "code section: function 0: offset 0x17: GC instruction"},
		{"unknown 0xfc", mod(typeSec, funcSec, code(0xFC, 0x20, 0x0B)), Options{Interrupt: true}, ErrMalformed, "unknown opcode 0xfc 32"},
		{"unknown 0xfd", mod(typeSec, funcSec, code(0xFD, 0x80, 0x06, 0x0B)), Options{Interrupt: true}, ErrMalformed, "unknown opcode 0xfd 768"},
		{"unknown 0xfe", mod(typeSec, funcSec, code(0xFE, 0x04, 0x0B)), Options{Interrupt: true}, ErrMalformed, "unknown opcode 0xfe 4"},
		{"truncated i32.const", mod(typeSec, funcSec, code(0x41, 0x80)), Options{Interrupt: true}, ErrMalformed, "invalid or truncated immediate of opcode 0x41"},
		{"truncated v128.const", mod(typeSec, funcSec, code(0xFD, 0x0C, 1, 2, 3, 0x0B)), Options{Interrupt: true}, ErrMalformed, "immediate of opcode 0xfd"},
		{"negative block type index", mod(typeSec, funcSec, code(0x03, 0xC0, 0x7F, 0x0B, 0x0B)), Options{Interrupt: true}, ErrMalformed, "immediate of opcode 0x03"},
		{"huge br_table", mod(typeSec, funcSec, code(0x0E, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x0B)), Options{Interrupt: true}, ErrMalformed, "opcode 0x0e"},
		{"bad try_table clause", mod(typeSec, funcSec, code(0x1F, 0x40, 0x01, 0x04, 0x00, 0x0B, 0x0B)), Options{Interrupt: true}, ErrMalformed, "opcode 0x1f"},
		{"body past section", mod(typeSec, funcSec, sec(secCode, b(1, 5, 0, 0x0B))), Options{Interrupt: true}, ErrMalformed, "code section: function 0: offset 0x15: body size 5 runs past"},
		{"trailing code bytes", mod(typeSec, funcSec, sec(secCode, b(1, 2, 0, 0x0B, 0xAA))), Options{Interrupt: true}, ErrMalformed, "1 unexpected bytes after the last function body"},
		{"bad locals", mod(typeSec, funcSec, sec(secCode, b(1, 3, 1, 0x80, 0x80))), Options{Interrupt: true}, ErrMalformed, "code section: function 0: offset"},
		{"function index counts imports", mod(typeSec, sec(secImport, vec(cat(str("a"), str("f"), b(kindFunc, 0)))), funcSec, code(0x27)), Options{Interrupt: true}, ErrMalformed, "function 1:"},
		{"bad custom name", mod(sec(secCustom, b(5, 'a'))), Options{Interrupt: true}, ErrMalformed, "custom section"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Instrument(tc.in, tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("error %q does not wrap %v", err, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not contain %q", err, tc.message)
			}
		})
	}
}

// TestMemoryTooSmall checks the typed error for a memory minimum above the
// limit, and that an imported memory is left alone.
func TestMemoryTooSmall(t *testing.T) {
	in := mod(sec(secMemory, vec(b(0x00, 0x21)))) // min 33 pages
	_, err := Instrument(in, Options{MaxMemoryPages: 16})
	var tooSmall *MemoryTooSmallError
	if !errors.As(err, &tooSmall) {
		t.Fatalf("error %v is not a *MemoryTooSmallError", err)
	}
	if tooSmall.NeededPages != 33 || tooSmall.LimitPages != 16 {
		t.Errorf("got %+v, want needed 33, limit 16", tooSmall)
	}
	const want = "module needs at least 2.0625 MiB of memory at start but the limit is 1 MiB"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q does not start with %q", err, want)
	}

	imported := mod(sec(secImport, vec(cat(str("env"), str("memory"), b(kindMemory, 0x00, 0x40)))))
	res := mustInstrument(t, imported, Options{MaxMemoryPages: 16})
	if !bytes.Equal(res.Wasm, imported) {
		t.Errorf("imported memory was changed: % x", res.Wasm)
	}
}

// TestGoldenCounterLocal checks the counter local given to functions with
// loops: its declaration, its index (parameters plus declared locals), and
// the fallback to the global-counter check where no local can be added.
func TestGoldenCounterLocal(t *testing.T) {
	voidType := funcType(nil, nil)
	newGlobalSec := sec(secGlobal, vec(newGlobals...)) // flag 0, counter 1
	flagExport := sec(secExport, vec(exportEntry(InterruptExport, kindGlobal, 0), exportEntry(CountdownExport, kindGlobal, 0+1)))
	// module wraps a type section (and maybe an import section), a
	// function section and code bodies the way Instrument writes them for
	// a module without memory, globals and exports (so the flag is global
	// 0 and the counter global 1).
	module := func(in bool, typeSec, funcSec []byte, bodies ...[]byte) []byte {
		if in {
			return mod(typeSec, funcSec, sec(secCode, vec(bodies...)))
		}
		return mod(typeSec, funcSec, emptyMemorySec, newGlobalSec, flagExport, sec(secCode, vec(bodies...)))
	}
	// An imported function of type 1 comes before the defined functions in
	// the function index space, not in the function section.
	importFunc := sec(secImport, vec(cat(str("env"), str("f"), b(kindFunc, 1))))
	// loop is a body's code: loop end end. withCounter is that code
	// instrumented with counter local l; withGlobal, without one.
	loop := b(0x03, 0x40, 0x0B, 0x0B)
	withCounter := func(l ...byte) []byte {
		return cat(check0, b(0x03, 0x40), loopCheckFor(0, l...), b(0x0B), exitFlushFor(0, 1, l...), b(0x0B))
	}
	withGlobal := cat(check0, b(0x03, 0x40), check0, b(0x0B, 0x0B))
	counterLocal := vec(b(0x01, 0x7F))
	// decls127 declares 127 i32 locals one at a time.
	var decls127 [][]byte
	for range 127 {
		decls127 = append(decls127, b(0x01, 0x7F))
	}
	maxCount := b(0xFF, 0xFF, 0xFF, 0xFF, 0x0F) // 2^32-1
	nearMax := b(0xFE, 0xFF, 0xFF, 0xFF, 0x0F)  // 2^32-2
	tests := []struct {
		name       string
		typeSec    []byte
		funcSec    []byte
		in, want   [][]byte // bodies
		wantChecks int
	}{
		{
			name:    "index is params plus locals of several types; a function without loops gets none",
			typeSec: cat(sec(secType, vec(voidType, funcType(b(0x7F, 0x7E, 0x7C), b(0x7F)))), importFunc), // 1: (i32 i64 f64) -> i32
			funcSec: sec(secFunction, vec(b(1), b(0))),
			in: [][]byte{
				// 2 x i32, i64, v128, (ref null func): 5 locals; loop end i32.const 0 end
				body(vec(b(0x02, 0x7F), b(0x01, 0x7E), b(0x01, 0x7B), b(0x01, 0x63, 0x70)), 0x03, 0x40, 0x0B, 0x41, 0x00, 0x0B),
				body(vec(b(0x01, 0x7F)), 0x0B),
			},
			want: [][]byte{
				body(vec(b(0x02, 0x7F), b(0x01, 0x7E), b(0x01, 0x7B), b(0x01, 0x63, 0x70), b(0x01, 0x7F)),
					cat(check0, b(0x03, 0x40), loopCheckFor(0, 3+5), b(0x0B, 0x41, 0x00), exitFlushFor(0, 1, 3+5), b(0x0B))...),
				body(vec(b(0x01, 0x7F)), cat(check0, b(0x0B))...),
			},
			wantChecks: 3,
		},
		{
			name:    "nested and sibling loops share one counter",
			typeSec: sec(secType, vec(funcType(b(0x7E), nil))),
			funcSec: sec(secFunction, vec(b(0))),
			in:      [][]byte{body(vec(), 0x03, 0x40, 0x03, 0x40, 0x0B, 0x0B, 0x03, 0x40, 0x0B, 0x0B)},
			want: [][]byte{body(counterLocal, cat(check0,
				b(0x03, 0x40), loopCheckFor(0, 1), b(0x03, 0x40), loopCheckFor(0, 1), b(0x0B, 0x0B),
				b(0x03, 0x40), loopCheckFor(0, 1), b(0x0B), exitFlushFor(0, 1, 1), b(0x0B))...)},
			wantChecks: 4,
		},
		{
			name: "rec group of func types",
			// rec (func) (func (param i32 i32)) end, func (param f32)
			typeSec:    sec(secType, vec(cat(b(typeRecGroup), vec(voidType, funcType(b(0x7F, 0x7F), nil))), funcType(b(0x7D), nil))),
			funcSec:    sec(secFunction, vec(b(1), b(2), b(0))),
			in:         [][]byte{body(vec(), loop...), body(vec(), loop...), body(vec(), loop...)},
			want:       [][]byte{body(counterLocal, withCounter(2)...), body(counterLocal, withCounter(1)...), body(counterLocal, withCounter(0)...)},
			wantChecks: 6,
		},
		{
			name:       "a 128th declaration makes the count two bytes long",
			typeSec:    sec(secType, vec(voidType)),
			funcSec:    sec(secFunction, vec(b(0))),
			in:         [][]byte{body(vec(decls127...), loop...)},
			want:       [][]byte{body(cat(b(0x80, 0x01), cat(decls127...), b(0x01, 0x7F)), withCounter(127)...)},
			wantChecks: 2,
		},
		{
			name:       "a padded declaration count is rewritten in its shortest form",
			typeSec:    sec(secType, vec(voidType)),
			funcSec:    sec(secFunction, vec(b(0))),
			in:         [][]byte{body(b(0x80, 0x80, 0x00), loop...)}, // 0 declarations, in 3 bytes
			want:       [][]byte{body(counterLocal, withCounter(0)...)},
			wantChecks: 2,
		},
		{
			name:       "2^32-2 locals: the counter is the last possible local",
			typeSec:    sec(secType, vec(voidType)),
			funcSec:    sec(secFunction, vec(b(0))),
			in:         [][]byte{body(vec(cat(nearMax, b(0x7F))), loop...)},
			want:       [][]byte{body(vec(cat(nearMax, b(0x7F)), b(0x01, 0x7F)), withCounter(nearMax...)...)},
			wantChecks: 2,
		},
		{
			name:       "fallback: 2^32-1 locals already",
			typeSec:    sec(secType, vec(voidType)),
			funcSec:    sec(secFunction, vec(b(0))),
			in:         [][]byte{body(vec(cat(maxCount, b(0x7F))), loop...)},
			want:       [][]byte{body(vec(cat(maxCount, b(0x7F))), withGlobal...)},
			wantChecks: 2,
		},
		{
			name:       "fallback: one param and 2^32-2 locals; the next function still gets a counter",
			typeSec:    sec(secType, vec(funcType(b(0x7F), nil))),
			funcSec:    sec(secFunction, vec(b(0), b(0))),
			in:         [][]byte{body(vec(cat(nearMax, b(0x7F))), loop...), body(vec(), loop...)},
			want:       [][]byte{body(vec(cat(nearMax, b(0x7F))), withGlobal...), body(counterLocal, withCounter(1)...)},
			wantChecks: 4,
		},
		{
			name:    "fallback: type index out of range, non-func type, bodies beyond the function section",
			typeSec: sec(secType, vec(voidType, b(0x5F, 0x00), voidType)), // a GC struct type hides type 2
			funcSec: sec(secFunction, vec(b(9), b(2), b(0))),
			in:      [][]byte{body(vec(), loop...), body(vec(), loop...), body(vec(), loop...), body(vec(), loop...)},
			want: [][]byte{
				body(vec(), withGlobal...), body(vec(), withGlobal...),
				body(counterLocal, withCounter(0)...), body(vec(), withGlobal...),
			},
			wantChecks: 8,
		},
		{
			name:       "fallback: truncated type section (the types before the bad one are known)",
			typeSec:    sec(secType, b(0x02, 0x60, 0x00, 0x00, 0x60, 0x05)),
			funcSec:    sec(secFunction, vec(b(1), b(0))),
			in:         [][]byte{body(vec(), loop...), body(vec(), loop...)},
			want:       [][]byte{body(vec(), withGlobal...), body(counterLocal, withCounter(0)...)},
			wantChecks: 4,
		},
		{
			name:       "fallback: no function section",
			typeSec:    sec(secType, vec(voidType)),
			in:         [][]byte{body(vec(), loop...)},
			want:       [][]byte{body(vec(), withGlobal...)},
			wantChecks: 2,
		},
		{
			name: "flushes before calls of defined functions and before exits, flag checks before calls of the host and long instructions",
			// 0: () -> (), 1: (i32) -> i32; function 0 is imported.
			typeSec: cat(sec(secType, vec(voidType, funcType(b(0x7F), b(0x7F)))),
				sec(secImport, vec(cat(str("env"), str("h"), b(kindFunc, 0))))),
			funcSec: sec(secFunction, vec(b(0))),
			in: [][]byte{body(vec(),
				0x03, 0x40, // loop
				0x10, 0x00, // call 0: the host, a flag check
				0x10, 0x01, // call 1
				0x41, 0x00, 0x11, 0x00, 0x00, // i32.const 0; call_indirect: a flag check
				0x02, 0x40, // block
				0x41, 0x00, 0x0D, 0x00, // i32.const 0; br_if 0: not an exit
				0x41, 0x00, 0x0D, 0x02, // i32.const 0; br_if 2: an exit
				0x41, 0x00, 0x0E, 0x01, 0x00, 0x02, // i32.const 0; br_table 0 2: maybe an exit
				0x0B,                               // end
				0x41, 0x07, 0x03, 0x01, 0x0B, 0x1A, // i32.const 7; loop (type 1: a parameter) end; drop
				0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xFC, 0x0B, 0x00, // memory.fill: a flag check
				0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xFC, 0x0A, 0x00, 0x00, // memory.copy: a flag check
				0xFC, 0x09, 0x00, // data.drop: nothing
				0x41, 0x00, 0x41, 0x00, 0x42, 0x00, 0xFE, 0x01, 0x02, 0x00, // memory.atomic.wait32: a flag check
				0x41, 0x00, 0xFE, 0x10, 0x02, 0x00, 0x1A, // i32.atomic.load; drop: nothing
				0x41, 0x00, 0x08, 0x00, // i32.const 0; throw 0
				0x0C, 0x01, // br 1: an exit
				0x0B,       // end
				0x0F,       // return
				0x12, 0x01, // return_call 1
				0x12, 0x00, // return_call 0: the host, an exit
				0x41, 0x00, 0x13, 0x00, 0x00, // i32.const 0; return_call_indirect
				0x0B, // end
			)},
			want: [][]byte{body(counterLocal, cat(
				check0,
				b(0x03, 0x40), loopCheckFor(0, 0),
				flagCheck0, b(0x10, 0x00), // global.get 0; if; unreachable; end
				callFlushFor(1, 0), b(0x10, 0x01),
				b(0x41, 0x00), flagCheck0, b(0x11, 0x00, 0x00),
				b(0x02, 0x40),
				b(0x41, 0x00, 0x0D, 0x00),
				b(0x41, 0x00), exitFlushFor(0, 1, 0), b(0x0D, 0x02),
				b(0x41, 0x00), exitFlushFor(0, 1, 0), b(0x0E, 0x01, 0x00, 0x02),
				b(0x0B),
				b(0x41, 0x07, 0x03, 0x01), paramLoopCheckFor(0, 0), b(0x0B, 0x1A),
				b(0x41, 0x00, 0x41, 0x00, 0x41, 0x00), flagCheck0, b(0xFC, 0x0B, 0x00),
				b(0x41, 0x00, 0x41, 0x00, 0x41, 0x00), flagCheck0, b(0xFC, 0x0A, 0x00, 0x00),
				b(0xFC, 0x09, 0x00),
				b(0x41, 0x00, 0x41, 0x00, 0x42, 0x00), flagCheck0, b(0xFE, 0x01, 0x02, 0x00),
				b(0x41, 0x00, 0xFE, 0x10, 0x02, 0x00, 0x1A),
				b(0x41, 0x00), exitFlushFor(0, 1, 0), b(0x08, 0x00),
				exitFlushFor(0, 1, 0), b(0x0C, 0x01),
				b(0x0B),
				exitFlushFor(0, 1, 0), b(0x0F),
				callFlushFor(1, 0), b(0x12, 0x01),
				exitFlushFor(0, 1, 0), b(0x12, 0x00),
				b(0x41, 0x00), exitFlushFor(0, 1, 0), b(0x13, 0x00, 0x00),
				exitFlushFor(0, 1, 0), b(0x0B),
			)...)},
			wantChecks: 3,
		},
		{
			name:       "no flushes in a function without loops",
			typeSec:    cat(sec(secType, vec(voidType)), sec(secImport, vec(cat(str("env"), str("h"), b(kindFunc, 0))))),
			funcSec:    sec(secFunction, vec(b(0))),
			in:         [][]byte{body(vec(), 0x10, 0x01, 0x0F, 0x0B)}, // call 1; return; end
			want:       [][]byte{body(vec(), cat(check0, b(0x10, 0x01, 0x0F, 0x0B))...)},
			wantChecks: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := module(true, tc.typeSec, tc.funcSec, tc.in...)
			want := module(false, tc.typeSec, tc.funcSec, tc.want...)
			res := mustInstrument(t, in, Options{Interrupt: true})
			if !bytes.Equal(res.Wasm, want) {
				t.Fatalf("output differs\n got % x\nwant % x", res.Wasm, want)
			}
			if res.Checks != tc.wantChecks {
				t.Errorf("Checks = %d, want %d", res.Checks, tc.wantChecks)
			}
		})
	}
}

// TestTables checks the table clamp: tables that start over the bound are
// refused, and every table's maximum becomes its minimum, whatever form
// its entry takes; without a bound the section is copied as it is.
func TestTables(t *testing.T) {
	plain := b(0x70, 0x00, 0x05)                                   // funcref, min 5, no max
	withMax := b(0x70, 0x01, 0x05, 0x80, 0x01)                     // funcref, min 5, max 128
	withInit := b(0x40, 0x00, 0x70, 0x00, 0x03, 0xD0, 0x70, opEnd) // funcref, min 3, init ref.null func
	in := mod(sec(secTable, vec(plain, withMax, withInit)))
	res := mustInstrument(t, in, Options{MaxTableElements: 13})
	want := mod(sec(secTable, vec(b(0x70, 0x01, 0x05, 0x05), b(0x70, 0x01, 0x05, 0x05), b(0x40, 0x00, 0x70, 0x01, 0x03, 0x03, 0xD0, 0x70, opEnd))))
	if !bytes.Equal(res.Wasm, want) {
		t.Fatalf("got  % x\nwant % x", res.Wasm, want)
	}
	if res := mustInstrument(t, in, Options{}); !bytes.Equal(res.Wasm, in) {
		t.Fatalf("without a bound the tables changed: % x", res.Wasm)
	}
	_, err := Instrument(in, Options{MaxTableElements: 12})
	var tooLarge *TablesTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Elements != 13 || tooLarge.Limit != 12 {
		t.Fatalf("error %v, want a *TablesTooLargeError of 13 elements over 12", err)
	}
	if _, err := Instrument(mod(sec(secTable, vec(b(0x70, 0x04, 0x01)))), Options{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("64-bit table: error %v", err)
	}

	// table.grow fails once the maximum is the minimum.
	grow := wat(t, `(module (table 2 funcref)
	  (func (export "grow") (result i32) (table.grow 0 (ref.null func) (i32.const 1))))`)
	for _, tc := range []struct {
		opts Options
		want uint64
	}{{Options{}, 2}, {Options{MaxTableElements: 100}, 1<<32 - 1}} {
		mod := instantiate(t, mustInstrument(t, grow, tc.opts).Wasm)
		if got := call(t, mod, "grow")[0]; got != tc.want {
			t.Errorf("%+v: table.grow returned %d, want %d", tc.opts, got, tc.want)
		}
	}
}
