package host

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/host/internal/wasmbin"
)

// budget is the host's memory accounting: what compiled modules and live
// instances are estimated to hold, against Config.WithMemoryBudget.
type budget struct {
	limit int64 // 0: no budget
	used  atomic.Int64
	// full is set when a charge found no room, and cleared when one
	// succeeds or memory is released: what Health reports.
	full atomic.Bool
	// evictMu serializes evictions, so that callers short of room do not
	// all release something for the same shortfall.
	evictMu sync.Mutex
	counters
}

// What things cost, measured with wazero v1.12 on linux/amd64 (heap after
// a collection, plus the machine code wazero maps outside the heap, whose
// size the compilation cache's entries give). The estimates err on the
// high side; RSS is often lower, since Go does not touch the pages of a
// linear memory the guest has not written.
const (
	// machineCodePerCodeByte: wazero emits about 7 bytes of machine code
	// per byte of function bodies (Go guests: 1.6 MB of code, 11 MB of
	// machine code; 12.3 MB, 85 MB), and holds 1.5 bytes of heap per byte
	// of code (the decoded bodies and their metadata).
	machineCodePerCodeByte = 7
	codeHeapPerCodeByte    = 1.5
	// heapPerFunction is wazero's bookkeeping per function of a compiled
	// module (types, offsets, names), and moduleOverhead what any compiled
	// module holds (entry preambles, a page of machine code at least).
	heapPerFunction = 1 << 10
	moduleOverhead  = 32 << 10
	// instanceHeapPerFunction is what an instance holds per function,
	// imported or defined (wazero's function table and module context):
	// measured 250-500 bytes. instanceOverhead is what any instance holds.
	instanceHeapPerFunction = 512
	instanceHeapPerGlobal   = 32
	instanceOverhead        = 8 << 10
)

// estimateModule is what a compiled module holds, from what Check counted:
// 16.3 MB estimated for a 2.7 MB Go guest whose compiled module measured
// 16.5 MB (4.8 MB of heap, 11 MB of machine code); 122 MB for a 20 MB one
// (105 MB measured); 35 KB for a tiny WAT module (31 KB).
func estimateModule(st wasmbin.Stats) int64 {
	code := float64(st.CodeBytes)
	return int64(code*(machineCodePerCodeByte+codeHeapPerCodeByte)) + int64(st.DataBytes) +
		int64(st.Functions)*heapPerFunction + moduleOverhead
}

// estimateInstance is what an instance of a module holds with a linear
// memory of memBytes: the memory, its tables (8 bytes per element), and
// per function and global: 4.0 MB for a Go guest's instance after its
// first call (3.9 MB measured).
func estimateInstance(st wasmbin.Stats, memBytes uint64) int64 {
	return int64(memBytes) + int64(st.TableElements)*tableElementSize +
		int64(st.Functions+st.ImportedFuncs)*instanceHeapPerFunction + int64(st.Globals)*instanceHeapPerGlobal + instanceOverhead
}

// charge takes n bytes of the budget, releasing idle instances, then
// compiled modules no call holds, least recently used first, until they
// fit. It fails with ErrMemoryBudget if they do not, and the budget is
// then full (Health) until memory is given back.
func (h *Host) charge(n int64) error { return h.chargeFor(n, true) }

// chargeAside is charge for work no call waits for (a snapshot made in
// the background): a refusal does not mark the budget full, since no call
// was refused.
func (h *Host) chargeAside(n int64) error { return h.chargeFor(n, false) }

func (h *Host) chargeFor(n int64, call bool) error {
	if h.tryCharge(n) {
		return nil
	}
	h.evictMu.Lock()
	defer h.evictMu.Unlock()
	for !h.tryCharge(n) {
		if n, ok := h.evictInstance(time.Time{}); ok {
			if n > 0 {
				h.evictedInstances.Add(1)
			}
			continue
		}
		if _, ok := h.evictModule(time.Time{}); ok {
			h.evictedModules.Add(1)
			continue
		}
		if call {
			h.full.Store(true)
		}
		return fmt.Errorf("%w: %s more is needed, %s of %s in use by compiled code and instances of calls in progress (--memory-budget)",
			ErrMemoryBudget, FormatBytes(uint64(n)), FormatBytes(uint64(max(h.used.Load(), 0))), FormatBytes(uint64(h.limit)))
	}
	return nil
}

func (h *Host) tryCharge(n int64) bool {
	for {
		used := h.used.Load()
		if h.limit > 0 && used+n > h.limit && n > 0 {
			return false
		}
		if h.used.CompareAndSwap(used, used+n) {
			h.full.Store(false)
			return true
		}
	}
}

// uncharge gives n bytes back.
func (h *Host) uncharge(n int64) {
	if h.used.Add(-n) < h.limit {
		h.full.Store(false)
	}
}

