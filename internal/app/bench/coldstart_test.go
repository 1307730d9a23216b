package bench

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

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
	for _, k := range coldStartKeys[2:] {
		if v, ok := m[k].(float64); !ok || !(v > 0) {
			t.Fatalf("%s = %v, want a positive number", k, m[k])
		}
	}
	if r.ColdP50US < r.WarmP50US || r.FloorColdP50US < r.FloorWarmP50US {
		t.Fatalf("cold faster than warm: %+v", r)
	}
	if r.ColdP99US < r.ColdP50US || r.WarmP99US < r.WarmP50US {
		t.Fatalf("p99 under p50: %+v", r)
	}
	if !r.SameOutput {
		t.Fatalf("sluice and bare wazero disagree on the output")
	}
}

func TestColdStart(t *testing.T) {
	for _, tc := range []struct{ guest, abi string }{
		{"echo-wat", "reactor"},
		{"wordcount-c", "reactor"},
		{"echo-c", "wasi"},
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
	for _, guest := range []string{"echo-wat", "wordcount-c", "upper-go", "echo-c", "hello-wasi"} {
		b.Run(guest, func(b *testing.B) {
			wasm := testutil.Wasm(b, guest)
			for i := 0; i < b.N; i++ {
				r, err := ColdStartModule(context.Background(), guest, wasm, ColdStartOptions{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.CompileUS, "compile-µs")
				b.ReportMetric(r.CacheLoadUS, "cache-load-µs")
				b.ReportMetric(r.ColdP50US, "cold-p50-µs")
				b.ReportMetric(r.ColdP99US, "cold-p99-µs")
				b.ReportMetric(r.FloorColdP50US, "floor-cold-p50-µs")
				b.ReportMetric(r.ColdP50US/r.FloorColdP50US, "cold/floor")
				if r.ABI == "reactor" { // a WASI command's warm call is its cold start
					b.ReportMetric(r.WarmP50US, "warm-p50-µs")
					b.ReportMetric(r.WarmP99US, "warm-p99-µs")
					b.ReportMetric(r.FloorWarmP50US, "floor-warm-p50-µs")
					b.ReportMetric(r.WarmP50US-r.FloorWarmP50US, "warm-over-floor-µs")
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
