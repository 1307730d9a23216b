package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host/internal/wasmbin"
	"github.com/sluicehq/sluice/testutil"
)

// Each benchmark runs sluice and bare wazero on the same module with the
// same 1 KiB input in the same run, so their ratio is what to read:
//
//	go test -run '^$' -bench . -count 5 ./host/ | tee new.txt; benchstat new.txt

var benchGuests = []struct {
	guest string
	kind  abi.Kind
	input []byte
}{
	{"echo-wat", abi.Reactor, nil},
	{"wordcount-c", abi.Reactor, nil},
	{"upper-go", abi.Reactor, nil},
	{"echo-c", abi.WASI, nil},
	{"hello-wasi", abi.WASI, []byte("benchmark")},
}

var kib = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

func benchInput(in []byte) []byte {
	if in != nil {
		return in
	}
	return kib
}

// bare is a module run on bare wazero, with the least code a host needs to
// call it: the sluice imports as plain copies, WASI from wazero.
type bare struct {
	r        wazero.Runtime
	compiled wazero.CompiledModule
	kind     abi.Kind
	out      []byte
}

func newBare(b *testing.B, wasm []byte, kind abi.Kind, cache wazero.CompilationCache) *bare {
	ctx := context.Background()
	cfg := wazero.NewRuntimeConfigCompiler()
	if cache != nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	bm := &bare{r: r, kind: kind}
	_, err := r.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
		v, _ := m.Memory().Read(uint32(s[0]), uint32(s[1]))
		bm.out = append([]byte(nil), v...) // the output leaves the call: it is the caller's
	}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil).Export(abi.ImportOutput).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil).Export(abi.ImportFail).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).Export(abi.ImportLog).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = uint64(^uint32(0)) }),
		[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export(abi.ImportMetaGet).
		Instantiate(ctx)
	if err != nil {
		b.Fatal(err)
	}
	bm.compiled, err = r.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(ctx) })
	return bm
}

// reactor instantiates a reactor the way any embedder must.
func (bm *bare) reactor(b *testing.B) (api.Module, api.Function, uint32) {
	ctx := context.Background()
	mod, err := bm.r.InstantiateModule(ctx, bm.compiled, wazero.NewModuleConfig().WithName("").
		WithStartFunctions("_initialize").WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader))
	if err != nil {
		b.Fatal(err)
	}
	res, err := mod.ExportedFunction(abi.ExportAlloc).Call(ctx, 4096)
	if err != nil {
		b.Fatal(err)
	}
	return mod, mod.ExportedFunction(abi.ExportHandle), uint32(res[0])
}

func (bm *bare) callReactor(b *testing.B, mod api.Module, handle api.Function, ptr uint32, in []byte) {
	mod.Memory().Write(ptr, in)
	if _, err := handle.Call(context.Background(), uint64(ptr), uint64(len(in))); err != nil {
		b.Fatal(err)
	}
}

func (bm *bare) command(b *testing.B, in []byte) {
	var out bytes.Buffer
	mod, err := bm.r.InstantiateModule(context.Background(), bm.compiled, wazero.NewModuleConfig().WithName("").
		WithStdin(bytes.NewReader(in)).WithStdout(&out).WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader))
	if err != nil {
		b.Fatal(err)
	}
	mod.Close(context.Background())
	if out.Len() == 0 {
		b.Fatal("no output")
	}
}

func benchFunction(b *testing.B, guest string, spec Spec) *Function {
	return benchFunctionWith(b, NewConfig(), guest, spec)
}

