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
//
// Bounded deploys: before a module is instrumented or compiled, one pass
// over its bytes (wasmbin.Check) refuses a module over MaxModuleSize or
// over the limits of wasmbin.DefaultLimits (functions, locals, nesting,
// tables, ...), since wazero allocates what a module declares and takes
// time growing faster than linearly with its nesting. A compilation runs
// on all cores, stops between two functions when its deadline passes or
// the context given to New ends, and never holds up Close. A function's
// tables count against its memory limit (8 bytes per element) and cannot
// grow.
//
// Memory: compiled code and instances live under one memory budget
// (Config.WithMemoryBudget). Each is charged an estimate of what it holds
// (estimateModule, estimateInstance); an instance, also when it goes back
// to its pool, its current memory. Instances idle for the idle timeout,
// and compiled code no call has used for as long, are released; under
// pressure the least recently used go first. A call that finds no room
// fails with ErrMemoryBudget; one that finds every slot of its function
// taken and its queue full, with ErrBusy. Health reports a full budget and
// a process out of file descriptors.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host/internal/wasmbin"
)

// compileParallelism bounds the compilations under way at once. Each
// uses every core (compileWorkers), so more would only add their memory
// (about 8 bytes per byte of module) without finishing sooner; two keep a
// small module from waiting behind a large one.
const compileParallelism = 2

// compileWorkers is how many goroutines compile one module's functions:
// every core, and at least two, since only wazero's parallel compiler
// stops when its context ends.
var compileWorkers = max(2, runtime.GOMAXPROCS(0))

// Host compiles modules and runs functions. It is safe for concurrent use.
type Host struct {
	cfg Config
	// ctx ends when the context given to New ends or Close is called:
	// compilations under way stop, and calls waiting for them fail.
	ctx    context.Context
	cancel context.CancelFunc
	cache  wazero.CompilationCache
	guard  *cacheGuard // nil without a cache dir
	// fast runs instrumented modules; slow runs the rare module the
	// instrumenter cannot rewrite, with wazero's own interruption.
	fast wazero.Runtime
	// slow is made on first use (slowOnce): almost no module needs it.
	slow     wazero.Runtime
	slowErr  error
	slowOnce sync.Once
	sem      chan struct{} // compileParallelism slots

	mu        sync.Mutex
	modules   map[string]*moduleEntry // by moduleKey
	funcs     map[*Function]struct{}
	closed    bool
	compiling sync.WaitGroup

	budget   // memory accounting, see budget.go
	janitor  chan struct{}
	janitorD chan struct{}
	watch    *watchdog // stops calls at their deadline or their context's end
	mems     memPool   // linear memories of closed instances (memory.go)
}

// New creates a host. Close it to free the runtimes. When ctx ends,
// compilations under way stop and calls waiting for them fail; calls
// already running are not affected.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.sink == nil {
		cfg = NewConfig()
	}
	h := &Host{cfg: cfg, modules: map[string]*moduleEntry{}, funcs: map[*Function]struct{}{},
		sem: make(chan struct{}, compileParallelism)}
	h.budget.limit = int64(min(cfg.budget, 1<<62))
	if cfg.cacheDir != "" {
		g, cache, err := newCacheGuard(cfg.cacheDir, cfg.logger)
		if err != nil {
			// never an unchecked cache: compiled code stays in memory
			cfg.logger.Warn("compiled code is not cached on disk: restarts compile again", "dir", cfg.cacheDir, "err", err)
		}
		h.guard, h.cache = g, cache
	}
	if h.cache == nil {
		h.cache = wazero.NewCompilationCache()
	}
	var err error
	if h.fast, err = h.newRuntime(ctx, false); err != nil {
		return nil, err
	}
	h.ctx, h.cancel = context.WithCancel(ctx)
	h.watch = newWatchdog()
	if cfg.idleTimeout > 0 {
		h.janitor, h.janitorD = make(chan struct{}), make(chan struct{})
		go h.sweep(cfg.idleTimeout)
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
	if err := instantiateExtismModule(ctx, r); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("instantiate the Extism kernel module: %w", err)
	}
	return r, nil
}

