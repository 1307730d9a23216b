package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/testutil"
)

// coldStartKeys are the keys of `sluice bench coldstart -o json`, the
// contract of its output.
var coldStartKeys = []string{
	"module", "abi", "compile_us", "cache_load_us", "cold_p50_us", "cold_p99_us",
	"warm_p50_us", "warm_p99_us", "floor_cold_p50_us", "floor_warm_p50_us",
}

// checkColdStart checks the JSON shape of a result and that its figures
// are sane; never their values, which depend on the machine.
func checkColdStart(t *testing.T, r *ColdStart, wantABI string) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := slices.Sorted(slices.Values(coldStartKeys))
	if !slices.Equal(keys, want) {
		t.Fatalf("JSON keys %v, want %v", keys, want)
	}
	if m["abi"] != wantABI {
		t.Fatalf("abi %v, want %s", m["abi"], wantABI)
	}
	figures := coldStartKeys[2:]
	if wantABI == "extism" { // no floor: null, and the reason
		figures = figures[:len(figures)-2]
		for _, k := range []string{"floor_cold_p50_us", "floor_warm_p50_us"} {
			if m[k] != nil {
				t.Fatalf("%s = %v for an Extism plugin, want null (it has no floor)", k, m[k])
			}
		}
		if r.NoFloor == "" {
			t.Fatal("an Extism plugin without a floor, and no reason why")
		}
	}
	for _, k := range figures {
		if v, ok := m[k].(float64); !ok || !(v > 0) {
			t.Fatalf("%s = %v, want a positive number", k, m[k])
		}
	}
	// The summary figures are the distributions' (a swap of cold and warm
	// would show here), and every distribution is ordered. Which of cold
	// and warm is faster is the benchmark's to say, not a test's: an
	// Extism plugin's cold start from a snapshot costs so little over its
	// warm call (194 against 206 µs) that noise orders them either way.
	if r.ColdP50US != Micros(r.Cold.P50) || r.WarmP50US != Micros(r.Warm.P50) {
		t.Fatalf("p50 figures (cold %v, warm %v µs) are not the samples' (%v, %v)", r.ColdP50US, r.WarmP50US, r.Cold.P50, r.Warm.P50)
	}
	if r.FloorColdP50US != nil && (*r.FloorColdP50US != Micros(r.FloorCold.P50) || *r.FloorWarmP50US != Micros(r.FloorWarm.P50)) {
		t.Fatalf("floor p50 figures (%v, %v µs) are not the samples' (%v, %v)", *r.FloorColdP50US, *r.FloorWarmP50US, r.FloorCold.P50, r.FloorWarm.P50)
	}
	for name, d := range map[string]Summary{"cold": r.Cold, "warm": r.Warm} {
		if d.N == 0 || d.Min > d.P50 || d.P50 > d.P90 || d.P90 > d.P99 || d.P99 > d.Max {
			t.Fatalf("%s samples out of order: %+v", name, d)
		}
	}
	if r.ColdP99US < r.ColdP50US || r.WarmP99US < r.WarmP50US {
		t.Fatalf("p99 under p50: %+v", r)
	}
	if wantABI != "extism" && !r.SameOutput {
		t.Fatalf("sluice and bare wazero disagree on the output")
	}
}

func TestColdStart(t *testing.T) {
	for _, tc := range []struct{ guest, abi string }{
		{"echo-wat", "reactor"},
		{"wordcount-c", "reactor"},
		{"echo-c", "wasi"},
		// Modules that import error_code (ABI 1.2), which the floor
		// once lacked: one per language with an SDK.
		{"hello-rust", "reactor"},
		{"hello-as", "reactor"},
	} {
		t.Run(tc.guest, func(t *testing.T) {
			r, err := ColdStartModule(context.Background(), tc.guest, testutil.Wasm(t, tc.guest), ColdStartOptions{Samples: 50})
			if err != nil {
				t.Fatal(err)
			}
			checkColdStart(t, r, tc.abi)
			if tc.abi == "reactor" && r.ColdP50US <= r.WarmP50US {
				t.Fatalf("a reactor's cold start is no slower than its warm call: %+v", r)
			}
		})
	}
}

// everyImportWAT is a reactor that imports every function of the sluice
// ABI and calls each once per call, with arguments each accepts: the
// floor must give it all of them.
func everyImportWAT() string {
	var imports, calls strings.Builder
	for _, name := range abi.HostImports() {
		sig, _ := abi.HostSignature(name)
		fmt.Fprintf(&imports, "  (import %q %q (func $%s (param%s)%s))\n", abi.HostModule, name, name,
			strings.Repeat(" i32", len(sig.Params)), strings.Repeat(" (result i32)", len(sig.Results)))
		if name == abi.ImportOutput {
			continue // last, so that the output is the input
		}
		// Every pointer and length is 1: the string "x" at offset 1 (a
		// header name and value, an error code, a log line, a key); a
		// log level of 1 is info.
		arg := " (i32.const 1)"
		if name == abi.ImportHTTPStatus {
			arg = " (i32.const 201)"
		}
		fmt.Fprintf(&calls, "    (call $%s%s)%s\n", name, strings.Repeat(arg, len(sig.Params)),
			strings.Repeat(" drop", len(sig.Results)))
	}
	return "(module\n" + imports.String() + `  (memory (export "memory") 1)
  (data (i32.const 0) "xx")
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_handle") (param $ptr i32) (param $len i32) (result i32)
` + calls.String() + `    (call $output (local.get $ptr) (local.get $len))
    (i32.const 0))
)`
}

