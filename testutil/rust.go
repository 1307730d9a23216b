package testutil

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// RustToolchain is what builds Rust guests: a cargo, the rustc it runs
// (which has a wasm32 WASI standard library) and the target's name
// (wasm32-wasip1, or wasm32-wasi before Rust 1.78).
type RustToolchain struct {
	Cargo, Rustc, Target string
}

var (
	rustOnce sync.Once
	rust     RustToolchain
	rustErr  string
)

// RustWasm returns the toolchain scripts/rust-wasm picks, as the Makefile
// does: the first rustc in PATH may be a rustup one without a wasm32
// standard library. It fails the test, saying what to install, if there
// is none.
func RustWasm(t testing.TB) RustToolchain {
	t.Helper()
	rustOnce.Do(func() {
		cmd := exec.Command(filepath.Join(Root(t), "scripts", "rust-wasm"))
		out, err := cmd.Output()
		f := strings.Fields(string(out))
		switch {
		case err != nil:
			msg := err.Error()
			if ee, ok := err.(*exec.ExitError); ok {
				msg = strings.TrimSpace(string(ee.Stderr))
			}
			rustErr = "no Rust toolchain for WebAssembly: " + msg
		case len(f) != 3:
			rustErr = "scripts/rust-wasm printed " + strings.TrimSpace(string(out)) + ", not CARGO RUSTC TARGET"
		default:
			rust = RustToolchain{Cargo: f[0], Rustc: f[1], Target: f[2]}
		}
	})
	if rustErr != "" {
		t.Fatal(rustErr)
	}
	return rust
}
