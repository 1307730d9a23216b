package host

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/units"
)

// Defaults for a function's limits. Each one is what a user gets when they
// set nothing, so each is chosen to be safe first and generous second.
const (
	// DefaultMemory is the linear memory one instance may use. A Go guest
	// starts at about 2.3 MiB and a C or WAT guest at one 64 KiB page; 64 MiB
	// leaves room for real work while DefaultConcurrency instances of it
	// still fit comfortably in a small node.
	DefaultMemory = 64 << 20
	// DefaultTimeout bounds one call. Long enough for real request work,
	// short enough that a stuck guest frees its slot within a minute.
	DefaultTimeout = 30 * time.Second
	// DefaultConcurrency is how many calls of one function run at once (and
	// so how many reactor instances it may keep). Warm calls are CPU-bound
	// and take microseconds, so more than a few per core only queues; 32
	// also absorbs guests that sleep.
	DefaultConcurrency = 32
	// DefaultMaxInput and DefaultMaxOutput bound a call's input and output.
	// 6 MiB is the request and response size of AWS Lambda's synchronous
	// invocations, which users already design for.
	DefaultMaxInput  = 6 << 20
	DefaultMaxOutput = 6 << 20

	// MaxMemory is the largest memory limit a function may ask for: all of
	// a 32-bit linear memory.
	MaxMemory = 4 << 30
	// MaxTimeout is the longest timeout a function may ask for: AWS
	// Lambda's, which users already design for. A longer job is a workflow
	// of shorter calls, which survives a restart of the daemon.
	MaxTimeout = 15 * time.Minute
	// MaxConcurrency bounds the calls of one function that may run at once
	// (and so its instances): AWS Lambda's default for a whole account.
	// Calls are CPU-bound and guests have no network, so beyond a few per
	// core more only queue; each may hold an instance of --memory.
	MaxConcurrency = 1000
	// MaxIOSize bounds a call's input and output limits: a call holds its
	// input and output in memory, several times over between HTTP, NATS
	// and the guest.
	MaxIOSize = 1 << 30
	// pageSize is the WebAssembly page size.
	pageSize = 64 << 10
	// tableElementSize is what wazero holds per table element.
	tableElementSize = 8
)

