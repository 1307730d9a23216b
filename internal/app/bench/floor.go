package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluicehq/sluice/abi"
)

// floor runs a module on bare wazero with the least code any embedder
// needs to call it: the compiler engine, WASI from wazero, the sluice
// imports as plain functions that copy the output out and ignore the
// rest. No instrumentation, no limits, no pool, no logs: what sluice adds
// is the difference.
type floor struct {
	r        wazero.Runtime
	compiled wazero.CompiledModule
	kind     abi.Kind
	in       []byte
	out      []byte

	// a live reactor instance, for warm calls
	live      api.Module
	handle    api.Function
	livePtr   uint32
	liveStack [2]uint64
}

// noFloor says why a module of a kind has no bare-wazero floor, "" if
// it has one.
func noFloor(kind abi.Kind) string {
	if kind == abi.Extism {
		return "an Extism plugin reads its input and writes its output through Extism's kernel (about 20 functions over a memory of its own), " +
			"which bare wazero lacks: a kernel written for it would be another host, not a floor (bench/extism compares sluice with Extism's own Go SDK)"
	}
	return ""
}

func newFloor(ctx context.Context, wasm []byte, kind abi.Kind, in []byte) (*floor, error) {
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		r.Close(ctx)
		return nil, err
	}
	fl := &floor{r: r, kind: kind, in: in}
	err := fl.instantiateHostModule(ctx)
	if err == nil {
		fl.compiled, err = r.CompileModule(ctx, wasm)
	}
	if err != nil {
		r.Close(ctx)
		return nil, err
	}
	return fl, nil
}

// instantiateHostModule gives the floor every import of the sluice ABI
// (abi.HostImports), each a plain function: output copies the output out,
// meta_get finds no key, and the rest (fail, log, error_code,
// http_status, http_header, ...) do nothing. A module may import any of
// them, so a floor that lacked one could not instantiate it.
func (fl *floor) instantiateHostModule(ctx context.Context) error {
	b := fl.r.NewHostModuleBuilder(abi.HostModule)
	for _, name := range abi.HostImports() {
		sig, _ := abi.HostSignature(name)
		var f api.GoModuleFunc
		switch name {
		case abi.ImportOutput:
			f = func(_ context.Context, m api.Module, s []uint64) {
				v, _ := m.Memory().Read(uint32(s[0]), uint32(s[1]))
				fl.out = append(fl.out[:0], v...) // the output leaves the guest's memory, as it must
			}
		case abi.ImportMetaGet:
			f = func(_ context.Context, _ api.Module, s []uint64) { s[0] = uint64(^uint32(0)) } // -1: no such key
		default:
			f = func(_ context.Context, _ api.Module, s []uint64) {
				for i := range sig.Results {
					s[i] = 0
				}
			}
		}
		b.NewFunctionBuilder().WithGoModuleFunction(f, sig.Params, sig.Results).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

func (fl *floor) close(ctx context.Context) { fl.r.Close(ctx) }

// instantiate makes a reactor instance the way any embedder must: its
// _initialize run, an input buffer from its allocator.
func (fl *floor) instantiate(ctx context.Context) (api.Module, api.Function, uint32, error) {
	mod, err := fl.r.InstantiateModule(ctx, fl.compiled, wazero.NewModuleConfig().WithName("").
		WithStartFunctions("_initialize").WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader))
	if err != nil {
		return nil, nil, 0, err
	}
	res, err := mod.ExportedFunction(abi.ExportAlloc).Call(ctx, uint64(max(len(fl.in), 1)))
	if err != nil {
		mod.Close(ctx)
		return nil, nil, 0, err
	}
	return mod, mod.ExportedFunction(abi.ExportHandle), uint32(res[0]), nil
}

func (fl *floor) call(ctx context.Context, mod api.Module, handle api.Function, ptr uint32, stack *[2]uint64) error {
	if !mod.Memory().Write(ptr, fl.in) {
		return errors.New("input buffer outside memory")
	}
	stack[0], stack[1] = uint64(ptr), uint64(len(fl.in))
	if err := handle.CallWithStack(ctx, stack[:]); err != nil {
		return err
	}
	if uint32(stack[0]) != abi.StatusOK {
		return fmt.Errorf("sluice_handle returned status %d", uint32(stack[0]))
	}
	return nil
}

// cold is a fresh instance and its first call; a WASI command's run.
func (fl *floor) cold(ctx context.Context) error {
	if fl.kind == abi.WASI {
		return fl.command(ctx)
	}
	mod, handle, ptr, err := fl.instantiate(ctx)
	if err != nil {
		return err
	}
	var stack [2]uint64
	err = fl.call(ctx, mod, handle, ptr, &stack)
	mod.Close(ctx)
	return err
}

// warm is a call on a live reactor instance; for a WASI command, a run.
func (fl *floor) warm(ctx context.Context) error {
	if fl.kind == abi.WASI {
		return fl.command(ctx)
	}
	if fl.live == nil {
		var err error
		if fl.live, fl.handle, fl.livePtr, err = fl.instantiate(ctx); err != nil {
			return err
		}
	}
	return fl.call(ctx, fl.live, fl.handle, fl.livePtr, &fl.liveStack)
}

func (fl *floor) command(ctx context.Context) error {
	var out bytes.Buffer
	mod, err := fl.r.InstantiateModule(ctx, fl.compiled, wazero.NewModuleConfig().WithName("").
		WithStdin(bytes.NewReader(fl.in)).WithStdout(&out).WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader))
	if err != nil {
		return err
	}
	mod.Close(ctx)
	fl.out = append(fl.out[:0], out.Bytes()...)
	return nil
}
