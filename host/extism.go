package host

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/abi"
)

// Extism plugins (abi.Extism) run on pooled instances like reactors; what
// differs is how a call's input, output and state reach the guest: through
// Extism's kernel functions (module extism:host/env), implemented here in
// Go. The kernel's memory, which Extism keeps in a module of its own, is
// host-side: a plugin sees only offsets into it (extismMemory).
//
// Per call: the kernel memory starts empty, the input is the call's, the
// output is what output_set gave last, and the export's non-zero status
// fails the call with the message of error_set. Vars (var_get/var_set)
// live as long as the instance, as Extism's plugin vars do, and go with
// it. Config (config_get) is the function's --config, fixed per version;
// the function's --env is not config: it is the WASI environment.
const (
	// maxExtismVarBytes bounds what one instance's vars hold together
	// (keys and values): Extism's own default (a manifest's
	// memory.max_var_bytes is 1 MiB). Vars are state kept between calls,
	// not storage.
	maxExtismVarBytes = 1 << 20
	// extismHTTPTimeout bounds one http_request, within the call's own
	// timeout: a plugin waiting on a slow server holds an instance.
	extismHTTPTimeout = 30 * time.Second
	// maxExtismHTTPResponse bounds the body of a response a plugin gets:
	// it is copied into the kernel memory, which the function's --memory
	// bounds too.
	maxExtismHTTPResponse = 4 << 20
	// extismBase is the first offset of the kernel memory: 0 means "no
	// block" in Extism's calls, so no block starts there.
	extismBase = 8
	// extismKeepArena is the kernel memory an idle instance keeps for its
	// next call; above it the memory is freed when the call ends.
	extismKeepArena = 64 << 10
	// extismLogLevel is what get_log_level answers: debug (Extism's 1),
	// the lowest level sluice's logs have; trace lines stay in the plugin.
	extismLogLevel = 1
)

// HTTPRequest is an outbound request of a guest (an Extism plugin's
// http_request), as the host's HTTPDoer sends it.
type HTTPRequest struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// HTTPResponse is the answer to an HTTPRequest, read whole.
type HTTPResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// HTTPDoer sends guests' outbound requests: the daemon's allow-listed
// client (sluice daemon --allow-http). Its errors are shown to the user
// as they are, so they say which host was refused and what to change.
type HTTPDoer func(ctx context.Context, r HTTPRequest) (HTTPResponse, error)

// errNoHTTP is the error of an http_request on a host without an HTTPDoer.
var errNoHTTP = errors.New("outbound HTTP is off: no host is allowed (sluice daemon --allow-http HOST)")

// extismState is an instance's Extism state: its kernel memory and the
// call's input and output, reset per call, and its vars, kept.
type extismState struct {
	mem      extismMemory
	entry    api.Function
	input    []byte
	inputOff uint64 // the block holding the input (input_offset), 0 if none
	errMsg   string // what error_set gave, "" if nothing
	errSet   bool
	callCtx  context.Context
	deadline time.Time
	// the last http_request's status and headers
	httpStatus  int32
	httpHeaders http.Header

	vars      map[string][]byte
	varsBytes int
}

// begin resets the per-call state for a call with input.
func (x *extismState) begin(ctx context.Context, input []byte, limit uint64, timeout time.Duration) {
	x.mem.reset(limit)
	x.input, x.inputOff = input, 0
	x.errMsg, x.errSet = "", false
	x.callCtx, x.deadline = ctx, time.Now().Add(timeout)
	x.httpStatus, x.httpHeaders = 0, nil
}

// end drops what the call held.
func (x *extismState) end() {
	x.input, x.callCtx, x.httpHeaders = nil, nil, nil
	x.mem.release()
}

