package wasmbin

import (
	"bytes"
	"strings"
	"testing"
)

func TestSnapshotPlan(t *testing.T) {
	cases := []struct {
		name, src string
		globals   []string // export names
		refusal   string   // a part of NoSnapshot
	}{
		{"mutable globals", `(module (global $a i32 (i32.const 1)) (global $b (mut i64) (i64.const 2)) (global $c (mut f64) (f64.const 3)))`, []string{"__sluice_global_1", "__sluice_global_2"}, ""},
		{"after an imported global", `(module (import "m" "g" (global i32)) (global (mut i32) (i32.const 0)))`, []string{"__sluice_global_1"}, ""},
		{"table.set", `(module (table 1 funcref) (func (table.set 0 (i32.const 0) (ref.null func))))`, nil, "table.set"},
		{"table.grow", `(module (table 1 funcref) (func (drop (table.grow 0 (ref.null func) (i32.const 1)))))`, nil, "table.grow"},
		{"elem.drop", `(module (table 1 funcref) (func $f) (elem $e func $f) (func (elem.drop $e)))`, nil, "elem.drop"},
		{"data.drop", `(module (memory 1) (data $d "x") (func (data.drop $d)))`, nil, "data.drop"},
		{"imported mutable global", `(module (import "m" "g" (global (mut i32))))`, nil, "imports a mutable global"},
		{"imported table", `(module (import "m" "t" (table 1 funcref)))`, nil, "imports a table"},
		{"mutable reference global", `(module (global (mut funcref) (ref.null func)))`, nil, "reference"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Instrument(wat(t, tc.src), Options{Interrupt: true, Snapshot: true})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, g := range res.Globals {
				names = append(names, g.Export)
				if !bytes.Contains(res.Wasm, []byte(g.Export)) {
					t.Fatalf("%s is not exported", g.Export)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.globals, ",") {
				t.Fatalf("globals %v, want %v", names, tc.globals)
			}
			if tc.refusal == "" && res.NoSnapshot != "" || !strings.Contains(res.NoSnapshot, tc.refusal) {
				t.Fatalf("NoSnapshot %q, want it to say %q", res.NoSnapshot, tc.refusal)
			}
		})
	}
	if _, err := Instrument(wat(t, `(module (global (export "__sluice_global_0") (mut i32) (i32.const 0)))`), Options{Snapshot: true}); err == nil {
		t.Fatal("a module exporting a reserved global name was accepted")
	}
}

// FuzzSnapshotPlan checks that Instrument with Options.Snapshot never
// panics, is deterministic, and exports every global it reports.
func FuzzSnapshotPlan(f *testing.F) {
	for _, src := range []string{
		`(module (global (mut i32) (i32.const 1)) (func (global.set 0 (i32.const 2))))`,
		`(module (table 1 funcref) (func (table.set 0 (i32.const 0) (ref.null func))))`,
		`(module (memory 1) (data $d "x") (func (data.drop $d)))`,
		`(module (import "m" "g" (global (mut i32))) (global (mut i64) (i64.const 0)))`,
		`(module (global (mut funcref) (ref.null func)) (global (mut f32) (f32.const 1)))`,
	} {
		f.Add(wat(f, src), true)
	}
	f.Add(mod(), false)
	f.Fuzz(func(t *testing.T, in []byte, interrupt bool) {
		opts := Options{Interrupt: interrupt, Snapshot: true}
		res, err := Instrument(in, opts)
		if err != nil {
			return
		}
		again, err := Instrument(in, opts)
		if err != nil || !bytes.Equal(res.Wasm, again.Wasm) || again.NoSnapshot != res.NoSnapshot || len(again.Globals) != len(res.Globals) {
			t.Fatalf("second run differs (error %v)", err)
		}
		if res.NoSnapshot != "" && len(res.Globals) > 0 {
			t.Fatalf("globals reported for a module that cannot be snapshotted (%s)", res.NoSnapshot)
		}
		for _, g := range res.Globals {
			if !bytes.Contains(res.Wasm, []byte(g.Export)) {
				t.Fatalf("%s is not exported", g.Export)
			}
		}
	})
}

// TestSnapshotGoRuntime: a module the Go toolchain linked is known as
// one (its go:buildid section); a module with another custom section is
// not.
func TestSnapshotGoRuntime(t *testing.T) {
	for _, tc := range []struct {
		custom string
		want   bool
	}{{"go:buildid", true}, {"producers", false}, {"go:buildidx", false}} {
		in := mod(sec(secCustom, str(tc.custom), []byte("x")), sec(secMemory, vec(b(0x00, 1))))
		res, err := Instrument(in, Options{Interrupt: true, Snapshot: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.GoRuntime != tc.want {
			t.Fatalf("custom section %q: GoRuntime %v, want %v", tc.custom, res.GoRuntime, tc.want)
		}
	}
}