// Close stops compilations under way, waits for calls in flight (until
// ctx ends), then frees every function and the compiled code. The
// compilation cache on disk stays.
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
	h.cancel() // compilations stop between two functions
	if h.janitor != nil {
		close(h.janitor)
		<-h.janitorD
	}
	for _, f := range funcs {
		f.Close(ctx)
	}
	h.watch.close()
	h.mems.drop()
	compiled := make(chan struct{})
	go func() { h.compiling.Wait(); close(compiled) }()
	stopped := true
	select {
	case <-compiled:
	case <-ctx.Done():
		stopped = false // a compilation has not noticed yet: leave the runtimes to it
	}
	h.mu.Lock()
	for key, e := range h.modules {
		if e.mod != nil {
			e.mod.compiled.Close(context.Background())
		}
		delete(h.modules, key)
	}
	h.mu.Unlock()
	if !stopped {
		return fmt.Errorf("closing the host: a compilation is still stopping: %w", ctx.Err())
	}
	err := h.fast.Close(ctx)
	h.slowOnce.Do(func() {}) // no slow runtime from now on
	if h.slow != nil {
		err = errors.Join(err, h.slow.Close(ctx))
	}
	return errors.Join(err, h.cache.Close(ctx))
}

// module is compiled code for one module under one memory limit.
type module struct {
	compiled wazero.CompiledModule
	runtime  wazero.Runtime
	// interrupt is the export name of the interrupt flag, "" when the
	// module runs on the slow runtime and is interrupted by closing it.
	interrupt string
	// countdown is the export name of the countdown the host sets to 0
	// after raising the flag, so that the guest looks at the flag at its
	// next check.
	countdown string
	// start is the export of the module's former start function, or "".
	start string
	info  abi.Module
	// stats are what wasmbin.Check counted, for the cost of instances.
	stats wasmbin.Stats
	// snap holds the module's snapshots and what they need (snapshot.go).
	snap moduleSnapshots
}

// moduleEntry is a module in the host's table: compiled once
// (single-flight), shared by every function that uses it, held (refs) by
// every instance of it and every call waiting for it, and released when
// nothing held it for the idle timeout or the memory budget needs room.
type moduleEntry struct {
	key  string
	done chan struct{} // closed when compilation ended
	mod  *module
	err  error
	refs int       // guarded by Host.mu
	used time.Time // when refs last fell to 0; guarded by Host.mu
	cost int64     // charged to the budget while compiled
}

// moduleKey names a module compiled under a memory limit of pages.
func moduleKey(sum [sha256.Size]byte, pages uint32) string {
	return fmt.Sprintf("%s/%d", hex.EncodeToString(sum[:]), pages)
}

// tableLimit is the table elements a memory limit of pages allows: the
// tables of an instance may take as much memory as its linear memory.
func tableLimit(pages uint32) uint64 {
	return uint64(pages) * pageSize / tableElementSize
}

// acquire returns f's compiled module, compiling it if no other caller
// has, and holds it until release. Concurrent first callers wait for one
// compilation. wasm is the module's bytes if the caller has them, else nil
// (they are fetched only if the module must be compiled).
func (h *Host) acquire(ctx context.Context, f *Function, wasm []byte) (*moduleEntry, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	e, ok := h.modules[f.key]
	if !ok {
		e = &moduleEntry{key: f.key, done: make(chan struct{})}
		h.modules[f.key] = e
		h.compiling.Add(1)
		go h.compile(e, f, wasm)
	}
	e.refs++
	h.mu.Unlock()

	select {
	case <-e.done:
	default:
		// wait, unless the module is compiled already: a select on two
		// ready channels picks either
		select {
		case <-e.done:
		case <-ctx.Done():
			h.release(e)
			return nil, ctx.Err()
		}
	}
	if e.err != nil {
		h.release(e)
		return nil, e.err
	}
	return e, nil
}

// release drops one hold of a compiled module.
func (h *Host) release(e *moduleEntry) {
	h.mu.Lock()
	e.refs--
	if e.refs == 0 {
		e.used = time.Now()
	}
	h.mu.Unlock()
}

// compile runs on its own goroutine, so that a caller giving up does not
// abandon a compilation others wait for.
func (h *Host) compile(e *moduleEntry, f *Function, wasm []byte) {
	defer h.compiling.Done()
	start := time.Now()
	mod, err := h.compileModule(e, f, wasm)
	if err == nil {
		h.cfg.logger.Debug("compiled module", "key", e.key, "took", time.Since(start))
	}
	h.mu.Lock()
	if err == nil && h.closed {
		mod.compiled.Close(context.Background())
		h.uncharge(e.cost)
		mod, err = nil, ErrClosed
	}
	e.mod, e.err = mod, err
	if err != nil {
		delete(h.modules, e.key) // the next caller tries again
	}
	h.mu.Unlock()
	close(e.done)
}

