package wasmbin

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// allFeatures enables, on top of WebAssembly 2.0, the proposals wazero
// v1.12 implements behind experimental flags.
const allFeatures = api.CoreFeaturesV2 | experimental.CoreFeaturesThreads | experimental.CoreFeaturesTailCall |
	experimental.CoreFeaturesExtendedConst | experimental.CoreFeaturesExceptionHandling |
	experimental.CoreFeaturesTypedFunctionReferences

// compilerConfig is the runtime configuration the tests use: the
// optimizing compiler with every feature wazero has.
func compilerConfig() wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigCompiler().WithCoreFeatures(allFeatures)
}

// fnCall is one call of an exported function and its expected results.
type fnCall struct {
	name string
	args []uint64
	want []uint64
}

// behaviourCase is a module whose functions must return the same results
// before and after instrumentation.
type behaviourCase struct {
	name  string
	env   string // WAT of a module instantiated as "env" first, if any
	wat   string
	calls []fnCall
}

// behaviourCases are the WAT modules the behaviour, determinism and fuzz
// tests share.
var behaviourCases = []behaviourCase{
	{
		name: "loops",
		wat: `(module
  (type $mv (func (param i32 i32) (result i32)))
  (func (export "sum") (param $n i32) (result i32) (local $s i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $s (i32.add (local.get $s) (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $s))
  (func (export "pairs") (param $n i32) (result i32) (local $i i32) (local $j i32) (local $c i32)
    (loop $outer
      (local.set $j (i32.add (local.get $i) (i32.const 1)))
      (block $jd (loop $inner
        (br_if $jd (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $inner)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $c))
  (func (export "multivalue") (param $n i32) (result i32) (local $a i32) (local $k i32)
    (local.get $n) (i32.const 0)
    (loop $l (type $mv) (param i32 i32) (result i32)
      (local.set $a) (local.set $k)
      (local.set $a (i32.add (local.get $a) (local.get $k)))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (if (result i32) (local.get $k)
        (then (local.get $k) (local.get $a) (br $l))
        (else (local.get $a)))))
  (func (export "valued") (param $n i32) (result i64) (local $x i64)
    (if (i32.gt_s (local.get $n) (i32.const 0))
      (then (local.set $x (loop (result i64)
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if 0 (i32.gt_s (local.get $n) (i32.const 0)))
          (i64.const -1234567890123))))
      (else (local.set $x (i64.const 0))))
    (local.get $x)))`,
		calls: []fnCall{
			{"sum", []uint64{100}, []uint64{5050}},
			{"pairs", []uint64{10}, []uint64{45}},
			{"pairs", []uint64{400}, []uint64{79800}}, // more iterations than YieldInterval
			{"multivalue", []uint64{10}, []uint64{55}},
			{"valued", []uint64{3}, []uint64{api.EncodeI64(-1234567890123)}},
			{"valued", []uint64{0}, []uint64{0}},
		},
	},
	{
		name: "br_table",
		wat: `(module
  (func $classify (export "classify") (param i32) (result i32)
    (block $d (block $c (block $b (block $a
      (br_table $a $b $c $d (local.get 0)))
      (return (i32.const 10)))
      (return (i32.const 20)))
      (return (i32.const 30)))
    (i32.const 40))
  (func (export "machine") (param $steps i32) (result i32) (local $state i32) (local $acc i32)
    (loop $l
      (block $s2 (block $s1 (block $s0
        (br_table $s0 $s1 $s2 (local.get $state)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 1)))
        (local.set $state (i32.const 1))
        (br 1))
        (local.set $acc (i32.mul (local.get $acc) (i32.const 3)))
        (local.set $state (i32.const 2))
        (br 0))
      (local.set $acc (i32.sub (local.get $acc) (call $classify (i32.const 0))))
      (local.set $state (i32.const 0))
      (local.set $steps (i32.sub (local.get $steps) (i32.const 1)))
      (br_if $l (local.get $steps)))
    (local.get $acc)))`,
		calls: []fnCall{
			{"classify", []uint64{0}, []uint64{10}},
			{"classify", []uint64{1}, []uint64{20}},
			{"classify", []uint64{2}, []uint64{30}},
			{"classify", []uint64{7}, []uint64{40}},
			{"machine", []uint64{3}, []uint64{api.EncodeI32(-27)}},
		},
	},
	{
		name: "recursion and call_indirect",
		wat: `(module
  (type $un (func (param i64) (result i64)))
  (table 3 funcref)
  (elem (i32.const 0) $fact $fib $double)
  (func $fact (type $un)
    (if (result i64) (i64.le_u (local.get 0) (i64.const 1))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fact (i64.sub (local.get 0) (i64.const 1)))))))
  (func $fib (type $un)
    (if (result i64) (i64.lt_u (local.get 0) (i64.const 2))
      (then (local.get 0))
      (else (i64.add (call $fib (i64.sub (local.get 0) (i64.const 1)))
                     (call $fib (i64.sub (local.get 0) (i64.const 2)))))))
  (func $double (type $un) (i64.shl (local.get 0) (i64.const 1)))
  (func (export "dispatch") (param i32 i64) (result i64)
    (call_indirect (type $un) (local.get 1) (local.get 0)))
  (func (export "even") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 1))
      (else (call $odd (i32.sub (local.get 0) (i32.const 1))))))
  (func $odd (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
      (else (return_call 4 (i32.sub (local.get 0) (i32.const 1)))))))`,
		calls: []fnCall{
			{"dispatch", []uint64{0, 10}, []uint64{3628800}},
			{"dispatch", []uint64{1, 20}, []uint64{6765}},
			{"dispatch", []uint64{2, 21}, []uint64{42}},
			{"even", []uint64{100001}, []uint64{0}},
			{"even", []uint64{100000}, []uint64{1}},
		},
	},
	{
		name: "simd",
		wat: `(module
  (memory 1)
  (func (export "sum4") (param $n i32) (result i32) (local $i i32) (local $acc v128)
    (loop $fill
      (i32.store (i32.shl (local.get $i) (i32.const 2)) (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (local.get $n))))
    (local.set $i (i32.const 0))
    (loop $add
      (local.set $acc (i32x4.add (local.get $acc) (v128.load offset=0 align=4 (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br_if $add (i32.lt_u (local.get $i) (i32.shl (local.get $n) (i32.const 2)))))
    (i32.add (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
             (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
  (func (export "shuffle") (result i32)
    (i8x16.extract_lane_u 0
      (i8x16.shuffle 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1 0
        (v128.const i8x16 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
        (v128.const i8x16 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0))))
  (func (export "lanes") (result i64) (local $v v128)
    (i64.store (i32.const 1000) (i64.const 0x0807060504030201))
    (local.set $v (v128.load32_zero (i32.const 1000)))
    (local.set $v (v128.load8_lane 5 (i32.const 1007) (local.get $v)))
    (v128.store16_lane 1 (i32.const 2000) (local.get $v))
    (local.set $v (f32x4.replace_lane 3 (local.get $v) (f32.const 1.5)))
    (i64.add (i64.load16_u (i32.const 2000))
      (i64.add (i64x2.extract_lane 0 (local.get $v))
        (i64.trunc_sat_f32_s (f32x4.extract_lane 3 (local.get $v)))))))`,
		calls: []fnCall{
			{"sum4", []uint64{64}, []uint64{2016}},
			{"shuffle", nil, []uint64{16}},
			{"lanes", nil, []uint64{8796160329221}},
		},
	},
	{
		name: "bulk memory, tables and numeric",
		wat: `(module
  (memory 1)
  (data $d "hello world")
  (table $t 4 funcref)
  (table $ext 2 externref)
  (type $r (func (result i32)))
  (elem $e func $one $two)
  (func $one (result i32) (i32.const 1))
  (func $two (result i32) (i32.const 2))
  (func (export "bulk") (result i32)
    (memory.init $d (i32.const 100) (i32.const 0) (i32.const 11))
    (memory.copy (i32.const 200) (i32.const 100) (i32.const 11))
    (memory.fill (i32.const 300) (i32.const 7) (i32.const 10))
    (data.drop $d)
    (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 2))
    (table.copy $t $t (i32.const 2) (i32.const 0) (i32.const 2))
    (elem.drop $e)
    (drop (table.grow $t (ref.null func) (i32.const 2)))
    (table.fill $t (i32.const 4) (table.get $t (i32.const 0)) (i32.const 2))
    (table.set $ext (i32.const 1) (table.get $ext (i32.const 0)))
    (i32.add (i32.add (i32.load8_u (i32.const 204)) (i32.load8_u (i32.const 309)))
      (i32.add (i32.add (call_indirect $t (type $r) (i32.const 3)) (table.size $t))
        (i32.add (ref.is_null (table.get $ext (i32.const 1)))
          (select (result i32) (i32.const 1000) (i32.const 2000) (memory.size))))))
  (func (export "numeric") (result i64)
    (i64.add
      (i64.add (i64.extend32_s (i64.const 0xFFFFFFFF)) (i64.extend_i32_s (i32.extend8_s (i32.const 0x80))))
      (i64.add (i64.trunc_sat_f64_u (f64.const 1e30)) (i64.const 1000)))))`,
		calls: []fnCall{
			{"bulk", nil, []uint64{111 + 7 + 2 + 6 + 1 + 1000}},
			{"numeric", nil, []uint64{870}},
		},
	},
	{
		name: "own globals",
		wat: `(module
  (global $counter (mut i32) (i32.const 5))
  (global $k i64 (i64.const 7))
  (global $f (mut f64) (f64.const 0.5))
  (func (export "count") (param $n i32) (result i32)
    (loop $l
      (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
      (global.set $f (f64.mul (global.get $f) (f64.const 2)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (global.get $counter))
  (func (export "k") (result i64) (i64.add (global.get $k) (i64.trunc_f64_s (global.get $f)))))`,
		calls: []fnCall{
			{"count", []uint64{10}, []uint64{15}},
			{"k", nil, []uint64{7 + 512}},
		},
	},
	{
		name: "imports",
		env: `(module
  (global (export "base") i32 (i32.const 100))
  (global (export "mg") (mut i32) (i32.const 1))
  (memory (export "memory") 1 2)
  (func (export "inc") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))`,
		wat: `(module
  (import "env" "inc" (func $inc (param i32) (result i32)))
  (import "env" "base" (global $base i32))
  (import "env" "memory" (memory 1 2))
  (import "env" "mg" (global $mg (mut i32)))
  (global $own (mut i32) (i32.const 3))
  (func (export "run") (param $n i32) (result i32) (local $x i32)
    (local.set $x (global.get $base))
    (loop $l
      (local.set $x (call $inc (local.get $x)))
      (global.set $mg (i32.add (global.get $mg) (global.get $own)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (i32.store (i32.const 8) (local.get $x))
    (i32.add (i32.load (i32.const 8)) (global.get $mg))))`,
		calls: []fnCall{
			{"run", []uint64{5}, []uint64{105 + 16}},
		},
	},
	{
		name: "no globals, exports or memory",
		wat:  `(module (func (drop (i32.const 1))))`,
	},
	{
		// Functions with loops get a counter local after their own: a
		// wrong index would make it alias one of these, changing a
		// result (every loop runs more than YieldInterval times, so the
		// counter also wraps back to 0).
		name: "counter local",
		wat: `(module
  (global $g (mut i32) (i32.const 0))
  (func (export "mixed") (param $n i32) (param $k i64) (param $x f64) (result i64)
    (local $i i32) (local $acc i64) (local $f f32) (local $v v128) (local $d f64) (local $last i32)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (i64.mul (local.get $k) (i64.extend_i32_u (local.get $i)))))
      (local.set $f (f32.add (local.get $f) (f32.const 1)))
      (local.set $v (i32x4.add (local.get $v) (i32x4.splat (local.get $i))))
      (local.set $d (f64.add (local.get $d) (local.get $x)))
      (local.set $last (i32.add (i32.mul (local.get $last) (i32.const 31)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (i64.add (local.get $acc)
      (i64.add (i64.trunc_f32_u (local.get $f))
        (i64.add (i64.extend_i32_u (i32x4.extract_lane 3 (local.get $v)))
          (i64.add (i64.trunc_f64_u (local.get $d)) (i64.extend_i32_u (local.get $last)))))))
  (func (export "nested") (param $a i32) (param $b i32) (param $c i32) (result i32)
    (local $i i32) (local $j i32) (local $k i32) (local $s i32)
    (loop $li
      (local.set $j (i32.const 0))
      (loop $lj
        (local.set $k (i32.const 0))
        (loop $lk
          (local.set $s (i32.add (i32.mul (local.get $s) (i32.const 7))
            (i32.add (local.get $i) (i32.mul (local.get $j) (local.get $k)))))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $lk (i32.lt_u (local.get $k) (local.get $c))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $lj (i32.lt_u (local.get $j) (local.get $b))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $li (i32.lt_u (local.get $i) (local.get $a))))
    (local.get $s))
  (func (export "bare") (result i32)
    (loop $l
      (global.set $g (i32.add (global.get $g) (i32.const 1)))
      (br_if $l (i32.lt_u (global.get $g) (i32.const 30000))))
    (global.get $g))
  (func (export "params_only") (param $n i64) (param $acc i64) (result i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (i64.mul (local.get $n) (local.get $n))))
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br_if $l (i32.wrap_i64 (local.get $n))))
    (local.get $acc))
  (func (export "mv") (param $n i32) (result i32 i64) (local $cnt i32) (local $acc i64)
    (local.get $n) (i64.const 0)
    (block $b (param i32 i64) (result i32 i64)
      (loop $l (param i32 i64) (result i32 i64)
        (local.set $acc) (local.set $cnt)
        (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $cnt))))
        (local.set $cnt (i32.sub (local.get $cnt) (i32.const 1)))
        (local.get $cnt) (local.get $acc)
        (br_if $b (i32.eqz (local.get $cnt)))
        (if (param i32 i64) (result i32 i64) (i32.const 1)
          (then (loop (param i32 i64) (result i32 i64)))
          (else))
        (br $l))))
  (func (export "mv_if") (param $n i32) (result i64 i32) (local $c i32)
    (i64.const 5) (local.get $n)
    (if (param i64 i32) (result i64 i32) (local.get $n)
      (then
        (loop $l (param i64 i32) (result i64 i32)
          (local.set $c)
          (i64.add (i64.const 2))
          (local.tee $c (i32.sub (local.get $c) (i32.const 1)))
          (br_if $l (local.get $c))))
      (else))))`,
		calls: []fnCall{
			{"mixed", []uint64{25000, 3, api.EncodeF64(0.5)}, []uint64{4987745408}},
			{"nested", []uint64{30, 40, 50}, []uint64{4170665448}},
			{"bare", nil, []uint64{30000}},
			{"params_only", []uint64{20000, 7}, []uint64{2666866670000 + 7}},
			{"mv", []uint64{20000}, []uint64{0, 200010000}},
			{"mv_if", []uint64{15000}, []uint64{5 + 2*15000, 0}},
			{"mv_if", []uint64{0}, []uint64{5, 0}},
		},
	},
	{
		name: "threads",
		wat: `(module
  (memory 1 1 shared)
  (func (export "atomics") (result i32) (local $i i32)
    (loop $l
      (drop (i32.atomic.rmw.add (i32.const 64) (i32.const 2)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
    (atomic.fence)
    (drop (memory.atomic.notify (i32.const 64) (i32.const 1)))
    (i32.add (i32.atomic.load (i32.const 64))
      (i32.wrap_i64 (i64.atomic.rmw32.cmpxchg_u (i32.const 128) (i64.const 0) (i64.const 5))))))`,
		calls: []fnCall{{"atomics", nil, []uint64{20}}},
	},
}

