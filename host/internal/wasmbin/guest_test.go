package wasmbin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// goGuestSource is a small Go program exercising the runtime (goroutines,
// channels, maps, GC, defer/recover) and printing deterministic output.
// With the argument "spin" it loops forever instead.
const goGuestSource = `package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sort"
	"strings"
)

var sink int

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func safeDiv(a, b int) (q int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered: %v", r)
		}
	}()
	return a / b, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "spin" {
		for i := 0; ; i++ {
			sink += i
		}
	}
	// Sieve of Eratosthenes.
	const n = 200000
	composite := make([]bool, n)
	primes := 0
	for i := 2; i < n; i++ {
		if !composite[i] {
			primes++
			for j := i * i; j < n; j += i {
				composite[j] = true
			}
		}
	}
	fmt.Println("primes below", n, "=", primes)

	// Goroutines and channels.
	results := make(chan int)
	for w := 0; w < 8; w++ {
		go func(w int) {
			s := 0
			for i := 0; i < 100000; i++ {
				s += i % (w + 1)
			}
			results <- s
		}(w)
	}
	total := 0
	for w := 0; w < 8; w++ {
		total += <-results
	}
	fmt.Println("workers total", total)

	// Maps, sorting, strings, allocation.
	words := strings.Fields("the quick brown fox jumps over the lazy dog the end")
	counts := map[string]int{}
	for _, w := range words {
		counts[w]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%s=%d ", k, counts[k])
	}
	fmt.Println()
	var garbage [][]byte
	for i := 0; i < 2000; i++ {
		garbage = append(garbage, make([]byte, 1024))
		if len(garbage) > 100 {
			garbage = garbage[:0]
		}
	}
	fmt.Printf("sha256 %x\n", sha256.Sum256([]byte(strings.Repeat("sluice", 1000))))
	fmt.Println("fib(25) =", fib(25))
	_, err := safeDiv(1, len(os.Args)-1)
	fmt.Println("div:", err)
}
`

// cGuestSource is a small C program: recursion, qsort, malloc, floating
// point formatting.
const cGuestSource = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "spin") == 0) {
		volatile unsigned long n = 0;
		for (;;) n++;
	}
	int n = 5000;
	int *v = malloc(n * sizeof *v);
	unsigned s = 12345;
	for (int i = 0; i < n; i++) { s = s * 1103515245u + 12345u; v[i] = (int)(s >> 8) % 100000; }
	qsort(v, n, sizeof *v, cmp);
	printf("min %d max %d median %d\n", v[0], v[n - 1], v[n / 2]);
	double acc = 0;
	for (int i = 1; i < 100000; i++) acc += 1.0 / ((double)i * i);
	printf("zeta(2) ~ %.9f\n", acc);
	printf("fib(27) = %ld\n", fib(27));
	char buf[64];
	snprintf(buf, sizeof buf, "%s-%05d", "sluice", 42);
	puts(buf);
	free(v);
	return 0;
}
`

// cSIMDSource has loops clang -O2 -msimd128 vectorizes.
const cSIMDSource = `#include <stdio.h>

#define N 4096
static float a[N], b[N], c[N];
static int xs[N];