func benchFunctionWith(b *testing.B, cfg Config, guest string, spec Spec) *Function {
	h, err := New(context.Background(), cfg.WithCacheDir(sharedCache))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(context.Background()) })
	spec.Name = guest
	f, err := h.Load(context.Background(), spec, testutil.Wasm(b, guest))
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkColdCall is a fresh instance plus its first call: what a call
// costs when no warm instance is free (a reactor after a deploy or a
// scale-up; every call of a WASI command). A reactor's sluice instance is
// made from a snapshot (sluice), or initialised (sluice-fresh, snapshots
// off); snapshot-B is the snapshot's size, charged with its compiled
// module.
func BenchmarkColdCall(b *testing.B) {
	ctx := context.Background()
	for _, g := range benchGuests {
		in := benchInput(g.input)
		if g.kind == abi.Reactor {
			b.Run(g.guest+"/sluice-fresh", func(b *testing.B) {
				f := benchFunctionWith(b, NewConfig().WithSnapshots(false), g.guest, Spec{})
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := f.InvokeCold(ctx, Call{Input: in}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(g.guest+"/sluice", func(b *testing.B) {
			f := benchFunction(b, g.guest, Spec{})
			if _, err := f.InvokeCold(ctx, Call{Input: in}); err != nil {
				b.Fatal(err)
			}
			snapSettled(b, f) // made in the background
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.InvokeCold(ctx, Call{Input: in}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if e, err := f.host.acquire(ctx, f, nil); err == nil {
				e.mod.snap.mu.Lock()
				if slot := e.mod.snap.slots[f.snapKey]; slot != nil && slot.snap != nil {
					b.ReportMetric(float64(slot.snap.cost), "snapshot-B")
				}
				e.mod.snap.mu.Unlock()
				f.host.release(e)
			}
		})
		b.Run(g.guest+"/wazero", func(b *testing.B) {
			bm := newBare(b, testutil.Wasm(b, g.guest), g.kind, nil)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if g.kind == abi.WASI {
					bm.command(b, in)
					continue
				}
				mod, handle, ptr := bm.reactor(b)
				bm.callReactor(b, mod, handle, ptr, in)
				mod.Close(ctx)
			}
		})
	}
}

// warmFunction loads guest and calls it once with in. The first call's
// instance leaves the module's snapshot to be made in the background:
// warmFunction waits for it, as the bare runs have no such work after
// their first call.
func warmFunction(b *testing.B, guest string, in []byte) *Function {
	f := benchFunction(b, guest, Spec{})
	if _, err := f.Invoke(context.Background(), Call{Input: in}); err != nil {
		b.Fatal(err)
	}
	f.host.compiling.Wait()
	return f
}

// instrumented is guest's module as sluice runs it: bare wazero on it
// measures the share of the interruption checks.
func instrumented(b *testing.B, guest string) []byte {
	res, err := wasmbin.Instrument(testutil.Wasm(b, guest), wasmbin.Options{Interrupt: true, MaxMemoryPages: DefaultMemory / pageSize})
	if err != nil {
		b.Fatal(err)
	}
	return res.Wasm
}

// BenchmarkWarmCall is a call on a pooled reactor instance.
func BenchmarkWarmCall(b *testing.B) {
	ctx := context.Background()
	for _, g := range benchGuests {
		if g.kind != abi.Reactor {
			continue
		}
		in := benchInput(g.input)
		b.Run(g.guest+"/sluice", func(b *testing.B) {
			f := warmFunction(b, g.guest, in)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.Invoke(ctx, Call{Input: in}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(g.guest+"/wazero", func(b *testing.B) {
			bm := newBare(b, testutil.Wasm(b, g.guest), g.kind, nil)
			mod, handle, ptr := bm.reactor(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bm.callReactor(b, mod, handle, ptr, in)
			}
		})
		// bare wazero on the instrumented module: the share of the
		// interruption checks in the difference
		b.Run(g.guest+"/wazero-instrumented", func(b *testing.B) {
			bm := newBare(b, instrumented(b, g.guest), g.kind, nil)
			mod, handle, ptr := bm.reactor(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bm.callReactor(b, mod, handle, ptr, in)
			}
		})
	}
}

// BenchmarkWarmCallPaired runs BenchmarkWarmCall's three variants of each
// reactor in turns, a block of calls each, in one process: on a shared
// machine a variant run alone drifts by more than the differences being
// measured (a microsecond on upper-go's 13), and in turns the drift falls
// on the three alike. b.N counts the calls of each variant. It reports
// the medians over the blocks of each variant's time per call and of the
// per-block differences with bare wazero: sluice-wazero-ns is sluice's
// warm call overhead, instrumented-wazero-ns the interruption checks'
// share of it.
func BenchmarkWarmCallPaired(b *testing.B) {
	const block = 32
	ctx := context.Background()
	for _, g := range benchGuests {
		if g.kind != abi.Reactor {
			continue
		}
		in := benchInput(g.input)
		b.Run(g.guest, func(b *testing.B) {
			f := warmFunction(b, g.guest, in)
			bm := newBare(b, testutil.Wasm(b, g.guest), g.kind, nil)
			mod, handle, ptr := bm.reactor(b)
			bi := newBare(b, instrumented(b, g.guest), g.kind, nil)
			imod, ihandle, iptr := bi.reactor(b)
			variants := [3]func(){
				func() {
					if _, err := f.Invoke(ctx, Call{Input: in}); err != nil {
						b.Fatal(err)
					}
				},
				func() { bm.callReactor(b, mod, handle, ptr, in) },
				func() { bi.callReactor(b, imod, ihandle, iptr, in) },
			}
			var per [3][]float64 // ns per call, per block, of sluice, wazero, instrumented
			b.ResetTimer()
			for n := 0; n < b.N; n += block {
				for k := range variants {
					v := (k + n/block) % len(variants) // each variant first in turn
					start := time.Now()
					for range block {
						variants[v]()
					}
					per[v] = append(per[v], float64(time.Since(start).Nanoseconds())/block)
				}
			}
			b.StopTimer()
			diff := func(v int) float64 {
				d := make([]float64, len(per[v]))
				for i := range d {
					d[i] = per[v][i] - per[1][i]
				}
				return medianOf(d)
			}
			b.ReportMetric(medianOf(per[0]), "sluice-ns")
			b.ReportMetric(medianOf(per[1]), "wazero-ns")
			b.ReportMetric(medianOf(per[2]), "instrumented-ns")
			b.ReportMetric(diff(0), "sluice-wazero-ns")
			b.ReportMetric(diff(2), "instrumented-wazero-ns")
		})
	}
}

// medianOf returns the median of v, which it leaves as it is: the paired
// differences are taken block by block, in the blocks' order.
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// BenchmarkWarmCallParallel runs warm calls from every core at once.
func BenchmarkWarmCallParallel(b *testing.B) {
	ctx := context.Background()
	f := benchFunction(b, "wordcount-c", Spec{})
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.Invoke(ctx, Call{Input: kib}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCompile compiles a module with no cache: sluice instruments it
// first.
func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	for _, guest := range []string{"echo-wat", "wordcount-c", "upper-go"} {
		wasm := testutil.Wasm(b, guest)
		b.Run(guest+"/sluice", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				h, err := New(ctx, NewConfig())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.Load(ctx, Spec{Name: guest}, wasm); err != nil {
					b.Fatal(err)
				}
				h.Close(ctx)
			}
		})
		b.Run(guest+"/wazero", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
				if _, err := r.CompileModule(ctx, wasm); err != nil {
					b.Fatal(err)
				}
				r.Close(ctx)
			}
		})
	}
}

// BenchmarkCacheLoad loads compiled code from the on-disk cache into a
// fresh runtime able to run guests (WASI instantiated): what a restarted
// daemon pays per module, plus its one-time runtime setup.
func BenchmarkCacheLoad(b *testing.B) {
	ctx := context.Background()
	for _, guest := range []string{"echo-wat", "wordcount-c", "upper-go"} {
		wasm := testutil.Wasm(b, guest)
		b.Run(guest+"/sluice", func(b *testing.B) {
			dir := b.TempDir()
			warm, _ := New(ctx, NewConfig().WithCacheDir(dir))
			if _, err := warm.Load(ctx, Spec{Name: guest}, wasm); err != nil {
				b.Fatal(err)
			}
			warm.Close(ctx)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h, err := New(ctx, NewConfig().WithCacheDir(dir))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.Load(ctx, Spec{Name: guest}, wasm); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				h.Close(ctx)
				b.StartTimer()
			}
		})
		b.Run(guest+"/wazero", func(b *testing.B) {
			dir := b.TempDir()
			load := func() wazero.Runtime {
				cache, err := wazero.NewCompilationCacheWithDir(dir)
				if err != nil {
					b.Fatal(err)
				}
				r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache))
				// as sluice's host, a runtime that can run guests has WASI
				wasi_snapshot_preview1.MustInstantiate(ctx, r)
				if _, err := r.CompileModule(ctx, wasm); err != nil {
					b.Fatal(err)
				}
				return r
			}
			load().Close(ctx)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := load()
				b.StopTimer()
				r.Close(ctx)
				b.StartTimer()
			}
		})
	}
}

