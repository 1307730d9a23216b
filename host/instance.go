package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/logctx"
)

// exitInterrupted is the exit code the host closes a module with to stop
// it on the slow runtime; it never reaches users.
const exitInterrupted = math.MaxUint32 - 7

// minInputBuffer is the smallest input buffer the host asks a reactor for,
// so that most inputs fit the first one.
const minInputBuffer = 1 << 10

// instance is one module instance and the state of the call it runs. A
// reactor instance serves many calls, one at a time; a WASI instance serves
// one. Only the goroutine running its call touches it, except the
// interrupt path (timer and context callbacks), which touches only the
// atomics, the flag global and wake.
type instance struct {
	// interruptMu serializes interrupt: two goroutines may raise the flag.
	interruptMu sync.Mutex

	fn    *Function
	entry *moduleEntry // the compiled module it holds
	m     *module
	cost  int64           // its charge to the memory budget
	fixed int64           // what it holds besides its linear memory
	ctx   context.Context // carries the instance to the host functions
	mod   api.Module

	idleSince time.Duration // when it last went back to the pool (clock)
	snapRun   *snapRun      // its part in snapshots (snapshot.go), or nil

	handleFn, allocFn, freeFn api.Function
	mem                       api.Memory
	flag, countdown           api.MutableGlobal // nil on the slow runtime
	stack                     [2]uint64

	inPtr, inCap uint32 // the input buffer the guest gave us

	// the current call
	call     *Call
	trace    logctx.Trace  // the call's, from its context (zero: none)
	idFn     func() string // i.callID, bound once
	out      []byte
	outErr   error
	failMsg  string
	status   int         // the HTTP status the guest set, 0 if none
	header   abi.Headers // the HTTP response headers it set
	respErr  error       // a status or header it may not set
	log      callLog
	stdout   *limitedBuffer // WASI commands only
	timedOut atomic.Bool
	canceled atomic.Bool

	// the watch of the current call (watchdog.go)
	watchMu    sync.Mutex
	watchState uint8
	deadline   time.Duration   // clock
	callStart  time.Duration   // clock: when the current call began, until it first arms
	watchCtx   context.Context // nil: one that never ends
	wake       chan struct{}   // wakes a guest sleeping in poll_oneoff when interrupted

	// failCode is the code the current call's guest gave its failure
	// (error_code), badCode one it gave that is not a code.
	failCode, badCode string

	ext *extismState // an Extism plugin's kernel state (extism.go)
}

type instanceKey struct{}

func instanceFrom(ctx context.Context) *instance {
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	return inst
}

func (i *instance) init() {
	i.ctx = context.WithValue(context.Background(), instanceKey{}, i)
	i.wake = make(chan struct{}, 1)
	i.idFn = i.callID
	i.fn.host.watch.add(i)
}

// instantiate creates the module instance with stdout and stderr going to
// the call's log (or stdout to the output, for a WASI command).
func (i *instance) instantiate(stdin []byte, env []string) error {
	f := i.fn
	cfg := f.base.
		WithStderr(logWriter{inst: i, stream: "stderr"}).
		WithNanosleep(i.sleep)
	if i.stdout != nil {
		cfg = cfg.WithStdout(i.stdout).WithStdin(bytes.NewReader(stdin))
	} else {
		cfg = cfg.WithStdout(logWriter{inst: i, stream: "stdout"})
	}
	for k := 0; k+1 < len(env); k += 2 {
		cfg = cfg.WithEnv(env[k], env[k+1])
	}
	if i.snapRun != nil {
		cfg = i.snapRun.configure(cfg)
	}
	ctx := experimental.WithMemoryAllocator(i.ctx, memAllocator{pool: &f.host.mems, size: i.snapRun.memorySize()})
	mod, err := i.m.runtime.InstantiateModule(ctx, i.m.compiled, cfg)
	if err != nil {
		return err
	}
	i.mod = mod
	i.mem = mod.Memory()
	if i.m.interrupt != "" {
		g, ok := mod.ExportedGlobal(i.m.interrupt).(api.MutableGlobal)
		c, ok2 := mod.ExportedGlobal(i.m.countdown).(api.MutableGlobal)
		if !ok || !ok2 {
			return fmt.Errorf("instrumented module lacks its interrupt flag %q or countdown %q", i.m.interrupt, i.m.countdown)
		}
		i.flag, i.countdown = g, c
	}
	return nil
}

