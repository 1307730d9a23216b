package host

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/fn"
)

// Call is one call's input and metadata (fn.Call): ID, Input, Meta (the
// metadata a guest sees, see abi/README.md) and Origin (what made the call,
// carried by every log record of it).
type Call = fn.Call

// Result is the outcome of a successful call (fn.Result): the guest's
// Output, whether the call was Cold, and its Duration in the guest.
type Result = fn.Result

// Stats are a function's counters since it was loaded.
type Stats struct {
	Calls, Errors, ColdStarts uint64
	// Active is the number of calls running now, Idle the number of pooled
	// reactor instances waiting for a call.
	Active, Idle int
}

// Per-function queue bounds: calls waiting for a slot hold their input,
// so a burst against a busy function must not queue without end (2,000
// calls of 1 MiB against --concurrency 2 held 2.8 GB).
const (
	// waitersPerSlot bounds the calls waiting for a slot to this many per
	// slot: the last one waits about as long as that many calls take, so
	// beyond that a caller is better told to retry (elsewhere, or later).
	waitersPerSlot = 4
	// maxWaitingInput bounds the input bytes that waiting calls of one
	// function hold together; a call is admitted to an empty queue
	// whatever its size.
	maxWaitingInput = 64 << 20
)

// Function is a loaded module with its spec: what Invoke runs. It is safe
// for concurrent use; calls beyond the concurrency limit wait for a slot,
// a bounded number of them.
type Function struct {
	host    *Host
	spec    Spec
	key     string            // of its compiled module in the host's table
	snapKey string            // of its snapshot in its compiled module's (snapshotKey)
	sum     [sha256.Size]byte // of its module
	pages   uint32            // its memory limit
	bytes   []byte            // the module, kept when spec.Source is nil

	base wazero.ModuleConfig

	// mu guards the pool and the slots. A call takes it twice: to get a
	// slot (and an idle instance), and to give them back.
	mu           sync.Mutex
	idle         []*instance // pooled reactor instances, most recently used last
	running      int         // calls holding one of the Concurrency slots
	waiters      []waiter    // calls waiting for a slot, first come first served
	waitingInput int         // the input bytes the waiters hold
	inside       int         // calls between acquire and release
	closed       bool
	drained      chan struct{} // closed once closed and no call is inside

	calls, errs, colds atomic.Uint64
	active             atomic.Int64
}

// waiter is a call waiting for a slot.
type waiter struct {
	ch    chan struct{} // closed when the slot is handed over
	input int
}

