// Package registry keeps the functions of the catalog runnable in the
// host: it follows the catalog, loads a function's current version when
// it is first called (fetch the module, compile it, or load it from the
// compile cache), swaps a new version in when one is deployed, and lets
// the calls in flight on the old version finish before freeing it.
// Workflow invocations call the versions they pinned: an earlier version
// is loaded on demand beside the current one (versions.go).
// Nothing is loaded at start: a daemon holds the code of what is called,
// not of what is deployed. Triggers, the API and the workflow engine
// invoke functions by name through it.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/logctx"
)

// ErrNotFound means no function of that name is deployed.
var ErrNotFound = errcode.Sentinel(errcode.NotFound, "function not found")

// closeGrace bounds how long an old version's calls in flight may run on
// after a new version replaced it, before it is freed anyway.
const closeGrace = 10 * time.Minute

// Registry maps function names to their current versions, loaded on
// first call.
type Registry struct {
	host *host.Host
	cat  *catalog.Catalog
	log  *slog.Logger
	// ctx ends at Close: loads under way stop.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	entries  map[string]*entry
	observer Observer
	closed   bool
	wg       sync.WaitGroup
	// old holds the earlier versions loaded for the workflow invocations
	// pinned to them (versions.go); sweeper closes the idle ones after
	// oldIdle.
	old     map[oldKey]*old
	sweeper *time.Timer
	oldIdle time.Duration
}

// entry is one version of a function: not loaded, being loaded, loaded,
// or refused for good.
type entry struct {
	fn *catalog.Function
	// loaded is f once loaded, read without the lock by every call.
	loaded atomic.Pointer[host.Function]

	mu      sync.Mutex
	loading chan struct{} // set while a load runs; closed when it ends
	f       *host.Function
	err     error // the version cannot run here: every call fails with it
	last    error // why the last load failed, if it may succeed later
	retired bool  // replaced or deleted: the loader frees what it loads
}

// New creates a registry that follows the catalog. It loads nothing.
func New(h *host.Host, cat *catalog.Catalog, log *slog.Logger) *Registry {
	r := &Registry{host: h, cat: cat, log: log, entries: map[string]*entry{}, old: map[oldKey]*old{}, oldIdle: oldIdle}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	fns, _ := cat.Watch(r.onChange)
	for _, f := range fns {
		r.install(f)
	}
	return r
}

func (r *Registry) onChange(ch catalog.Change) {
	if ch.Function == nil {
		return
	}
	switch ch.Event.Type {
	case catalog.EventFunctionDeployed:
		r.install(ch.Function)
	case catalog.EventFunctionDeleted:
		r.remove(ch.Function.Name)
	}
}

// install makes fn the current version of its name.
func (r *Registry) install(fn *catalog.Function) {
	e := &entry{fn: fn}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	old := r.entries[fn.Name]
	r.entries[fn.Name] = e
	r.mu.Unlock()
	if old != nil {
		r.retire(old)
	}
}

func (r *Registry) remove(name string) {
	r.mu.Lock()
	old := r.entries[name]
	delete(r.entries, name)
	r.mu.Unlock()
	if old != nil {
		r.retire(old)
	}
}

// retire frees an old version once its calls in flight are done; one
// being loaded is freed by its loader.
func (r *Registry) retire(e *entry) {
	e.mu.Lock()
	e.retired = true
	f := e.f
	e.mu.Unlock()
	if f != nil {
		r.free(e, f)
	}
}

// free closes a function version, letting its calls finish first.
func (r *Registry) free(e *entry, f *host.Function) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		if err := f.Close(ctx); err != nil {
			r.log.Warn("old function version still busy", "function", e.fn.Name, "version", e.fn.Version, "err", err)
		}
	}()
}