// initReactor instantiates and initialises a reactor instance.
// Initialisation (the start function, _initialize) runs under the call's
// limits. On failure the instance is closed.
func (i *instance) initReactor(ctx context.Context, c *Call) (err error) {
	f := i.fn
	i.beginCall(ctx, c)
	if f.host.cfg.snapshots {
		i.prepareSnapshot()
		defer func() { i.settleSnapshot(ctx, err) }()
	}
	if err := i.instantiate(nil, nil); err != nil {
		i.close()
		return f.callError(ErrTrap, "instantiate: "+oneLine(err.Error()), nil)
	}
	// sluice_alloc and sluice_free are looked up when the input buffer
	// is first made (growInput): wazero gives each function looked up a
	// call stack of its own (10 KiB), and an instance made from a
	// snapshot has its input buffer already
	i.handleFn = i.mod.ExportedFunction(abi.ExportHandle)
	if r := i.snapRun; r != nil && r.snap != nil {
		if err := i.restore(r.snap); err != nil {
			i.close()
			return err
		}
		return nil
	}
	for _, name := range []string{i.m.start, abi.ExportInitialize} {
		if name == "" {
			continue
		}
		fn := i.mod.ExportedFunction(name)
		if fn == nil {
			continue
		}
		clean, err := i.run(ctx, func() error { _, err := fn.Call(i.ctx); return err })
		if err == nil && !clean {
			// interrupted just as it finished: the instance may be
			// stopped at any point from now on
			err = i.classify(errInterrupted)
		}
		if err != nil {
			i.emitLogs()
			i.close()
			var ce *CallError
			if errors.As(err, &ce) {
				ce.Detail = strings.TrimSuffix("initialising the instance: "+ce.Detail, ": ")
			}
			return err
		}
	}
	if r := i.snapRun; r != nil && r.slot != nil {
		// the input buffer a first call makes is part of the snapshot
		if err := i.prepareInput(ctx); err != nil {
			i.emitLogs()
			i.close()
			return err
		}
	}
	return nil
}

// prepareInput makes the input buffer a first call of up to
// minInputBuffer bytes would make, for a snapshot to hold it: an
// instance made from the snapshot calls sluice_handle at once. An Extism
// plugin has no input buffer.
func (i *instance) prepareInput(ctx context.Context) error {
	if i.fn.spec.ABI != abi.Reactor {
		return nil
	}
	return i.growInput(ctx, minInputBuffer)
}

// beginCall resets the per-call state.
func (i *instance) beginCall(ctx context.Context, c *Call) {
	i.call = c
	i.trace, _ = logctx.TraceFrom(ctx)
	i.out, i.outErr, i.failMsg = nil, nil, ""
	i.failCode, i.badCode = "", ""
	i.status, i.header, i.respErr = 0, abi.Headers{}, nil
	i.log.reset(i.fn.spec.Name, i.fn.spec.Version, i.idFn, c.Origin)
}

// callID returns the current call's id, making one up on first use: most
// calls never need one.
func (i *instance) callID() string {
	if i.call.ID == "" {
		i.call.ID = NewID()
	}
	return i.call.ID
}

