package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host/internal/wasmbin"
	"github.com/sluicehq/sluice/testutil"
)

// The tests in this file give the host what exhausted or stalled it
// before it had limits: modules built to make wazero allocate or compute
// without end, guests that log or queue without end. Each must fail
// with a clear error, and the host must carry on.

// uleb encodes v as an unsigned LEB128 number.
func uleb(v uint64) []byte {
	var out []byte
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

// wasmSection encodes a section.
func wasmSection(id byte, payload []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(payload)))...), payload...)
}

// oneFunctionModule is a module exporting _start, of type () -> (),
// whose body declares locals and runs code (without its final end).
func oneFunctionModule(locals, code []byte) []byte {
	body := append(append(append([]byte{}, locals...), code...), 0x0B)
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, wasmSection(1, []byte{1, 0x60, 0, 0})...)
	m = append(m, wasmSection(3, []byte{1, 0})...)
	m = append(m, wasmSection(7, append([]byte{1, 6}, append([]byte("_start"), 0, 0)...))...)
	m = append(m, wasmSection(10, append([]byte{1}, append(uleb(uint64(len(body))), body...)...))...)
	return m
}

// localsModule declares n locals of type i32 in one function.
func localsModule(n uint64) []byte {
	return oneFunctionModule(append(append([]byte{1}, uleb(n)...), 0x7F), nil)
}

// nestedLoopsModule nests n loops in one function.
func nestedLoopsModule(n int) []byte {
	code := bytes.Repeat([]byte{0x03, 0x40}, n)
	code = append(code, bytes.Repeat([]byte{0x0B}, n)...)
	return oneFunctionModule([]byte{0}, code)
}

// tableModule is a module with a funcref table of n elements.
func tableModule(n uint64) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	return append(m, wasmSection(4, append([]byte{1, 0x70, 0}, uleb(n)...))...)
}

// TestHostileModules loads the modules that ended or stalled the host:
// each is refused before the expensive work, and the host still loads
// and runs a good module afterwards.
func TestHostileModules(t *testing.T) {
	h, _ := newHost(t)
	oversize := append([]byte("\x00asm\x01\x00\x00\x00"), wasmSection(0, append([]byte{1, 'x'}, make([]byte, MaxModuleSize)...))...)
	tests := []struct {
		name string
		wasm []byte
		kind error
		says string
	}{
		// 94 bytes that ended the daemon at once: "fatal error: runtime: out of memory"
		{"2^32-2 locals", localsModule(1<<32 - 2), ErrInvalidModule, "function 0: 4294967294 locals (parameters included), over the limit of 50000"},
		// 93 bytes that got it OOM-killed in 7 s
		{"200 million locals", localsModule(200_000_000), ErrInvalidModule, "200000000 locals"},
		// 60 KB that compiled for 44 s, holding up SIGTERM
		{"20,000 nested loops", nestedLoopsModule(20_000), ErrInvalidModule, "nesting work"},
		{"over the module size", oversize, ErrInvalidModule, "over the limit of 32 MiB"},
		// 128 bytes whose instances took 1 GiB each, whatever their memory limit
		{"a table of 2^27 elements", tableModule(1 << 27), ErrInvalidModule, "134217728 elements in one table at start, over the limit of 10000000"},
		{"a table over the memory limit", testutil.Wasm(t, "hugetable"), ErrMemoryTooSmall, "tables need 68.7 MiB at start (9000000 elements of 8 bytes) but the function's memory limit is 64 MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Load(context.Background(), Spec{Name: "hostile"}, tc.wasm)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v, want %v saying %q", err, tc.kind, tc.says)
			}
			if st := h.Stats(); st.Modules != 0 || st.MemoryUsed != 0 {
				t.Fatalf("a refused module left %+v", st)
			}
		})
	}
	if out := mustInvoke(t, load(t, h, "echo-wat", Spec{}), "still here"); out != "still here" {
		t.Fatalf("echo after the hostile modules: %q", out)
	}
}

