// Package host runs sluice functions: WebAssembly modules compiled once with
// wazero and called in-process, as WASI commands (a fresh instance per call)
// or as reactors of the sluice ABI (pooled instances, see package abi).
//
// A Host owns the wazero runtimes and the compiled code; Load turns a
// module and its Spec into a Function, whose Invoke runs one call within the
// function's Limits. Every failure of a call is a *CallError that says what
// happened; the host and the function's other calls carry on.
//
// Interruption: a guest stuck in a loop must be stoppable, but wazero's own
// mechanism (WithCloseOnContextDone) makes tight loops tens of times slower
// and costs a goroutine per call. The host instead instruments each module
// once, at load: a check of one flag at every loop header and function
// entry, which a timer sets when the call's deadline passes. See
// docs/RATIONALE.md for the measurements.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host/internal/wasmbin"
)

// Host compiles modules and runs functions. It is safe for concurrent use.
type Host struct {
	cfg   Config
	cache wazero.CompilationCache
	// fast runs instrumented modules; slow runs the rare module the
	// instrumenter cannot rewrite, with wazero's own interruption.
	fast wazero.Runtime
	// slow is made on first use (slowOnce): almost no module needs it.
	slow     wazero.Runtime
	slowErr  error
	slowOnce sync.Once

	mu       sync.Mutex
	modules  map[string]*moduleEntry // by moduleKey
	funcs    map[*Function]struct{}
	closed   bool
	inflight sync.WaitGroup // compilations under way
}

// New creates a host. Close it to free the runtimes.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.sink == nil {
		cfg = NewConfig()
	}
	var cache wazero.CompilationCache
	if cfg.cacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.cacheDir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache in %s: %w", cfg.cacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	h := &Host{cfg: cfg, cache: cache, modules: map[string]*moduleEntry{}, funcs: map[*Function]struct{}{}}
	var err error
	if h.fast, err = h.newRuntime(ctx, false); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Host) newRuntime(ctx context.Context, closeOnDone bool) (wazero.Runtime, error) {
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(h.cache).
		WithCloseOnContextDone(closeOnDone)
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("instantiate WASI: %w", err)
	}
	if err := instantiateHostModule(ctx, r); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("instantiate the sluice host module: %w", err)
	}
	return r, nil
}

// Close waits for calls in flight, then frees every function and the
// compiled code. The compilation cache on disk stays.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	funcs := make([]*Function, 0, len(h.funcs))
	for f := range h.funcs {
		funcs = append(funcs, f)
	}
	h.mu.Unlock()
	for _, f := range funcs {
		f.Close(ctx)
	}
	h.inflight.Wait()
	h.mu.Lock()
	for key, e := range h.modules {
		if e.mod != nil {
			e.mod.compiled.Close(ctx)
		}
		delete(h.modules, key)
	}
	h.mu.Unlock()
	err := h.fast.Close(ctx)
	h.slowOnce.Do(func() {}) // no slow runtime from now on
	if h.slow != nil {
		err = errors.Join(err, h.slow.Close(ctx))
	}
	return errors.Join(err, h.cache.Close(ctx))
}

// module is compiled code for one module under one memory limit.
type module struct {
	key      string
	entry    *moduleEntry
	compiled wazero.CompiledModule
	runtime  wazero.Runtime
	// interrupt is the export name of the interrupt flag, "" when the
	// module runs on the slow runtime and is interrupted by closing it.
	interrupt string
	// start is the export of the module's former start function, or "".
	start string
	info  abi.Module
}

// moduleEntry is a module in the host's table: compiled once
// (single-flight), shared by every function that uses it, and freed a
// while after the last one is closed.
type moduleEntry struct {
	done  chan struct{} // closed when compilation ended
	mod   *module
	err   error
	refs  int
	idle  *time.Timer // frees the module when unused for idleTTL
	bytes int
}

func moduleKey(sum [sha256.Size]byte, pages uint32) string {
	return fmt.Sprintf("%s/%d", hex.EncodeToString(sum[:]), pages)
}