func TestColdStartFloorHasEveryImport(t *testing.T) {
	wasm := testutil.WAT(t, everyImportWAT())
	r, err := ColdStartModule(context.Background(), "every-import", wasm, ColdStartOptions{Samples: 20})
	if err != nil {
		t.Fatal(err)
	}
	checkColdStart(t, r, "reactor")
}

func TestColdStartExtism(t *testing.T) {
	for _, guest := range []string{"extism-as"} { // extism-go too in BenchmarkColdStart: its compilations take seconds
		t.Run(guest, func(t *testing.T) {
			r, err := ColdStartModule(context.Background(), guest, testutil.Wasm(t, guest),
				ColdStartOptions{Samples: 20, Export: "upper"})
			if err != nil {
				t.Fatal(err)
			}
			checkColdStart(t, r, "extism")
		})
	}
}

func TestColdStartErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := ColdStartModule(ctx, "x", []byte("not wasm"), ColdStartOptions{Samples: 50}); err == nil {
		t.Fatal("no error for a file that is not wasm")
	}
	if _, err := ColdStartModule(ctx, "x", testutil.Wasm(t, "echo-wat"), ColdStartOptions{Samples: 5}); err == nil {
		t.Fatal("no error for too few samples")
	}
	if _, err := ColdStartModule(ctx, "x", testutil.Wasm(t, "echo-c"), ColdStartOptions{Samples: 50, ABI: "reactor"}); err == nil {
		t.Fatal("no error for a WASI command run as a reactor")
	}
	_, err := ColdStartModule(ctx, "x", testutil.Wasm(t, "extism-as"), ColdStartOptions{Samples: 50})
	if !errors.Is(err, abi.ErrNoABI) || !strings.Contains(err.Error(), "--export") {
		t.Fatalf("an Extism plugin of several functions without Export: %v, want the --export to choose", err)
	}
}

func TestProcess(t *testing.T) {
	res, skipped, err := Process(context.Background(), ProcessOptions{Samples: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 || len(skipped) > 0 {
		t.Fatalf("native echo baselines not built (Go and clang are installed by .ci/run): %v", skipped)
	}
	for _, r := range res {
		if r.Call.P50 <= 0 || r.Call.P99 < r.Call.P50 || r.Name == "" {
			t.Fatalf("%+v", r)
		}
	}
}

// BenchmarkColdStart is `sluice bench coldstart` as a Go benchmark: one
// run of the whole measurement per iteration, its figures as metrics.
//
//	go test -run '^$' -bench ColdStart -benchtime 1x -count 5 ./internal/app/bench/
func BenchmarkColdStart(b *testing.B) {
	for _, guest := range []string{"echo-wat", "wordcount-c", "upper-go", "echo-c", "hello-wasi", "hello-rust", "hello-as", "extism-go", "extism-as"} {
		b.Run(guest, func(b *testing.B) {
			wasm := testutil.Wasm(b, guest)
			var o ColdStartOptions
			if strings.HasPrefix(guest, "extism-") {
				o.Export = "upper"
			}
			for i := 0; i < b.N; i++ {
				r, err := ColdStartModule(context.Background(), guest, wasm, o)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.CompileUS, "compile-µs")
				b.ReportMetric(r.CacheLoadUS, "cache-load-µs")
				b.ReportMetric(r.ColdP50US, "cold-p50-µs")
				b.ReportMetric(r.ColdP99US, "cold-p99-µs")
				if r.FloorColdP50US != nil { // an Extism plugin has none
					b.ReportMetric(*r.FloorColdP50US, "floor-cold-p50-µs")
					b.ReportMetric(r.ColdOverFloor(), "cold/floor")
				}
				if r.ABI != "wasi" { // a WASI command's warm call is its cold start
					b.ReportMetric(r.WarmP50US, "warm-p50-µs")
					b.ReportMetric(r.WarmP99US, "warm-p99-µs")
					if r.FloorWarmP50US != nil {
						b.ReportMetric(*r.FloorWarmP50US, "floor-warm-p50-µs")
						b.ReportMetric(r.WarmOverFloorUS(), "warm-over-floor-µs")
					}
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkProcess is the process-per-call baseline: fork/exec of a
// native echo with the same 1 KiB input.
func BenchmarkProcess(b *testing.B) {
	for i := 0; i < b.N; i++ {
		res, skipped, err := Process(context.Background(), ProcessOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res) == 0 {
			b.Fatalf("no toolchain: %v", skipped)
		}
		for _, r := range res {
			b.ReportMetric(Micros(r.Call.P50), r.Lang+"-p50-µs")
			b.ReportMetric(Micros(r.Call.P99), r.Lang+"-p99-µs")
		}
	}
	b.ReportMetric(0, "ns/op")
}