// TestTablesUnderMemoryLimit checks that tables count against the memory
// limit: a table of 9,000,000 elements (72 MB) fits a limit of 128 MiB,
// not one of 1 MiB (a function with --memory 1MiB held 1 GiB per instance).
func TestTablesUnderMemoryLimit(t *testing.T) {
	h, _ := newHost(t)
	wasm := testutil.Wasm(t, "hugetable")
	_, err := h.Load(context.Background(), Spec{Name: "t", Limits: Limits{Memory: 1 << 20}}, wasm)
	if !errors.Is(err, ErrMemoryTooSmall) || !strings.Contains(err.Error(), "memory limit is 1 MiB, which bounds its tables too (raise --memory)") {
		t.Fatalf("1 MiB: %v", err)
	}
	f, err := h.Load(context.Background(), Spec{Name: "t", Limits: Limits{Memory: 128 << 20}}, wasm)
	if err != nil {
		t.Fatalf("128 MiB: %v", err)
	}
	if out := mustInvoke(t, f, "fits"); out != "fits" {
		t.Fatalf("128 MiB: %q", out)
	}
	if used := h.Stats().MemoryUsed; used < 72_000_000 {
		t.Fatalf("an instance with a table of 72 MB is charged %s", FormatBytes(used))
	}
}

// TestLogFlood checks that empty lines and empty sluice.log records count
// against the per-call log limit: a guest writing 200,000 of them gets a
// bounded number of records and one saying how many were dropped.
func TestLogFlood(t *testing.T) {
	h, sink := newHost(t)
	f := load(t, h, "logflood", Spec{})
	if _, err := f.Invoke(context.Background(), Call{ID: "flood"}); err != nil {
		t.Fatal(err)
	}
	msgs := sink.messages("flood")
	if max := maxLogBytesPerCall/recordCost + 1; len(msgs) > max {
		t.Fatalf("%d records from one call, want at most %d", len(msgs), max)
	}
	last := msgs[len(msgs)-1]
	want := fmt.Sprintf("%d lines (0 B) dropped", 200_000-maxLogBytesPerCall/recordCost)
	if !strings.HasPrefix(last, "sluice: log output over 64 KiB in one call") || !strings.Contains(last, want) {
		t.Fatalf("last record %q does not say %q", last, want)
	}
}

// TestReactorExit checks that a reactor calling proc_exit(0) is reported
// as the exit it is (it was "sluice_handle returned status 1024"), and
// its instance is not reused.
func TestReactorExit(t *testing.T) {
	h, _ := newHost(t)
	f := load(t, h, "exit0", Spec{})
	for i := 0; i < 2; i++ {
		_, err := invoke(t, f, "")
		ce := wantCallError(t, err, ErrExit, `function "exit0" exited with code 0: it called proc_exit instead of returning`)
		if ce.ExitCode != 0 {
			t.Fatalf("exit code %d", ce.ExitCode)
		}
	}
	if st := f.Stats(); st.ColdStarts != 2 || st.Idle != 0 {
		t.Fatalf("an exited instance was reused: %+v", st)
	}
}

// TestLimitsOutOfRange checks every limit's ceiling and that sizes too
// large to count are refused, not wrapped (1048576GiB panicked the API).
func TestLimitsOutOfRange(t *testing.T) {
	big, err := ParseBytes("1048576GiB")
	if err != nil || big != 1<<50 {
		t.Fatalf("ParseBytes(1048576GiB) = %d, %v", big, err)
	}
	if _, err := ParseBytes("99999999999999999999GiB"); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("ParseBytes of more than 2^64: %v", err)
	}
	for n, want := range map[uint64]string{1 << 50: "1 PiB", 1 << 62: "4 EiB", 1<<64 - 1: "16 EiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	tests := []struct {
		limits Limits
		says   string
	}{
		{Limits{Memory: big}, "memory limit 1 PiB is over the maximum of 4 GiB (--memory)"},
		{Limits{Timeout: 16 * time.Minute}, "timeout 16m0s is over the maximum of 15m0s (--timeout)"},
		{Limits{Concurrency: MaxConcurrency + 1}, "concurrency 1001 is out of range: 1 to 1000 (--concurrency)"},
		{Limits{MaxInput: MaxIOSize + 1}, "(--max-input)"},
		{Limits{MaxOutput: -1}, "(--max-output)"},
	}
	h, _ := newHost(t)
	for _, tc := range tests {
		_, err := h.Load(context.Background(), Spec{Name: "x", Limits: tc.limits}, testutil.Wasm(t, "echo-wat"))
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: %v, want it to say %q", tc.limits, err, tc.says)
		}
	}
}