func (h *Host) compileModule(e *moduleEntry, f *Function, wasm []byte) (*module, error) {
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	case <-h.ctx.Done():
		return nil, ErrClosed
	}
	if wasm == nil {
		var err error
		if wasm, err = f.fetch(h.ctx); err != nil {
			return nil, err
		}
	}
	m := &module{runtime: h.fast}
	var err error
	if m.stats, err = checkModule(wasm); err != nil {
		return nil, err
	}
	e.cost = estimateModule(m.stats)
	if err := h.charge(e.cost); err != nil {
		return nil, err
	}
	defer func() {
		if m.compiled == nil {
			h.uncharge(e.cost)
		}
	}()
	opts := wasmbin.Options{MaxMemoryPages: f.pages, MaxTableElements: tableLimit(f.pages), Interrupt: true, Snapshot: h.cfg.snapshots, CoalesceData: true}
	res, err := wasmbin.Instrument(wasm, opts)
	if err := sizeError(err, f.pages); err != nil {
		return nil, err
	}
	if err == nil {
		m.compiled, err = h.compileOn(h.fast, res.Wasm, "fast")
		m.interrupt, m.countdown, m.start = res.InterruptGlobal, res.CountdownGlobal, res.StartExport
		m.snap.plan(h.cfg.snapshots, res)
	}
	if err != nil {
		if isResourceErr(err) {
			return nil, err
		}
		// Either the module is invalid, or it uses something the
		// instrumenter does not handle. wazero decides, on the module
		// with only its memory and tables clamped; if it compiles, it
		// runs on the slow runtime.
		instrumentErr := err
		opts.Interrupt = false
		clamped, cerr := wasmbin.Instrument(wasm, opts)
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
		m.compiled, err = h.compileOn(h.slow, clamped.Wasm, "slow")
		if err != nil {
			if isResourceErr(err) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
		}
		m.runtime, m.interrupt, m.start = h.slow, "", clamped.StartExport
		h.cfg.logger.Warn("module cannot be instrumented for cheap interruption; running it with wazero's close-on-done (slower loops)",
			"key", e.key, "reason", instrumentErr)
	}
	m.info = describe(m.compiled)
	return m, nil
}

// checkModule refuses what cannot be a module, or is over a limit, before
// anything allocates in proportion to what it declares.
func checkModule(wasm []byte) (wasmbin.Stats, error) {
	if len(wasm) > MaxModuleSize {
		return wasmbin.Stats{}, fmt.Errorf("%w: the module is %s, over the limit of %s", ErrInvalidModule, FormatBytes(uint64(len(wasm))), FormatBytes(MaxModuleSize))
	}
	if err := checkMagic(wasm); err != nil {
		return wasmbin.Stats{}, err
	}
	st, err := wasmbin.Check(wasm, wasmbin.DefaultLimits())
	if errors.Is(err, wasmbin.ErrLimit) {
		return st, fmt.Errorf("%w: over a limit of sluice: %v", ErrInvalidModule, err)
	}
	if err != nil {
		return st, fmt.Errorf("%w: %s", ErrInvalidModule, strings.TrimPrefix(err.Error(), "wasmbin: "))
	}
	return st, nil
}

// sizeError turns Instrument's errors for a module that needs more memory
// than its limit into ErrMemoryTooSmall, and leaves other errors be.
func sizeError(err error, pages uint32) error {
	var small *wasmbin.MemoryTooSmallError
	if errors.As(err, &small) {
		return fmt.Errorf("%w: the module needs %s at start but the function's memory limit is %s (raise --memory)",
			ErrMemoryTooSmall, FormatBytes(uint64(small.NeededPages)*pageSize), FormatBytes(uint64(pages)*pageSize))
	}
	var tables *wasmbin.TablesTooLargeError
	if errors.As(err, &tables) {
		return fmt.Errorf("%w: the module's tables need %s at start (%d elements of %d bytes) but the function's memory limit is %s, which bounds its tables too (raise --memory)",
			ErrMemoryTooSmall, FormatBytes(tables.Elements*tableElementSize), tables.Elements, tableElementSize, FormatBytes(uint64(pages)*pageSize))
	}
	return nil
}

