package host

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
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
	// pageSize is the WebAssembly page size.
	pageSize = 64 << 10
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
	// a free slot until their context ends.
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

// Validate reports a limit out of range, saying which and why.
func (l Limits) Validate() error {
	switch {
	case l.Memory > MaxMemory:
		return fmt.Errorf("memory limit %s is over the maximum of 4 GiB", FormatBytes(l.Memory))
	case l.Memory != 0 && l.Memory < pageSize:
		return fmt.Errorf("memory limit %s is under one 64 KiB page", FormatBytes(l.Memory))
	case l.Timeout < 0:
		return fmt.Errorf("timeout %s is negative", l.Timeout)
	case l.Concurrency < 0:
		return fmt.Errorf("concurrency %d is negative", l.Concurrency)
	case l.MaxInput < 0 || l.MaxOutput < 0:
		return fmt.Errorf("max input and output sizes must not be negative")
	}
	return nil
}

// pages is the memory limit in 64 KiB pages.
func (l Limits) pages() uint32 {
	return uint32((l.Memory + pageSize - 1) / pageSize)
}

// Config configures a Host. It is immutable: each With method returns a
// copy. The zero value is not valid; start from NewConfig.
type Config struct {
	cacheDir string
	sink     LogSink
	logger   *slog.Logger
	idleTTL  time.Duration
}

// NewConfig returns the default configuration: compiled code cached in
// memory only, guest logs discarded.
func NewConfig() Config {
	return Config{sink: discardSink{}, logger: slog.New(slog.DiscardHandler), idleTTL: time.Minute}
}

// WithCacheDir keeps compiled code in dir, so that a restarted host loads
// it instead of compiling again. "" keeps it in memory only.
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

// WithCompiledTTL sets how long compiled code no function uses any more is
// kept, so that redeploying or reloading the same module is instant.
func (c Config) WithCompiledTTL(d time.Duration) Config {
	c.idleTTL = d
	return c
}

// FormatBytes formats a byte count the way limits are written on the
// command line: "64 MiB", "1.5 GiB", "512 B".
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := []string{"KiB", "MiB", "GiB", "TiB"}[exp]
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), suffix)
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

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
	return uint64(v * mult), nil
}
