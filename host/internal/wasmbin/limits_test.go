package wasmbin

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// nestedBody is a function body of depth nested instructions op (block or
// loop; 0 for if), each closed at the end.
func nestedBody(depth int, op byte) []byte {
	var code []byte
	for i := 0; i < depth; i++ {
		if op == 0 {
			code = append(code, opI32Const, 1, opIf, blockEmpty)
		} else {
			code = append(code, op, blockEmpty)
		}
	}
	code = append(code, bytes.Repeat([]byte{opEnd}, depth+1)...)
	return body(vec(), code...)
}

// oneFunc is a module of one function of type () -> () with body fnBody
// (encoded by body) and declared locals.
func oneFunc(fnBody []byte) []byte {
	return mod(
		sec(secType, vec(funcType(nil, nil))),
		sec(secFunction, vec(leb(0))),
		sec(secCode, vec(fnBody)),
	)
}

// brTableBody is a body with locals i32 locals and one br_table of targets
// targets, all to the function's own block.
func brTableBody(targets, locals int) []byte {
	code := []byte{0x02, blockEmpty, opI32Const, 0, 0x0E}
	code = append(code, leb(uint32(targets-1))...)
	code = append(code, bytes.Repeat([]byte{0}, targets)...)
	code = append(code, opEnd, opEnd)
	return body(cat(leb(1), leb(uint32(locals)), b(valI32)), code...)
}

// TestCheckGuests checks that every real guest passes the default limits,
// with the counts the limits were chosen from.
func TestCheckGuests(t *testing.T) {
	guests := map[string][]byte{"go": goGuest(t), "c": cGuest(t, "c", cGuestSource)}
	for name, bin := range guests {
		st, err := Check(bin, DefaultLimits())
		if err != nil {
			t.Fatalf("%s guest: %v", name, err)
		}
		if st.Functions == 0 || st.CodeBytes == 0 || st.MaxDepth == 0 || st.TotalLocals == 0 || st.Tables != 1 {
			t.Errorf("%s guest: implausible stats %+v", name, st)
		}
	}
}

