package main

import (
	"bufio"
	"bytes"
	binenc "encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// The tests in this file give the daemon the modules and guests that
// killed it, exhausted its memory or held up its shutdown before the
// host had limits. Each time, the daemon must survive, say what was
// wrong, and serve the next request.

// leb128 encodes v as an unsigned LEB128 number.
func leb128(v uint64) []byte {
	var out []byte
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

func section(id byte, payload []byte) []byte {
	return append(append([]byte{id}, leb128(uint64(len(payload)))...), payload...)
}

// commandModule is a WASI command (exports _start) whose functions have
// the given bodies (each its local declarations, code and final end).
func commandModule(bodies ...[]byte) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, []byte{1, 0x60, 0, 0})...)
	fns := leb128(uint64(len(bodies)))
	code := leb128(uint64(len(bodies)))
	for _, b := range bodies {
		fns = append(fns, 0)
		code = append(append(code, leb128(uint64(len(b)))...), b...)
	}
	m = append(m, section(3, fns)...)
	m = append(m, section(5, []byte{1, 0, 1})...)
	m = append(m, section(7, append([]byte{1, 6}, append([]byte("_start"), 0, 0)...))...)
	return append(m, section(10, code)...)
}

// localsBody declares n locals of type i32.
func localsBody(n uint64) []byte {
	return append(append(append([]byte{1}, leb128(n)...), 0x7F), 0x0B)
}

// loopsBody nests n loops.
func loopsBody(n int) []byte {
	b := append([]byte{0}, bytes.Repeat([]byte{0x03, 0x40}, n)...)
	return append(b, bytes.Repeat([]byte{0x0B}, n+1)...)
}

func writeModule(t *testing.T, wasm []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// served checks that the daemon still deploys and runs a function.
func (p *daemonProc) served(t *testing.T) {
	t.Helper()
	p.mustSluice(t, "", "fn", "deploy", "alive", testutil.WasmPath(t, "echo-wat"))
	if out := p.mustSluice(t, "", "fn", "invoke", "alive", "--data", "still here"); out != "still here" {
		t.Fatalf("the daemon answered %q", out)
	}
}

// TestHostileDeploys deploys the modules that ended the daemon, got it
// OOM-killed or compiled for minutes: each is refused with a clear error
// and the daemon serves the next request.
func TestHostileDeploys(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	oversize := make([]byte, 33<<20)
	copy(oversize, "\x00asm\x01\x00\x00\x00")
	tests := []struct {
		name, says string
		wasm       []byte
		args       []string
	}{
		// 94 bytes: "fatal error: runtime: out of memory" at once
		{"2^32-2 locals", "4294967294 locals (parameters included), over the limit of 50000", commandModule(localsBody(1<<32 - 2)), nil},
		// 93 bytes: OOM-killed in 7 s
		{"200 million locals", "200000000 locals", commandModule(localsBody(200_000_000)), nil},
		// 60 KB: compiled for 44 s
		{"20,000 nested loops", "nesting work", commandModule(loopsBody(20_000)), nil},
		// 120 MiB got the daemon OOM-killed in 4 s
		{"33 MiB", "module is over the limit of 32 MiB", oversize, nil},
		// a 1 GiB table per instance with --memory 1MiB
		{"a table over the memory limit", "the module's tables need 68.7 MiB at start (9000000 elements of 8 bytes) but the function's memory limit is 1 MiB",
			nil, []string{"--memory", "1MiB"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := testutil.WasmPath(t, "hugetable")
			if tc.wasm != nil {
				path = writeModule(t, tc.wasm)
			}
			r := p.sluice(t, "", append([]string{"fn", "deploy", "hostile", path}, tc.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.says) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("deploy: %+v, want it to say %q", r, tc.says)
			}
			p.served(t)
		})
	}
	// the table fits a memory limit that covers it
	p.mustSluice(t, "", "fn", "deploy", "table", testutil.WasmPath(t, "hugetable"), "--memory", "128MiB")
	if out := p.mustSluice(t, "", "fn", "invoke", "table", "--data", "fits"); out != "fits" {
		t.Fatalf("table: %q", out)
	}
}

// TestLimitsOutOfRange deploys with limits past their ceilings (1048576GiB
// panicked the handler and the client got no answer) and an environment
// a guest cannot receive, and calls a reactor that exits.
func TestLimitsOutOfRange(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	echo := testutil.WasmPath(t, "echo-wat")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--memory", "1048576GiB"}, "memory limit 1 PiB is over the maximum of 4 GiB (--memory)"},
		{[]string{"--concurrency", "100000"}, "concurrency 100000 is out of range: 1 to 1000 (--concurrency)"},
		{[]string{"--timeout", "24h"}, "timeout 24h0m0s is over the maximum of 15m0s (--timeout)"},
	} {
		r := p.sluice(t, "", append([]string{"fn", "deploy", "x", echo}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("deploy %v: %+v, want it to say %q", tc.args, r, tc.says)
		}
	}
	// a NUL cannot be given on a command line: through the API
	wasm, _ := os.ReadFile(echo)
	req, _ := http.NewRequest("PUT", p.server+"/v1/functions/x?env="+url.QueryEscape("KEY=a\x00b"), bytes.NewReader(wasm))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "KEY holds a NUL byte") {
		t.Fatalf("env with a NUL: %d %s", resp.StatusCode, body)
	}

	p.mustSluice(t, "", "fn", "deploy", "exit0", testutil.WasmPath(t, "exit0"))
	r := p.sluice(t, "", "fn", "invoke", "exit0")
	if r.code != 1 || !strings.Contains(r.stderr, `function "exit0" exited with code 0: it called proc_exit instead of returning`) {
		t.Fatalf("a reactor calling proc_exit(0): %+v", r)
	}
	p.served(t)
}

