package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host/internal/wasmbin"
)

// Instances from a snapshot (see docs/RATIONALE.md, "Instances from a
// snapshot"). The first instance of a reactor module, for one function's
// arguments and environment, is initialised as always, but with the
// randomness and the clocks it reads recorded; its state is copied and
// it serves its call, while a goroutine runs the initialisation twice
// more in instances of its own (one snapshot of a module at a time): once
// with other random bytes and the same clock readings (the bytes of
// memory that then differ derive
// from randomness), once with the same random bytes and other clock
// readings (those derive from the clock). The snapshot keeps the pages of
// the first instance's memory that differ from a fresh instance's and its
// mutable globals; a later instance is instantiated without running any
// initialisation, its memory sized at once and written, its globals set,
// and the bytes derived from randomness written with fresh random bytes
// (a re-seed, in modules built by Go only). A module whose initialisation
// fails, draws randomness into a global or into more than maxReseedBytes
// (or at all, unless built by Go), or whose code can change what a
// snapshot does not copy (wasmbin: tables), runs its initialisation in
// every instance, as before.

// Limits of snapshots.
const (
	// maxReseedBytes bounds the bytes of random generators' states seeded
	// during initialisation that a snapshot re-seeds in each instance: a
	// Go runtime has two ChaCha8 states of 288 bytes (the runtime's and
	// its first thread's, which math/rand/v2 and map iteration draw from).
	// A module with more state of that kind than a few KiB is initialised
	// in every instance instead.
	maxReseedBytes = 4 << 10
	// maxSnapshotsPerModule bounds the snapshots of one compiled module:
	// one per function (its name and environment are part of what the
	// initialisation reads). A module shared by more functions than this
	// initialises the instances of the others, as before.
	maxSnapshotsPerModule = 64
	// minReseedSpan is the shortest run of bytes derived from randomness
	// that a snapshot takes for a random generator's state and re-seeds:
	// Go's ChaCha8 states are 288 bytes; its hash keys (32 bytes) and the
	// seeds of maps made at initialisation are shorter, and must stay as
	// they are, since the maps filled then are laid out by them.
	minReseedSpan = 64
	// reseedGap merges two runs of bytes derived from randomness that are
	// at most this many bytes apart into one re-seeded span: a random
	// byte equals its counterpart in the other run by chance (1 in 256),
	// which would split a seed in two.
	reseedGap = 8
	// initClockStep is how far the monotonic clock advances at each
	// reading during a snapshot's initialisation, so that code measuring
	// time across its initialisation sees time pass, by the same amounts
	// in every run.
	initClockStep = time.Microsecond
	// clockShift is how much later the clocks read in the run that finds
	// what derives from the clock.
	clockShift = time.Hour
	// snapshotOverhead is what a snapshot holds besides its pages.
	snapshotOverhead = 1 << 10
)

// moduleSnapshots are the snapshots of a compiled module, by function
// (snapshotKey).
type moduleSnapshots struct {
	// usable is set when the module was instrumented for snapshots and
	// nothing in it forbids one; globals are its mutable globals.
	usable  bool
	globals []wasmbin.Global
	refusal string // why not usable, for the log
	// goRuntime is set when the Go toolchain built the module: the dense
	// runs of random-derived bytes are its runtime's ChaCha8 states, safe
	// to re-seed. In any other module they refuse the snapshot.
	goRuntime bool

	mu     sync.Mutex
	slots  map[string]*snapSlot
	logged bool // the module's refusal was logged
	// making is held by the goroutine making one of its snapshots.
	making chan struct{}
}

// plan records what wasmbin found in the module.
func (ms *moduleSnapshots) plan(on bool, res wasmbin.Result) {
	if !on {
		return
	}
	ms.usable, ms.globals, ms.refusal = res.NoSnapshot == "", res.Globals, res.NoSnapshot
	ms.goRuntime = res.GoRuntime
	ms.making = make(chan struct{}, 1)
}

// A snapSlot is one function's snapshot of a module: being taken, taken,
// or refused.
type snapSlot struct {
	state int
	snap  *snapshot
}

const (
	slotTaking = iota
	slotReady
	slotRefused
)