// acquireModule returns the compiled module for wasm under a memory limit
// of pages, compiling it if no other caller has. Concurrent first callers
// wait for one compilation.
func (h *Host) acquireModule(ctx context.Context, wasm []byte, pages uint32) (*module, error) {
	key := moduleKey(sha256.Sum256(wasm), pages)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := h.modules[key]
	if !ok {
		e = &moduleEntry{done: make(chan struct{}), bytes: len(wasm)}
		h.modules[key] = e
		h.inflight.Add(1)
		go h.compile(key, e, wasm, pages)
	}
	e.refs++
	if e.idle != nil {
		e.idle.Stop()
		e.idle = nil
	}
	h.mu.Unlock()

	select {
	case <-e.done:
	case <-ctx.Done():
		h.releaseEntry(e)
		return nil, ctx.Err()
	}
	if e.err != nil {
		h.releaseEntry(e)
		return nil, e.err
	}
	return e.mod, nil
}

// compile runs on its own goroutine, so that a caller giving up does not
// abandon a compilation others wait for.
func (h *Host) compile(key string, e *moduleEntry, wasm []byte, pages uint32) {
	defer h.inflight.Done()
	start := time.Now()
	e.mod, e.err = h.compileModule(context.Background(), key, e, wasm, pages)
	if e.err == nil {
		h.cfg.logger.Debug("compiled module", "key", key, "bytes", len(wasm), "took", time.Since(start))
	}
	h.mu.Lock()
	if e.err != nil {
		delete(h.modules, key) // the next caller tries again
	}
	h.mu.Unlock()
	close(e.done)
}

func (h *Host) compileModule(ctx context.Context, key string, e *moduleEntry, wasm []byte, pages uint32) (*module, error) {
	if err := checkMagic(wasm); err != nil {
		return nil, err
	}
	m := &module{key: key, entry: e, runtime: h.fast}
	res, err := wasmbin.Instrument(wasm, wasmbin.Options{MaxMemoryPages: pages, Interrupt: true})
	var small *wasmbin.MemoryTooSmallError
	if errors.As(err, &small) {
		return nil, fmt.Errorf("%w: the module needs %s at start but the function's memory limit is %s (raise --memory)",
			ErrMemoryTooSmall, FormatBytes(uint64(small.NeededPages)*pageSize), FormatBytes(uint64(pages)*pageSize))
	}
	if err == nil {
		m.compiled, err = h.fast.CompileModule(ctx, res.Wasm)
		m.interrupt, m.start = res.InterruptGlobal, res.StartExport
	}
	if err != nil {
		// Either the module is invalid, or it uses something the
		// instrumenter does not handle. wazero decides, on the module
		// with only its memory clamped; if it compiles, it runs on the
		// slow runtime.
		instrumentErr := err
		clamped, cerr := wasmbin.Instrument(wasm, wasmbin.Options{MaxMemoryPages: pages})
		if cerr != nil {
			clamped = wasmbin.Result{Wasm: wasm}
		}
		h.slowOnce.Do(func() { h.slow, h.slowErr = h.newRuntime(context.Background(), true) })
		if h.slowErr != nil {
			return nil, h.slowErr
		}
		if h.slow == nil {
			return nil, ErrClosed
		}
		m.compiled, err = h.slow.CompileModule(ctx, clamped.Wasm)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
		}
		m.runtime, m.interrupt, m.start = h.slow, "", clamped.StartExport
		h.cfg.logger.Warn("module cannot be instrumented for cheap interruption; running it with wazero's close-on-done (slower loops)",
			"key", key, "reason", instrumentErr)
	}
	m.info = describe(m.compiled)
	return m, nil
}

// releaseEntry drops one reference; the last one starts the idle timer.
func (h *Host) releaseEntry(e *moduleEntry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e.refs--
	if e.refs > 0 || e.mod == nil {
		return
	}
	key := e.mod.key
	if cur, ok := h.modules[key]; !ok || cur != e {
		return
	}
	free := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if cur, ok := h.modules[key]; ok && cur == e && e.refs == 0 && e.idle != nil {
			e.idle = nil
			delete(h.modules, key)
			e.mod.compiled.Close(context.Background())
		}
	}
	if h.closed || h.cfg.idleTTL <= 0 {
		delete(h.modules, key)
		e.mod.compiled.Close(context.Background())
		return
	}
	e.idle = time.AfterFunc(h.cfg.idleTTL, free)
}