// runCase instantiates bin (and the case's env module) in a fresh runtime
// and checks every call's results.
func runCase(t *testing.T, tc behaviourCase, bin []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
	t.Cleanup(func() { r.Close(ctx) })
	if tc.env != "" {
		if _, err := r.InstantiateWithConfig(ctx, wat(t, tc.env), wazero.NewModuleConfig().WithName("env")); err != nil {
			t.Fatalf("instantiate env: %v", err)
		}
	}
	m, err := r.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName("m").WithStartFunctions())
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	for _, c := range tc.calls {
		got := call(t, m, c.name, c.args...)
		if !equalU64(got, c.want) {
			t.Errorf("%s%v = %v, want %v", c.name, c.args, got, c.want)
		}
	}
	return m
}

// equalU64 reports whether two result lists are equal.
func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBehaviourPreserved runs every behaviour case before and after
// instrumentation and checks that the results are the same, the flag is
// exported and clear, and a check was counted for every body.
func TestBehaviourPreserved(t *testing.T) {
	for _, tc := range behaviourCases {
		t.Run(tc.name, func(t *testing.T) {
			bin := wat(t, tc.wat)
			runCase(t, tc, bin)
			res := mustInstrument(t, bin, Options{Interrupt: true, MaxMemoryPages: 16})
			if res.InterruptGlobal != InterruptExport {
				t.Errorf("InterruptGlobal = %q", res.InterruptGlobal)
			}
			m := runCase(t, tc, res.Wasm)
			if got := interruptFlag(t, m).Get(); got != 0 {
				t.Errorf("interrupt flag = %d after the calls, want 0", got)
			}
			if res.Checks == 0 {
				t.Error("no checks inserted")
			}
			validate(t, res.Wasm)
		})
	}
}

