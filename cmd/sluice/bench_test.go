package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// The bench tests check what `sluice bench` prints and that its figures
// are sane, with small runs; never a threshold on the figures themselves.

var coldStartKeys = []string{
	"abi", "cache_load_us", "cold_p50_us", "cold_p99_us", "compile_us",
	"floor_cold_p50_us", "floor_warm_p50_us", "module", "warm_p50_us", "warm_p99_us",
}

func TestBenchColdStart(t *testing.T) {
	t.Parallel()
	var local daemonProc // no daemon: coldstart runs in the CLI's process
	wat, c := testutil.WasmPath(t, "echo-wat"), testutil.WasmPath(t, "echo-c")

	r := local.sluice(t, "", "bench", "coldstart", wat, c, "-n", "30", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Fatalf("stderr is not a terminal, yet: %q", r.stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if len(rows) != 2 {
		t.Fatalf("want one object per module:\n%s", r.stdout)
	}
	for i, row := range rows {
		keys := make([]string, 0, len(row))
		for k := range row {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, coldStartKeys) {
			t.Fatalf("keys %v, want %v", keys, coldStartKeys)
		}
		if row["module"] != []string{wat, c}[i] || row["abi"] != []string{"reactor", "wasi"}[i] {
			t.Fatalf("row %d: %v", i, row)
		}
		num := func(k string) float64 {
			v, ok := row[k].(float64)
			if !ok || !(v > 0) {
				t.Fatalf("%s = %v, want a positive number", k, row[k])
			}
			return v
		}
		for _, k := range coldStartKeys {
			if k != "module" && k != "abi" {
				num(k)
			}
		}
		if num("cold_p50_us") < num("warm_p50_us") || num("floor_cold_p50_us") < num("floor_warm_p50_us") {
			t.Fatalf("cold faster than warm: %v", row)
		}
	}

	// The table, with the process baseline and a plot.
	svg := filepath.Join(t.TempDir(), "cold.svg")
	out := local.mustSluice(t, "", "bench", "coldstart", wat, "-n", "20", "--svg", svg)
	for _, want := range []string{"MODULE", "COLD P50", "FLOOR WARM", wat, "reactor", "machine:", "process (fork/exec native echo"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in:\n%s", want, out)
		}
	}
	checkSVG(t, svg)

	// Mistakes in the command line: exit 2.
	for _, args := range [][]string{
		{"bench", "coldstart"},
		{"bench", "coldstart", wat, "-n", "5"},
		{"bench", "coldstart", wat, "--abi", "component"},
		{"bench", "coldstart", wat, "-o", "yaml"},
		{"bench", "http"},
		{"bench", "frobnicate"},
	} {
		if r := local.sluice(t, "", args...); r.code != 2 || !strings.HasPrefix(r.stderr, "sluice: ") {
			t.Fatalf("sluice %v: %+v", args, r)
		}
	}
	// A module that cannot run: exit 1, one line.
	r = local.sluice(t, "", "bench", "coldstart", c, "--abi", "reactor", "-n", "10")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("a WASI command as a reactor: %+v", r)
	}
	if out := local.mustSluice(t, "", "bench", "--help"); !strings.Contains(out, "coldstart") || !strings.Contains(out, "workflow") {
		t.Fatalf("bench --help:\n%s", out)
	}
	if out := local.mustSluice(t, "", "--help"); !strings.Contains(out, "sluice bench coldstart") {
		t.Fatalf("--help:\n%s", out)
	}
}

