package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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

	slots chan struct{} // one token per call allowed to run
	base  wazero.ModuleConfig

	mu       sync.Mutex
	idle     []*instance // pooled reactor instances, most recently used last
	closed   bool
	inflight sync.WaitGroup

	calls, errs, colds atomic.Uint64
	active             atomic.Int64
}

func newFunction(h *Host, mod *module, spec Spec) *Function {
	f := &Function{host: h, mod: mod, spec: spec, slots: make(chan struct{}, spec.Limits.Concurrency)}
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
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return Result{}, ErrClosed
	}
	f.inflight.Add(1)
	f.mu.Unlock()
	defer f.inflight.Done()

	if len(c.Input) > f.spec.Limits.MaxInput {
		f.calls.Add(1)
		f.errs.Add(1)
		return Result{}, f.callError(ErrInputTooLarge, fmt.Sprintf("got %s", FormatBytes(uint64(len(c.Input)))), f.spec.Limits.MaxInput)
	}
	select {
	case f.slots <- struct{}{}:
	default:
		select {
		case f.slots <- struct{}{}:
		case <-ctx.Done():
			return Result{}, fmt.Errorf("function %q: waiting for a free slot (all %d busy): %w", f.spec.Name, f.spec.Limits.Concurrency, ctx.Err())
		}
	}
	defer func() { <-f.slots }()
	if c.ID == "" {
		c.ID = NewID()
	}
	f.active.Add(1)
	defer f.active.Add(-1)

	start := time.Now()
	var res Result
	var err error
	if f.spec.ABI == abi.Reactor {
		res, err = f.invokeReactor(ctx, &c)
	} else {
		res, err = f.invokeCommand(ctx, &c)
	}
	res.Duration = time.Since(start)
	f.calls.Add(1)
	if res.Cold {
		f.colds.Add(1)
	}
	if err != nil {
		f.errs.Add(1)
		f.host.cfg.sink.Emit([]Record{{
			Time: time.Now(), Function: f.spec.Name, Version: f.spec.Version, Invocation: c.ID,
			Stream: "sluice", Level: "error", Message: err.Error(),
		}})
	}
	return res, err
}

func (f *Function) callError(kind error, detail string, limit any) *CallError {
	return &CallError{Function: f.spec.Name, Version: f.spec.Version, Kind: kind, Detail: detail, Limit: limit}
}

// invokeReactor runs a call on a pooled instance, creating one if none is
// idle.
func (f *Function) invokeReactor(ctx context.Context, c *Call) (Result, error) {
	var res Result
	inst := f.takeIdle()
	if inst == nil {
		res.Cold = true
		var err error
		inst, err = f.newReactor(ctx, c)
		if err != nil {
			return res, err
		}
	}
	out, reusable, err := inst.handle(ctx, c)
	if reusable {
		f.putIdle(inst)
	} else {
		inst.close()
	}
	res.Output = out
	return res, err
}

// invokeCommand runs a WASI command on a fresh instance.
func (f *Function) invokeCommand(ctx context.Context, c *Call) (Result, error) {
	inst := &instance{fn: f}
	inst.init()
	defer inst.close()
	out, err := inst.runCommand(ctx, c)
	return Result{Output: out, Cold: true}, err
}

func (f *Function) takeIdle() *instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.idle)
	if n == 0 {
		return nil
	}
	inst := f.idle[n-1]
	f.idle[n-1] = nil
	f.idle = f.idle[:n-1]
	return inst
}

func (f *Function) putIdle(inst *instance) {
	f.mu.Lock()
	if f.closed || len(f.idle) >= f.spec.Limits.Concurrency {
		f.mu.Unlock()
		inst.close()
		return
	}
	f.idle = append(f.idle, inst)
	f.mu.Unlock()
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
	f.mu.Unlock()

	done := make(chan struct{})
	go func() {
		f.inflight.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
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