// validate runs wabt's wasm-validate (all features) on bin.
func validate(t *testing.T, bin []byte) {
	t.Helper()
	tool := lookTool(t, "wasm-validate", "install wabt (apt-get install wabt)")
	p := filepath.Join(t.TempDir(), "out.wasm")
	if err := os.WriteFile(p, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "--enable-all", p).CombinedOutput(); err != nil {
		t.Fatalf("wasm-validate: %v\n%s", err, out)
	}
}

// TestCheckCount checks Checks: one per function body plus one per loop.
func TestCheckCount(t *testing.T) {
	bin := wat(t, `(module
  (func (loop (loop (br 1))))
  (func (block (loop (br 1))) (if (i32.const 1) (then (loop)) (else (loop))))
  (func))`)
	res := mustInstrument(t, bin, Options{Interrupt: true})
	if want := 3 + 2 + 3; res.Checks != want {
		t.Errorf("Checks = %d, want %d", res.Checks, want)
	}
}

// TestStartSection checks that the start section is removed and its
// function exported: its effect appears only once the host calls it.
func TestStartSection(t *testing.T) {
	bin := wat(t, `(module
  (global $g (mut i32) (i32.const 0))
  (func $init (loop $l
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (br_if $l (i32.lt_u (global.get $g) (i32.const 42)))))
  (start $init)
  (func (export "get") (result i32) (global.get $g)))`)
	if got := call(t, instantiate(t, bin), "get"); got[0] != 42 {
		t.Fatalf("original: get() = %d, want 42", got[0])
	}
	for _, opts := range []Options{{Interrupt: true}, {MaxMemoryPages: 1}, {}} {
		res := mustInstrument(t, bin, opts)
		if res.StartExport != StartExport {
			t.Fatalf("%+v: StartExport = %q, want %q", opts, res.StartExport, StartExport)
		}
		m := instantiate(t, res.Wasm)
		if got := call(t, m, "get"); got[0] != 0 {
			t.Errorf("%+v: get() before the start function = %d, want 0", opts, got[0])
		}
		call(t, m, StartExport)
		if got := call(t, m, "get"); got[0] != 42 {
			t.Errorf("%+v: get() after the start function = %d, want 42", opts, got[0])
		}
	}
	if res := mustInstrument(t, wat(t, `(module)`), Options{Interrupt: true}); res.StartExport != "" {
		t.Errorf("StartExport = %q for a module without a start section", res.StartExport)
	}
}