func newFunction(h *Host, spec Spec, sum [sha256.Size]byte) *Function {
	f := &Function{host: h, spec: spec, sum: sum, pages: spec.Limits.pages(), drained: make(chan struct{})}
	f.key = moduleKey(sum, f.pages)
	f.snapKey = snapshotKey(spec)
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

// fetch returns the function's module bytes: those it keeps, or those
// spec.Source gives, checked against the ones it was loaded with.
func (f *Function) fetch(ctx context.Context) ([]byte, error) {
	if f.spec.Source == nil {
		return f.bytes, nil
	}
	wasm, err := f.spec.Source(ctx)
	if err != nil {
		return nil, fmt.Errorf("function %q: fetching its module again: %w", f.spec.Name, err)
	}
	if sha256.Sum256(wasm) != f.sum {
		return nil, fmt.Errorf("function %q: its module's source gave other bytes than it was loaded with", f.spec.Name)
	}
	return wasm, nil
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
// its concurrency limit, until ctx ends, or fails at once with ErrBusy if
// too many calls already wait. Canceling ctx also stops a guest that is
// running. A failed call returns a *CallError (or ctx's error, or
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
	if ctx.Err() != nil {
		// the caller gave up before the call began: nothing runs
		f.calls.Add(1)
		f.errs.Add(1)
		return Result{}, f.callError(ErrCanceled, "before the guest started", nil)
	}
	inst, err := f.acquire(ctx, cold || !pooled(f.spec.ABI), len(c.Input))
	if err != nil {
		if errors.Is(err, ErrBusy) {
			// counted, not logged: a flood of refusals would flood the logs
			f.calls.Add(1)
			f.errs.Add(1)
		}
		return Result{}, err
	}
	f.active.Add(1)
	start := clock()
	var res Result
	reusable := false
	if inst == nil {
		res.Cold = true
		inst, err = f.newInstance(ctx, &c)
	} else {
		inst.callStart = start // its deadline counts from here
	}
	if err == nil {
		switch f.spec.ABI {
		case abi.Reactor:
			res.Output, reusable, err = inst.handle(ctx, &c)
			reusable = reusable && !cold
		case abi.Extism:
			res.Output, reusable, err = inst.handleExtism(ctx, &c)
			reusable = reusable && !cold
		default:
			res.Output, err = inst.runCommand(ctx, &c)
		}
	}
	if err == nil {
		res.Status, res.Header = inst.status, inst.header.Header
	}
	end := clock()
	res.Duration = end - start
	f.active.Add(-1)
	f.release(inst, reusable, end)

	if res.Cold {
		f.colds.Add(1)
	}
	if err != nil {
		return res, f.failed(&c, err)
	}
	f.calls.Add(1)
	return res, nil
}

// failed counts a failed call and logs its error to the function's logs.
func (f *Function) failed(c *Call, err error) error {
	f.calls.Add(1)
	f.errs.Add(1)
	if c.ID == "" {
		c.ID = NewID()
	}
	f.host.cfg.sink.Emit([]Record{{
		Time: time.Now(), Function: f.spec.Name, Version: f.spec.Version, Invocation: c.ID,
		Origin: originMap(c.Origin), Stream: "sluice", Level: "error", Message: err.Error(),
	}})
	return err
}

// newInstance makes an instance for a call: it holds the function's
// compiled module (compiling it again if it was released) and its share
// of the memory budget, and is initialised (a reactor) or ready to run (a
// command).
func (f *Function) newInstance(ctx context.Context, c *Call) (*instance, error) {
	e, err := f.host.acquire(ctx, f, nil)
	if err != nil {
		if errors.Is(err, ErrMemoryBudget) {
			return nil, f.callError(ErrMemoryBudget, "its compiled code: "+strings.TrimPrefix(err.Error(), ErrMemoryBudget.Error()+": "), nil)
		}
		if ctx.Err() != nil && isCtxErr(err) {
			// the caller gave up while the module was still compiling: the
			// same error as a call stopped while it runs
			return nil, f.callError(ErrCanceled, "before the guest started", nil)
		}
		return nil, err
	}
	fixed := estimateInstance(e.mod.stats, 0)
	cost := fixed + int64(e.mod.stats.MemoryPages*pageSize)
	if err := f.host.charge(cost); err != nil {
		f.host.release(e)
		return nil, f.callError(ErrMemoryBudget, "an instance: "+strings.TrimPrefix(err.Error(), ErrMemoryBudget.Error()+": "), nil)
	}
	i := &instance{fn: f, entry: e, m: e.mod, cost: cost, fixed: fixed}
	i.init()
	f.host.instances.Add(1)
	if pooled(f.spec.ABI) {
		if err := i.initReactor(ctx, c); err != nil {
			return nil, err
		}
	}
	return i, nil
}

// acquire waits for a slot and returns an idle instance, if there is one
// and fresh is false. A call that would have to wait behind a full queue
// fails at once with ErrBusy.
func (f *Function) acquire(ctx context.Context, fresh bool, input int) (*instance, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	if f.running < f.spec.Limits.Concurrency {
		f.running++
		f.inside++
		inst := f.popIdleLocked(fresh)
		f.mu.Unlock()
		return inst, nil
	}
	if n := len(f.waiters); n >= waitersPerSlot*f.spec.Limits.Concurrency || (n > 0 && f.waitingInput+input > maxWaitingInput) {
		f.mu.Unlock()
		return nil, f.callError(ErrBusy, fmt.Sprintf("%d calls are waiting", n), f.spec.Limits.Concurrency)
	}
	f.inside++
	w := waiter{ch: make(chan struct{}), input: input}
	f.waiters = append(f.waiters, w)
	f.waitingInput += input
	f.mu.Unlock()
	select {
	case <-w.ch: // the slot of a call that ended is ours
		return f.popIdle(fresh), nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	for i, x := range f.waiters {
		if x.ch == w.ch {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			f.waitingInput -= input
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

// oldestIdle returns when the instance idle longest went idle.
func (f *Function) oldestIdle() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.idle) == 0 {
		return time.Time{}, false
	}
	return clockTime(f.idle[0].idleSince), true
}

// takeIdle removes the instance idle longest from the pool, if it went
// idle at since, and returns it.
func (f *Function) takeIdle(since time.Time) *instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.idle) == 0 || !clockTime(f.idle[0].idleSince).Equal(since) {
		return nil
	}
	inst := f.idle[0]
	f.idle[0] = nil
	f.idle = f.idle[1:]
	return inst
}

// release gives the slot back (to the first waiter, if any) and pools the
// instance if it may be reused, charging the budget for what it holds now.
func (f *Function) release(inst *instance, reusable bool, now time.Duration) {
	if inst != nil && reusable {
		// charge what it holds now; a memory that did not change (most
		// calls) touches nothing shared
		if cost := inst.fixed + inst.memSize(); cost != inst.cost {
			f.host.adjust(cost - inst.cost)
			inst.cost = cost
		}
		inst.idleSince = now
	}
	f.mu.Lock()
	if inst != nil && reusable && !f.closed && len(f.idle) < f.spec.Limits.Concurrency {
		f.idle = append(f.idle, inst)
		inst = nil
	}
	if len(f.waiters) > 0 {
		w := f.waiters[0]
		f.waiters = f.waiters[1:]
		f.waitingInput -= w.input
		close(w.ch)
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

// pooled tells whether a kind's instances serve many calls: a reactor's
// and an Extism plugin's.
func pooled(k abi.Kind) bool { return k == abi.Reactor || k == abi.Extism }

// NewID makes a call id unique within this process and very likely across
// processes (fn.NewID).
func NewID() string { return fn.NewID() }

// isCtxErr tells whether err is the context's own error.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