// handleExtism runs one call of an Extism plugin's entry point. As for
// a reactor, reusable tells whether the instance may be pooled again.
func (i *instance) handleExtism(ctx context.Context, c *Call) (out []byte, reusable bool, err error) {
	f := i.fn
	i.beginCall(ctx, c)
	defer i.emitLogs()
	if i.ext == nil {
		i.ext = &extismState{}
	}
	x := i.ext
	if x.entry == nil {
		if x.entry = i.mod.ExportedFunction(f.spec.Export); x.entry == nil {
			return nil, false, f.callError(ErrTrap, fmt.Sprintf("the plugin exports no function %q (--export)", f.spec.Export), nil)
		}
	}
	x.begin(ctx, c.Input, f.spec.Limits.Memory, f.spec.Limits.Timeout)
	defer x.end()
	clean, err := i.run(ctx, func() error { return x.entry.CallWithStack(i.ctx, i.stack[:]) })
	if err != nil {
		return nil, false, err
	}
	if i.outErr != nil {
		return nil, clean, i.outErr
	}
	if rc := int32(uint32(i.stack[0])); rc != 0 {
		msg := x.errMsg
		if !x.errSet || msg == "" {
			msg = fmt.Sprintf("%s returned %d without an error message (error_set)", f.spec.Export, rc)
		}
		return nil, clean, f.callError(ErrFunctionFailed, truncate(oneLine(msg), 1000), nil)
	}
	return i.out, clean, nil
}

// extismBlock is one block of the kernel memory: [start, start+size) of
// which the first length bytes are the block's (length() answers it).
type extismBlock struct {
	start, size, length uint64
	free                bool
}

// extismMemory is a call's kernel memory: blocks laid one after the
// other in one arena, from extismBase, at most limit bytes. A freed block
// is reused by a later alloc it fits; the last one gives its room back.
// Every access is checked against the live blocks: an offset or length
// that is not inside one fails the call.
type extismMemory struct {
	arena  []byte // arena[k] is the byte at offset extismBase+k
	blocks []extismBlock
	starts map[uint64]int // block start → index in blocks
	limit  uint64
	last   int // the block of the last access
}

func (m *extismMemory) reset(limit uint64) {
	m.arena, m.blocks, m.last, m.limit = m.arena[:0], m.blocks[:0], 0, limit
	if m.starts == nil {
		m.starts = map[uint64]int{}
	}
	clear(m.starts)
}

// release frees an arena too large to keep for the next call.
func (m *extismMemory) release() {
	if cap(m.arena) > extismKeepArena {
		m.arena = nil
	}
	if cap(m.blocks) > 1024 {
		m.blocks = nil
	}
}

// errKernelMemory means an alloc would take the kernel memory past its
// limit.
type errKernelMemory struct{ want, used, limit uint64 }

func (e errKernelMemory) Error() string {
	return fmt.Sprintf("the call's Extism kernel memory would hold %s, over the function's memory limit of %s",
		FormatBytes(e.used+e.want), FormatBytes(e.limit))
}

// alloc returns the offset of a new block of n zeroed bytes; 0 for n = 0.
func (m *extismMemory) alloc(n uint64) (uint64, error) {
	if n == 0 {
		return 0, nil
	}
	for k := range m.blocks {
		b := &m.blocks[k]
		if b.free && b.size >= n {
			b.free, b.length = false, n
			clear(m.arena[b.start-extismBase : b.start-extismBase+n])
			return b.start, nil
		}
	}
	pos := (uint64(len(m.arena)) + 7) &^ 7
	if n > m.limit || pos+n > m.limit {
		return 0, errKernelMemory{want: n, used: pos, limit: m.limit}
	}
	end := int(pos + n)
	if end > cap(m.arena) {
		grown := make([]byte, end, max(end, 2*cap(m.arena)))
		copy(grown, m.arena)
		m.arena = grown
	} else {
		m.arena = m.arena[:end]
		clear(m.arena[pos:end])
	}
	start := extismBase + pos
	m.starts[start] = len(m.blocks)
	m.blocks = append(m.blocks, extismBlock{start: start, size: n, length: n})
	return start, nil
}

// block returns the live block that starts at off.
func (m *extismMemory) block(off uint64) (*extismBlock, bool) {
	k, ok := m.starts[off]
	if !ok || m.blocks[k].free {
		return nil, false
	}
	return &m.blocks[k], true
}

// free frees the block at off.
func (m *extismMemory) free(off uint64) bool {
	b, ok := m.block(off)
	if !ok {
		return false
	}
	b.free = true
	// the last blocks give their room back
	for n := len(m.blocks); n > 0 && m.blocks[n-1].free; n = len(m.blocks) {
		last := m.blocks[n-1]
		delete(m.starts, last.start)
		m.blocks = m.blocks[:n-1]
		m.arena = m.arena[:last.start-extismBase]
	}
	return true
}