// compileOn compiles bin on runtime r (kind names it for the cache): on
// every core, within the compile timeout, stopping if the host closes.
func (h *Host) compileOn(r wazero.Runtime, bin []byte, kind string) (wazero.CompiledModule, error) {
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.compileTimeout)
	defer cancel()
	ctx = experimental.WithCompilationWorkers(ctx, compileWorkers)
	var cm wazero.CompiledModule
	var err error
	if h.guard != nil {
		cm, err = h.guard.compile(ctx, r, bin, kind)
	} else {
		cm, err = r.CompileModule(ctx, bin)
	}
	switch {
	case err == nil:
		return cm, nil
	case h.ctx.Err() != nil:
		return nil, ErrClosed
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: compiling it took longer than %s and was stopped: the module is too large or too complex (%w)", ErrInvalidModule, h.cfg.compileTimeout, errCompileTimeout)
	case isOutOfFiles(err):
		return nil, fmt.Errorf("%w: compiling: %v", ErrOutOfFiles, err)
	}
	return nil, err
}

// errCompileTimeout marks a compilation stopped at its deadline.
var errCompileTimeout = errors.New("compile timeout")

// isResourceErr tells whether a compilation failed for a reason another
// runtime would fail for too: the host's resources or the deadline.
func isResourceErr(err error) bool {
	return errors.Is(err, ErrOutOfFiles) || errors.Is(err, ErrClosed) || errors.Is(err, ErrMemoryBudget) || errors.Is(err, errCompileTimeout)
}

// isOutOfFiles tells whether err says the process or the system has no
// file descriptor left.
func isOutOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
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
	// Export is the entry point of an Extism plugin (abi.Extism): ""
	// chooses it at Load (abi.ExtismExport). Only for the extism kind.
	Export string
	// Config is an Extism plugin's config (config_get), fn deploy
	// --config K=V. Only for the extism kind; Env is not config.
	Config map[string]string
	// CGI runs a WASI command as a CGI script (RFC 3875): it gets the
	// request in CGI's variables (abi.CGIEnv) and its stdout is a CGI
	// response (abi.ParseCGI), whose status, headers and body are the
	// call's. Only for the wasi kind.
	CGI bool
	// MetaEnv gives a WASI command the call's metadata as environment
	// variables besides Env: SLUICE_FUNCTION, SLUICE_INVOCATION,
	// SLUICE_HTTP_METHOD, ... (abi.EnvName). Without it a command sees
	// only Env (and CGI's variables with CGI), as under a plain WASI
	// runtime. Only for the wasi kind: a reactor reads metadata with
	// sluice.meta_get.
	MetaEnv bool
	// Source, if set, gives the module's bytes again when the host needs
	// them after it released the compiled code (idle timeout, memory
	// budget). Without it, the Function keeps the bytes it was loaded with.
	Source func(ctx context.Context) ([]byte, error) `json:"-"`
}

// Validate reports a spec the host cannot run: a limit out of range, an
// environment variable name that is empty or holds "=" or NUL, a value
// that holds NUL (neither can reach a guest). The error wraps
// ErrInvalidConfig.
func (s Spec) Validate() error {
	if err := s.Limits.Validate(); err != nil {
		return err
	}
	for k, v := range s.Env {
		switch {
		case k == "":
			return fmt.Errorf("%w: an environment variable has an empty name (--env)", ErrInvalidConfig)
		case containsAny(k, "=\x00"):
			return fmt.Errorf("%w: environment variable name %q holds \"=\" or a NUL byte (--env)", ErrInvalidConfig, k)
		case containsAny(v, "\x00"):
			return fmt.Errorf("%w: the value of environment variable %s holds a NUL byte, which no guest can receive (--env)", ErrInvalidConfig, k)
		}
	}
	return nil
}

func containsAny(s, chars string) bool {
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return true
			}
		}
	}
	return false
}