func init() {
	// benchmarks run without TestMain's cleanup when -run matches nothing
	_ = os.MkdirAll(sharedCache, 0o755)
}

// BenchmarkLogLine is what keeping one line a guest logs costs the host,
// beside the call of the log import: the record (its time, the call's
// id, made for its first line) and its hand-off to the sink at the
// call's end. The upper-case Go guest logs a line per call, which bare
// wazero's no-op import drops.
func BenchmarkLogLine(b *testing.B) {
	var (
		l   callLog
		id  string
		msg = []byte("upper-casing 1024 bytes")
	)
	idFn := func() string {
		if id == "" {
			id = NewID()
		}
		return id
	}
	b.ReportAllocs()
	for range b.N {
		id = ""
		l.reset("upper-go", 1, idFn, nil)
		l.add("log", abi.LevelInfo, string(msg))
		discardSink{}.Emit(l.flush())
	}
}

// TestMedianOf checks the helper BenchmarkWarmCallPaired reads its figures
// with: the median, and the blocks left in their order, which the paired
// differences taken after it depend on.
func TestMedianOf(t *testing.T) {
	v := []float64{5, 1, 4, 2}
	if got := medianOf(v); got != 3 {
		t.Errorf("median of %v = %v, want 3", v, got)
	}
	if !slices.Equal(v, []float64{5, 1, 4, 2}) {
		t.Errorf("medianOf reordered its argument: %v", v)
	}
	if got := medianOf([]float64{7, 3, 9}); got != 7 {
		t.Errorf("median of [7 3 9] = %v, want 7", got)
	}
}
