package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/abi"
)

// Call is one invocation of a function.
type Call struct {
	// ID identifies the call in logs and metadata; one is made up if empty.
	ID string
	// Input is the call's input bytes.
	Input []byte
	// Meta is call metadata from the trigger (see abi/README.md): a WASI
	// guest sees it as SLUICE_* environment variables, a reactor through
	// sluice.meta_get.
	Meta map[string]string
	// Origin names what made the call, e.g. request_id=ID for an HTTP
	// request (see internal/logctx): every log record of the call carries
	// it (Record.Origin), so that its lines can be told from other calls'.
	Origin []slog.Attr
}

// Result is the outcome of a successful call.
type Result struct {
	// Output is the guest's output. It belongs to the caller.
	Output []byte
	// Cold tells whether the call had to create an instance first.
	Cold bool
	// Duration is the time spent in the guest, instantiation included.
	Duration time.Duration
}

// Stats are a function's counters since it was loaded.
type Stats struct {
	Calls, Errors, ColdStarts uint64
	// Active is the number of calls running now, Idle the number of pooled
	// reactor instances waiting for a call.
	Active, Idle int
}

// Function is a loaded module with its spec: what Invoke runs. It is safe
// for concurrent use; calls beyond the concurrency limit wait for a slot.
type Function struct {
	host *Host
	mod  *module
	spec Spec

	base wazero.ModuleConfig

	// mu guards the pool and the slots. A call takes it twice: to get a
	// slot (and an idle instance), and to give them back.
	mu      sync.Mutex
	idle    []*instance     // pooled reactor instances, most recently used last
	running int             // calls holding one of the Concurrency slots
	waiters []chan struct{} // calls waiting for a slot, first come first served
	inside  int             // calls between acquire and release
	closed  bool
	drained chan struct{} // closed once closed and no call is inside

	calls, errs, colds atomic.Uint64
	active             atomic.Int64
}

func newFunction(h *Host, mod *module, spec Spec) *Function {
	f := &Function{host: h, mod: mod, spec: spec, drained: make(chan struct{})}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous, so that many instances can live at once
		WithStartFunctions().
		WithArgs(spec.Name).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cfg = cfg.WithEnv(k, spec.Env[k])
	}
	f.base = cfg
	return f
}

// Spec returns the function's spec, with its ABI resolved and its limits
// defaulted.
func (f *Function) Spec() Spec { return f.spec }

// Stats returns the function's counters.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	idle := len(f.idle)
	f.mu.Unlock()
	return Stats{
		Calls: f.calls.Load(), Errors: f.errs.Load(), ColdStarts: f.colds.Load(),
		Active: int(f.active.Load()), Idle: idle,
	}
}

// Invoke runs one call. It waits for a free slot while the function is at
// its concurrency limit, until ctx ends. Canceling ctx also stops a guest
// that is running. A failed call returns a *CallError (or ctx's error, or
// ErrClosed if the function was closed); the function stays usable.
func (f *Function) Invoke(ctx context.Context, c Call) (Result, error) {
	return f.invoke(ctx, c, false)
}

// InvokeCold runs one call on a fresh instance that is thrown away
// afterwards, as the first call after a deploy or a scale-up does. It is
// what cold-start benchmarks measure; everything else uses Invoke.
func (f *Function) InvokeCold(ctx context.Context, c Call) (Result, error) {
	return f.invoke(ctx, c, true)
}

func (f *Function) invoke(ctx context.Context, c Call, cold bool) (Result, error) {
	if len(c.Input) > f.spec.Limits.MaxInput {
		f.calls.Add(1)
		f.errs.Add(1)
		return Result{}, f.callError(ErrInputTooLarge, fmt.Sprintf("got %s", FormatBytes(uint64(len(c.Input)))), f.spec.Limits.MaxInput)
	}
	inst, err := f.acquire(ctx, cold || f.spec.ABI != abi.Reactor)
	if err != nil {
		return Result{}, err
	}
	f.active.Add(1)
	start := time.Now()
	var res Result
	reusable := false
	if f.spec.ABI == abi.Reactor {
		if inst == nil {
			res.Cold = true
			inst, err = f.newReactor(ctx, &c)
		}
		if err == nil {
			res.Output, reusable, err = inst.handle(ctx, &c)
		}
		reusable = reusable && !cold
	} else {
		res.Cold = true
		res.Output, err = f.runCommand(ctx, &c)
	}
	res.Duration = time.Since(start)
	f.active.Add(-1)
	f.release(inst, reusable)

	f.calls.Add(1)
	if res.Cold {
		f.colds.Add(1)
	}
	if err != nil {
		f.errs.Add(1)
		if c.ID == "" {
			c.ID = NewID()
		}
		f.host.cfg.sink.Emit([]Record{{
			Time: time.Now(), Function: f.spec.Name, Version: f.spec.Version, Invocation: c.ID,
			Origin: originMap(c.Origin), Stream: "sluice", Level: "error", Message: err.Error(),
		}})
	}
	return res, err
}

