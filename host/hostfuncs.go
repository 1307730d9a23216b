package host

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/abi"
)

// instantiateHostModule adds the "sluice" import module to a runtime. Its
// functions find the calling instance in the context the host called the
// guest with.
func instantiateHostModule(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(abi.HostModule)
	fns := map[string]api.GoModuleFunc{
		abi.ImportOutput:  hostOutput,
		abi.ImportFail:    hostFail,
		abi.ImportLog:     hostLog,
		abi.ImportMetaGet: hostMetaGet,

		abi.ImportHTTPStatus: hostHTTPStatus,
		abi.ImportHTTPHeader: hostHTTPHeader,

		abi.ImportErrorCode: hostErrorCode,
	}
	for _, name := range abi.HostImports() {
		sig, _ := abi.HostSignature(name)
		b.NewFunctionBuilder().
			WithGoModuleFunction(fns[name], sig.Params, sig.Results).
			WithName(name).
			Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// guestBytes returns a view of guest memory, or traps the guest with a
// message naming the import if the range is out of bounds.
func guestBytes(mod api.Module, what string, ptr, n uint32) []byte {
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Errorf("sluice.%s: pointer %d + length %d is outside the guest's memory (%d bytes)", what, ptr, n, mod.Memory().Size()))
	}
	return b
}

func hostOutput(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	if inst == nil {
		return
	}
	if limit := inst.fn.spec.Limits.MaxOutput; int(n) > limit {
		inst.outErr = inst.fn.callError(ErrOutputTooLarge, fmt.Sprintf("got %s", FormatBytes(uint64(n))), limit)
		return
	}
	inst.out = append([]byte(nil), guestBytes(mod, abi.ImportOutput, ptr, n)...)
	inst.outErr = nil
}

func hostFail(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		return
	}
	msg := guestBytes(mod, abi.ImportFail, uint32(stack[0]), uint32(stack[1]))
	inst.failMsg = truncate(oneLine(string(msg)), 1000)
}

// hostErrorCode sets the code of the call's failure. A code that is not
// one (abi.ValidErrorCode) is not kept: the failure's message says so.
func hostErrorCode(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		return
	}
	n := min(uint32(stack[1]), 2*abi.MaxErrorCode) // enough to show a wrong one
	code := string(guestBytes(mod, abi.ImportErrorCode, uint32(stack[0]), n))
	inst.failCode, inst.badCode = "", ""
	if abi.ValidErrorCode(code) && uint32(stack[1]) == n {
		inst.failCode = code
	} else {
		inst.badCode = code
	}
}

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		return
	}
	msg := guestBytes(mod, abi.ImportLog, uint32(stack[1]), uint32(stack[2]))
	if len(msg) > maxLineBytes {
		inst.log.cut += len(msg) - maxLineBytes
		msg = msg[:maxLineBytes]
	}
	inst.log.add("log", abi.Level(int32(stack[0])), string(msg))
}

func hostMetaGet(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	key := guestBytes(mod, abi.ImportMetaGet, uint32(stack[0]), uint32(stack[1]))
	bufPtr, bufCap := uint32(stack[2]), uint32(stack[3])
	value, ok := "", false
	if inst != nil {
		value, ok = inst.meta(string(key))
	}
	if !ok {
		stack[0] = uint64(^uint32(0)) // -1 as i32
		return
	}
	n := uint32(len(value))
	if n > bufCap {
		n = bufCap
	}
	if n > 0 {
		guestBytes(mod, abi.ImportMetaGet, bufPtr, n) // bounds check
		mod.Memory().WriteString(bufPtr, value[:n])
	}
	stack[0] = uint64(uint32(len(value)))
}

// hostHTTPStatus sets the call's HTTP status. One out of range fails the
// call once it returns (the instance stays usable); a later call replaces
// the status.
func hostHTTPStatus(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		return
	}
	code := int64(int32(uint32(stack[0])))
	if err := abi.CheckStatus(code); err != nil {
		inst.responseError(abi.ImportHTTPStatus, err)
		return
	}
	inst.status = int(code)
}

// hostHTTPHeader adds one value to the call's HTTP response headers. A
// name or value the guest may not set, or one past the limits, fails the
// call once it returns, and the values after it are ignored.
func hostHTTPHeader(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		return
	}
	name := guestBytes(mod, abi.ImportHTTPHeader, uint32(stack[0]), uint32(stack[1]))
	value := guestBytes(mod, abi.ImportHTTPHeader, uint32(stack[2]), uint32(stack[3]))
	if inst.respErr != nil {
		return
	}
	// one copy of both out of the guest's memory
	var b strings.Builder
	b.Grow(len(name) + len(value))
	b.Write(name)
	b.Write(value)
	both := b.String()
	if err := inst.header.Add(both[:len(name)], both[len(name):]); err != nil {
		inst.responseError(abi.ImportHTTPHeader, err)
	}
}

// responseError records the first status or header the guest may not
// set: the call fails with it.
func (i *instance) responseError(what string, err error) {
	if i.respErr == nil {
		i.respErr = i.fn.callError(ErrFunctionFailed, fmt.Sprintf("sluice.%s: %v", what, err), nil)
	}
}

// meta looks up a metadata key for the current call: the host's own
// (hostMeta), else the caller's (Call.Meta).
func (i *instance) meta(key string) (string, bool) {
	if v, ok := i.hostMeta(key); ok {
		return v, true
	}
	if i.call == nil {
		return "", false
	}
	v, ok := i.call.Meta[key]
	return v, ok
}

// hostMeta looks up a metadata key the host sets: the function, its
// version, the call's id and the call's trace context (from the call's
// context, logctx.WithTrace), made only when a guest asks.
func (i *instance) hostMeta(key string) (string, bool) {
	switch key {
	case abi.MetaFunction:
		return i.fn.spec.Name, true
	case abi.MetaVersion:
		return strconv.Itoa(i.fn.spec.Version), true
	case abi.MetaInvocation:
		if i.call != nil {
			return i.callID(), true
		}
	case abi.MetaTraceparent:
		if i.call != nil && !i.trace.IsZero() {
			return i.trace.Traceparent(), true
		}
	case abi.MetaTracestate:
		if i.call != nil && i.trace.State != "" {
			return i.trace.State, true
		}
	}
	return "", false
}
