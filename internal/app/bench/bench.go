// Package bench measures sluice the way `sluice bench` reports it, and holds
// the Go benchmarks (`go test -bench`, `make bench`) built on the same code.
//
// Every figure is measured against a floor in the same run, on the same
// module with the same input, because absolute numbers move with the
// machine and its noise while ratios mostly do not:
//
//   - ColdStart: compilation, cache load, cold and warm calls through
//     sluice's own invoke path (package host), next to bare wazero running
//     the same module with no sluice code around it, and Process: fork/exec
//     of a native program doing the same work, what a process- or
//     container-based platform pays per call at best.
//   - HTTP, MQ and Workflow: load against a running daemon.
//
// The method (warm-up, interleaving, batching under the timer's resolution,
// percentiles) is written down in bench/README.md at the top of the
// repository, beside the committed baselines (bench/results).
package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Summary is the distribution of a set of samples.
type Summary struct {
	N                       int
	P50, P90, P99, Max, Min time.Duration
}

// Summarize sorts a copy of samples and returns their percentiles
// (nearest rank).
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return Summary{N: len(s), P50: pct(s, 0.50), P90: pct(s, 0.90), P99: pct(s, 0.99), Max: s[len(s)-1], Min: s[0]}
}

// pct is the nearest-rank percentile of sorted samples.
func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Micros converts a duration to microseconds.
func Micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// FormatDuration prints a duration with three significant digits in the
// unit that suits it: "850ns", "1.62µs", "41.3µs", "2.31ms", "1.20s".
func FormatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + FormatDuration(-d)
	}
	f := float64(d)
	switch { // thresholds where three digits would round up to the next unit
	case f < 999.5:
		return fmt.Sprintf("%.0fns", f)
	case f < 999.5e3:
		return sig3(f/1e3) + "µs"
	case f < 999.5e6:
		return sig3(f/1e6) + "ms"
	}
	return sig3(f/1e9) + "s"
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Machine describes where a benchmark ran, for its report.
type Machine struct {
	OS, Arch, CPU string
	CPUs          int
	Go, Wazero    string
}

// ThisMachine describes the machine and the build running it.
func ThisMachine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version(), CPU: cpuModel(), Wazero: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				m.Wazero = d.Version
			}
		}
	}
	return m
}

func (m Machine) String() string {
	cpu := ""
	if m.CPU != "" {
		cpu = ", " + m.CPU
	}
	return fmt.Sprintf("%s/%s, %d CPUs%s, %s, wazero %s", m.OS, m.Arch, m.CPUs, cpu, m.Go, m.Wazero)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Timer is what the clock costs to read here; samples are made long
// enough that reading it twice is noise.
type Timer struct {
	// Cost is the mean time of one time.Now and time.Since pair.
	Cost time.Duration
	// MinSample is the shortest sample a measurement takes: operations
	// shorter than that are timed in batches.
	MinSample time.Duration
}

// minSampleFloor is the least MinSample: at the usual 20–50 ns per clock
// reading it keeps the timing error of a sample under 0.5%.
const minSampleFloor = 10 * time.Microsecond

// MeasureTimer measures the cost of reading the clock.
func MeasureTimer() Timer {
	const n = 100000
	var sink time.Duration
	start := time.Now()
	for i := 0; i < n; i++ {
		t := time.Now()
		sink += time.Since(t)
	}
	cost := time.Since(start) / n
	_ = sink
	return Timer{Cost: cost, MinSample: max(minSampleFloor, 200*cost)}
}

// batchFor returns how many operations of mean duration per make one
// sample of at least t.MinSample.
func (t Timer) batchFor(per time.Duration) int {
	if per <= 0 {
		return 1
	}
	return max(1, int(math.Ceil(float64(t.MinSample)/float64(per))))
}

// warmUp runs op at least minCalls times and for at least minTime, and
// returns its mean duration over the second half of the run.
func warmUp(ctx context.Context, op func() error, minCalls int, minTime time.Duration) (time.Duration, error) {
	start := time.Now()
	var half time.Time
	halfCalls := 0
	for i := 0; ; i++ {
		if err := op(); err != nil {
			return 0, err
		}
		el := time.Since(start)
		if half.IsZero() && i+1 >= minCalls/2 && el >= minTime/2 {
			half, halfCalls = time.Now(), i+1
		}
		if i+1 >= minCalls && el >= minTime {
			n := i + 1 - halfCalls
			if n <= 0 {
				return el / time.Duration(i+1), nil
			}
			return time.Since(half) / time.Duration(n), nil
		}
		if i%64 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

// sampleInto times batch calls of op per sample, appending per-call
// means to dst.
func sampleInto(dst []time.Duration, op func() error, samples, batch int) ([]time.Duration, error) {
	for i := 0; i < samples; i++ {
		start := time.Now()
		for k := 0; k < batch; k++ {
			if err := op(); err != nil {
				return dst, err
			}
		}
		dst = append(dst, time.Since(start)/time.Duration(batch))
	}
	return dst, nil
}

// rounds is how many alternating chunks a paired measurement is cut
// into, so that drift in the machine's speed (other load, frequency,
// the GC) falls on both sides alike.
const rounds = 10

// paired measures a and b, samples each, in alternating chunks of the
// same batch size; step is called after each chunk.
func paired(ctx context.Context, a, b func() error, samples, batch int, step func()) (sa, sb []time.Duration, err error) {
	sa = make([]time.Duration, 0, samples)
	sb = make([]time.Duration, 0, samples)
	for r := 0; r < rounds; r++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		n := samples/rounds + boolInt(r < samples%rounds)
		first, second, fa, fb := a, b, &sa, &sb
		if r%2 == 1 { // alternate who goes first
			first, second, fa, fb = b, a, &sb, &sa
		}
		if *fa, err = sampleInto(*fa, first, n, batch); err != nil {
			return nil, nil, err
		}
		if *fb, err = sampleInto(*fb, second, n, batch); err != nil {
			return nil, nil, err
		}
		if step != nil {
			step()
		}
	}
	return sa, sb, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