// handle runs one reactor call. reusable tells whether the instance may go
// back to the pool: not after a trap, an exit, an interruption or a broken
// limit.
func (i *instance) handle(ctx context.Context, c *Call) (out []byte, reusable bool, err error) {
	i.beginCall(ctx, c)
	n := uint32(len(c.Input))
	if n > i.inCap {
		if err := i.growInput(ctx, n); err != nil {
			i.emitLogs()
			return nil, false, err
		}
	}
	if n > 0 && !i.mem.Write(i.inPtr, c.Input) {
		i.emitLogs()
		return nil, false, i.fn.callError(ErrTrap, fmt.Sprintf("input buffer at %d (+%d bytes) from sluice_alloc is outside the guest's memory", i.inPtr, n), nil)
	}
	clean, err := i.run(ctx, func() error {
		i.stack[0], i.stack[1] = uint64(i.inPtr), uint64(n)
		return i.handleFn.CallWithStack(i.ctx, i.stack[:])
	})
	defer i.emitLogs()
	if err != nil {
		return nil, false, err
	}
	if i.outErr != nil {
		return nil, clean, i.outErr
	}
	if i.respErr != nil {
		return nil, clean, i.respErr
	}
	if status := uint32(i.stack[0]); status != abi.StatusOK {
		msg := i.failMsg
		if msg == "" {
			msg = fmt.Sprintf("sluice_handle returned status %d without a message", status)
		}
		if d := i.droppedCode(); d != "" {
			msg += " (" + d + ")"
		}
		ce := i.fn.callError(ErrFunctionFailed, msg, nil)
		ce.Code = i.failCode
		return nil, clean, ce
	}
	return i.out, clean, nil
}

// droppedCode is what a failure's message says when the guest gave an
// error code that is not one: that it was dropped, and what a code is.
func (i *instance) droppedCode() string {
	if i.badCode == "" {
		return ""
	}
	return fmt.Sprintf("its error code %q was dropped: a code is a lowercase letter then up to %d of a-z, 0-9, _ . -", i.badCode, abi.MaxErrorCode-1)
}

// exitCode gives a WASI command's failure the code the command gave
// (error_code) before it exited with a non-zero code, as a reactor's
// failure gets the one it gave before returning non-zero. Any other
// failure (a trap, a timeout, the memory limit) keeps its own: the guest
// did not choose it.
func (i *instance) exitCode(err error) error {
	var ce *CallError
	if !errors.As(err, &ce) || ce.Kind != ErrExit {
		return err
	}
	ce.Code = i.failCode
	switch d := i.droppedCode(); {
	case d == "":
	case ce.Detail == "":
		ce.Detail = d
	default:
		ce.Detail += " (" + d + ")"
	}
	return ce
}

// growInput gets an input buffer of at least n bytes from the guest.
func (i *instance) growInput(ctx context.Context, n uint32) error {
	size := uint32(minInputBuffer)
	for size < n {
		size <<= 1
	}
	if i.allocFn == nil {
		i.allocFn = i.mod.ExportedFunction(abi.ExportAlloc)
		i.freeFn = i.mod.ExportedFunction(abi.ExportFree)
	}
	_, err := i.run(ctx, func() error {
		if i.freeFn != nil && i.inCap > 0 {
			if _, err := i.freeFn.Call(i.ctx, uint64(i.inPtr), uint64(i.inCap)); err != nil {
				return err
			}
		}
		i.inPtr, i.inCap = 0, 0
		res, err := i.allocFn.Call(i.ctx, uint64(size))
		if err != nil {
			return err
		}
		i.inPtr = uint32(res[0])
		return nil
	})
	if err != nil {
		return err
	}
	if i.inPtr == 0 {
		return i.fn.callError(ErrMemoryLimit, fmt.Sprintf("sluice_alloc(%d) returned 0 for the input", size), i.fn.spec.Limits.Memory)
	}
	i.inCap = size
	return nil
}

