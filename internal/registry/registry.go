// Package registry keeps the functions of the catalog loaded in the host:
// it follows the catalog, loads each new version in the background (fetch
// the module, compile it once), swaps it in, and lets the calls in flight
// on the old version finish before freeing it. Triggers, the API and the
// workflow engine invoke functions by name through it.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/logctx"
)

// ErrNotFound means no function of that name is deployed.
var ErrNotFound = errors.New("function not found")

// loadParallelism bounds how many modules compile at once in the
// background, so that a daemon starting with many functions stays
// responsive. The first call of a function does not wait behind others:
// it compiles that one at once (the host single-flights it).
const loadParallelism = 2

// closeGrace bounds how long an old version's calls in flight may run on
// after a new version replaced it, before it is freed anyway.
const closeGrace = 10 * time.Minute

// Registry maps function names to loaded functions.
type Registry struct {
	host *host.Host
	cat  *catalog.Catalog
	log  *slog.Logger
	sem  chan struct{}

	mu       sync.Mutex
	entries  map[string]*entry
	observer Observer
	closed   bool
	wg       sync.WaitGroup
}

// entry is one version of a function, being loaded or loaded.
type entry struct {
	fn    *catalog.Function
	ready chan struct{}
	f     *host.Function
	err   error
	once  sync.Once
}

// New creates a registry that follows the catalog.
func New(h *host.Host, cat *catalog.Catalog, log *slog.Logger) *Registry {
	r := &Registry{host: h, cat: cat, log: log, sem: make(chan struct{}, loadParallelism), entries: map[string]*entry{}}
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

// install makes fn the current version of its name and starts loading it.
func (r *Registry) install(fn *catalog.Function) {
	e := &entry{fn: fn, ready: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	old := r.entries[fn.Name]
	r.entries[fn.Name] = e
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		r.sem <- struct{}{}
		defer func() { <-r.sem }()
		e.load(r)
	}()
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

// retire frees an old version once its calls in flight are done.
func (r *Registry) retire(e *entry) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		<-e.ready
		if e.f == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		if err := e.f.Close(ctx); err != nil {
			r.log.Warn("old function version still busy", "function", e.fn.Name, "version", e.fn.Version, "err", err)
		}
	}()
}

// load fetches and compiles the entry's module; it runs once, whoever
// asks first (the background loader or a call).
func (e *entry) load(r *Registry) {
	e.once.Do(func() {
		defer close(e.ready)
		start := time.Now()
		ctx := context.Background()
		wasm, err := r.cat.Module(ctx, e.fn)
		if err != nil {
			e.err = fmt.Errorf("function %q version %d: %w", e.fn.Name, e.fn.Version, err)
			r.log.Error("cannot fetch module", "function", e.fn.Name, "version", e.fn.Version, "err", err)
			return
		}
		e.f, e.err = r.host.Load(ctx, Spec(e.fn), wasm)
		if e.err != nil {
			e.err = fmt.Errorf("function %q version %d cannot run on this daemon: %w", e.fn.Name, e.fn.Version, e.err)
			r.log.Error("cannot load function", "function", e.fn.Name, "version", e.fn.Version, "err", e.err)
			return
		}
		r.log.Debug("function loaded", "function", e.fn.Name, "version", e.fn.Version, "took", time.Since(start).Round(time.Microsecond))
	})
}

// Spec turns a catalog function into the host's spec.
func Spec(fn *catalog.Function) host.Spec {
	c := fn.Config
	return host.Spec{
		Name: fn.Name, Version: fn.Version, ABI: abi.Kind(c.ABI), Env: c.Env,
		Limits: host.Limits{
			Memory: c.Memory, Timeout: time.Duration(c.Timeout), Concurrency: c.Concurrency,
			MaxInput: c.MaxInput, MaxOutput: c.MaxOutput,
		},
	}
}

// Get returns the loaded current version of a function, loading it now if
// the background loader has not yet.
func (r *Registry) Get(ctx context.Context, name string) (*host.Function, *catalog.Function, error) {
	r.mu.Lock()
	e := r.entries[name]
	r.mu.Unlock()
	if e == nil {
		return nil, nil, fmt.Errorf("%w: no function %q is deployed", ErrNotFound, name)
	}
	select {
	case <-e.ready:
	default:
		go e.load(r) // do not wait behind the background queue
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, e.fn, fmt.Errorf("function %q is still loading: %w", name, ctx.Err())
		}
	}
	return e.f, e.fn, e.err
}

// Invoke calls the current version of a function. A call that races with
// a redeploy runs on the new version. A call without an origin takes the
// ids ctx carries (logctx), so that its log records say what made it.
func (r *Registry) Invoke(ctx context.Context, name string, c host.Call) (host.Result, *catalog.Function, error) {
	start := time.Now()
	if c.Origin == nil {
		c.Origin = logctx.Attrs(ctx)
	}
	for attempt := 0; ; attempt++ {
		f, fn, err := r.Get(ctx, name)
		if err != nil {
			r.observe(name, host.Result{}, err, time.Since(start))
			return host.Result{}, fn, err
		}
		res, err := f.Invoke(ctx, c)
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
	defer r.mu.Unlock()
	out := make(map[string]host.Stats, len(r.entries))
	for name, e := range r.entries {
		select {
		case <-e.ready:
			if e.f != nil {
				out[name] = e.f.Stats()
			}
		default:
		}
	}
	return out
}

// Close stops following the catalog and frees every function.
func (r *Registry) Close(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	entries := r.entries
	r.entries = map[string]*entry{}
	r.mu.Unlock()
	for _, e := range entries {
		r.retire(e)
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