// TestCheckLimits builds, for each limit, a small module just over it
// (with the limit lowered) and one at it.
func TestCheckLimits(t *testing.T) {
	voidType := funcType(nil, nil)
	fnType := sec(secType, vec(voidType))
	manyFuncs := func(n int) []byte {
		var fns, bodies [][]byte
		for i := 0; i < n; i++ {
			fns = append(fns, leb(0))
			bodies = append(bodies, body(vec(), opEnd))
		}
		return mod(fnType, sec(secFunction, vec(fns...)), sec(secCode, vec(bodies...)))
	}
	withLocals := func(n uint32) []byte { return oneFunc(body(cat(leb(1), leb(n), b(valI32)), opEnd)) }
	globals := func(n int) []byte {
		var gs [][]byte
		for i := 0; i < n; i++ {
			gs = append(gs, b(valI32, 0, opI32Const, 0, opEnd))
		}
		return mod(sec(secGlobal, vec(gs...)))
	}
	elems := func(n int) []byte {
		var idx [][]byte
		for i := 0; i < n; i++ {
			idx = append(idx, leb(0))
		}
		return mod(fnType, sec(secFunction, vec(leb(0))), sec(secTable, vec(b(0x70, 0, 8))),
			sec(secElement, vec(cat(b(0, opI32Const, 0, opEnd), vec(idx...)))), sec(secCode, vec(body(vec(), opEnd))))
	}
	tests := []struct {
		name     string
		lim      Limits
		ok, over []byte
		what     string
		fn       int64
	}{
		{"functions", Limits{Functions: 3}, manyFuncs(3), manyFuncs(4), "functions", -1},
		{"types", Limits{Types: 1}, mod(fnType), mod(sec(secType, vec(voidType, voidType))), "types", -1},
		{"params", Limits{Params: 2}, mod(sec(secType, vec(funcType(b(valI32, valI32), nil)))),
			mod(sec(secType, vec(funcType(b(valI32, valI32, valI32), nil)))), "parameters of one type", -1},
		{"locals", Limits{Locals: 10}, withLocals(10), withLocals(11), "locals (parameters included)", 0},
		{"locals with params", Limits{Locals: 10},
			mod(sec(secType, vec(funcType(b(valI32), nil))), sec(secFunction, vec(leb(0))), sec(secCode, vec(body(cat(leb(1), leb(9), b(valI32)), opEnd)))),
			mod(sec(secType, vec(funcType(b(valI32), nil))), sec(secFunction, vec(leb(0))), sec(secCode, vec(body(cat(leb(1), leb(10), b(valI32)), opEnd)))),
			"locals (parameters included)", 0},
		{"total locals", Limits{TotalLocals: 5}, withLocals(5), withLocals(6), "locals in all functions", -1},
		{"body size", Limits{BodySize: 3}, oneFunc(body(vec(), 0x01, opEnd)), oneFunc(body(vec(), 0x01, 0x01, opEnd)), "bytes of body", 0},
		{"nesting", Limits{NestingWork: 10}, oneFunc(nestedBody(4, 0x02)), oneFunc(nestedBody(5, 0x02)), "nesting work", 0},
		{"nesting of ifs", Limits{NestingWork: 10}, oneFunc(nestedBody(4, 0)), oneFunc(nestedBody(5, 0)), "nesting work", 0},
		{"nesting of loops", Limits{NestingWork: 3 * LoopWeight}, oneFunc(nestedBody(2, 0x03)), oneFunc(nestedBody(3, 0x03)), "nesting work", 0},
		{"branch work", Limits{BranchWork: 100}, oneFunc(brTableBody(10, 10)), oneFunc(brTableBody(11, 10)), "branch work", 0},
		{"globals", Limits{Globals: 2}, globals(2), globals(3), "globals", -1},
		{"tables", Limits{Tables: 1}, mod(sec(secTable, vec(b(0x70, 0, 1)))), mod(sec(secTable, vec(b(0x70, 0, 1), b(0x70, 0, 1)))), "tables", -1},
		{"table size", Limits{TableSize: 100}, mod(sec(secTable, vec(b(0x70, 0, 100)))), mod(sec(secTable, vec(cat(b(0x70, 0), leb(101))))), "elements in one table at start", -1},
		{"elements", Limits{Elements: 3}, elems(3), elems(4), "elements in all segments", -1},
		{"exports", Limits{Exports: 1}, mod(fnType, sec(secFunction, vec(leb(0))), sec(secExport, vec(exportEntry("a", kindFunc, 0))), sec(secCode, vec(body(vec(), opEnd)))),
			mod(fnType, sec(secFunction, vec(leb(0))), sec(secExport, vec(exportEntry("a", kindFunc, 0), exportEntry("b", kindFunc, 0))), sec(secCode, vec(body(vec(), opEnd)))), "exports", -1},
		{"custom sections", Limits{CustomSections: 1}, mod(sec(secCustom, str("a"))), mod(sec(secCustom, str("a")), sec(secCustom, str("b"))), "custom sections", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Check(tc.ok, tc.lim); err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			_, err := Check(tc.over, tc.lim)
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrLimit) {
				t.Fatalf("over the limit: error %v, want a *LimitError", err)
			}
			if le.What != tc.what || le.Function != tc.fn {
				t.Fatalf("over the limit: %q (function %d), want %q (function %d)", le.What, le.Function, tc.what, tc.fn)
			}
			if _, err := Check(tc.over, DefaultLimits()); err != nil {
				t.Fatalf("under the default limits: %v", err)
			}
		})
	}
}