// TestMemoryClamp checks that memory.grow fails past the limit, whatever
// maximum the module declared.
func TestMemoryClamp(t *testing.T) {
	for _, mem := range []string{"(memory 1)", "(memory 1 100)", "(memory 1 65536)", "(memory 2 3)", "(memory 1 8 shared)"} {
		t.Run(mem, func(t *testing.T) {
			bin := wat(t, `(module `+mem+`
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size)))`)
			res := mustInstrument(t, bin, Options{MaxMemoryPages: 4, Interrupt: true})
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
			defer r.Close(ctx)
			m, err := r.Instantiate(ctx, res.Wasm)
			if err != nil {
				t.Fatal(err)
			}
			max, ok := m.Memory().Definition().Max()
			if !ok || max > 4 {
				t.Errorf("memory maximum = %d (declared %v), want at most 4", max, ok)
			}
			size := call(t, m, "size")[0]
			if got := call(t, m, "grow", uint64(max)-size)[0]; got != size {
				t.Errorf("grow to the maximum returned %d, want %d", api.DecodeI32(got), size)
			}
			if got := call(t, m, "grow", 1)[0]; api.DecodeI32(got) != -1 {
				t.Errorf("grow past the limit returned %d, want -1", api.DecodeI32(got))
			}
		})
	}
}