// TestEnvValidated checks that an environment the host cannot pass is
// refused at Load: it was accepted, and then every call failed as a trap.
func TestEnvValidated(t *testing.T) {
	h, _ := newHost(t)
	for env, says := range map[string]string{"A\x00B=1": `name "A\x00B"`, "A=B\x00C": "value of environment variable A holds a NUL byte", "=x": "empty name"} {
		k, v, _ := strings.Cut(env, "=")
		_, err := h.Load(context.Background(), Spec{Name: "x", Env: map[string]string{k: v}}, testutil.Wasm(t, "hello-wasi"))
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), says) {
			t.Errorf("env %q: %v, want it to say %q", env, err, says)
		}
	}
}

// TestBusy checks the bound on calls waiting for a slot: with every slot
// taken, waitersPerSlot calls per slot wait, the next is refused at once
// with ErrBusy, and so is one whose input would take the waiting inputs
// over maxWaitingInput; once the slot frees, the waiters run.
func TestBusy(t *testing.T) {
	h, _ := newHost(t)
	f := load(t, h, "spin", Spec{Limits: Limits{Concurrency: 1, MaxInput: 2 * maxWaitingInput}})
	ctx, stop := context.WithCancel(context.Background())
	spinning := make(chan error, 1)
	go func() { _, err := f.Invoke(ctx, Call{Input: []byte("spin")}); spinning <- err }()
	testutil.Eventually(t, 10*time.Second, "the spinning call", func() bool { return f.Stats().Active == 1 })

	waiting := func() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.waiters) }
	var wg sync.WaitGroup
	results := make(chan error, waitersPerSlot)
	for i := 0; i < waitersPerSlot; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.Invoke(context.Background(), Call{Input: []byte("ok")})
			if err == nil && string(res.Output) != "ok" {
				err = fmt.Errorf("output %q", res.Output)
			}
			results <- err
		}()
		testutil.Eventually(t, 10*time.Second, "the call to wait", func() bool { return waiting() == i+1 })
	}
	_, err := f.Invoke(context.Background(), Call{Input: []byte("ok")})
	wantCallError(t, err, ErrBusy, `function "spin" is busy: all its 1 slots (--concurrency) are taken`, "4 calls are waiting")
	if !strings.Contains(err.Error(), "retry") {
		t.Fatalf("the error does not say to retry: %v", err)
	}
	stop()
	if err := <-spinning; !errors.Is(err, ErrCanceled) {
		t.Fatalf("spinning call: %v", err)
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatalf("a waiting call: %v", err)
		}
	}

	// the bytes the waiters hold: one large input waits, the next is refused
	ctx, stop = context.WithCancel(context.Background())
	defer stop()
	go func() { _, err := f.Invoke(ctx, Call{Input: []byte("spin")}); spinning <- err }()
	testutil.Eventually(t, 10*time.Second, "the spinning call", func() bool { return f.Stats().Active == 1 })
	go f.Invoke(ctx, Call{Input: make([]byte, maxWaitingInput)})
	testutil.Eventually(t, 10*time.Second, "the large call to wait", func() bool { return waiting() == 1 })
	_, err = f.Invoke(context.Background(), Call{Input: []byte("ok")})
	wantCallError(t, err, ErrBusy)
}

// distinctEcho is the echo module made distinct by a custom section, so
// that each has its own compiled code.
func distinctEcho(t *testing.T, i int) []byte {
	name := fmt.Sprintf("distinct-%d", i)
	payload := append(append([]byte{byte(len(name))}, name...), 0)
	return append(append([]byte{}, testutil.Wasm(t, "echo-wat")...), wasmSection(0, payload)...)
}

