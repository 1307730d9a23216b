package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// PlainRun is what a plain WASI runtime makes of a command: what it wrote
// to stdout and stderr, and its exit code.
type PlainRun struct {
	Stdout, Stderr string
	Exit           uint32
}

// RunPlainWASI runs a WASI command under bare wazero with argv[0] only,
// the environment in the order of its names (as sluice gives a
// deployment's), stdin, real clocks and randomness as wasmtime and wasmer
// give them, and no preopened directory: what sluice's commands are
// compared with, for any toolchain.
func RunPlainWASI(t testing.TB, wasm []byte, argv0 string, env map[string]string, stdin string) PlainRun {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	var stdout, stderr bytes.Buffer
	cfg := wazero.NewModuleConfig().WithName("").WithArgs(argv0).
		WithStdin(strings.NewReader(stdin)).WithStdout(&stdout).WithStderr(&stderr).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithRandSource(rand.Reader)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cfg = cfg.WithEnv(k, env[k])
	}
	run := PlainRun{}
	mod, err := r.InstantiateWithConfig(ctx, wasm, cfg)
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit):
		run.Exit = exit.ExitCode()
	case err != nil:
		t.Fatalf("plain wazero: %v", err)
	default:
		mod.Close(ctx)
	}
	run.Stdout, run.Stderr = stdout.String(), stderr.String()
	return run
}