// runCommand runs a WASI command once, with the input on stdin, as a
// plain WASI runtime would: the deployment's environment (the base
// config's), argv[0] its name, no preopened directory. The call's metadata
// joins the environment only if the function asked for it (MetaEnv), the
// request's CGI variables only with CGI.
func (i *instance) runCommand(ctx context.Context, c *Call) ([]byte, error) {
	f := i.fn
	i.beginCall(ctx, c)
	i.stdout = &limitedBuffer{limit: f.spec.Limits.MaxOutput}
	var env []string
	if f.spec.MetaEnv {
		env = i.metaEnv(c)
	}
	if f.spec.CGI {
		meta := c.Meta
		if _, ok := meta[abi.MetaHTTPPath]; !ok {
			meta = map[string]string{abi.MetaFunction: f.spec.Name}
		}
		env = append(env, abi.CGIEnv(meta, len(c.Input))...)
	}
	defer i.emitLogs()
	if err := i.instantiate(c.Input, env); err != nil {
		return nil, f.callError(ErrTrap, "instantiate: "+oneLine(err.Error()), nil)
	}
	for _, name := range []string{i.m.start, abi.ExportStart} {
		fn := i.mod.ExportedFunction(name)
		if name == "" || fn == nil {
			continue
		}
		if _, err := i.run(ctx, func() error { _, err := fn.Call(i.ctx); return err }); err != nil {
			return nil, i.exitCode(err)
		}
	}
	if i.stdout.over {
		return nil, f.callError(ErrOutputTooLarge, "", f.spec.Limits.MaxOutput)
	}
	if f.spec.CGI {
		r, err := abi.ParseCGI(i.stdout.buf)
		if err != nil {
			return nil, f.callError(ErrFunctionFailed, fmt.Sprintf("it runs as a CGI script (--cgi): %v", err), nil)
		}
		i.status, i.header.Header = r.Status, r.Header
		return r.Body, nil
	}
	return i.stdout.buf, nil
}

// metaEnv is the call's metadata as environment variables (abi.EnvName),
// name and value by turns, for a command deployed with MetaEnv: after the
// deployment's, in the order of their keys, so that a command listing its
// environment lists it the same way every time.
func (i *instance) metaEnv(c *Call) []string {
	env := make([]string, 0, 2*(len(c.Meta)+5))
	for _, k := range slices.Sorted(maps.Keys(c.Meta)) {
		env = append(env, abi.EnvName(k), c.Meta[k])
	}
	// the host's keys last: wazero keeps the last of a repeated name
	for _, k := range []string{abi.MetaFunction, abi.MetaVersion, abi.MetaInvocation, abi.MetaTraceparent, abi.MetaTracestate} {
		if v, ok := i.hostMeta(k); ok {
			env = append(env, abi.EnvName(k), v)
		}
	}
	return env
}

// run calls into the guest with the call's deadline and ctx armed, and
// turns what went wrong into a *CallError. clean is false when an
// interruption fired, even if the guest finished first: the instance may
// be stopped at any point afterwards and must not be reused.
func (i *instance) run(ctx context.Context, call func() error) (clean bool, err error) {
	i.arm(ctx, i.fn.spec.Limits.Timeout)
	err = call()
	// the watchdog may have stopped the call just as it finished: then
	// timedOut or canceled is set
	clean = !i.disarm()
	if err != nil {
		return false, i.classify(err)
	}
	return clean, nil
}

// interrupt makes the guest stop at its next function entry or call out,
// or within 10,000 iterations of the loop it is in: by raising its flag, or on the slow runtime by closing the module.
func (i *instance) interrupt() {
	// The deadline timer and the context's cancellation may both fire.
	i.interruptMu.Lock()
	defer i.interruptMu.Unlock()
	if i.flag != nil {
		i.flag.Set(1)
		i.countdown.Set(0) // the next check looks at the flag
	} else if i.mod != nil {
		_ = i.mod.CloseWithExitCode(context.Background(), exitInterrupted)
	}
	select {
	case i.wake <- struct{}{}:
	default:
	}
}

// sleep is the guest's nanosleep: a real sleep that an interruption ends.
func (i *instance) sleep(ns int64) {
	if i.timedOut.Load() || i.canceled.Load() {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-i.wake:
	}
}

