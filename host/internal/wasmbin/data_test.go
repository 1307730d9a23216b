package wasmbin

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/testutil"
)

// memoryAfterInstantiation instantiates bin in an interpreter runtime of
// its own (compiling Go guests takes seconds; data is applied the same),
// every import it declares served by a function that does nothing (no
// start function runs), and returns a copy of its memory, or the error
// instantiation failed with.
func memoryAfterInstantiation(t testing.TB, bin []byte) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, bin)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	byModule := map[string][]api.FunctionDefinition{}
	var order []string
	for _, d := range cm.ImportedFunctions() {
		m, _, _ := d.Import()
		if _, ok := byModule[m]; !ok {
			order = append(order, m)
		}
		byModule[m] = append(byModule[m], d)
	}
	for _, m := range order {
		hb := r.NewHostModuleBuilder(m)
		for _, d := range byModule[m] {
			_, name, _ := d.Import()
			hb.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), d.ParamTypes(), d.ResultTypes()).Export(name)
		}
		if _, err := hb.Instantiate(ctx); err != nil {
			t.Fatalf("host module %q: %v", m, err)
		}
	}
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, err
	}
	defer mod.Close(ctx)
	mem, _ := mod.Memory().Read(0, mod.Memory().Size())
	return bytes.Clone(mem), nil
}