// TestCheckHostile checks the modules that exhausted or stalled the host
// before Check existed: each is refused at once, without allocating what
// it declares.
func TestCheckHostile(t *testing.T) {
	huge := cat(leb(1), leb(1<<32-2), b(valI32))
	tests := []struct {
		name string
		in   []byte
		kind error
		says string
	}{
		// 94 bytes that declared 2^32-2 locals: "fatal error: runtime: out of memory".
		{"2^32-2 locals", oneFunc(body(huge, opEnd)), ErrLimit, "function 0: 4294967294 locals"},
		{"200 M locals", oneFunc(body(cat(leb(1), leb(200_000_000), b(valI32)), opEnd)), ErrLimit, "200000000 locals"},
		// 20,000 nested loops compiled for 44 s.
		{"20,000 nested loops", oneFunc(nestedBody(20_000, 0x03)), ErrLimit, "nesting work"},
		{"100,000 nested blocks", oneFunc(nestedBody(100_000, 0x02)), ErrLimit, "nesting work"},
		{"br_table with 100,000 targets", oneFunc(brTableBody(100_000, 1000)), ErrLimit, "branch work"},
		// Counts that claim more items than there are bytes.
		{"functions count", mod(sec(secFunction, leb(1<<31))), ErrLimit, "2147483648 functions"},
		{"types count", mod(sec(secType, leb(50_000))), ErrMalformed, "50000 types declared in 0 bytes"},
		{"type params", mod(sec(secType, cat(leb(1), b(typeFunc), leb(1<<30)))), ErrLimit, "parameters of one type"},
		{"name section function names", mod(sec(secCustom, str("name"), b(1, 5), leb(1<<30))), ErrMalformed, "function names"},
		{"name section name length", mod(sec(secCustom, str("name"), b(0, 5), leb(1<<30))), ErrMalformed, "module name of 1073741824 bytes"},
		{"local names", mod(sec(secCustom, str("name"), b(2, 6), leb(1), leb(0), leb(1<<30))), ErrMalformed, "local names"},
		{"element count", mod(sec(secElement, leb(1<<31))), ErrLimit, "element segments"},
		{"elements of a segment", mod(sec(secElement, vec(cat(b(1, 0), leb(1<<30))))), ErrMalformed, "1073741824 elements of one segment declared in 0 bytes"},
		{"data length", mod(sec(secData, vec(cat(b(1), leb(1<<31))))), ErrMalformed, "data segment contents of 2147483648 bytes"},
		{"export name length", mod(sec(secExport, vec(leb(1<<31)))), ErrMalformed, "export name of 2147483648 bytes"},
		{"table of 2^32-1 elements", mod(sec(secTable, vec(cat(b(0x70, 0), leb(1<<32-1))))), ErrLimit, "elements in one table"},
		{"bodies without functions", mod(sec(secCode, vec(body(vec(), opEnd)))), ErrMalformed, "1 function bodies for 0 functions"},
		{"functions without bodies", mod(sec(secType, vec(funcType(nil, nil))), sec(secFunction, vec(leb(0)))), ErrMalformed, "missing"},
		{"unknown opcode", oneFunc(body(vec(), 0x27, opEnd)), ErrMalformed, "unknown opcode 0x27"},
		{"gc opcode", oneFunc(body(vec(), 0xFB, 0x00, opEnd)), ErrUnsupported, "GC instruction"},
		{"truncated section", cat(mod(), b(secType, 10, 0)), ErrMalformed, "runs past the end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.in, DefaultLimits())
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %v", err, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not say %q", err, tc.says)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _ = Check(tc.in, DefaultLimits())
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > 4<<10 {
				t.Fatalf("%d bytes allocated to refuse a %d-byte module", n, len(tc.in))
			}
		})
	}
}

// FuzzCheck checks that Check never panics, is deterministic, and that a
// module it accepts is one Instrument reads to the end.
func FuzzCheck(f *testing.F) {
	for _, tc := range behaviourCases {
		f.Add(wat(f, tc.wat))
	}
	f.Add(oneFunc(nestedBody(3, 0x03)))
	f.Add(oneFunc(brTableBody(4, 2)))
	f.Add(mod(sec(secCustom, str("name"), b(1, 4), leb(1), leb(0), str("f"))))
	f.Add(mod(sec(secTable, vec(b(0x40, 0, 0x70, 0, 1, 0xD0, 0x70, opEnd)))))
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := Check(in, DefaultLimits())
		st2, err2 := Check(in, DefaultLimits())
		if st != st2 || (err == nil) != (err2 == nil) {
			t.Fatalf("second run differs: %+v %v / %+v %v", st, err, st2, err2)
		}
		if err != nil {
			return
		}
		if _, err := Instrument(in, Options{Interrupt: true}); errors.Is(err, ErrMalformed) && !strings.Contains(err.Error(), "type") {
			t.Fatalf("Check accepts what Instrument cannot read: %v", err)
		}
	})
}