// permanent tells whether a load error holds for good: the version cannot
// run on this daemon, whatever happens meanwhile.
func permanent(err error) bool {
	for _, p := range []error{host.ErrInvalidModule, host.ErrNoABI, host.ErrMemoryTooSmall, host.ErrInvalidConfig} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

// get returns the loaded function, loading it if no call has yet.
func (e *entry) get(ctx context.Context, r *Registry) (*host.Function, error) {
	if f := e.loaded.Load(); f != nil {
		return f, nil
	}
	e.mu.Lock()
	if e.f != nil || e.err != nil {
		defer e.mu.Unlock()
		return e.f, e.err
	}
	if e.retired {
		e.mu.Unlock()
		return nil, host.ErrClosed // the caller retries on the current version
	}
	if e.loading == nil {
		e.loading = make(chan struct{})
		r.wg.Add(1)
		go e.load(r, e.loading)
	}
	loading := e.loading
	e.mu.Unlock()
	select {
	case <-loading:
	case <-ctx.Done():
		return nil, fmt.Errorf("function %q is still loading: %w", e.fn.Name, ctx.Err())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.f != nil || e.err != nil {
		return e.f, e.err
	}
	return nil, e.last
}

// load fetches and compiles the entry's module, on its own goroutine so
// that a caller giving up does not abandon a load others wait for.
func (e *entry) load(r *Registry, done chan struct{}) {
	defer r.wg.Done()
	start := time.Now()
	fn := e.fn
	f, err := func() (*host.Function, error) {
		wasm, err := r.cat.Module(r.ctx, fn)
		if err != nil {
			return nil, fmt.Errorf("function %q version %d: %w", fn.Name, fn.Version, err)
		}
		spec := Spec(fn)
		spec.Source = func(ctx context.Context) ([]byte, error) { return r.cat.Module(ctx, fn) }
		f, err := r.host.Load(r.ctx, spec, wasm)
		if err != nil {
			return nil, fmt.Errorf("function %q version %d cannot run on this daemon: %w", fn.Name, fn.Version, err)
		}
		return f, nil
	}()
	e.mu.Lock()
	switch {
	case err == nil && e.retired:
		r.free(e, f)
	case err == nil:
		e.f = f
		e.loaded.Store(f)
	case permanent(err):
		e.err = err
	default:
		e.last = err
	}
	e.loading = nil
	e.mu.Unlock()
	close(done)
	if err != nil {
		r.log.Error("cannot load function", "function", fn.Name, "version", fn.Version, "err", err)
		return
	}
	r.log.Debug("function loaded", "function", fn.Name, "version", fn.Version, "took", time.Since(start).Round(time.Microsecond))
}

// Spec turns a catalog function into the host's spec.
func Spec(fn *catalog.Function) host.Spec {
	c := fn.Config
	return host.Spec{
		Name: fn.Name, Version: fn.Version, ABI: abi.Kind(c.ABI), Env: c.Env, CGI: c.CGI, MetaEnv: c.MetaEnvOn(),
		Export: c.Export, Config: c.PluginConfig,
		Limits: host.Limits{
			Memory: c.Memory, Timeout: time.Duration(c.Timeout), Concurrency: c.Concurrency,
			MaxInput: c.MaxInput, MaxOutput: c.MaxOutput,
		},
	}
}

// Get returns the current version of a function, loading it if no call
// has yet.
func (r *Registry) Get(ctx context.Context, name string) (*host.Function, *catalog.Function, error) {
	r.mu.Lock()
	e := r.entries[name]
	r.mu.Unlock()
	if e == nil {
		return nil, nil, fmt.Errorf("%w: no function %q is deployed", ErrNotFound, name)
	}
	f, err := e.get(ctx, r)
	return f, e.fn, err
}

// Loaded returns the current version of a function if a call has loaded
// it, without loading it.
func (r *Registry) Loaded(name string) (*host.Function, *catalog.Function, bool) {
	r.mu.Lock()
	e := r.entries[name]
	r.mu.Unlock()
	if e == nil {
		return nil, nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.f, e.fn, e.f != nil
}

// Invoke calls the current version of a function. A call that races with
// a redeploy runs on the new version. A call without an origin takes the
// ids ctx carries (logctx), so that its log records say what made it.
func (r *Registry) Invoke(ctx context.Context, name string, c host.Call) (host.Result, *catalog.Function, error) {
	return r.invoke(ctx, name, 0, c)
}

// invoke calls a version of a function (0: the current one); see Invoke
// and InvokeVersion.
func (r *Registry) invoke(ctx context.Context, name string, version int, c host.Call) (host.Result, *catalog.Function, error) {
	start := time.Now()
	if c.Origin == nil {
		c.Origin = logctx.Attrs(ctx)
	}
	for attempt := 0; ; attempt++ {
		f, fn, release, err := r.getVersion(ctx, name, version)
		if err != nil {
			r.observe(name, host.Result{}, err, time.Since(start))
			return host.Result{}, fn, err
		}
		res, err := f.Invoke(ctx, c)
		release()
		if errors.Is(err, host.ErrClosed) && attempt < 3 {
			continue
		}
		r.observe(name, res, err, time.Since(start))
		return res, fn, err
	}
}

// Observer is told of every call made through the registry (metrics).
type Observer func(function string, res host.Result, err error, took time.Duration)

// SetObserver sets the observer of calls; set it before calls are made.
func (r *Registry) SetObserver(o Observer) { r.observer = o }

func (r *Registry) observe(name string, res host.Result, err error, took time.Duration) {
	if r.observer != nil {
		r.observer(name, res, err, took)
	}
}

// Stats returns the counters of the loaded functions, by name.
func (r *Registry) Stats() map[string]host.Stats {
	r.mu.Lock()
	entries := make([]*entry, 0, len(r.entries))
	for _, e := range r.entries {
		entries = append(entries, e)
	}
	r.mu.Unlock()
	out := make(map[string]host.Stats, len(entries))
	for _, e := range entries {
		e.mu.Lock()
		f := e.f
		e.mu.Unlock()
		if f != nil {
			out[e.fn.Name] = f.Stats()
		}
	}
	return out
}

// Counts says how many functions are deployed and how many of them this
// daemon has loaded.
func (r *Registry) Counts() (deployed, loaded int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		e.mu.Lock()
		if e.f != nil {
			loaded++
		}
		e.mu.Unlock()
	}
	return len(r.entries), loaded
}

// Close stops following the catalog and frees every function; loads
// under way stop.
func (r *Registry) Close(ctx context.Context) {
	r.cancel()
	r.mu.Lock()
	r.closed = true
	entries := r.entries
	r.entries = map[string]*entry{}
	olds := r.closeOldLocked()
	r.mu.Unlock()
	for _, e := range entries {
		r.retire(e)
	}
	for _, e := range olds {
		r.retire(e)
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
