package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/catalog"
)

// ErrVersionNotKept means a function version asked for by number is not
// in the catalog: older than the last catalog.KeepVersions of its name,
// or not yet known to this daemon.
var ErrVersionNotKept = errcode.Sentinel(errcode.NotFound, "function version not kept")

// Earlier versions, loaded for the workflow invocations that pinned them
// (InvokeVersion), are kept apart from the current versions: loading one
// neither replaces nor disturbs the current version's entry and pool.
const (
	// maxOldVersions bounds the earlier versions loaded at once. Each
	// holds its compiled module (a Go guest ~18 MB, a C or WAT one a few
	// hundred KB) and its pool of instances; a redeploy in the middle of
	// long invocations needs one per function they call, so 16 covers a
	// few redeploys of several functions. Beyond it the version used
	// least recently is closed (its calls in flight finish first).
	maxOldVersions = 16
	// oldIdle is how long an earlier version stays loaded without a
	// call: the invocations pinned to it may go on for a while (a sleep
	// between two calls), and loading it again costs a compile-cache
	// load (22-30 ms for a Go guest).
	oldIdle = 5 * time.Minute
)

// old is an earlier version of a function, loaded on demand.
type old struct {
	e *entry
	// busy counts its calls in flight, used is when the last one
	// started or ended; under Registry.mu.
	busy int
	used time.Time
}

// oldKey names an earlier version.
type oldKey struct {
	name    string
	version int
}

// noRelease is what a call on a current version releases: nothing.
func noRelease() {}

// InvokeVersion calls a given version of a function (0: the current
// one). The current version is called as Invoke calls it; an earlier one,
// or one of a deleted function, is loaded from the catalog's history
// into a cache of its own (at most maxOldVersions, closed after oldIdle
// without a call). A version the catalog does not keep fails with
// ErrVersionNotKept, naming it: never another version silently.
func (r *Registry) InvokeVersion(ctx context.Context, name string, version int, c host.Call) (host.Result, *catalog.Function, error) {
	return r.invoke(ctx, name, version, c)
}

// getVersion returns a version of a function, loading it if needed, and
// what to call once the call is done.
func (r *Registry) getVersion(ctx context.Context, name string, version int) (*host.Function, *catalog.Function, func(), error) {
	r.mu.Lock()
	e := r.entries[name]
	if e != nil && (version == 0 || e.fn.Version == version) {
		r.mu.Unlock()
		f, err := e.get(ctx, r)
		if err == nil && f == nil {
			err = host.ErrClosed // retired while it loaded: the caller tries again
		}
		return f, e.fn, noRelease, err
	}
	o := r.old[oldKey{name, version}]
	r.mu.Unlock()
	if version == 0 {
		return nil, nil, noRelease, fmt.Errorf("%w: no function %q is deployed", ErrNotFound, name)
	}
	if o == nil {
		fn, ok := r.cat.FunctionVersion(name, version)
		if !ok {
			return nil, nil, noRelease, r.notKept(name, version)
		}
		if o = r.addOld(fn); o == nil {
			return nil, nil, noRelease, host.ErrClosed
		}
	}
	r.mu.Lock()
	o.busy++
	o.used = time.Now()
	r.mu.Unlock()
	release := func() {
		r.mu.Lock()
		o.busy--
		o.used = time.Now()
		r.mu.Unlock()
	}
	f, err := o.e.get(ctx, r)
	if err == nil && f == nil {
		err = host.ErrClosed // closed while it loaded: the caller tries again
	}
	if err != nil {
		release()
		return nil, o.e.fn, noRelease, err
	}
	return f, o.e.fn, release, nil
}

// notKept says why a version cannot be had.
func (r *Registry) notKept(name string, version int) error {
	last := r.cat.LastVersion(name)
	switch {
	case version <= 0:
		return fmt.Errorf("%w: function %q has no version %d", ErrVersionNotKept, name, version)
	case last == 0 || version > last:
		return fmt.Errorf("%w: function %q version %d is not in this daemon's catalog (its last version here is %d): the catalog has not caught up with the one that named it", ErrVersionNotKept, name, version, last)
	}
	return fmt.Errorf("%w: function %q version %d is no longer kept: the catalog keeps the last %d versions of each function, and %d is the last", ErrVersionNotKept, name, version, catalog.KeepVersions, last)
}

// addOld puts an earlier version in the cache (or returns the one a
// concurrent call put there), closing the least recently used beyond
// maxOldVersions. It returns nil once the registry is closed.
func (r *Registry) addOld(fn *catalog.Function) *old {
	key := oldKey{fn.Name, fn.Version}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if o := r.old[key]; o != nil {
		return o
	}
	for len(r.old) >= maxOldVersions {
		var lru oldKey
		var found bool
		for k, o := range r.old {
			if !found || idler(o, r.old[lru]) {
				lru, found = k, true
			}
		}
		r.retire(r.old[lru].e)
		delete(r.old, lru)
	}
	o := &old{e: &entry{fn: fn}, used: time.Now()}
	r.old[key] = o
	if r.sweeper == nil {
		r.sweeper = time.AfterFunc(r.oldIdle, r.sweep)
	}
	r.log.Debug("loading an earlier function version", "function", fn.Name, "version", fn.Version)
	return o
}

// idler tells whether a should be closed before b: not busy before busy,
// then used longer ago.
func idler(a, b *old) bool {
	if (a.busy == 0) != (b.busy == 0) {
		return a.busy == 0
	}
	return a.used.Before(b.used)
}

// sweep closes the earlier versions idle for oldIdle, and comes back
// while any are left.
func (r *Registry) sweep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweeper = nil
	if r.closed {
		return
	}
	now := time.Now()
	next := r.oldIdle
	for k, o := range r.old {
		idle := now.Sub(o.used)
		if o.busy == 0 && idle >= r.oldIdle {
			delete(r.old, k)
			r.retire(o.e)
			continue
		}
		if o.busy == 0 {
			next = min(next, r.oldIdle-idle)
		}
	}
	if len(r.old) > 0 {
		r.sweeper = time.AfterFunc(next, r.sweep)
	}
}

// closeOldLocked stops the sweeps and returns the earlier versions to
// free. Called with mu held, at Close.
func (r *Registry) closeOldLocked() []*entry {
	if r.sweeper != nil {
		r.sweeper.Stop()
		r.sweeper = nil
	}
	var es []*entry
	for k, o := range r.old {
		es = append(es, o.e)
		delete(r.old, k)
	}
	return es
}