func TestBenchDaemon(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	echo := testutil.WasmPath(t, "echo-wat")
	p.mustSluice(t, "", "fn", "deploy", "echo", echo)
	dir := t.TempDir()

	// HTTP, against the floor, with a histogram.
	svg := filepath.Join(dir, "http.svg")
	out := p.mustSluice(t, "", "bench", "http", "--fn", "echo", "-c", "4", "-d", "1s", "--floor", echo, "--svg", svg)
	for _, want := range []string{"REQUESTS/S", "/v1/functions/echo/invoke", "4 clients", "1 KiB bodies", "of the floor's requests/s"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in:\n%s", want, out)
		}
	}
	checkSVG(t, svg)
	var h struct {
		Concurrency int `json:"concurrency"`
		Results     []struct {
			RPS      float64 `json:"requests_per_s"`
			Requests int     `json:"requests"`
			Errors   int     `json:"errors"`
			P50      float64 `json:"p50_us"`
		} `json:"results"`
	}
	p.mustSluice(t, "", "trigger", "create", "echo-http", "--fn", "echo", "--http-path", "/echo", "--method", "POST")
	out = p.mustSluice(t, "", "bench", "http", "--fn", "echo", "--path", "/fn/echo", "-c", "2", "-d", "500ms", "-o", "json")
	if err := json.Unmarshal([]byte(out), &h); err != nil || h.Concurrency != 2 || len(h.Results) != 1 ||
		h.Results[0].RPS <= 0 || h.Results[0].Requests == 0 || h.Results[0].Errors != 0 || h.Results[0].P50 <= 0 {
		t.Fatalf("%v:\n%s", err, out)
	}
	if r := p.sluice(t, "", "bench", "http", "--fn", "missing", "-d", "100ms"); r.code != 1 || !strings.Contains(r.stderr, "missing") {
		t.Fatalf("a missing function: %+v", r)
	}

	// The message-queue trigger, publishing to the daemon's NATS.
	svg = filepath.Join(dir, "mq.svg")
	out = p.mustSluice(t, "", "bench", "mq", "--fn", "echo", "--nats", p.nats, "-n", "300", "--latency", "20", "--svg", svg)
	for _, want := range []string{"MSGS/S", "max-inflight 16", "a burst of 300 messages", "20 messages one at a time", "store:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in:\n%s", want, out)
		}
	}
	checkSVG(t, svg)
	out = p.mustSluice(t, "", "bench", "mq", "--fn", "echo", "--nats", p.nats, "-n", "100", "--latency", "10", "--inflight", "4", "-o", "json")
	m := numbers(t, out)
	if m["msgs_per_s"] <= 0 || m["p50_us"] <= 0 || m["p99_us"] < m["p50_us"] || m["inflight"] != 4 || m["messages"] != 100 {
		t.Fatalf("bench mq -o json:\n%s", out)
	}
	if out := p.mustSluice(t, "", "trigger", "list"); strings.Contains(out, "sluice-bench") {
		t.Fatalf("bench mq left its trigger:\n%s", out)
	}

	// Workflows: --fn is required.
	if r := p.sluice(t, "", "bench", "workflow", "--tasks", "3"); r.code != 2 || !strings.Contains(r.stderr, "--fn is required") {
		t.Fatalf("bench workflow without --fn: %+v", r)
	}
	out = p.mustSluice(t, "", "bench", "workflow", "--fn", "echo", "--tasks", "3", "-n", "10")
	for _, want := range []string{"engine overhead per task", "workflow of 3 tasks", "function echo", "store:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in:\n%s", want, out)
		}
	}
	out = p.mustSluice(t, "", "bench", "workflow", "--fn", "echo", "--tasks", "2", "-n", "5", "-o", "json")
	if !strings.Contains(out, `"function": "echo"`) {
		t.Fatalf("bench workflow --fn echo -o json:\n%s", out)
	}
	w := numbers(t, out)
	for _, k := range []string{"per_task_p50_us", "per_task_p99_us", "marginal_task_us", "invocation_us"} {
		if _, ok := w[k]; !ok {
			t.Fatalf("no %s:\n%s", k, out)
		}
	}
	if w["chain_p50_us"] <= 0 || w["chain_p99_us"] < w["chain_p50_us"] || w["direct_p50_us"] <= 0 || w["tasks"] != 2 {
		t.Fatalf("bench workflow -o json:\n%s", out)
	}
	if out := p.mustSluice(t, "", "wf", "list"); strings.Contains(out, "sluice-bench") {
		t.Fatalf("bench workflow left its workflows:\n%s", out)
	}
	if out := p.mustSluice(t, "", "fn", "list"); strings.Contains(out, "sluice-bench") {
		t.Fatalf("bench workflow left its function:\n%s", out)
	}
}

// numbers returns the numbers of a JSON object.
func numbers(t *testing.T, out string) map[string]float64 {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	m := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			m[k] = f
		}
	}
	return m
}

// checkSVG fails unless file holds well-formed SVG.
func checkSVG(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name
	}
	if err := xml.Unmarshal(b, &doc); err != nil || doc.XMLName.Local != "svg" {
		t.Fatalf("%s: not SVG (%v)", file, err)
	}
}