// TestMemoryBudget checks that compiled modules and instances stay within
// the budget, the least recently used released to make room, and that a
// call finding the budget full of calls in progress is refused and says
// so, as does Health.
func TestMemoryBudget(t *testing.T) {
	st := testStats(t, testutil.Wasm(t, "echo-wat"))
	perFunction := estimateModule(st) + estimateInstance(st, st.MemoryPages*pageSize)
	budget := uint64(3*perFunction + perFunction/2) // room for three functions and their instances
	h, err := New(context.Background(), NewConfig().WithMemoryBudget(budget))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	var funcs []*Function
	for i := 0; i < 10; i++ {
		f, err := h.Load(context.Background(), Spec{Name: fmt.Sprintf("f%d", i)}, distinctEcho(t, i))
		if err != nil {
			t.Fatal(err)
		}
		funcs = append(funcs, f)
		if out := mustInvoke(t, f, "hi"); out != "hi" {
			t.Fatalf("f%d: %q", i, out)
		}
		if used := h.Stats().MemoryUsed; used > budget {
			t.Fatalf("%s used, over the budget of %s", FormatBytes(used), FormatBytes(budget))
		}
	}
	hs := h.Stats()
	if hs.EvictedInstances == 0 || hs.EvictedModules == 0 {
		t.Fatalf("nothing released for the budget: %+v", hs)
	}
	if out := mustInvoke(t, funcs[0], "again"); out != "again" { // compiled again
		t.Fatalf("f0 after its code was released: %q", out)
	}
	if h.Health() != nil {
		t.Fatalf("health: %v", h.Health())
	}

	// A budget with room for a module but not for an instance of it: the
	// call holds the module, so nothing can be released.
	small, err := New(context.Background(), NewConfig().WithMemoryBudget(uint64(estimateModule(testStats(t, testutil.Wasm(t, "spin")))+perFunction/2)))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close(context.Background())
	spin, err := small.Load(context.Background(), Spec{Name: "spin"}, testutil.Wasm(t, "spin"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = spin.Invoke(context.Background(), Call{Input: []byte("ok")})
	wantCallError(t, err, ErrMemoryBudget, `function "spin" cannot start: the daemon's memory budget is full of calls in progress; retry shortly, or raise --memory-budget: an instance:`, "more is needed", "(--memory-budget)")
	if err := small.Health(); !errors.Is(err, ErrMemoryBudget) {
		t.Fatalf("health with the budget full: %v", err)
	}
}

// testStats checks a module as the host does.
func testStats(t *testing.T, wasm []byte) wasmbin.Stats {
	t.Helper()
	st, err := checkModule(wasm)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestIdleTimeout checks that idle instances, then compiled code no call
// uses, are released after the idle timeout, and that the function still
// runs afterwards.
func TestIdleTimeout(t *testing.T) {
	h, err := New(context.Background(), NewConfig().WithIdleTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	f := load(t, h, "echo-wat", Spec{})
	mustInvoke(t, f, "a")
	if st := h.Stats(); st.Instances != 1 || st.Idle != 1 || st.Modules != 1 {
		t.Fatalf("after a call: %+v", st)
	}
	testutil.Eventually(t, 10*time.Second, "the idle instance and module to be released", func() bool {
		st := h.Stats()
		return st.Instances == 0 && st.Modules == 0 && st.MemoryUsed == 0
	})
	if st := h.Stats(); st.ExpiredInstances != 1 || st.ExpiredModules != 1 {
		t.Fatalf("after the idle timeout: %+v", st)
	}
	res, err := f.Invoke(context.Background(), Call{Input: []byte("back")})
	if err != nil || string(res.Output) != "back" || !res.Cold {
		t.Fatalf("after the idle timeout: %q cold=%v, %v", res.Output, res.Cold, err)
	}
}

// TestCloseStopsCompilation checks that ending the host's context stops a
// compilation under way: the Load waiting for it fails at once rather
// than after the compilation (tens of seconds for this module), and Close
// does not wait for it.
func TestCloseStopsCompilation(t *testing.T) {
	// 30 functions of 2,800 nested loops, each just under the nesting
	// limit: about a second each to compile.
	var fns, bodies []byte
	for i := 0; i < 30; i++ {
		fns = append(fns, 0)
		code := append(bytes.Repeat([]byte{0x03, 0x40}, 2800), bytes.Repeat([]byte{0x0B}, 2801)...)
		body := append([]byte{0}, code...)
		bodies = append(bodies, append(uleb(uint64(len(body))), body...)...)
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, wasmSection(1, []byte{1, 0x60, 0, 0})...)
	m = append(m, wasmSection(3, append([]byte{30}, fns...))...)
	m = append(m, wasmSection(7, append([]byte{1, 6}, append([]byte("_start"), 0, 0)...))...)
	m = append(m, wasmSection(10, append([]byte{30}, bodies...))...)

	ctx, cancel := context.WithCancel(context.Background())
	h, err := New(ctx, NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	loaded := make(chan error, 1)
	go func() { _, err := h.Load(context.Background(), Spec{Name: "slow"}, m); loaded <- err }()
	testutil.Eventually(t, 10*time.Second, "the compilation to start", func() bool { return h.Stats().Compiling == 1 })
	cancel()
	if err := <-loaded; !errors.Is(err, ErrClosed) {
		t.Fatalf("Load after the host's context ended: %v", err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCompileTimeout checks that a compilation past its deadline fails
// with a message saying so.
func TestCompileTimeout(t *testing.T) {
	h, err := New(context.Background(), NewConfig().WithCompileTimeout(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	_, err = h.Load(context.Background(), Spec{Name: "x"}, testutil.Wasm(t, "wordcount-c"))
	if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "compiling it took longer than 1ns and was stopped") {
		t.Fatalf("error %v", err)
	}
}

// cacheEntries returns the paths of the compilation cache's entries.
func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, wazeroCacheDir(), strings.Repeat("?", 64)))
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// TestCacheEntryDamaged damages the compilation cache's entries in the
// ways that crashed or misled wazero, and checks that a new host detects
// each, compiles the module again, and runs it.
func TestCacheEntryDamaged(t *testing.T) {
	damages := []struct {
		name   string
		damage func(b []byte) []byte
	}{
		// the header's function count: wazero allocated 32 GB for it
		{"function count", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[6+1+int(b[6]):], 0xFFFFFFFF)
			return b
		}},
		// the offset of a function in the machine code: not checksummed
		{"function offset", func(b []byte) []byte { b[6+1+int(b[6])+4] ^= 0x10; return b }},
		{"machine code", func(b []byte) []byte { b[len(b)/2] ^= 0xFF; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/3] }},
	}
	wasm := testutil.Wasm(t, "wordcount-c")
	for _, tc := range damages {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h, err := New(context.Background(), NewConfig().WithCacheDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			mustInvoke(t, load(t, h, "wordcount-c", Spec{}), "a b")
			h.Close(context.Background())
			entries := cacheEntries(t, dir)
			if len(entries) != 1 {
				t.Fatalf("%d cache entries, want 1", len(entries))
			}
			b, err := os.ReadFile(entries[0])
			if err != nil {
				t.Fatal(err)
			}
			orig := bytes.Clone(b)
			if err := os.WriteFile(entries[0], tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}

			h, err = New(context.Background(), NewConfig().WithCacheDir(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close(context.Background())
			f, err := h.Load(context.Background(), Spec{Name: "wc"}, wasm)
			if err != nil {
				t.Fatal(err)
			}
			if out := mustInvoke(t, f, "one two"); out != `{"bytes":7,"words":2,"lines":1}` {
				t.Fatalf("output %q", out)
			}
			if again, _ := os.ReadFile(entries[0]); !bytes.Equal(again, orig) {
				t.Fatalf("the entry was not written again (%d bytes, %d before)", len(again), len(orig))
			}
		})
	}

	// An entry no seal covers (written by an older sluice, or by a crash
	// between writing and sealing) is removed at start.
	dir := t.TempDir()
	h, err := New(context.Background(), NewConfig().WithCacheDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	mustInvoke(t, load(t, h, "wordcount-c", Spec{}), "a b")
	h.Close(context.Background())
	os.RemoveAll(filepath.Join(dir, "sluice-seals"))
	h, err = New(context.Background(), NewConfig().WithCacheDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	if n := len(cacheEntries(t, dir)); n != 0 {
		t.Fatalf("%d unsealed entries left", n)
	}
}

// A snapshot is made in the background, after a function's first call.
// With no room for it in the memory budget it is not made, and the budget
// is not said to be full: no call was refused, and the function's calls
// go on.
func TestSnapshotWithoutRoomLeavesTheBudgetAlone(t *testing.T) {
	st := testStats(t, testutil.Wasm(t, "wordcount-c"))
	mem := int64(st.MemoryPages) * pageSize
	h, err := New(context.Background(), NewConfig().WithMemoryBudget(uint64(estimateModule(st)+estimateInstance(st, uint64(mem))+mem/2)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	f := load(t, h, "wordcount-c", Spec{Name: "wc"})
	for i := 0; i < 3; i++ {
		if _, err := f.Invoke(context.Background(), Call{Input: []byte("a b c")}); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		if st, _ := snapSettled(t, f); st == slotReady {
			t.Fatalf("a snapshot was made over the budget")
		}
		if err := h.Health(); err != nil {
			t.Fatalf("after call %d, the snapshot refused for room: %v", i+1, err)
		}
	}
}