// snapshot is the state of an initialised instance.
type snapshot struct {
	pages   uint32   // the memory's size, in pages
	index   []uint32 // the pages that differ from a fresh instance's
	data    []byte   // their bytes, pageSize each, in index's order
	globals []uint64 // the mutable globals, in moduleSnapshots.globals' order
	// the input buffer the instance made (prepareInput), 0 and 0 if none
	inPtr, inCap uint32
	reseed       []span // the bytes to re-seed in each instance
	nReseed      int    // their total length
	cost         int64  // its charge to the memory budget
}

// span is a range of bytes of linear memory: [start, end).
type span struct{ start, end uint32 }

// snapRun is an instance's part in snapshots: made from snap, or taking
// one into slot with src as its randomness and clocks.
type snapRun struct {
	snap *snapshot
	slot *snapSlot
	src  *initSources
}

// snapshotKey names what a function's initialisation reads besides the
// module: its arguments (the name) and its environment.
func snapshotKey(spec Spec) string {
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s\x00", len(spec.Name), spec.Name)
	for _, k := range keys {
		fmt.Fprintf(h, "%d:%s=%d:%s\x00", len(k), k, len(spec.Env[k]), spec.Env[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// prepareSnapshot decides, before a reactor instance is instantiated,
// whether it is made from its function's snapshot, takes it, or neither
// (snapshots off or refused, or another instance taking it now).
func (i *instance) prepareSnapshot() {
	ms := &i.m.snap
	if !ms.usable {
		if ms.refusal != "" {
			ms.mu.Lock()
			if !ms.logged {
				ms.logged = true
				i.fn.host.logger().Info("instances of this module are initialised one by one, not made from a snapshot",
					"function", i.fn.spec.Name, "reason", ms.refusal)
			}
			ms.mu.Unlock()
		}
		return
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	slot := ms.slots[i.fn.snapKey]
	switch {
	case slot == nil && len(ms.slots) < maxSnapshotsPerModule:
		if ms.slots == nil {
			ms.slots = map[string]*snapSlot{}
		}
		slot = &snapSlot{state: slotTaking}
		ms.slots[i.fn.snapKey] = slot
		i.snapRun = &snapRun{slot: slot, src: newInitSources(nil, false, 0)}
	case slot != nil && slot.state == slotReady:
		i.snapRun = &snapRun{snap: slot.snap}
	}
}

// memorySize is the memory an instance made from a snapshot grows to
// before anything else (0 for others): its allocator reserves it at once.
func (r *snapRun) memorySize() uint64 {
	if r == nil || r.snap == nil {
		return 0
	}
	return uint64(r.snap.pages) * pageSize
}

// configure gives the instance's ModuleConfig the randomness and clocks
// of its part in snapshots.
func (r *snapRun) configure(cfg wazero.ModuleConfig) wazero.ModuleConfig {
	if r.src != nil {
		return cfg.WithRandSource(r.src).WithWalltime(r.src.walltime, 1).WithNanotime(r.src.nanotime, 1)
	}
	// the snapshot's runtime read the monotonic clock of initSources: an
	// instance made from it must read the same one, which did not go back
	return cfg.WithNanotime(monotonic, 1)
}

// settleSnapshot runs once a reactor instance is initialised (err nil) or
// failed to: the instance taking its function's snapshot hands a copy of
// its state to a goroutine that makes the snapshot (makeSnapshot), and
// goes on to serve its call: no call waits for a snapshot.
func (i *instance) settleSnapshot(ctx context.Context, err error) {
	r := i.snapRun
	if r == nil || r.slot == nil {
		return
	}
	r.src.live = true
	if err != nil {
		if isCtxErr(ctx.Err()) {
			i.dropSlot() // the caller gave up: the next instance tries again
			return
		}
		i.refuseSlot("its initialisation failed: " + err.Error())
		return
	}
	h := i.fn.host
	size := i.memSize()
	// the copy of its memory, and one instance of its own at a time
	if h.chargeAside(2*size) != nil {
		i.dropSlot() // no room now: a later first instance tries again
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.uncharge(2 * size)
		i.dropSlot()
		return
	}
	h.compiling.Add(1) // Close waits for it
	i.entry.refs++     // the compiled module stays while it is made
	h.mu.Unlock()
	mem, globals := bytes.Clone(memBytes(i.mem)), readGlobals(i.mod, i.m.snap.globals)
	t := &instance{fn: i.fn, entry: i.entry, m: i.m, snapRun: r, inPtr: i.inPtr, inCap: i.inCap}
	go func() {
		defer h.compiling.Done()
		defer h.release(t.entry)
		defer h.uncharge(2 * size)
		t.makeSnapshot(mem, globals)
	}()
}

// snapshotMaking, when set (by tests), is called as a snapshot starts
// being made, on its goroutine.
var snapshotMaking func()

// makeSnapshot makes t's function's snapshot from mem and globals, the
// state of its first instance just initialised: one snapshot of a
// module at a time, stopped if the host closes.
func (t *instance) makeSnapshot(mem []byte, globals []uint64) {
	ctx := t.fn.host.ctx
	select {
	case t.m.snap.making <- struct{}{}:
		defer func() { <-t.m.snap.making }()
	case <-ctx.Done():
		t.dropSlot()
		return
	}
	if snapshotMaking != nil {
		snapshotMaking()
	}
	snap, reason := t.takeSnapshot(ctx, mem, globals)
	switch {
	case snap != nil:
		t.m.snap.mu.Lock()
		t.snapRun.slot.snap, t.snapRun.slot.state = snap, slotReady
		t.m.snap.mu.Unlock()
	case ctx.Err() != nil:
		t.dropSlot()
	default:
		t.refuseSlot(reason)
	}
}

func (i *instance) dropSlot() {
	ms := &i.m.snap
	ms.mu.Lock()
	delete(ms.slots, i.fn.snapKey)
	ms.mu.Unlock()
}

func (i *instance) refuseSlot(reason string) {
	// logged first: whoever sees the refusal can find its reason
	i.fn.host.logger().Info("instances of this function are initialised one by one, not made from a snapshot",
		"function", i.fn.spec.Name, "reason", reason)
	ms := &i.m.snap
	ms.mu.Lock()
	i.snapRun.slot.state = slotRefused
	ms.mu.Unlock()
}

// takeSnapshot makes a snapshot of memA and globalsA, the state of i's
// function's first instance just initialised, or says why it should not.
func (i *instance) takeSnapshot(ctx context.Context, memA []byte, globalsA []uint64) (*snapshot, string) {
	src := i.snapRun.src

	// the same clock readings, other random bytes
	b, err := i.shadow(ctx, newInitSources(src, true, 0), true)
	if err != nil {
		return nil, "its initialisation failed with other random bytes: " + err.Error()
	}
	memB, globalsB := memBytes(b.mem), readGlobals(b.mod, i.m.snap.globals)
	if b.inPtr != i.inPtr {
		b.discard()
		return nil, "with other random bytes its input buffer is elsewhere in its memory"
	}
	if len(memB) != len(memA) {
		b.discard()
		return nil, fmt.Sprintf("with other random bytes its initialisation left %s of memory instead of %s", FormatBytes(uint64(len(memB))), FormatBytes(uint64(len(memA))))
	}
	for k, g := range i.m.snap.globals {
		if globalsA[k] != globalsB[k] {
			b.discard()
			return nil, fmt.Sprintf("global %d derives from randomness drawn at initialisation", g.Index)
		}
	}
	spans, counts, derived := differences(memA, memB)
	b.discard()
	if derived > 0 && !i.m.snap.goRuntime {
		return nil, fmt.Sprintf("%d bytes of its memory derive from randomness drawn at initialisation, and only a Go runtime's random generators are known to be safe to re-seed (this module was not built by Go)", derived)
	}
	reseed, n := generatorStates(spans, counts)
	if n > maxReseedBytes {
		return nil, fmt.Sprintf("%d bytes of its memory hold random generators seeded at initialisation, over the %d a snapshot re-seeds", n, maxReseedBytes)
	}
	if derived > 0 && n == 0 {
		return nil, fmt.Sprintf("%d bytes of its memory derive from randomness drawn at initialisation, none of them a generator's state it could re-seed", derived)
	}

	// the same random bytes, other clock readings: what derives from the
	// clock is shared by the instances (only logged)
	c, err := i.shadow(ctx, newInitSources(src, false, clockShift), true)
	if err != nil {
		return nil, "its initialisation failed with other clock readings: " + err.Error()
	}
	memC := memBytes(c.mem)
	clocked := 0
	if len(memC) == len(memA) {
		_, _, clocked = differences(memA, memC)
	}
	c.discard()

	fresh, err := i.shadow(ctx, nil, false)
	if err != nil {
		return nil, "instantiating it: " + err.Error()
	}
	snap := newSnapshot(memA, memBytes(fresh.mem), globalsA, reseed)
	snap.inPtr, snap.inCap = i.inPtr, i.inCap
	fresh.discard()
	if err := i.fn.host.chargeAside(snap.cost); err != nil {
		return nil, "its snapshot does not fit the memory budget"
	}
	h := i.fn.host
	h.mu.Lock()
	i.entry.cost += snap.cost // released with the compiled module
	h.mu.Unlock()
	h.logger().Debug("instances of this function are made from a snapshot",
		"function", i.fn.spec.Name, "pages", len(snap.index), "bytes", snap.cost,
		"random_derived", derived, "reseeded", snap.nReseed, "random_reads", len(src.recorded), "clock_reads", src.reads, "clock_derived", clocked)
	return snap, ""
}

// newSnapshot keeps the pages of mem that differ from fresh, a fresh
// instance's memory.
func newSnapshot(mem, fresh []byte, globals []uint64, reseed []span) *snapshot {
	s := &snapshot{pages: uint32(len(mem) / pageSize), globals: globals, reseed: reseed}
	for p := 0; p+pageSize <= len(mem); p += pageSize {
		page := mem[p : p+pageSize]
		if p+pageSize <= len(fresh) && bytes.Equal(page, fresh[p:p+pageSize]) {
			continue
		}
		if p >= len(fresh) && isZero(page) {
			continue
		}
		s.index = append(s.index, uint32(p/pageSize))
		s.data = append(s.data, page...)
	}
	for _, sp := range reseed {
		s.nReseed += int(sp.end - sp.start)
	}
	s.cost = int64(len(s.data)) + int64(len(s.index))*4 + int64(len(globals))*8 + int64(len(reseed))*8 + snapshotOverhead
	return s
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// differences returns the spans where a and b (of one length) differ,
// merged across gaps of up to reseedGap bytes, with the number of bytes
// that differ in each, and the total.
func differences(a, b []byte) ([]span, []int, int) {
	var spans []span
	var counts []int
	n := 0
	for p := 0; p < len(a); p += pageSize {
		end := min(p+pageSize, len(a))
		if bytes.Equal(a[p:end], b[p:end]) {
			continue
		}
		for k := p; k < end; k++ {
			if a[k] == b[k] {
				continue
			}
			n++
			if l := len(spans); l > 0 && int(spans[l-1].end)+reseedGap >= k {
				spans[l-1].end = uint32(k + 1)
				counts[l-1]++
				continue
			}
			spans = append(spans, span{uint32(k), uint32(k + 1)})
			counts = append(counts, 1)
		}
	}
	return spans, counts, n
}

// generatorStates picks, among the spans of bytes derived from
// randomness, those that hold the state of a random number generator:
// at least minReseedSpan bytes, nearly all of which differed (a
// generator's state is random bytes throughout; a structure laid out by
// hashes, or a seed copied into a field, is not), and their total length.
func generatorStates(spans []span, counts []int) ([]span, int) {
	var out []span
	n := 0
	for k, sp := range spans {
		l := int(sp.end - sp.start)
		if l >= minReseedSpan && counts[k]*8 >= l*7 {
			out = append(out, sp)
			n += l
		}
	}
	return out, n
}

// restore makes the instance, just instantiated, what snapshot s holds.
func (i *instance) restore(s *snapshot) error {
	f := i.fn
	if cur := i.mem.Size() / pageSize; cur < s.pages {
		if _, ok := i.mem.Grow(s.pages - cur); !ok {
			return f.callError(ErrMemoryLimit, "making the instance from its snapshot: the memory cannot grow to its size after initialisation", f.spec.Limits.Memory)
		}
	}
	mem := memBytes(i.mem)
	for k, page := range s.index {
		copy(mem[int(page)*pageSize:], s.data[k*pageSize:(k+1)*pageSize])
	}
	for k, g := range i.m.snap.globals {
		mg, ok := i.mod.ExportedGlobal(g.Export).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("instrumented module lacks its global export %q", g.Export)
		}
		mg.Set(s.globals[k])
	}
	i.inPtr, i.inCap = s.inPtr, s.inCap
	if s.nReseed > 0 {
		var buf [maxReseedBytes]byte
		seed := buf[:s.nReseed]
		if _, err := rand.Read(seed); err != nil {
			return fmt.Errorf("re-seeding the instance: %w", err)
		}
		for _, sp := range s.reseed {
			seed = seed[copy(mem[sp.start:sp.end], seed):]
		}
	}
	return nil
}

// shadow makes another instance of i's module to take i's snapshot: with
// src's randomness and clocks, initialised or not. Its logs are dropped,
// and it is not counted (discard it at once).
func (i *instance) shadow(ctx context.Context, src *initSources, initialise bool) (*instance, error) {
	s := &instance{fn: i.fn, entry: i.entry, m: i.m}
	s.init()
	s.beginCall(ctx, &Call{})
	if src != nil {
		s.snapRun = &snapRun{src: src}
	}
	if err := s.instantiate(nil, nil); err != nil {
		s.discard()
		return nil, err
	}
	if !initialise {
		return s, nil
	}
	for _, name := range []string{i.m.start, abi.ExportInitialize} {
		fn := s.mod.ExportedFunction(name)
		if name == "" || fn == nil {
			continue
		}
		clean, err := s.run(ctx, func() error { _, err := fn.Call(s.ctx); return err })
		if err == nil && !clean {
			err = errInterrupted
		}
		if err != nil {
			s.discard()
			return nil, err
		}
	}
	if err := s.prepareInput(ctx); err != nil {
		s.discard()
		return nil, err
	}
	return s, nil
}

// discard closes a shadow instance.
func (i *instance) discard() {
	i.fn.host.watch.remove(i)
	if i.mod != nil {
		_ = i.mod.Close(context.Background())
	}
}

// memBytes is the whole of a linear memory (a view, not a copy).
func memBytes(m api.Memory) []byte {
	if m == nil {
		return nil
	}
	b, _ := m.Read(0, m.Size())
	return b
}

func readGlobals(mod api.Module, globals []wasmbin.Global) []uint64 {
	out := make([]uint64, len(globals))
	for k, g := range globals {
		if v := mod.ExportedGlobal(g.Export); v != nil {
			out[k] = v.Get()
		}
	}
	return out
}

// monotonic is the monotonic clock of instances that take or are made
// from a snapshot, in nanoseconds (clock.go).
func monotonic() int64 { return int64(clock()) }

// initSources are the randomness and clocks of an instance whose
// initialisation a snapshot observes. While live is false, the
// randomness is recorded (ref nil), or replays ref (inverted if invert),
// and the clocks read fixed values; afterwards they are the real ones.
type initSources struct {
	live     bool
	ref      *initSources // the run this one repeats
	invert   bool
	recorded []byte
	pos      int
	wall     time.Time
	mono     int64
	reads    int
}

// newInitSources returns the sources of a run that repeats ref's clock
// readings shifted by shift, and its random bytes (inverted if invert),
// or of a first run (ref nil).
func newInitSources(ref *initSources, invert bool, shift time.Duration) *initSources {
	s := &initSources{ref: ref, invert: invert}
	if ref == nil {
		s.wall, s.mono = time.Now(), monotonic()
	} else {
		s.wall, s.mono = ref.wall.Add(shift), ref.mono+int64(shift)
	}
	return s
}

// Read is random_get.
func (s *initSources) Read(p []byte) (int, error) {
	if s.live || s.ref == nil {
		if _, err := rand.Read(p); err != nil {
			return 0, err
		}
		if !s.live {
			s.recorded = append(s.recorded, p...)
		}
		return len(p), nil
	}
	for k := range p {
		if s.pos < len(s.ref.recorded) {
			p[k] = s.ref.recorded[s.pos]
			if s.invert {
				p[k] = ^p[k]
			}
		} else if _, err := rand.Read(p[k : k+1]); err != nil {
			return k, err
		}
		s.pos++
	}
	return len(p), nil
}

func (s *initSources) walltime() (int64, int32) {
	t := s.wall
	if s.live {
		t = time.Now()
	}
	return t.Unix(), int32(t.Nanosecond())
}

func (s *initSources) nanotime() int64 {
	if s.live {
		return monotonic()
	}
	s.reads++
	return s.mono + int64(s.reads)*int64(initClockStep)
}