// checkMagic refuses what is plainly not WebAssembly with a message that
// says what it looks like instead.
func checkMagic(b []byte) error {
	if len(b) >= 8 && string(b[:4]) == "\x00asm" {
		if b[4] != 1 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
			return fmt.Errorf("%w: binary format version %d is not supported (want 1; is it a WebAssembly component? sluice runs core modules)",
				ErrInvalidModule, uint32(b[4])|uint32(b[5])<<8|uint32(b[6])<<16|uint32(b[7])<<24)
		}
		return nil
	}
	hint := ""
	switch {
	case len(b) == 0:
		return fmt.Errorf("%w: the file is empty", ErrInvalidModule)
	case len(b) >= 4 && string(b[:4]) == "\x7fELF":
		hint = " (it is an ELF executable: build for GOOS=wasip1 GOARCH=wasm or --target=wasm32-wasi)"
	case len(b) >= 2 && string(b[:2]) == "MZ":
		hint = " (it is a Windows executable)"
	case len(b) >= 2 && string(b[:2]) == "#!":
		hint = " (it is a script)"
	case bytesHasPrefixFold(b, "(module"):
		hint = " (it is WebAssembly text: compile it with wat2wasm first)"
	}
	return fmt.Errorf("%w: it does not start with the WebAssembly magic number \\0asm%s", ErrInvalidModule, hint)
}

func bytesHasPrefixFold(b []byte, prefix string) bool {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return len(b)-i >= len(prefix) && string(b[i:i+len(prefix)]) == prefix
}

// describe extracts what abi.Detect needs from a compiled module.
func describe(cm wazero.CompiledModule) abi.Module {
	m := abi.Module{Exports: map[string]abi.Signature{}}
	for name, def := range cm.ExportedFunctions() {
		m.Exports[name] = signature(def)
	}
	_, m.ExportsMemory = cm.ExportedMemories()[abi.ExportMemory]
	for _, def := range cm.ImportedFunctions() {
		mod, name, _ := def.Import()
		m.Imports = append(m.Imports, abi.Import{Module: mod, Name: name, Signature: signature(def)})
	}
	return m
}

func signature(def api.FunctionDefinition) abi.Signature {
	return abi.Signature{Params: def.ParamTypes(), Results: def.ResultTypes()}
}

// Spec says how to run a module as a function.
type Spec struct {
	// Name and Version identify the function in errors, logs and metadata.
	Name    string
	Version int
	// ABI is the module's kind; abi.Auto detects it.
	ABI abi.Kind
	// Limits bound each call; zero fields take their defaults.
	Limits Limits
	// Env is the environment a guest sees, besides the call metadata.
	Env map[string]string
}

// Load compiles wasm (once, however many functions use it) and returns a
// Function ready to be invoked. It checks the module against the ABI, so
// a module that cannot run fails here, with a message that says why,
// rather than on its first call.
func (h *Host) Load(ctx context.Context, spec Spec, wasm []byte) (*Function, error) {
	if err := spec.Limits.Validate(); err != nil {
		return nil, err
	}
	spec.Limits = spec.Limits.WithDefaults()
	if spec.ABI == "" {
		spec.ABI = abi.Auto
	}
	mod, err := h.acquireModule(ctx, wasm, spec.Limits.pages())
	if err != nil {
		return nil, err
	}
	kind, err := abi.Detect(mod.info, spec.ABI)
	if err != nil {
		h.releaseEntry(mod.entry)
		return nil, fmt.Errorf("%w: %w", ErrNoABI, err)
	}
	spec.ABI = kind
	f := newFunction(h, mod, spec)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.releaseEntry(mod.entry)
		return nil, ErrClosed
	}
	h.funcs[f] = struct{}{}
	h.mu.Unlock()
	return f, nil
}

func (h *Host) forget(f *Function) {
	h.mu.Lock()
	delete(h.funcs, f)
	h.mu.Unlock()
	h.releaseEntry(f.mod.entry)
}

// logger returns the host's logger.
func (h *Host) logger() *slog.Logger { return h.cfg.logger }