// acquire waits for a slot and returns an idle instance, if there is one
// and fresh is false.
func (f *Function) acquire(ctx context.Context, fresh bool) (*instance, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	f.inside++
	if f.running < f.spec.Limits.Concurrency {
		f.running++
		inst := f.popIdleLocked(fresh)
		f.mu.Unlock()
		return inst, nil
	}
	wait := make(chan struct{})
	f.waiters = append(f.waiters, wait)
	f.mu.Unlock()
	select {
	case <-wait: // the slot of a call that ended is ours
		f.mu.Lock()
		inst := f.popIdleLocked(fresh)
		f.mu.Unlock()
		return inst, nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	for i, w := range f.waiters {
		if w == wait {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			f.leaveLocked()
			f.mu.Unlock()
			return nil, fmt.Errorf("function %q: waiting for a free slot (all %d busy): %w", f.spec.Name, f.spec.Limits.Concurrency, ctx.Err())
		}
	}
	f.mu.Unlock()
	// A slot was handed to us as ctx ended: take it, the call goes on.
	return f.popIdle(fresh), nil
}

func (f *Function) popIdle(fresh bool) *instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.popIdleLocked(fresh)
}

func (f *Function) popIdleLocked(fresh bool) *instance {
	n := len(f.idle)
	if fresh || n == 0 {
		return nil
	}
	inst := f.idle[n-1]
	f.idle[n-1] = nil
	f.idle = f.idle[:n-1]
	return inst
}

// release gives the slot back (to the first waiter, if any) and pools the
// instance if it may be reused.
func (f *Function) release(inst *instance, reusable bool) {
	f.mu.Lock()
	if inst != nil && reusable && !f.closed && len(f.idle) < f.spec.Limits.Concurrency {
		f.idle = append(f.idle, inst)
		inst = nil
	}
	if len(f.waiters) > 0 {
		close(f.waiters[0])
		f.waiters = f.waiters[1:]
	} else {
		f.running--
	}
	f.leaveLocked()
	f.mu.Unlock()
	if inst != nil {
		inst.close()
	}
}

func (f *Function) leaveLocked() {
	f.inside--
	if f.closed && f.inside == 0 {
		close(f.drained)
	}
}

func (f *Function) callError(kind error, detail string, limit any) *CallError {
	return &CallError{Function: f.spec.Name, Version: f.spec.Version, Kind: kind, Detail: detail, Limit: limit}
}

// runCommand runs a WASI command on a fresh instance.
func (f *Function) runCommand(ctx context.Context, c *Call) ([]byte, error) {
	inst := &instance{fn: f}
	inst.init()
	defer inst.close()
	return inst.runCommand(ctx, c)
}

// Close stops new calls, waits for the calls in flight to finish (or ctx
// to end), and frees the function's instances. Calls after Close fail with
// ErrClosed.
func (f *Function) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	if f.inside == 0 {
		close(f.drained)
	}
	f.mu.Unlock()

	var err error
	select {
	case <-f.drained:
	case <-ctx.Done():
		err = fmt.Errorf("function %q: calls still running: %w", f.spec.Name, ctx.Err())
	}
	f.mu.Lock()
	idle := f.idle
	f.idle = nil
	f.mu.Unlock()
	for _, inst := range idle {
		inst.close()
	}
	if err == nil {
		f.host.forget(f)
	}
	return err
}

var idCounter atomic.Uint64
var idPrefix = func() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}()

// NewID makes a call id unique within this process and very likely across
// processes: a random per-process prefix and a counter.
func NewID() string {
	return idPrefix + "-" + strconv.FormatUint(idCounter.Add(1), 36)
}

// isCtxErr tells whether err is the context's own error.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