// TestCoalesceDataGuests: every test guest's memory after instantiation is
// the same, byte for byte, with its data segments merged and without; Go
// guests' tens of thousands of segments become a few.
func TestCoalesceDataGuests(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(testutil.Root(t), "build", "wasm", "*.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		testutil.WasmPath(t, "upper-go") // fails, saying how to build them
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".wasm")
		t.Run(name, func(t *testing.T) {
			in := testutil.Wasm(t, name)
			plain := mustInstrument(t, in, Options{Interrupt: true})
			merged := mustInstrument(t, in, Options{Interrupt: true, CoalesceData: true})
			if merged.MergedSegments > 0 && merged.MergedSegments >= merged.DataSegments {
				t.Fatalf("merged %d segments into %d", merged.DataSegments, merged.MergedSegments)
			}
			if strings.HasSuffix(name, "-go") || name == "goguest" || name == "wfguest" {
				if merged.MergedSegments == 0 || merged.MergedSegments > 16 {
					t.Fatalf("a Go guest's %d data segments merged into %d, want a few", merged.DataSegments, merged.MergedSegments)
				}
				t.Logf("%d data segments merged into %d", merged.DataSegments, merged.MergedSegments)
			}
			a, errA := memoryAfterInstantiation(t, plain.Wasm)
			b, errB := memoryAfterInstantiation(t, merged.Wasm)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("instantiation: %v without merging, %v with", errA, errB)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("memory after instantiation differs: %d bytes without merging, %d with, first difference at %d", len(a), len(b), firstDiff(a, b))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for k := range min(len(a), len(b)) {
		if a[k] != b[k] {
			return k
		}
	}
	return min(len(a), len(b))
}

// TestCoalesceDataCases: which segments merge, and that a merged segment
// out of bounds fails instantiation as the segments it merged did.
func TestCoalesceDataCases(t *testing.T) {
	cases := []struct {
		name   string
		wat    string
		merged int // segments after merging, 0: not merged
		fails  bool
	}{
		{"adjacent and gaps", `(module (memory 1)
			(data (i32.const 16) "abcdefgh") (data (i32.const 24) "cd") (data (i32.const 28) "ef"))`, 1, false},
		{"out of order", `(module (memory 1)
			(data (i32.const 20) "ef") (data (i32.const 16) "ab"))`, 1, false},
		{"gap too long", `(module (memory 1)
			(data (i32.const 0) "ab") (data (i32.const 2000) "cd") (data (i32.const 2002) "ef"))`, 2, false},
		{"more zeros than data", `(module (memory 1)
			(data (i32.const 0) "a") (data (i32.const 1000) "b") (data (i32.const 2000) "c"))`, 0, false},
		{"last out of bounds", `(module (memory 1)
			(data (i32.const 65530) "ab") (data (i32.const 65534) "cdef"))`, 1, true},
		{"empty segment past the end", `(module (memory 1)
			(data (i32.const 65534) "ab") (data (i32.const 65537) ""))`, 1, true},
		{"data count", `(module (memory 1)
			(data (i32.const 0) "ab") (data (i32.const 4) "cd")
			(func (drop (i32.load (i32.const 0)))))`, 1, false},
		{"overlapping", `(module (memory 1)
			(data (i32.const 0) "abcd") (data (i32.const 2) "xy"))`, 0, false},
		{"passive", `(module (memory 1)
			(data (i32.const 0) "ab") (data "cd"))`, 0, false},
		{"memory.init", `(module (memory 1)
			(data (i32.const 0) "ab") (data (i32.const 4) "cd")
			(func (memory.init 1 (i32.const 0) (i32.const 0) (i32.const 0))))`, 0, false},
		{"data.drop", `(module (memory 1)
			(data (i32.const 0) "ab") (data (i32.const 4) "cd")
			(func (data.drop 0)))`, 0, false},
		{"global offset", `(module (import "env" "g" (global $g i32)) (memory 1)
			(data (i32.const 0) "ab") (data (global.get $g) "cd"))`, 0, false},
		{"imported memory", `(module (import "env" "memory" (memory 1))
			(data (i32.const 0) "ab") (data (i32.const 4) "cd"))`, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := wat(t, tc.wat)
			plain := mustInstrument(t, in, Options{})
			res := mustInstrument(t, in, Options{CoalesceData: true})
			if res.MergedSegments != tc.merged {
				t.Fatalf("merged into %d segments (of %d), want %d", res.MergedSegments, res.DataSegments, tc.merged)
			}
			if tc.merged == 0 {
				if !bytes.Equal(res.Wasm, plain.Wasm) {
					t.Fatal("segments not merged, but the module changed")
				}
				return
			}
			if strings.Contains(tc.wat, "imported") {
				return
			}
			a, errA := memoryAfterInstantiation(t, plain.Wasm)
			b, errB := memoryAfterInstantiation(t, res.Wasm)
			if (errA != nil) != tc.fails || (errB != nil) != tc.fails {
				t.Fatalf("instantiation: %v without merging, %v with; want failure %v", errA, errB, tc.fails)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("memory differs at %d", firstDiff(a, b))
			}
		})
	}
}

// dataModule builds a module from fuzz input: a memory of 1 or 2 pages,
// and segments of 4 bytes each: an offset (2 bytes, scaled so that some
// overlap, some touch and some run past the end), a length and a fill
// byte. With withCount, a DataCount section and a function that loads
// from memory (DataCount is valid without memory.init).
func dataModule(layout []byte, pages byte, withCount bool) []byte {
	var segs [][]byte
	for k := 0; k+4 <= len(layout) && len(segs) < 64; k += 4 {
		off := uint32(binary.LittleEndian.Uint16(layout[k:])) * 3 / 2
		n := int(layout[k+2])
		init := bytes.Repeat([]byte{layout[k+3]}, n)
		segs = append(segs, cat(b(0, opI32Const), appendS32(nil, int32(off)), b(opEnd), leb(uint32(n)), init))
	}
	sections := [][]byte{
		sec(secType, vec(funcType(nil, nil))),
		sec(secFunction, vec(leb(0))),
		sec(secMemory, vec(b(0x00, 1+pages%2))),
	}
	if withCount {
		sections = append(sections, sec(secDataCount, leb(uint32(len(segs)))))
	}
	sections = append(sections,
		sec(secCode, vec(body(vec(), opI32Const, 0, 0x28, 2, 0, 0x1A, opEnd))),
		sec(secData, vec(segs...)))
	return mod(sections...)
}

// FuzzCoalesceData: whatever the segments, memory after instantiation is
// the same with them merged and without, and so is whether instantiation
// fails.
func FuzzCoalesceData(f *testing.F) {
	f.Add([]byte{0, 0, 4, 1, 8, 0, 4, 2}, byte(0), false)                   // touching
	f.Add([]byte{0, 0, 4, 1, 2, 0, 4, 2}, byte(0), true)                    // overlapping
	f.Add([]byte{0, 1, 9, 1, 0, 0, 3, 2, 100, 0, 0, 3}, byte(1), true)      // out of order, an empty one
	f.Add([]byte{0xF0, 0xAA, 200, 1, 0x00, 0xAA, 255, 2}, byte(0), false)   // past the end of one page
	f.Add([]byte{0, 0, 1, 1, 0x80, 2, 1, 2, 0x10, 3, 1, 3}, byte(1), false) // gaps around MaxDataGap
	f.Add([]byte{0xFF, 0xFF, 0, 0, 0, 0, 10, 10}, byte(0), true)            // an empty segment out of bounds
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
	f.Cleanup(func() { r.Close(ctx) })
	f.Fuzz(func(t *testing.T, layout []byte, pages byte, withCount bool) {
		in := dataModule(layout, pages, withCount)
		res, err := Instrument(in, Options{CoalesceData: true, Interrupt: true})
		if err != nil {
			t.Fatalf("Instrument: %v", err)
		}
		plain, err := Instrument(in, Options{Interrupt: true})
		if err != nil {
			t.Fatalf("Instrument: %v", err)
		}
		a, errA := instantiateIn(ctx, r, plain.Wasm)
		b, errB := instantiateIn(ctx, r, res.Wasm)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("instantiation: %v without merging, %v with (%d segments into %d)", errA, errB, res.DataSegments, res.MergedSegments)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("memory differs at %d (%d segments into %d)", firstDiff(a, b), res.DataSegments, res.MergedSegments)
		}
	})
}

// instantiateIn instantiates bin (no imports) in r and returns a copy of
// its memory.
func instantiateIn(ctx context.Context, r wazero.Runtime, bin []byte) ([]byte, error) {
	mod, err := r.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, err
	}
	defer mod.Close(ctx)
	mem, _ := mod.Memory().Read(0, mod.Memory().Size())
	return bytes.Clone(mem), nil
}