// Limits bound what one function may use. The zero value of a field means
// its default.
type Limits struct {
	// Memory is the most linear memory an instance may have, in bytes,
	// rounded up to whole 64 KiB pages. memory.grow beyond it fails.
	Memory uint64 `json:"memory,omitempty"`
	// Timeout is the wall-clock time one call may take; a guest still
	// running then is interrupted, even in an endless loop.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Concurrency is how many calls may run at once. Further calls wait for
	// a free slot until their context ends, up to waitersPerSlot of them
	// per slot; calls beyond those are refused with ErrBusy.
	Concurrency int `json:"concurrency,omitempty"`
	// MaxInput and MaxOutput bound the bytes of a call's input and output.
	MaxInput  int `json:"max_input,omitempty"`
	MaxOutput int `json:"max_output,omitempty"`
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.Memory == 0 {
		l.Memory = DefaultMemory
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	if l.Concurrency == 0 {
		l.Concurrency = DefaultConcurrency
	}
	if l.MaxInput == 0 {
		l.MaxInput = DefaultMaxInput
	}
	if l.MaxOutput == 0 {
		l.MaxOutput = DefaultMaxOutput
	}
	return l
}

// Validate reports a limit out of range, saying which, its range and the
// flag that sets it. The error wraps ErrInvalidConfig.
func (l Limits) Validate() error {
	var msg string
	switch {
	case l.Memory > MaxMemory:
		msg = fmt.Sprintf("memory limit %s is over the maximum of %s (--memory)", FormatBytes(l.Memory), FormatBytes(MaxMemory))
	case l.Memory != 0 && l.Memory < pageSize:
		msg = fmt.Sprintf("memory limit %s is under one 64 KiB page (--memory)", FormatBytes(l.Memory))
	case l.Timeout < 0:
		msg = fmt.Sprintf("timeout %s is negative (--timeout)", l.Timeout)
	case l.Timeout > MaxTimeout:
		msg = fmt.Sprintf("timeout %s is over the maximum of %s (--timeout): make a long job a workflow of shorter calls", l.Timeout, MaxTimeout)
	case l.Concurrency < 0 || l.Concurrency > MaxConcurrency:
		msg = fmt.Sprintf("concurrency %d is out of range: 1 to %d (--concurrency)", l.Concurrency, MaxConcurrency)
	case l.MaxInput < 0 || l.MaxInput > MaxIOSize:
		msg = fmt.Sprintf("max input %d is out of range: 1 B to %s (--max-input)", l.MaxInput, FormatBytes(MaxIOSize))
	case l.MaxOutput < 0 || l.MaxOutput > MaxIOSize:
		msg = fmt.Sprintf("max output %d is out of range: 1 B to %s (--max-output)", l.MaxOutput, FormatBytes(MaxIOSize))
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, msg)
}

// pages is the memory limit in 64 KiB pages.
func (l Limits) pages() uint32 {
	return uint32((l.Memory + pageSize - 1) / pageSize)
}

// Defaults of a Host's Config.
const (
	// DefaultIdleTimeout is how long an idle instance, and compiled code no
	// call uses, are kept for the next call. A warm call saves an
	// instantiation (2 ms for a Go guest) and a load from the disk cache
	// (25 ms and 80 ms of CPU for a Go guest); after five minutes without
	// a call the memory (3-5 MB per Go instance, 17 MB per Go module) is
	// worth more to other functions.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultCompileTimeout bounds one compilation. wazero compiles real
	// code at about 0.7 µs per byte on one core of a 2-core VM: a 20 MB Go
	// guest in 14 s, a module of the largest size (MaxModuleSize) in about
	// 25 s. Compilation stops between two functions, at most a second or
	// two after the deadline (see wasmbin.DefaultLimits).
	DefaultCompileTimeout = 2 * time.Minute
	// MaxModuleSize bounds a module's size: Go guests are 2-4 MB, one
	// importing net/http, go/types, html/template and crypto/tls 20 MB.
	// Compiling holds about 8 bytes of heap per byte of module, and the
	// compiled module 6 (most of it machine code): 32 MiB is at most about
	// 250 MB while compiling, 200 MB compiled.
	MaxModuleSize = 32 << 20
)

// Config configures a Host. It is immutable: each With method returns a
// copy. The zero value is not valid; start from NewConfig.
type Config struct {
	cacheDir       string
	sink           LogSink
	logger         *slog.Logger
	idleTimeout    time.Duration
	budget         uint64
	compileTimeout time.Duration
	http           HTTPDoer
	snapshots      bool
}

// NewConfig returns the default configuration: compiled code cached in
// memory only, guest logs discarded, no memory budget, reactor instances
// made from snapshots.
func NewConfig() Config {
	return Config{sink: discardSink{}, logger: slog.New(slog.DiscardHandler),
		idleTimeout: DefaultIdleTimeout, compileTimeout: DefaultCompileTimeout, snapshots: true}
}

// WithSnapshots sets whether reactor instances are made from a snapshot
// (the default): the first instance of a module is initialised (a Go
// reactor's runtime start, _initialize), its state copied, and every later
// instance made from the copy instead of initialising again, which makes a
// Go guest's cold start several times faster. A module whose
// initialisation is not safe to share runs it in every instance, as with
// false. See docs/RATIONALE.md, "Instances from a snapshot".
func (c Config) WithSnapshots(on bool) Config {
	c.snapshots = on
	return c
}

// WithCacheDir keeps compiled code in dir, so that a restarted host loads
// it instead of compiling again. "" keeps it in memory only. Every entry
// is checked against a checksum the host wrote when it compiled it, before
// wazero reads it: an entry that does not match is removed and its module
// compiled again.
func (c Config) WithCacheDir(dir string) Config {
	c.cacheDir = dir
	return c
}

// WithLogSink sends every guest log record (stderr lines, sluice.log calls,
// failed calls) to s.
func (c Config) WithLogSink(s LogSink) Config {
	if s == nil {
		s = discardSink{}
	}
	c.sink = s
	return c
}

// WithLogger sets the logger for the host's own events (compilation,
// fallbacks). Guest logs go to the LogSink instead.
func (c Config) WithLogger(l *slog.Logger) Config {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	c.logger = l
	return c
}

// WithIdleTimeout sets how long an instance waits in its function's pool
// for a call, and compiled code no call uses is kept, before they are
// released. 0 keeps them until the memory budget needs the room.
func (c Config) WithIdleTimeout(d time.Duration) Config {
	c.idleTimeout = d
	return c
}

// WithMemoryBudget bounds the memory the host's compiled code and
// instances may use, in bytes (0: no bound). When loading code or making
// an instance would exceed it, the host first releases idle instances,
// then compiled code no call uses, least recently used first; if that is
// not enough, the load or call fails with ErrMemoryBudget. Costs are
// estimates (see estimateModule and estimateInstance); an instance's
// memory growing during a call is counted when the call ends.
func (c Config) WithMemoryBudget(bytes uint64) Config {
	c.budget = bytes
	return c
}

// WithCompileTimeout bounds one compilation (0: DefaultCompileTimeout).
func (c Config) WithCompileTimeout(d time.Duration) Config {
	if d <= 0 {
		d = DefaultCompileTimeout
	}
	c.compileTimeout = d
	return c
}

// WithHTTP sends guests' outbound HTTP requests (an Extism plugin's
// http_request) through do, which decides where they may go. Without it
// every request is refused.
func (c Config) WithHTTP(do HTTPDoer) Config {
	c.http = do
	return c
}

// FormatBytes formats a byte count the way limits are written on the
// command line: "64 MiB", "1.5 GiB", "512 B".
func FormatBytes(n uint64) string { return units.Bytes(n) }

// ParseBytes parses a size as written on the command line: "64MiB",
// "64Mi", "64M" (all binary: 64 x 2^20), "512KiB", "1GiB", or plain bytes.
func ParseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional unit, like 64MiB", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1 << 10,
		"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1 << 20,
		"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1 << 30,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB or GiB)", s, unit)
	}
	b := v * mult
	if b >= 1<<64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return uint64(b), nil
}