// Load compiles wasm (once, however many functions use it) and returns a
// Function ready to be invoked. It checks the module against the host's
// limits and the ABI, so a module that cannot run fails here, with a
// message that says why, rather than on its first call. The compiled code
// stays in memory for the function's calls until the idle timeout or the
// memory budget releases it; a later call compiles it again (from the
// disk cache if there is one), from spec.Source or from the bytes the
// Function keeps.
func (h *Host) Load(ctx context.Context, spec Spec, wasm []byte) (*Function, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(wasm) > MaxModuleSize {
		return nil, fmt.Errorf("%w: the module is %s, over the limit of %s", ErrInvalidModule, FormatBytes(uint64(len(wasm))), FormatBytes(MaxModuleSize))
	}
	spec.Limits = spec.Limits.WithDefaults()
	if spec.ABI == "" {
		spec.ABI = abi.Auto
	}
	f := newFunction(h, spec, sha256.Sum256(wasm))
	if spec.Source == nil {
		f.bytes = wasm
	}
	e, err := h.acquire(ctx, f, wasm)
	if err != nil {
		return nil, err
	}
	kind, err := abi.Detect(e.mod.info, spec.ABI)
	h.release(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoABI, err)
	}
	if spec.CGI && kind != abi.WASI {
		return nil, fmt.Errorf("%w: --cgi is for WASI commands (they print a CGI response on stdout), and this module is a %s: a reactor sets its status and headers with sluice.http_status and sluice.http_header (abi/README.md)", ErrInvalidConfig, kind)
	}
	if kind == abi.Extism {
		if f.spec.Export, err = abi.ExtismExport(e.mod.info, spec.Export); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoABI, err)
		}
	} else if spec.Export != "" || len(spec.Config) > 0 {
		return nil, fmt.Errorf("%w: --export and --config are for Extism plugins, and this module is a %s", ErrInvalidConfig, kind)
	}
	if spec.MetaEnv && kind != abi.WASI {
		return nil, fmt.Errorf("%w: --meta-env is for WASI commands (it sets their SLUICE_* environment variables), and this module is a %s: a reactor reads the call's metadata with sluice.meta_get (abi/README.md)", ErrInvalidConfig, kind)
	}
	f.spec.ABI = kind
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	h.funcs[f] = struct{}{}
	return f, nil
}

func (h *Host) forget(f *Function) {
	h.mu.Lock()
	delete(h.funcs, f)
	h.mu.Unlock()
}

// logger returns the host's logger.
func (h *Host) logger() *slog.Logger { return h.cfg.logger }

// Health reports what keeps the host from serving new work: the process
// out of file descriptors (ErrOutOfFiles), or the memory budget full of
// what is in use (ErrMemoryBudget). nil means healthy.
func (h *Host) Health() error {
	f, err := os.Open(os.DevNull)
	if err != nil {
		if isOutOfFiles(err) {
			return ErrOutOfFiles
		}
	} else {
		f.Close()
	}
	if h.budget.full.Load() {
		return fmt.Errorf("%w: %s of %s in use by compiled code and instances of calls in progress (--memory-budget)",
			ErrMemoryBudget, FormatBytes(uint64(max(h.used.Load(), 0))), FormatBytes(uint64(h.budget.limit)))
	}
	return nil
}

// HostStats are the host's counters.
type HostStats struct {
	// Modules is the compiled modules in memory, Compiling those being
	// compiled.
	Modules, Compiling int
	// Instances is the live instances (running a call or idle in a pool),
	// Idle those idle.
	Instances, Idle int
	// MemoryUsed is the estimated memory of compiled modules and
	// instances; MemoryBudget the budget (0: none).
	MemoryUsed, MemoryBudget uint64
	// Evicted counts instances and modules released for the budget,
	// Expired those released after the idle timeout.
	EvictedInstances, EvictedModules, ExpiredInstances, ExpiredModules uint64
}

// Stats returns the host's counters.
func (h *Host) Stats() HostStats {
	st := HostStats{
		Instances:  int(h.instances.Load()),
		MemoryUsed: uint64(max(h.used.Load(), 0)), MemoryBudget: uint64(h.budget.limit),
		EvictedInstances: h.evictedInstances.Load(), EvictedModules: h.evictedModules.Load(),
		ExpiredInstances: h.expiredInstances.Load(), ExpiredModules: h.expiredModules.Load(),
	}
	h.mu.Lock()
	for _, e := range h.modules {
		select {
		case <-e.done:
			if e.mod != nil {
				st.Modules++
			}
		default:
			st.Compiling++
		}
	}
	funcs := make([]*Function, 0, len(h.funcs))
	for f := range h.funcs {
		funcs = append(funcs, f)
	}
	h.mu.Unlock()
	for _, f := range funcs {
		f.mu.Lock()
		st.Idle += len(f.idle)
		f.mu.Unlock()
	}
	return st
}

// counters the budget keeps, atomically.
type counters struct {
	instances                                                          atomic.Int64
	evictedInstances, evictedModules, expiredInstances, expiredModules atomic.Uint64
}