// TestDeterministic checks that the same input gives the same bytes.
func TestDeterministic(t *testing.T) {
	for _, tc := range behaviourCases {
		bin := wat(t, tc.wat)
		opts := Options{Interrupt: true, MaxMemoryPages: 16}
		a := mustInstrument(t, bin, opts)
		c := mustInstrument(t, append([]byte(nil), bin...), opts)
		if !bytes.Equal(a.Wasm, c.Wasm) || a.Checks != c.Checks {
			t.Errorf("%s: two runs differ", tc.name)
		}
	}
}

// TestInputUntouched checks that Instrument does not write to its input.
func TestInputUntouched(t *testing.T) {
	bin := wat(t, behaviourCases[0].wat)
	orig := append([]byte(nil), bin...)
	res := mustInstrument(t, bin, Options{Interrupt: true})
	if !bytes.Equal(bin, orig) {
		t.Fatal("input modified")
	}
	res.Wasm[0] = 0xFF
	if bin[0] != 0 {
		t.Fatal("output aliases input")
	}
}

// TestDebugSectionsDropped checks that DWARF sections go and the name
// section stays when Interrupt is set.
func TestDebugSectionsDropped(t *testing.T) {
	base := watDebugNames(t, `(module (func $f (loop)))`)
	in := cat(base, sec(secCustom, str(".debug_info"), b(1, 2, 3)), sec(secCustom, str("producers"), b(0)))
	res := mustInstrument(t, in, Options{Interrupt: true})
	if bytes.Contains(res.Wasm, []byte(".debug_info")) {
		t.Error(".debug_info kept")
	}
	for _, keep := range []string{"producers", "name"} {
		if !bytes.Contains(res.Wasm, []byte(keep)) {
			t.Errorf("%q section dropped", keep)
		}
	}
	instantiate(t, res.Wasm)
}