// adjust changes a charge by delta, as an instance's memory grew or
// shrank: memory in use is counted whether or not it fits.
func (h *Host) adjust(delta int64) {
	if delta < 0 {
		h.uncharge(-delta)
	} else {
		h.used.Add(delta)
	}
}

// evictInstance closes the idle instance that has waited longest, of any
// function, if it went idle before cutoff (the zero time: any). It
// reports whether it closed one (or should be called again: an instance
// was taken by a call meanwhile), and what it was charged.
func (h *Host) evictInstance(cutoff time.Time) (int64, bool) {
	h.mu.Lock()
	funcs := make([]*Function, 0, len(h.funcs))
	for f := range h.funcs {
		funcs = append(funcs, f)
	}
	h.mu.Unlock()
	var oldest *Function
	var since time.Time
	for _, f := range funcs {
		if t, ok := f.oldestIdle(); ok && (oldest == nil || t.Before(since)) {
			oldest, since = f, t
		}
	}
	if oldest == nil || (!cutoff.IsZero() && !since.Before(cutoff)) {
		return 0, false
	}
	inst := oldest.takeIdle(since)
	if inst == nil {
		return 0, true // taken by a call meanwhile: look again
	}
	cost := inst.cost
	inst.close()
	return cost, true
}

// evictModule frees the compiled module no call or instance has held for
// longest, if that was before cutoff (the zero time: any). It reports
// whether it freed one, and what it was charged.
func (h *Host) evictModule(cutoff time.Time) (int64, bool) {
	h.mu.Lock()
	var lru *moduleEntry
	for _, e := range h.modules {
		select {
		case <-e.done:
		default:
			continue // being compiled
		}
		if e.mod == nil || e.refs > 0 || (!cutoff.IsZero() && !e.used.Before(cutoff)) {
			continue
		}
		if lru == nil || e.used.Before(lru.used) {
			lru = e
		}
	}
	if lru != nil {
		delete(h.modules, lru.key)
	}
	h.mu.Unlock()
	if lru == nil {
		return 0, false
	}
	lru.mod.compiled.Close(h.ctx)
	h.uncharge(lru.cost)
	return lru.cost, true
}

// sweepInterval is how often the janitor looks for what has been idle
// for the idle timeout: a quarter of it (an instance is released at most
// 25% late), between 10 ms and 30 s.
func sweepInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/4, 10*time.Millisecond), 30*time.Second)
}

// freeOSMemoryAfter is how much a sweep must release before the host
// asks the Go runtime to return free memory to the OS at once (a
// collection, then giving back every free page): without it the runtime
// gives it back over minutes, and a daemon that ran 50 Go functions keeps
// their memory long after they stopped. Below it the collection is not
// worth it.
const freeOSMemoryAfter = 64 << 20

// sweep releases, until Close, idle instances and unused compiled modules
// once they have been idle for timeout.
func (h *Host) sweep(timeout time.Duration) {
	defer close(h.janitorD)
	t := time.NewTicker(sweepInterval(timeout))
	defer t.Stop()
	for {
		select {
		case <-h.janitor:
			return
		case now := <-t.C:
			cutoff := now.Add(-timeout)
			var freed int64
			for {
				n, ok := h.evictInstance(cutoff)
				if !ok {
					break
				}
				freed += n
				if n > 0 {
					h.expiredInstances.Add(1)
				}
			}
			for {
				n, ok := h.evictModule(cutoff)
				if !ok {
					break
				}
				freed += n
				h.expiredModules.Add(1)
			}
			freed += h.mems.dropIdle()
			if freed >= freeOSMemoryAfter {
				debug.FreeOSMemory()
			}
		}
	}
}

// DefaultMemoryBudgetShare is the share of the memory available to the
// process that SystemMemoryBudget gives compiled code and instances. The
// rest is for what the budget does not count: calls' inputs and outputs,
// compilations under way, NATS Streaming, the workflow engine, the Go
// runtime's headroom (its heap grows to twice what is live between
// collections), and memory a guest grows during a call.
const DefaultMemoryBudgetShare = 0.5

// fallbackMemory is assumed when the memory available cannot be read.
const fallbackMemory = 4 << 30

// SystemMemoryBudget is DefaultMemoryBudgetShare of the memory available
// to the process: its cgroup's limit if it has one, else the machine's.
func SystemMemoryBudget() uint64 {
	return uint64(float64(systemMemory()) * DefaultMemoryBudgetShare)
}

// systemMemory is the memory available to the process: the smallest of
// the cgroup (v2, then v1) limit and the machine's memory.
func systemMemory() uint64 {
	total := uint64(0)
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("MemTotal:")); ok {
				fields := bytes.Fields(rest)
				if len(fields) > 0 {
					kb, _ := strconv.ParseUint(string(fields[0]), 10, 64)
					total = kb << 10
				}
				break
			}
		}
		f.Close()
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if b, err := os.ReadFile(p); err == nil {
			if n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
				total = n
			}
			break
		}
	}
	if total == 0 {
		return fallbackMemory
	}
	return total
}