// span returns the bytes [off, off+n) if they lie inside one live block.
func (m *extismMemory) span(off, n uint64) ([]byte, bool) {
	if len(m.blocks) == 0 || off < extismBase {
		return nil, false
	}
	k := m.last
	if k >= len(m.blocks) || off < m.blocks[k].start || off >= m.blocks[k].start+m.blocks[k].length {
		k = sort.Search(len(m.blocks), func(j int) bool { return m.blocks[j].start > off }) - 1
		if k < 0 {
			return nil, false
		}
	}
	b := m.blocks[k]
	if b.free || off+n < off || off+n > b.start+b.length {
		return nil, false
	}
	m.last = k
	p := off - extismBase
	return m.arena[p : p+n], true
}

// bytes returns the whole block at off.
func (m *extismMemory) bytes(off uint64) ([]byte, bool) {
	b, ok := m.block(off)
	if !ok {
		return nil, false
	}
	p := b.start - extismBase
	return m.arena[p : p+b.length], true
}

// put allocates a block holding data and returns its offset (0 for none).
func (m *extismMemory) put(data []byte) (uint64, error) {
	off, err := m.alloc(uint64(len(data)))
	if err != nil || off == 0 {
		return off, err
	}
	s, _ := m.span(off, uint64(len(data)))
	copy(s, data)
	return off, nil
}

// instantiateExtismModule adds Extism's kernel module (abi.ExtismModule)
// to a runtime.
func instantiateExtismModule(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(abi.ExtismModule)
	for _, name := range abi.ExtismImports() {
		sig, _ := abi.ExtismSignature(name)
		fn := extismFuncs[name]
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				inst := instanceFrom(ctx)
				if inst == nil || inst.ext == nil {
					panic(fmt.Errorf("%s.%s called outside an Extism call", abi.ExtismModule, name))
				}
				fn(inst, inst.ext, stack)
			}), sig.Params, sig.Results).
			WithName(name).
			Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// extismFunc is one kernel function: stack holds its parameters and
// takes its results.
type extismFunc func(i *instance, x *extismState, stack []uint64)

// trap fails the call from inside a kernel function.
func (i *instance) extismTrap(fn, format string, args ...any) {
	panic(i.fn.callError(ErrTrap, fmt.Sprintf("%s %s: ", abi.ExtismModule, fn)+fmt.Sprintf(format, args...), nil))
}

// extismSpan returns the n bytes of the kernel memory at off, or traps
// naming the kernel function if they are not all inside one live block.
func (i *instance) extismSpan(fn string, x *extismState, off, n uint64) []byte {
	b, ok := x.mem.span(off, n)
	if !ok {
		size := ""
		if n > 1 {
			size = fmt.Sprintf(" (+%d bytes)", n)
		}
		i.extismTrap(fn, "offset %d%s is outside every allocated block", off, size)
	}
	return b
}

// extismFail fails the call with ErrFunctionFailed from inside a kernel
// function: the plugin asked for something it may not have.
func (i *instance) extismFail(fn, format string, args ...any) {
	panic(i.fn.callError(ErrFunctionFailed, fmt.Sprintf("%s: ", fn)+fmt.Sprintf(format, args...), nil))
}

// extismPut copies data into a new block of the kernel memory, failing
// the call at its limit.
func (i *instance) extismPut(fn string, data []byte) uint64 {
	off, err := i.ext.mem.put(data)
	if err != nil {
		panic(i.fn.callError(ErrMemoryLimit, fmt.Sprintf("%s %s: %v", abi.ExtismModule, fn, err), i.fn.spec.Limits.Memory))
	}
	return off
}

// extismBlock returns the block at off, failing the call if there is none.
func (i *instance) extismBlock(fn string, off uint64) []byte {
	b, ok := i.ext.mem.bytes(off)
	if !ok {
		i.extismTrap(fn, "offset %d is not the start of an allocated block", off)
	}
	return b
}