// classify turns an error from wazero into a *CallError.
func (i *instance) classify(err error) error {
	f := i.fn
	switch {
	case i.timedOut.Load():
		return f.callError(ErrTimeout, "", f.spec.Limits.Timeout)
	case i.canceled.Load():
		return f.callError(ErrCanceled, "", nil)
	}
	var ce *CallError
	if errors.As(err, &ce) {
		return ce
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() == 0 && i.stdout != nil {
			return nil // a command that exited 0 succeeded
		}
		detail := stderrSummary(i.log.head, i.log.tail)
		if i.atMemoryLimit() {
			e := f.callError(ErrMemoryLimit, fmt.Sprintf("exit code %d", exit.ExitCode()), f.spec.Limits.Memory)
			if detail != "" {
				e.Detail += ": " + detail
			}
			e.ExitCode = exit.ExitCode()
			return e
		}
		if i.stdout == nil {
			// a reactor that exits is gone, whatever its code: it was to
			// return from the call
			detail = strings.TrimSuffix("it called proc_exit instead of returning (its instance is gone): "+detail, ": ")
		}
		e := f.callError(ErrExit, detail, nil)
		e.ExitCode = exit.ExitCode()
		return e
	}
	msg := trapMessage(err)
	if i.atMemoryLimit() {
		return f.callError(ErrMemoryLimit, msg, f.spec.Limits.Memory)
	}
	return f.callError(ErrTrap, msg, nil)
}

// atMemoryLimit tells whether a failure is most likely the memory limit's
// doing: the memory cannot grow by another page, or the guest said it ran
// out of memory (a Go runtime grows by several pages at once and dies with
// "fatal error: out of memory" well before the last page).
func (i *instance) atMemoryLimit() bool {
	if i.mem == nil {
		return false
	}
	if uint64(i.mem.Size())+pageSize > uint64(i.fn.spec.Limits.pages())*pageSize {
		return true
	}
	oom := []byte("out of memory")
	return bytes.Contains(i.log.head, oom) || bytes.Contains(i.log.tail, oom)
}

// trapMessage makes one line of a wazero trap error: the message and the
// innermost guest function, e.g. "wasm error: unreachable (in $boom)".
func trapMessage(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	msg := strings.TrimSpace(lines[0])
	for k, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "wasm stack trace:") && k+1 < len(lines) {
			frame := strings.TrimSpace(lines[k+1])
			if p := strings.IndexByte(frame, '('); p > 0 {
				frame = frame[:p]
			}
			frame = strings.TrimPrefix(frame, ".") // anonymous instances have no module name
			msg += " (in " + frame + ")"
			break
		}
	}
	return msg
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// emitLogs hands the call's log records to the sink.
func (i *instance) emitLogs() {
	if !i.log.used {
		return
	}
	if recs := i.log.flush(); len(recs) > 0 {
		i.fn.host.cfg.sink.Emit(recs)
	}
	i.log.records = i.log.records[:0]
}

// memSize is the size of the instance's linear memory (0 without one).
func (i *instance) memSize() int64 {
	if i.mem == nil {
		return 0
	}
	return int64(i.mem.Size())
}

// close frees the instance, its share of the budget and its hold of the
// compiled module.
func (i *instance) close() {
	i.fn.host.watch.remove(i)
	if i.mod != nil {
		_ = i.mod.Close(context.Background())
	}
	h := i.fn.host
	h.uncharge(i.cost)
	h.release(i.entry)
	h.instances.Add(-1)
}

// limitedBuffer collects a WASI command's stdout up to the output limit.
type limitedBuffer struct {
	buf   []byte
	limit int
	over  bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > b.limit {
		b.over = true
		return 0, errOutputLimit
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

var (
	errOutputLimit = errors.New("output limit reached")
	errInterrupted = errors.New("interrupted")
)