// TestLogFloodCounted calls a guest that logs only empty lines, 200,000 of
// them (it got the daemon OOM-killed in 12 s): its records are bounded and
// one says what was dropped.
func TestLogFloodCounted(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "flood", testutil.WasmPath(t, "logflood"))
	for i := 0; i < 3; i++ {
		p.mustSluice(t, "", "fn", "invoke", "flood")
	}
	var logs string
	testutil.Eventually(t, 30*time.Second, "the drop notices", func() bool {
		logs = p.mustSluice(t, "", "fn", "logs", "flood", "--tail", "10000")
		return strings.Count(logs, "dropped") == 3
	})
	if n := strings.Count(logs, "\n"); n > 3*(64<<10/128+1) {
		t.Fatalf("%d log lines from 3 calls", n)
	}
	if !strings.Contains(logs, "log output over 64 KiB in one call (each line counts 128 bytes besides its text): 199488 lines (0 B) dropped") {
		t.Fatalf("the drop notice:\n%s", tail(logs, 400))
	}
	p.served(t)
}

// TestWaiterFlood sends 200 calls of 1 MiB at once to a function with
// --concurrency 2 whose calls sleep until their timeout (2,000 such calls
// held 2.8 GB): two run, eight wait, and the others are refused at once
// with 503 busy and a Retry-After.
func TestWaiterFlood(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "sleepy", testutil.WasmPath(t, "goguest"), "--concurrency", "2", "--timeout", "1s", "--max-input", "2MiB")
	const calls = 200
	body := append([]byte("sleep:"), bytes.Repeat([]byte("x"), 1<<20)...)
	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(p.server+"/v1/functions/sleepy/invoke", "application/octet-stream", bytes.NewReader(body))
			key := ""
			if err != nil {
				key = err.Error()
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				key = strconv.Itoa(resp.StatusCode)
				if resp.StatusCode == 503 && strings.Contains(string(b), `"code": "busy"`) && resp.Header.Get("Retry-After") == "1" {
					key = "busy"
				}
			}
			mu.Lock()
			statuses[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// two sleep until their timeout, then those waiting do
	if statuses["busy"] < calls/2 || statuses["504"] < 2 || statuses["busy"]+statuses["504"] != calls {
		t.Fatalf("answers: %v", statuses)
	}
	p.served(t)
}