var extismFuncs = map[string]extismFunc{
	"input_length": func(i *instance, x *extismState, s []uint64) { s[0] = uint64(len(x.input)) },
	"input_load_u8": func(i *instance, x *extismState, s []uint64) {
		if s[0] >= uint64(len(x.input)) {
			i.extismTrap("input_load_u8", "offset %d is outside the input (%d bytes)", s[0], len(x.input))
		}
		s[0] = uint64(x.input[s[0]])
	},
	"input_load_u64": func(i *instance, x *extismState, s []uint64) {
		if n := uint64(len(x.input)); n < 8 || s[0] > n-8 {
			i.extismTrap("input_load_u64", "offset %d (+8 bytes) is outside the input (%d bytes)", s[0], n)
		}
		s[0] = binary.LittleEndian.Uint64(x.input[s[0]:])
	},
	"input_offset": func(i *instance, x *extismState, s []uint64) {
		if x.inputOff == 0 {
			x.inputOff = i.extismPut("input_offset", x.input)
		}
		s[0] = x.inputOff
	},
	"output_set": func(i *instance, x *extismState, s []uint64) {
		off, n := s[0], s[1]
		if limit := i.fn.spec.Limits.MaxOutput; n > uint64(limit) {
			i.outErr = i.fn.callError(ErrOutputTooLarge, fmt.Sprintf("got %s", FormatBytes(n)), limit)
			return
		}
		if n == 0 {
			i.out, i.outErr = []byte{}, nil
			return
		}
		b, ok := x.mem.span(off, n)
		if !ok {
			i.extismTrap("output_set", "offset %d (+%d bytes) is outside every allocated block", off, n)
		}
		i.out, i.outErr = append([]byte(nil), b...), nil
	},
	"error_set": func(i *instance, x *extismState, s []uint64) {
		if s[0] == 0 {
			x.errMsg, x.errSet = "", false
			return
		}
		x.errMsg, x.errSet = string(i.extismBlock("error_set", s[0])), true
	},
	"error_get": func(i *instance, x *extismState, s []uint64) {
		s[0] = 0
		if x.errSet {
			s[0] = i.extismPut("error_get", []byte(x.errMsg))
		}
	},
	"config_get": func(i *instance, x *extismState, s []uint64) {
		key := i.extismBlock("config_get", s[0])
		v, ok := i.fn.spec.Config[string(key)]
		s[0] = 0
		if ok {
			s[0] = i.extismPut("config_get", []byte(v))
		}
	},
	"var_get": func(i *instance, x *extismState, s []uint64) {
		v, ok := x.vars[string(i.extismBlock("var_get", s[0]))]
		s[0] = 0
		if ok {
			s[0] = i.extismPut("var_get", v)
		}
	},
	"var_set": func(i *instance, x *extismState, s []uint64) {
		key := string(i.extismBlock("var_set", s[0]))
		old, had := x.vars[key]
		if s[1] == 0 {
			if had {
				delete(x.vars, key)
				x.varsBytes -= len(key) + len(old)
			}
			return
		}
		v := i.extismBlock("var_set", s[1])
		size := x.varsBytes + len(v) - len(old)
		if !had {
			size += len(key)
		}
		if size > maxExtismVarBytes {
			i.extismFail("var_set", "the plugin's vars would hold %s, over their limit of %s: vars keep small state between calls", FormatBytes(uint64(size)), FormatBytes(maxExtismVarBytes))
		}
		if x.vars == nil {
			x.vars = map[string][]byte{}
		}
		x.vars[key], x.varsBytes = append([]byte(nil), v...), size
	},
	"log_trace":     extismLog("log_trace", abi.LevelDebug),
	"log_debug":     extismLog("log_debug", abi.LevelDebug),
	"log_info":      extismLog("log_info", abi.LevelInfo),
	"log_warn":      extismLog("log_warn", abi.LevelWarn),
	"log_error":     extismLog("log_error", abi.LevelError),
	"get_log_level": func(i *instance, x *extismState, s []uint64) { s[0] = extismLogLevel },
	"http_request":  extismHTTPRequest,
	"http_status_code": func(i *instance, x *extismState, s []uint64) {
		s[0] = uint64(uint32(x.httpStatus))
	},
	"http_headers": func(i *instance, x *extismState, s []uint64) {
		s[0] = 0
		if x.httpHeaders == nil {
			return
		}
		flat := make(map[string]string, len(x.httpHeaders))
		for k, v := range x.httpHeaders {
			flat[strings.ToLower(k)] = strings.Join(v, ", ")
		}
		b, _ := json.Marshal(flat)
		s[0] = i.extismPut("http_headers", b)
	},
	"alloc": func(i *instance, x *extismState, s []uint64) {
		off, err := x.mem.alloc(s[0])
		if err != nil {
			panic(i.fn.callError(ErrMemoryLimit, fmt.Sprintf("%s alloc(%d): %v", abi.ExtismModule, s[0], err), i.fn.spec.Limits.Memory))
		}
		s[0] = off
	},
	"free": func(i *instance, x *extismState, s []uint64) {
		if s[0] != 0 && !x.mem.free(s[0]) {
			i.extismTrap("free", "offset %d is not the start of an allocated block (freed twice?)", s[0])
		}
	},
	"length":        extismLength,
	"length_unsafe": extismLength,
	"load_u8":       func(i *instance, x *extismState, s []uint64) { s[0] = uint64(i.extismSpan("load_u8", x, s[0], 1)[0]) },
	"load_u64": func(i *instance, x *extismState, s []uint64) {
		s[0] = binary.LittleEndian.Uint64(i.extismSpan("load_u64", x, s[0], 8))
	},
	"store_u8": func(i *instance, x *extismState, s []uint64) { i.extismSpan("store_u8", x, s[0], 1)[0] = byte(s[1]) },
	"store_u64": func(i *instance, x *extismState, s []uint64) {
		binary.LittleEndian.PutUint64(i.extismSpan("store_u64", x, s[0], 8), s[1])
	},
}

