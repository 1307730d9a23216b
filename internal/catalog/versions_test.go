package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
)

// historyInvariants checks the versions kept: at most KeepVersions per
// name, consecutive, the last one the last given, the current one among
// them.
func historyInvariants(s *State) error {
	for name, h := range s.history {
		if len(h) == 0 || len(h) > KeepVersions {
			return fmt.Errorf("function %q: %d versions kept", name, len(h))
		}
		for i, f := range h {
			if f.Name != name || f.Version != h[0].Version+i {
				return fmt.Errorf("function %q: kept %d is %q version %d after version %d", name, i, f.Name, f.Version, h[0].Version)
			}
		}
		if last := h[len(h)-1].Version; last != s.versions[name] {
			return fmt.Errorf("function %q: last kept version %d, last given %d", name, last, s.versions[name])
		}
	}
	for name, f := range s.Functions {
		if got, ok := s.FunctionVersion(name, f.Version); !ok || got != f {
			return fmt.Errorf("function %q: current version %d not kept", name, f.Version)
		}
	}
	return nil
}

// TestHistory: every version a deploy or an update makes stays loadable
// with its own module and configuration, after a redeploy, a delete and a
// deploy of the name again; beyond KeepVersions the oldest go.
func TestHistory(t *testing.T) {
	s := NewState()
	seq := uint64(0)
	apply := func(ev *Event) {
		t.Helper()
		seq++
		if _, err := s.Apply(seq, ev); err != nil {
			t.Fatal(err)
		}
	}
	apply(deployed("f", "m1"))
	update := deployed("f", "m1")
	update.Function.Config.Concurrency = 7
	update.IfVersion = 1
	apply(update)
	apply(deployed("f", "m2"))
	apply(deployed("g", "m9"))
	want := func(version int, module string, concurrency int) {
		t.Helper()
		f, ok := s.FunctionVersion("f", version)
		if !ok {
			t.Fatalf("version %d of f is not kept", version)
		}
		if f.Version != version || f.Module != mod(module) || f.Config.Concurrency != concurrency {
			t.Fatalf("version %d of f is %+v, want module %s, concurrency %d", version, f, module, concurrency)
		}
	}
	want(1, "m1", 0)
	want(2, "m1", 7)
	want(3, "m2", 0)
	for _, v := range []int{0, 4, -1} {
		if f, ok := s.FunctionVersion("f", v); ok {
			t.Fatalf("version %d of f found: %+v", v, f)
		}
	}
	if _, ok := s.FunctionVersion("ghost", 1); ok {
		t.Fatal("a function never deployed has a version")
	}

	// deleted: every version stays, and a deploy of the name again goes on
	apply(deleted(EventFunctionDeleted, "f"))
	if _, ok := s.Functions["f"]; ok {
		t.Fatal("f not deleted")
	}
	want(3, "m2", 0)
	want(1, "m1", 0)
	apply(deployed("f", "m3"))
	want(4, "m3", 0)
	want(3, "m2", 0)
	if err := historyInvariants(s); err != nil {
		t.Fatal(err)
	}

	// the bound: KeepVersions, the oldest out
	for i := 0; i < KeepVersions; i++ {
		apply(deployed("f", fmt.Sprint("n", i)))
	}
	last := 4 + KeepVersions
	if _, ok := s.FunctionVersion("f", last-KeepVersions); ok {
		t.Fatalf("version %d kept beyond the last %d", last-KeepVersions, KeepVersions)
	}
	if f, ok := s.FunctionVersion("f", last-KeepVersions+1); !ok || f.Module != mod("n0") {
		t.Fatalf("the oldest kept version %d: %+v %v", last-KeepVersions+1, f, ok)
	}
	if _, ok := s.FunctionVersion("g", 1); !ok {
		t.Fatal("g lost its version to f's bound")
	}
	if err := historyInvariants(s); err != nil {
		t.Fatal(err)
	}
}

// TestHistoryReplays: a catalog opened on a channel rebuilds the versions
// of a function, a deleted one's too, from its events.
func TestHistoryReplays(t *testing.T) {
	ctx := context.Background()
	url := embedded(t)
	a := open(t, url, t.TempDir())
	for _, m := range []string{"one", "two"} {
		if _, err := a.Deploy(ctx, Function{Name: "f", Config: Config{Env: map[string]string{"M": m}}}, []byte("\x00asm"+m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.DeleteFunction(ctx, "f", false); err != nil {
		t.Fatal(err)
	}
	b := open(t, url, t.TempDir())
	for _, c := range []*Catalog{a, b} {
		for v, m := range map[int]string{1: "one", 2: "two"} {
			f, ok := c.FunctionVersion("f", v)
			if !ok || f.Config.Env["M"] != m {
				t.Fatalf("version %d: %+v %v, want env M=%s", v, f, ok, m)
			}
			wasm, err := c.Module(ctx, f)
			if err != nil || string(wasm) != "\x00asm"+m {
				t.Fatalf("version %d's module: %q %v", v, wasm, err)
			}
		}
		if c.LastVersion("f") != 2 || c.LastVersion("ghost") != 0 {
			t.Fatalf("last versions %d %d", c.LastVersion("f"), c.LastVersion("ghost"))
		}
	}
}

// TestHistoryMemory measures what the kept versions cost: a name
// deployed KeepVersions times, folded from its events as a replay reads
// them, against the same with only the current version kept.
//
//	go test ./internal/catalog -run HistoryMemory -v
func TestHistoryMemory(t *testing.T) {
	const names = 100
	var log [][]byte
	for n := 0; n < names; n++ {
		for v := 0; v < KeepVersions; v++ {
			ev := deployed(fmt.Sprintf("function-%d", n), fmt.Sprint("m", v))
			ev.ID = fmt.Sprint(n, "-", v)
			ev.Function.Config.ABI = "reactor"
			b, _ := json.Marshal(ev)
			log = append(log, b)
		}
	}
	heap := func() int64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := heap()
	s := NewState()
	for i, b := range log {
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(uint64(i+1), &ev); err != nil {
			t.Fatal(err)
		}
	}
	withHistory := heap()
	// without the history: the current versions alone
	for name, h := range s.history {
		s.history[name] = []*Function{h[len(h)-1]}
	}
	current := heap()
	runtime.KeepAlive(s)
	runtime.KeepAlive(log)
	per := float64(withHistory-current) / float64(names*(KeepVersions-1))
	t.Logf("%d names x %d versions: %d bytes with the history, %d with the current versions only: %.0f bytes per kept version",
		names, KeepVersions, withHistory-before, current-before, per)
	// what the constant's comment says, with room for the runtime
	if per > 600 {
		t.Fatalf("a kept version costs %.0f bytes, more than the 265 documented", per)
	}
}