int main(void) {
	for (int i = 0; i < N; i++) { a[i] = i * 0.5f; b[i] = (N - i) * 0.25f; xs[i] = i * 3; }
	for (int r = 0; r < 100; r++)
		for (int i = 0; i < N; i++) c[i] = a[i] * b[i] + c[i];
	double s = 0;
	for (int i = 0; i < N; i++) s += c[i];
	int t = 0;
	for (int i = 0; i < N; i++) t += xs[i] ^ (i << 1);
	printf("%.3f %d\n", s, t);
	return 0;
}
`

// guestCache keeps built guests for the life of the test binary, so the
// tests and benchmarks build each once.
var guestCache sync.Map // source key -> []byte

// buildGuest runs build in a fresh directory holding the source file and
// returns the produced out.wasm, caching it by key.
func buildGuest(t testing.TB, key, file, src string, build func(dir string) *exec.Cmd) []byte {
	t.Helper()
	if b, ok := guestCache.Load(key); ok {
		return b.([]byte)
	}
	dir, err := os.MkdirTemp("", "wasmbin-guest-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, file), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := build(dir)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	guestCache.Store(key, b)
	return b
}

// goGuest builds goGuestSource with GOOS=wasip1 GOARCH=wasm.
func goGuest(t testing.TB) []byte {
	t.Helper()
	goTool := lookTool(t, "go", "install Go")
	return buildGuest(t, "go", "main.go", goGuestSource, func(dir string) *exec.Cmd {
		cmd := exec.Command(goTool, "build", "-o", "out.wasm", "main.go")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
		return cmd
	})
}

// cGuest builds a C program with clang for wasm32-wasi (wasi-libc).
func cGuest(t testing.TB, key, src string, flags ...string) []byte {
	t.Helper()
	clang := lookTool(t, "clang", "install clang, lld, wasi-libc and libclang-rt-dev-wasm32 (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
	return buildGuest(t, key, "main.c", src, func(dir string) *exec.Cmd {
		args := append([]string{"--target=wasm32-wasi", "-O2"}, flags...)
		return exec.Command(clang, append(args, "main.c", "-o", "out.wasm")...)
	})
}

// runWASI runs a WASI command module's _start with args and returns its
// stdout. The module is instantiated without running _start, so that the
// test can reach its interrupt flag; onStart, if set, gets the module.
func runWASI(t testing.TB, bin []byte, args []string, onStart func(flag func(uint64))) (string, error) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, compilerConfig())
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	var stdout, stderr bytes.Buffer
	cfg := wazero.NewModuleConfig().WithStdout(&stdout).WithStderr(&stderr).
		WithArgs(append([]string{"guest"}, args...)...).WithStartFunctions()
	m, err := r.InstantiateWithConfig(ctx, bin, cfg)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	if onStart != nil {
		onStart(interruptFlag(t, m).Set)
	}
	_, err = m.ExportedFunction("_start").Call(ctx)
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err = nil
	}
	if err == nil && stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return stdout.String(), err
}

// checkSameOutput runs the original and the instrumented guest and
// compares their output.
func checkSameOutput(t *testing.T, bin []byte) Result {
	t.Helper()
	want, err := runWASI(t, bin, nil, nil)
	if err != nil {
		t.Fatalf("original: %v", err)
	}
	start := time.Now()
	res := mustInstrument(t, bin, Options{Interrupt: true, MaxMemoryPages: 16384})
	t.Logf("instrumented %d bytes in %v: %d checks, %d -> %d bytes", len(bin), time.Since(start), res.Checks, len(bin), len(res.Wasm))
	got, err := runWASI(t, res.Wasm, nil, nil)
	if err != nil {
		t.Fatalf("instrumented: %v", err)
	}
	if got != want {
		t.Fatalf("output differs\n got: %q\nwant: %q", got, want)
	}
	t.Logf("output: %q", got)
	return res
}

// checkSpinInterrupted runs the guest with the argument "spin" and
// checks that setting the flag stops it.
func checkSpinInterrupted(t *testing.T, bin []byte) {
	t.Helper()
	var setAt atomic.Int64
	var timer *time.Timer
	start := time.Now()
	_, err := runWASI(t, bin, []string{"spin"}, func(set func(uint64)) {
		timer = time.AfterFunc(100*time.Millisecond, func() {
			now := time.Now().UnixNano()
			set(1)
			setAt.Store(now)
		})
	})
	timer.Stop()
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("spin: error %v, want the unreachable trap", err)
	}
	if setAt.Load() == 0 {
		t.Fatalf("spin returned after %v, before the flag was set", time.Since(start))
	}
}

// TestGoGuest instruments a real Go (wasip1) program: same output, and an
// endless loop in it is interrupted.
func TestGoGuest(t *testing.T) {
	bin := goGuest(t)
	checkSameOutput(t, bin)
	checkSpinInterrupted(t, mustInstrument(t, bin, Options{Interrupt: true}).Wasm)
}

// TestCGuest instruments a C program built with clang and wasi-libc.
func TestCGuest(t *testing.T) {
	bin := cGuest(t, "c", cGuestSource)
	checkSameOutput(t, bin)
	checkSpinInterrupted(t, mustInstrument(t, bin, Options{Interrupt: true}).Wasm)
}

// TestCSIMDGuest instruments a C program vectorized with -msimd128.
func TestCSIMDGuest(t *testing.T) {
	bin := cGuest(t, "c-simd", cSIMDSource, "-msimd128")
	objdump := lookTool(t, "wasm-objdump", "install wabt (apt-get install wabt)")
	p := filepath.Join(t.TempDir(), "simd.wasm")
	if err := os.WriteFile(p, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	dis, err := exec.Command(objdump, "-d", p).CombinedOutput()
	if err != nil {
		t.Fatalf("wasm-objdump: %v\n%s", err, dis)
	}
	if !bytes.Contains(dis, []byte("f32x4.")) || !bytes.Contains(dis, []byte("v128.load")) {
		t.Fatal("clang did not vectorize the loops (no f32x4 / v128.load in the disassembly)")
	}
	checkSameOutput(t, bin)
}
