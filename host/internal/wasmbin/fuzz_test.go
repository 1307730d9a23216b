package wasmbin

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzInstrument checks that Instrument never panics, is deterministic,
// and, when wazero compiles the input, either returns an error or returns
// a module wazero also compiles. It is seeded with the test modules.
func FuzzInstrument(f *testing.F) {
	for _, tc := range behaviourCases {
		f.Add(wat(f, tc.wat), true, uint16(16))
	}
	f.Add(wat(f, interruptWAT), true, uint16(0))
	f.Add(wat(f, hostCallWAT), true, uint16(0))
	f.Add(wat(f, loopWAT), true, uint16(1))
	f.Add(wat(f, `(module (global $g (mut i32) (i32.const 0)) (func $s (global.set $g (i32.const 1))) (start $s))`), false, uint16(1))
	f.Add(wat(f, `(module (memory 1 100 shared) (func (loop)))`), true, uint16(4))
	f.Add(mod(), true, uint16(0))

	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
	f.Cleanup(func() { r.Close(ctx) })

	f.Fuzz(func(t *testing.T, in []byte, interrupt bool, pages uint16) {
		opts := Options{Interrupt: interrupt, MaxMemoryPages: uint32(pages), CoalesceData: true}
		res, err := Instrument(in, opts)
		if err == nil {
			again, err2 := Instrument(in, opts)
			if err2 != nil || !bytes.Equal(res.Wasm, again.Wasm) {
				t.Fatalf("second run differs (error %v)", err2)
			}
		}
		if err != nil || !safeForWazero(in) {
			return // the property is vacuous, or wazero would exhaust memory
		}
		if compileErr := compiles(ctx, r, in); compileErr != nil {
			return // wazero refuses the input: anything goes but a panic
		}
		if compileErr := compiles(ctx, r, res.Wasm); compileErr != nil {
			t.Fatalf("wazero compiles the input but not the output (%+v): %v", opts, compileErr)
		}
	})
}

// fuzzCompiles counts compilations, see compiles.
var fuzzCompiles atomic.Uint64

// compiles reports whether wazero compiles bin (a panic inside wazero
// counts as a failure to compile). wazero unmaps a closed module's machine
// code only in a finalizer; with little Go garbage, a fuzzer's millions of
// compilations would exhaust the process's memory mappings before the
// collector runs, so collect every 256 compilations.
func compiles(ctx context.Context, r wazero.Runtime, bin []byte) (err error) {
	if fuzzCompiles.Add(1)%256 == 0 {
		runtime.GC()
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("wazero panicked: %v", p)
		}
	}()
	c, err := r.CompileModule(ctx, bin)
	if err != nil {
		return err
	}
	return c.Close(ctx)
}

// safeForWazero reports whether in can be given to wazero in a fuzzer
// worker. wazero's decoder allocates vectors by their declared length
// before reading them (and all of a function's locals), reading lengths
// past the end of their section, so a few bytes can make it allocate
// gigabytes; the worker then dies without a report. Rather than follow
// every vector wazero decodes, inputs with any LEB128 number above 4 Mi
// (at least 4 bytes long) are kept from wazero: a valid module rarely has
// one outside constants, and leaving them out only narrows what the
// compile property is checked on (Instrument itself still runs on them).
func safeForWazero(in []byte) bool {
	return !tooManyLocals(in) && !hugeLEB(in)
}

// hugeLEB reports whether some offset of in starts a LEB128 number of at
// least 4 bytes whose value exceeds 4 Mi.
func hugeLEB(in []byte) bool {
	for p := 0; p+3 < len(in); p++ {
		if in[p]&in[p+1]&in[p+2]&0x80 == 0 {
			continue
		}
		if v, _, ok := readU64(in, p); ok && v > 4<<20 {
			return true
		}
	}
	return false
}

// maxFuzzLocals bounds the locals a fuzzed function may declare before the
// input is kept from wazero, which allocates and walks them all (up to
// 2^32) before it validates anything else; such inputs make the fuzzer's
// workers hang.
const maxFuzzLocals = 100_000

// tooManyLocals reports whether some function body of in declares more
// than maxFuzzLocals locals.
func tooManyLocals(in []byte) bool {
	m, err := parseModule(in)
	if err != nil {
		return false
	}
	s, ok := m.sectionByID(secCode)
	if !ok {
		return false
	}
	b := in[:s.end]
	count, p, ok := readU32(b, s.payload)
	for i := uint32(0); ok && i < count; i++ {
		var size uint32
		if size, p, ok = readU32(b, p); !ok || uint64(size) > uint64(s.end-p) {
			return false
		}
		end := p + int(size)
		n, q, ok2 := readU32(b[:end], p)
		var sum uint64
		for j := uint32(0); ok2 && j < n; j++ {
			var c uint32
			if c, q, ok2 = readU32(b[:end], q); ok2 {
				sum += uint64(c)
				q, ok2 = skipValType(b[:end], q)
			}
		}
		if sum > maxFuzzLocals {
			return true
		}
		p = end
	}
	return false
}
