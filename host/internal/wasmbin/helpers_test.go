package wasmbin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// wat compiles WAT source to a module binary with wabt's wat2wasm, with
// every proposal enabled. It fails the test if wat2wasm is missing.
func wat(t testing.TB, src string) []byte {
	t.Helper()
	return wat2wasm(t, src)
}

// watDebugNames is wat with a name section (wat2wasm --debug-names).
func watDebugNames(t testing.TB, src string) []byte {
	t.Helper()
	return wat2wasm(t, src, "--debug-names")
}

// wat2wasm runs wat2wasm with every proposal enabled and extra flags.
func wat2wasm(t testing.TB, src string, flags ...string) []byte {
	t.Helper()
	tool := lookTool(t, "wat2wasm", "install wabt (apt-get install wabt)")
	dir := t.TempDir()
	in := filepath.Join(dir, "m.wat")
	out := filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, append(append([]string{"--enable-all"}, flags...), in, "-o", out)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s\nsource:\n%s", err, msg, src)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lookTool finds an external program or fails the test saying how to
// install it.
func lookTool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: %s", name, install)
	}
	return p
}

// newRuntime returns a wazero runtime with the optimizing compiler, closed
// when the test ends.
func newRuntime(t testing.TB) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	t.Cleanup(func() { r.Close(ctx) })
	return r
}

// instantiate compiles and instantiates bin in a fresh runtime, without a
// name (so several instances can coexist) and without start functions.
func instantiate(t testing.TB, bin []byte) api.Module {
	t.Helper()
	r := newRuntime(t)
	ctx := context.Background()
	mod, err := r.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	return mod
}

// mustInstrument instruments bin or fails the test.
func mustInstrument(t testing.TB, bin []byte, opts Options) Result {
	t.Helper()
	res, err := Instrument(bin, opts)
	if err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	return res
}

// call calls an exported function and fails the test on error.
func call(t testing.TB, mod api.Module, name string, args ...uint64) []uint64 {
	t.Helper()
	fn := mod.ExportedFunction(name)
	if fn == nil {
		t.Fatalf("no exported function %q", name)
	}
	res, err := fn.Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s%v: %v", name, args, err)
	}
	return res
}

// interruptFlag returns the module's exported interrupt flag, raised as
// the host does: setting it to non-zero also sets the countdown to 0.
func interruptFlag(t testing.TB, mod api.Module) api.MutableGlobal {
	t.Helper()
	return hostInterrupt{mutableGlobal(t, mod, InterruptExport), mutableGlobal(t, mod, CountdownExport)}
}

// hostInterrupt is the interrupt flag raised as the host raises it.
type hostInterrupt struct {
	api.MutableGlobal
	countdown api.MutableGlobal
}

func (h hostInterrupt) Set(v uint64) {
	h.MutableGlobal.Set(v)
	if v != 0 {
		h.countdown.Set(0)
	}
}

// mutableGlobal returns the module's exported mutable global name.
func mutableGlobal(t testing.TB, mod api.Module, name string) api.MutableGlobal {
	t.Helper()
	g := mod.ExportedGlobal(name)
	if g == nil {
		t.Fatalf("module does not export %q", name)
	}
	mg, ok := g.(api.MutableGlobal)
	if !ok {
		t.Fatalf("%q is not mutable", name)
	}
	return mg
}

// waitFor polls cond every millisecond until it holds or bound passes, and
// reports whether it held.
func waitFor(bound time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(bound)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}