// TestShutdownDuringCompilation sends SIGTERM while a module that takes
// many minutes to compile is being deployed (each of its 400 functions is
// under the limits, and takes about a second): the compilation stops and
// the daemon exits, instead of waiting for it.
func TestShutdownDuringCompilation(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	bodies := make([][]byte, 400)
	for i := range bodies {
		bodies[i] = loopsBody(2800)
	}
	wasm := commandModule(bodies...)
	go func() {
		// the deploy fails once the daemon stops: its answer does not matter
		req, _ := http.NewRequest("PUT", p.server+"/v1/functions/slow", bytes.NewReader(wasm))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testutil.Eventually(t, 30*time.Second, "the compilation to start", func() bool {
		return metric(t, p, "sluice_host_modules_compiling") == 1
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not exit within 60 s of SIGTERM: it waits for the compilation")
	}
}

// TestCompileCacheDamaged damages the compile cache's entries (a damaged
// header ended the daemon at every start) and restarts: the entries are
// detected and compiled again, and the functions run.
func TestCompileCacheDamaged(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startDaemon(t, data)
	p.mustSluice(t, "", "fn", "deploy", "wc", testutil.WasmPath(t, "wordcount-c"))
	p.mustSluice(t, "", "fn", "deploy", "upper", testutil.WasmPath(t, "upper-go"))
	p.mustSluice(t, "", "fn", "invoke", "wc", "--data", "a b")
	p.mustSluice(t, "", "fn", "invoke", "upper", "--data", "a b")
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()

	entries, _ := filepath.Glob(filepath.Join(data, "cache", "compiled", "wazero-*", strings.Repeat("?", 64)))
	if len(entries) < 2 {
		t.Fatalf("%d compile cache entries", len(entries))
	}
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		// the function count, after "WAZEVO", the version's length and the version
		binenc.LittleEndian.PutUint32(b[6+1+int(b[6]):], 0xFFFFFFFF)
		if err := os.WriteFile(e, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	q := startDaemon(t, data)
	if out := q.mustSluice(t, "", "fn", "invoke", "wc", "--data", "one two"); out != `{"bytes":7,"words":2,"lines":1}` {
		t.Fatalf("wc after the damage: %q", out)
	}
	if out := q.mustSluice(t, "", "fn", "invoke", "upper", "--data", "back"); out != "BACK" {
		t.Fatalf("upper after the damage: %q", out)
	}
	q.served(t)
}

// metrics reads the daemon's metrics: every sample of a metric without
// labels, or the sum of its samples.
func metrics(t *testing.T, p *daemonProc) map[string]float64 {
	t.Helper()
	resp, err := http.Get(p.server + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		out[name] += v
		if base, _, ok := strings.Cut(name, "{"); ok {
			out[base] += v
		}
	}
	return out
}

func metric(t *testing.T, p *daemonProc, name string) float64 {
	t.Helper()
	return metrics(t, p)[name]
}

// distinctModule is the echo module with a custom section of its own, so
// that each is a distinct module with its own compiled code.
func distinctModule(t *testing.T, i int) string {
	name := fmt.Sprintf("distinct-%d", i)
	wasm, err := os.ReadFile(testutil.WasmPath(t, "echo-wat"))
	if err != nil {
		t.Fatal(err)
	}
	return writeModule(t, append(wasm, section(0, append(append([]byte{byte(len(name))}, name...), 0))...))
}

// TestMemoryFollowsCalls deploys many distinct modules and restarts: the
// metrics show that nothing is loaded until called, that a call loads its
// function only, and that idle instances and unused code are released
// after the idle timeout.
func TestMemoryFollowsCalls(t *testing.T) {
	data := t.TempDir()
	p := startDaemon(t, data)
	const n, called = 30, 5
	for i := 0; i < n; i++ {
		p.mustSluice(t, "", "fn", "deploy", fmt.Sprintf("f%d", i), distinctModule(t, i))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	q := startDaemon(t, data, "--idle-timeout", "1s")
	m := metrics(t, q)
	if m["sluice_functions_deployed"] != n || m["sluice_functions_loaded"] != 0 || m["sluice_host_modules_loaded"] != 0 || m["sluice_host_instances"] != 0 {
		t.Fatalf("before any call: deployed %v, loaded %v, modules %v, instances %v",
			m["sluice_functions_deployed"], m["sluice_functions_loaded"], m["sluice_host_modules_loaded"], m["sluice_host_instances"])
	}
	for i := 0; i < called; i++ {
		q.mustSluice(t, "", "fn", "invoke", fmt.Sprintf("f%d", i), "--data", "x")
	}
	m = metrics(t, q)
	if m["sluice_functions_loaded"] != called || m["sluice_host_modules_loaded"] != called || m[`sluice_host_instances{state="idle"}`] != called {
		t.Fatalf("after %d calls: loaded %v, modules %v, idle instances %v", called,
			m["sluice_functions_loaded"], m["sluice_host_modules_loaded"], m[`sluice_host_instances{state="idle"}`])
	}
	testutil.Eventually(t, 30*time.Second, "idle instances and code to be released", func() bool {
		m = metrics(t, q)
		return m["sluice_host_instances"] == 0 && m["sluice_host_modules_loaded"] == 0 && m["sluice_host_memory_used_bytes"] == 0
	})
	if m[`sluice_host_released_total{kind="instance",reason="idle"}`] != called {
		t.Fatalf("released: %v instances", m[`sluice_host_released_total{kind="instance",reason="idle"}`])
	}
	if out := q.mustSluice(t, "", "fn", "invoke", "f0", "--data", "again"); out != "again" {
		t.Fatalf("after release: %q", out)
	}
}