// TestExperimentalFeatures runs modules using exception handling
// (try_table, throw) and typed function references (call_ref, br_on_null,
// ref.as_non_null), written as bytes because wabt 1.0.32 cannot, under
// wazero's experimental features.
func TestExperimentalFeatures(t *testing.T) {
	in := mod(
		sec(secType, vec(
			funcType(nil, b(0x7F)), // 0: () -> i32
			funcType(b(0x7F), nil), // 1: (i32) -> ()
		)),
		sec(secFunction, vec(b(0), b(0), b(0), b(0))),
		sec(secTag, vec(b(0x00, 0x01))),
		sec(secExport, vec(exportEntry("catch", kindFunc, 0), exportEntry("catch_all", kindFunc, 1), exportEntry("funcref", kindFunc, 2))),
		sec(secElement, vec(b(0x03, 0x00, 0x01, 0x03))), // declare func 3
		sec(secCode, vec(
			// block (result i32) try_table (result i32) (catch 0 0) loop i32.const 42 throw 0 end unreachable end end
			body(vec(), 0x02, 0x7F, 0x1F, 0x7F, 0x01, 0x00, 0x00, 0x00, 0x03, 0x40, 0x41, 0x2A, 0x08, 0x00, 0x0B, 0x00, 0x0B, 0x0B, 0x0B),
			// block try_table (catch_all 0) loop i32.const 1 throw 0 end end i32.const 0 return end i32.const 99
			body(vec(), 0x02, 0x40, 0x1F, 0x40, 0x01, 0x02, 0x00, 0x03, 0x40, 0x41, 0x01, 0x08, 0x00, 0x0B, 0x0B, 0x41, 0x00, 0x0F, 0x0B, 0x41, 0xE3, 0x00, 0x0B),
			// block ref.null 0 br_on_null 0 call_ref 0 return end ref.func 3 ref.as_non_null call_ref 0
			body(vec(), 0x02, 0x40, 0xD0, 0x00, 0xD5, 0x00, 0x14, 0x00, 0x0F, 0x0B, 0xD2, 0x03, 0xD4, 0x14, 0x00, 0x0B),
			body(vec(), 0x41, 0x07, 0x0B),
		)),
	)
	res := mustInstrument(t, in, Options{Interrupt: true})
	if res.Checks != 4+2 {
		t.Errorf("Checks = %d, want 6", res.Checks)
	}
	for _, bin := range [][]byte{in, res.Wasm} {
		ctx := context.Background()
		r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
		m, err := r.Instantiate(ctx, bin)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]uint64{"catch": 42, "catch_all": 99, "funcref": 7} {
			if got := call(t, m, name); got[0] != want {
				t.Errorf("%s() = %d, want %d", name, got[0], want)
			}
		}
		r.Close(ctx)
	}
}

