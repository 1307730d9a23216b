package eventlogtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// BlobBench is how BenchBlobs reaches a broker with a file store.
type BlobBench struct {
	// Start starts a broker on the store in dir (the same dir each time
	// for one count: a restart) and returns a connection to it, up.
	Start func(tb testing.TB, dir string) eventlog.Log
	// Stop closes the connection and stops the broker.
	Stop func(tb testing.TB, l eventlog.Log)
}

// BlobCounts are the numbers of values BenchBlobs stores: 1,000, or those
// of SLUICE_BENCH_BLOBS (comma-separated, e.g. "1000,10000"; each 1 MiB
// value is 1 MiB of disk).
func BlobCounts(tb testing.TB) []int {
	env := os.Getenv("SLUICE_BENCH_BLOBS")
	if env == "" {
		return []int{1000}
	}
	var counts []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			tb.Fatalf("SLUICE_BENCH_BLOBS=%q: want counts of values separated by commas", env)
		}
		counts = append(counts, n)
	}
	return counts
}

// BenchBlobs measures a blob store holding many values, one sub-benchmark
// per count, each on a store of its own (run it with -benchtime=1x: one
// pass stores the values):
//
//   - put-MB/s: Put of count distinct 1 MiB values, one after the other;
//   - restart-s: stopping the broker, starting it again on its store,
//     connecting, and the first Get of a stored value;
//   - heap-MiB, rss-MiB: the process's Go heap in use and resident set
//     after that restart (broker and client are in this process), after
//     a GC that returned what it could to the system;
//   - get1M-MB/s, get32M-MB/s, put32M-MB/s: one value of 1 MiB and one of
//     32 MiB;
//   - missing-ms: a Get of a name never stored;
//   - disk-MiB: the size of the store;
//   - deletes/s, deleted-disk-MiB: where Features.Delete, deleting every
//     value, and the size of the store after it.
func BenchBlobs(b *testing.B, bb BlobBench) {
	for _, n := range BlobCounts(b) {
		b.Run("values="+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				benchBlobs(b, bb, n)
			}
		})
	}
}

const mib = 1 << 20

func benchBlobs(b *testing.B, bb BlobBench, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	dir := b.TempDir()
	l := bb.Start(b, dir)
	value := make([]byte, mib)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	names := make([]string, n)
	start := time.Now()
	for i := range n {
		binary.BigEndian.PutUint64(value, uint64(i))
		names[i] = hashName(value)
		if err := l.Blobs().Put(ctx, names[i], value); err != nil {
			b.Fatalf("put value %d of %d: %v", i+1, n, err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "put-MB/s")

	bb.Stop(b, l)
	start = time.Now()
	l = bb.Start(b, dir)
	defer func() { bb.Stop(b, l) }()
	probe := n / 2
	got, err := l.Blobs().Get(ctx, names[probe])
	if err != nil {
		b.Fatalf("get a value after the restart: %v", err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "restart-s")
	binary.BigEndian.PutUint64(value, uint64(probe))
	if !bytes.Equal(got, value) {
		b.Fatalf("value %d after the restart: %d bytes, not those stored", probe, len(got))
	}
	got = nil
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/mib, "heap-MiB")
	b.ReportMetric(rssMiB(), "rss-MiB")

	const gets = 20
	start = time.Now()
	for i := range gets {
		if _, err := l.Blobs().Get(ctx, names[(probe+i)%n]); err != nil {
			b.Fatalf("get a 1 MiB value: %v", err)
		}
	}
	b.ReportMetric(gets/time.Since(start).Seconds(), "get1M-MB/s")

	big := make([]byte, 32*mib)
	for i := 0; i < len(big); i += len(value) {
		binary.BigEndian.PutUint64(value, uint64(n+i))
		copy(big[i:], value)
	}
	bigName := hashName(big)
	start = time.Now()
	if err := l.Blobs().Put(ctx, bigName, big); err != nil {
		b.Fatalf("put a 32 MiB value: %v", err)
	}
	b.ReportMetric(32/time.Since(start).Seconds(), "put32M-MB/s")
	const bigGets = 3
	start = time.Now()
	for range bigGets {
		if got, err := l.Blobs().Get(ctx, bigName); err != nil || len(got) != len(big) {
			b.Fatalf("get a 32 MiB value: %d bytes, %v", len(got), err)
		}
	}
	b.ReportMetric(bigGets*32/time.Since(start).Seconds(), "get32M-MB/s")

	const missing = 3
	start = time.Now()
	for i := range missing {
		if _, err := l.Blobs().Get(ctx, fmt.Sprintf("missing-%d", i)); !errors.Is(err, eventlog.ErrNotFound) {
			b.Fatalf("get a missing value: %v, want ErrNotFound", err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/missing, "missing-ms")
	b.ReportMetric(float64(diskSize(dir))/mib, "disk-MiB")
	if !l.Features().Delete {
		return
	}
	start = time.Now()
	for _, name := range append(names, bigName) {
		if err := l.Blobs().Delete(ctx, name); err != nil {
			b.Fatalf("delete a value: %v", err)
		}
	}
	b.ReportMetric(float64(n+1)/time.Since(start).Seconds(), "deletes/s")
	b.ReportMetric(float64(diskSize(dir))/mib, "deleted-disk-MiB")
}

// hashName names a value by its content, as the engine does.
func hashName(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// rssMiB is the process's resident set (Linux), 0 where it is unknown.
func rssMiB() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func diskSize(dir string) int64 {
	var size int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return nil
	})
	return size
}