// extismLength answers a block's length, 0 for an offset that starts no
// live block (as Extism's kernel does: the PDKs ask length(0)).
func extismLength(i *instance, x *extismState, s []uint64) {
	b, ok := x.mem.block(s[0])
	s[0] = 0
	if ok {
		s[0] = b.length
	}
}

func extismLog(name string, level abi.Level) extismFunc {
	return func(i *instance, x *extismState, s []uint64) {
		msg := i.extismBlock(name, s[0])
		if len(msg) > maxLineBytes {
			i.log.cut += len(msg) - maxLineBytes
			msg = msg[:maxLineBytes]
		}
		i.log.add("log", level, string(msg))
	}
}

// extismRequest is the JSON of an http_request's request block.
type extismRequest struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// extismHTTPRequest sends a plugin's request through the host's HTTPDoer
// (the daemon's allow-list); a refused or failed request fails the call.
func extismHTTPRequest(i *instance, x *extismState, s []uint64) {
	var req extismRequest
	if err := json.Unmarshal(i.extismBlock("http_request", s[0]), &req); err != nil {
		i.extismFail("http_request", "the request is not Extism's JSON ({\"url\", \"method\", \"headers\"}): %v", err)
	}
	var body []byte
	if s[1] != 0 {
		body = append([]byte(nil), i.extismBlock("http_request", s[1])...)
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	where := req.URL
	if u, err := url.Parse(req.URL); err == nil && u.Host != "" {
		where = u.Host
	}
	do := i.fn.host.cfg.http
	if do == nil {
		i.extismFail("http_request", "%s %s: %v", req.Method, where, errNoHTTP)
	}
	h := http.Header{}
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	deadline := x.deadline
	if d := time.Now().Add(extismHTTPTimeout); d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(x.callCtx, deadline)
	defer cancel()
	resp, err := do(ctx, HTTPRequest{Method: req.Method, URL: req.URL, Header: h, Body: body})
	if err != nil {
		i.extismFail("http_request", "%s %s: %v", req.Method, where, err)
	}
	if len(resp.Body) > maxExtismHTTPResponse {
		i.extismFail("http_request", "%s %s: the response's body is %s, over the limit of %s", req.Method, where, FormatBytes(uint64(len(resp.Body))), FormatBytes(maxExtismHTTPResponse))
	}
	x.httpStatus, x.httpHeaders = int32(resp.Status), resp.Header
	if x.httpHeaders == nil {
		x.httpHeaders = http.Header{}
	}
	s[0] = i.extismPut("http_request", resp.Body)
}