// TestLegacyExceptionsAndRelaxedSIMD instruments modules wazero cannot
// run (legacy try/catch/delegate/rethrow, relaxed SIMD) and validates the
// output with wabt.
func TestLegacyExceptionsAndRelaxedSIMD(t *testing.T) {
	bin := wat(t, `(module
  (tag $e (param i32))
  (func $thrower (param i32) (throw $e (local.get 0)))
  (func (export "f") (param i32) (result i32)
    (try (result i32)
      (do (loop (call $thrower (local.get 0))) (i32.const 0))
      (catch $e)
      (catch_all (i32.const 1))))
  (func (export "g") (result i32)
    (try $outer (result i32)
      (do
        (try (result i32)
          (do (i32.const 5) (throw $e))
          (delegate $outer)))
      (catch $e (i32.const 1) (i32.add))))
  (func (export "h")
    (try $t
      (do (throw $e (i32.const 1)))
      (catch_all (loop) (rethrow $t))))
  (func (export "relaxed") (param v128 v128 v128) (result v128)
    (loop)
    (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))))`)
	res := mustInstrument(t, bin, Options{Interrupt: true})
	if want := 5 + 3; res.Checks != want {
		t.Errorf("Checks = %d, want %d", res.Checks, want)
	}
	validate(t, res.Wasm)
}
