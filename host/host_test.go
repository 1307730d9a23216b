package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/logctx"
	"github.com/sluicehq/sluice/testutil"
)

// sharedCache keeps compiled Go guests across the tests of this package, as
// a daemon's data dir does across restarts.
var sharedCache = func() string {
	dir, err := os.MkdirTemp("", "sluice-host-test-cache-")
	if err != nil {
		panic(err)
	}
	return dir
}()

func TestMain(m *testing.M) {
	code := m.Run()
	os.RemoveAll(sharedCache)
	os.Exit(code)
}

type memorySink struct {
	mu   sync.Mutex
	recs []Record
}

func (s *memorySink) Emit(recs []Record) {
	s.mu.Lock()
	s.recs = append(s.recs, recs...)
	s.mu.Unlock()
}

func (s *memorySink) messages(invocation string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.recs {
		if r.Invocation == invocation {
			out = append(out, r.Stream+": "+r.Message)
		}
	}
	return out
}

func newHost(t *testing.T) (*Host, *memorySink) {
	t.Helper()
	sink := &memorySink{}
	cfg := NewConfig().WithCacheDir(sharedCache).WithLogSink(sink)
	if os.Getenv("SLUICE_TEST_SNAPSHOTS") == "off" {
		cfg = cfg.WithSnapshots(false) // the suite on the path without snapshots
	}
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h, sink
}

func load(t testing.TB, h *Host, guest string, spec Spec) *Function {
	t.Helper()
	if spec.Name == "" {
		spec.Name = guest
	}
	f, err := h.Load(context.Background(), spec, testutil.Wasm(t, guest))
	if err != nil {
		t.Fatalf("load %s: %v", guest, err)
	}
	return f
}

func invoke(t *testing.T, f *Function, in string) (Result, error) {
	t.Helper()
	return f.Invoke(context.Background(), Call{Input: []byte(in)})
}

func mustInvoke(t *testing.T, f *Function, in string) string {
	t.Helper()
	res, err := invoke(t, f, in)
	if err != nil {
		t.Fatalf("invoke %q: %v", in, err)
	}
	return string(res.Output)
}

// wantCallError checks that err is a *CallError of the kind, whose message
// says each of the substrings.
func wantCallError(t *testing.T, err error, kind error, says ...string) *CallError {
	t.Helper()
	var ce *CallError
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want a *CallError", err, err)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error = %q, want kind %v", err, kind)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error is not one line: %q", err)
	}
	return ce
}

func TestReactors(t *testing.T) {
	h, _ := newHost(t)
	tests := []struct {
		guest, in, out string
	}{
		{"echo-wat", "hello", "hello"},
		{"echo-wat", "", ""},
		{"echo-wat", strings.Repeat("x", 100_000), strings.Repeat("x", 100_000)},
		{"upper-go", "make me loud", "MAKE ME LOUD"},
		{"wordcount-c", "the quick brown\nfox\n", `{"bytes":20,"words":4,"lines":2}`},
		{"goguest", "echo:round trip", "round trip"},
	}
	for _, tc := range tests {
		t.Run(tc.guest+"/"+truncate(tc.in, 10), func(t *testing.T) {
			f := load(t, h, tc.guest, Spec{})
			if got := f.Spec().ABI; got != abi.Reactor {
				t.Fatalf("detected ABI %s, want reactor", got)
			}
			for i := 0; i < 3; i++ { // cold, then warm on the same instance
				res, err := invoke(t, f, tc.in)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if string(res.Output) != tc.out {
					t.Fatalf("call %d: output %q, want %q", i, truncate(string(res.Output), 40), truncate(tc.out, 40))
				}
				if res.Cold != (i == 0) {
					t.Fatalf("call %d: cold = %v", i, res.Cold)
				}
			}
			if st := f.Stats(); st.Calls != 3 || st.ColdStarts != 1 || st.Idle != 1 || st.Errors != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestInputBufferGrows(t *testing.T) {
	h, _ := newHost(t)
	for _, guest := range []string{"goguest", "wordcount-c"} {
		f := load(t, h, guest, Spec{})
		for _, n := range []int{10, 5000, 100, 70_000, 3} {
			in := "echo:" + strings.Repeat("a", n)
			if guest == "wordcount-c" {
				in = strings.Repeat("w ", n)
			}
			res, err := invoke(t, f, in)
			if err != nil {
				t.Fatalf("%s: input of %d: %v", guest, len(in), err)
			}
			if guest == "goguest" && len(res.Output) != n {
				t.Fatalf("%s: output of %d bytes, want %d", guest, len(res.Output), n)
			}
		}
	}
}

func TestCommands(t *testing.T) {
	h, sink := newHost(t)
	f := load(t, h, "hello-wasi", Spec{Env: map[string]string{"GREETING": "Bonjour"}})
	if got := f.Spec().ABI; got != abi.WASI {
		t.Fatalf("detected ABI %s, want wasi", got)
	}
	res, err := f.Invoke(context.Background(), Call{ID: "inv-1", Input: []byte("Ada")})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res.Output); got != "Bonjour, Ada!\n" {
		t.Fatalf("output %q", got)
	}
	if !res.Cold {
		t.Fatal("a WASI call is always cold")
	}
	logs := sink.messages("inv-1")
	if len(logs) != 1 || logs[0] != "stderr: greeting Ada" {
		t.Fatalf("logs %q", logs)
	}

	_, err = f.Invoke(context.Background(), Call{ID: "inv-2"})
	ce := wantCallError(t, err, ErrExit, `function "hello-wasi" exited with code 3`, "nobody to greet: send a name")
	if ce.ExitCode != 3 {
		t.Fatalf("exit code %d", ce.ExitCode)
	}
	if logs := sink.messages("inv-2"); len(logs) != 2 || !strings.HasPrefix(logs[1], "sluice: ") {
		t.Fatalf("logs of a failed call %q", logs)
	}
}

func TestMetadata(t *testing.T) {
	h, _ := newHost(t)
	meta := map[string]string{"trigger": "orders", "http.method": "POST"}
	t.Run("reactor", func(t *testing.T) {
		f := load(t, h, "goguest", Spec{Name: "meta", Version: 7})
		for key, want := range map[string]string{
			"trigger": "orders", "http.method": "POST", "function": "meta", "version": "7",
			"invocation": "call-9", "missing": "<absent>",
		} {
			res, err := f.Invoke(context.Background(), Call{ID: "call-9", Input: []byte("meta:" + key), Meta: meta})
			if err != nil || string(res.Output) != want {
				t.Fatalf("meta %s = %q, %v; want %q", key, res.Output, err, want)
			}
		}
		// a value longer than the guest's first buffer (128 bytes)
		long := strings.Repeat("v", 1000)
		res, err := f.Invoke(context.Background(), Call{Input: []byte("meta:long"), Meta: map[string]string{"long": long}})
		if err != nil || string(res.Output) != long {
			t.Fatalf("long meta: %d bytes, %v", len(res.Output), err)
		}
	})
	t.Run("env", func(t *testing.T) {
		f := load(t, h, "goguest", Spec{Env: map[string]string{"REGION": "eu-west"}})
		if got := mustInvoke(t, f, "env:REGION"); got != "eu-west" {
			t.Fatalf("env REGION = %q", got)
		}
	})
}

// A guest reads its call's trace context (the context's, logctx) as the
// traceparent and tracestate metadata; a pooled instance's next call
// reads its own, or none.
func TestTraceMetadata(t *testing.T) {
	h, _ := newHost(t)
	f := load(t, h, "goguest", Spec{Name: "traced"})
	call := func(ctx context.Context, key string, meta map[string]string) string {
		t.Helper()
		res, err := f.Invoke(ctx, Call{Input: []byte("meta:" + key), Meta: meta})
		if err != nil {
			t.Fatalf("meta %s: %v", key, err)
		}
		return string(res.Output)
	}
	tr := logctx.Continue("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7")
	traced := logctx.WithTrace(context.Background(), tr)
	if got := call(traced, abi.MetaTraceparent, nil); got != tr.Traceparent() {
		t.Fatalf("traceparent = %q, want the call's %q", got, tr.Traceparent())
	}
	if got := call(traced, abi.MetaTracestate, nil); got != "rojo=00f067aa0ba902b7" {
		t.Fatalf("tracestate = %q, want the caller's", got)
	}
	other := logctx.NewTrace()
	if got := call(logctx.WithTrace(context.Background(), other), abi.MetaTraceparent, map[string]string{abi.MetaTraceparent: tr.Traceparent()}); got != other.Traceparent() {
		t.Fatalf("the next call's traceparent = %q, want its own %q (the context's wins over Meta)", got, other.Traceparent())
	}
	if got := call(logctx.WithTrace(context.Background(), other), abi.MetaTracestate, nil); got != "<absent>" {
		t.Fatalf("tracestate of a call without one = %q", got)
	}
	if got := call(context.Background(), abi.MetaTraceparent, nil); got != "<absent>" {
		t.Fatalf("traceparent of an untraced call = %q", got)
	}
}

func TestReactorLogs(t *testing.T) {
	h, sink := newHost(t)
	f := load(t, h, "goguest", Spec{})
	if _, err := f.Invoke(context.Background(), Call{ID: "log-1", Input: []byte("log")}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(sink.messages("log-1"), "\n")
	want := "log: a warning from the guest\nstderr: a line on stderr"
	if got != want {
		t.Fatalf("logs:\n%s\nwant:\n%s", got, want)
	}
}

// Every record of a call, failures included, says what made the call;
// a pooled instance's next call says its own origin, or none.
func TestLogOrigin(t *testing.T) {
	h, sink := newHost(t)
	fns := map[string]*Function{}
	for _, g := range []string{"goguest", "trap", "hello-wasi"} {
		fns[g] = load(t, h, g, Spec{})
	}
	req := func(id string) []slog.Attr { return []slog.Attr{slog.String("request_id", id)} }
	tests := []struct {
		name, guest, in string
		origin          []slog.Attr
		want            string // every record's origin, formatted
		records         int
	}{
		{"reactor log and stderr", "goguest", "log", req("r-1"), "map[request_id:r-1]", 2},
		{"the same instance, another origin", "goguest", "log",
			[]slog.Attr{slog.String("trigger", "q"), slog.Uint64("sequence", 42)}, "map[sequence:42 trigger:q]", 2},
		{"the same instance, no origin", "goguest", "log", nil, "map[]", 2},
		{"guest error", "goguest", "error", req("r-2"), "map[request_id:r-2]", 1},
		{"trap", "trap", "", req("r-3"), "map[request_id:r-3]", 1},
		{"command stderr", "hello-wasi", "Ada", req("r-4"), "map[request_id:r-4]", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "origin-" + strings.ReplaceAll(tc.name, " ", "-")
			_, _ = fns[tc.guest].Invoke(context.Background(), Call{ID: id, Input: []byte(tc.in), Origin: tc.origin})
			sink.mu.Lock()
			defer sink.mu.Unlock()
			n := 0
			for _, r := range sink.recs {
				if r.Invocation != id {
					continue
				}
				n++
				if got := fmt.Sprint(r.Origin); got != tc.want {
					t.Errorf("%s record %q: origin %s, want %s", r.Stream, r.Message, got, tc.want)
				}
			}
			if n != tc.records {
				t.Fatalf("%d records, want %d", n, tc.records)
			}
		})
	}
}

func TestBadGuests(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		guest string
		spec  Spec
		in    string
		kind  error
		says  []string
	}{
		{name: "wat trap", guest: "trap", kind: ErrTrap, says: []string{`function "trap" trapped`, "unreachable", "boom"}},
		{name: "wat endless loop", guest: "spin", spec: Spec{Limits: Limits{Timeout: 100 * time.Millisecond}}, kind: ErrTimeout,
			says: []string{"timed out after 100ms"}},
		{name: "wasi endless loop", guest: "spin-wasi", spec: Spec{Limits: Limits{Timeout: 100 * time.Millisecond}}, kind: ErrTimeout},
		{name: "wat grows memory", guest: "grow", spec: Spec{Limits: Limits{Memory: 1 << 20}}, kind: ErrMemoryLimit,
			says: []string{"reached its limit of 1 MiB"}},
		{name: "wasi exits 3", guest: "exit", kind: ErrExit, says: []string{"exited with code 3", "disk on fire: cannot go on"}},
		{name: "go error", guest: "goguest", in: "error", kind: ErrFunctionFailed, says: []string{`function "goguest" failed: the order has no items`}},
		{name: "go panic", guest: "goguest", in: "panic", kind: ErrFunctionFailed, says: []string{"panic: assignment to entry in nil map"}},
		{name: "go exit", guest: "goguest", in: "exit", kind: ErrExit, says: []string{"exited with code 4", "giving up"}},
		{name: "go hogs memory", guest: "goguest", in: "hog", spec: Spec{Limits: Limits{Memory: 16 << 20}}, kind: ErrMemoryLimit,
			says: []string{"limit of 16 MiB"}},
		{name: "go endless loop", guest: "goguest", in: "spin", spec: Spec{Limits: Limits{Timeout: 200 * time.Millisecond}}, kind: ErrTimeout},
		{name: "go sleeps", guest: "goguest", in: "sleep", spec: Spec{Limits: Limits{Timeout: 200 * time.Millisecond}}, kind: ErrTimeout},
		{name: "go output too large", guest: "goguest", in: "big:2000", spec: Spec{Limits: Limits{MaxOutput: 1000}}, kind: ErrOutputTooLarge,
			says: []string{"the limit is 1000 B"}},
		{name: "wasi output too large", guest: "hello-wasi", in: strings.Repeat("n", 200), spec: Spec{Limits: Limits{MaxOutput: 100}}, kind: ErrOutputTooLarge},
		{name: "input too large", guest: "echo-wat", in: strings.Repeat("x", 2000), spec: Spec{Limits: Limits{MaxInput: 1024}}, kind: ErrInputTooLarge,
			says: []string{"the limit is 1 KiB"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Name = tc.guest
			f := load(t, h, tc.guest, tc.spec)
			_, err := invoke(t, f, tc.in)
			wantCallError(t, err, tc.kind, tc.says...)
			// the function still serves: a reactor gets a fresh instance
			if st := f.Stats(); st.Idle != 0 && tc.kind != ErrFunctionFailed && tc.kind != ErrOutputTooLarge && tc.kind != ErrInputTooLarge {
				t.Fatalf("a failed instance went back to the pool: %+v", st)
			}
			switch tc.guest {
			case "goguest":
				if got := mustInvoke(t, f, "echo:still here"); got != "still here" {
					t.Fatalf("after the failure: %q", got)
				}
			case "spin":
				if got := mustInvoke(t, f, "ok"); got != "ok" {
					t.Fatalf("after the failure: %q", got)
				}
			}
		})
	}
	_ = ctx
}

func TestGoPanicKeepsInstance(t *testing.T) {
	// A recovered panic fails the call but leaves the Go runtime sound: the
	// instance is reused, its state intact.
	h, _ := newHost(t)
	f := load(t, h, "goguest", Spec{})
	mustInvoke(t, f, "count")
	if _, err := invoke(t, f, "panic"); !errors.Is(err, ErrFunctionFailed) {
		t.Fatal(err)
	}
	if got := mustInvoke(t, f, "count"); got != "3" {
		t.Fatalf("count after a recovered panic = %s, want 3 (same instance)", got)
	}
	// a trap throws the instance away: the count starts again
	if _, err := invoke(t, f, "exit"); !errors.Is(err, ErrExit) {
		t.Fatal(err)
	}
	if got := mustInvoke(t, f, "count"); got != "1" {
		t.Fatalf("count after an exit = %s, want 1 (fresh instance)", got)
	}
}

func TestBadModules(t *testing.T) {
	h, _ := newHost(t)
	ctx := context.Background()
	tests := []struct {
		name string
		wasm []byte
		spec Spec
		want error
		says string
	}{
		{name: "garbage", wasm: []byte("definitely not wasm"), want: ErrInvalidModule, says: "magic number"},
		{name: "empty", wasm: nil, want: ErrInvalidModule, says: "empty"},
		{name: "elf", wasm: []byte("\x7fELF\x02\x01\x01\x00rest"), want: ErrInvalidModule, says: "GOOS=wasip1"},
		{name: "wat text", wasm: []byte("(module)"), want: ErrInvalidModule, says: "wat2wasm"},
		{name: "truncated", wasm: testutil.Wasm(t, "echo-wat")[:60], want: ErrInvalidModule},
		{name: "component", wasm: []byte("\x00asm\x0d\x00\x01\x00"), want: ErrInvalidModule, says: "component"},
		{name: "no abi", wasm: testutil.Wasm(t, "noabi"), want: ErrNoABI, says: "export _start"},
		{name: "bad import", wasm: testutil.Wasm(t, "badimport"), want: ErrNoABI, says: "env.now"},
		{name: "asked reactor", wasm: testutil.Wasm(t, "hello-wasi"), spec: Spec{ABI: abi.Reactor}, want: ErrNoABI, says: "sluice_handle"},
		{name: "memory too small", wasm: testutil.Wasm(t, "bigmem"), want: ErrMemoryTooSmall, says: "needs 128 MiB at start but the function's memory limit is 64 MiB"},
		{name: "limit out of range", wasm: testutil.Wasm(t, "echo-wat"), spec: Spec{Limits: Limits{Memory: 5 << 30}}, says: "over the maximum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Load(ctx, tc.spec, tc.wasm)
			if err == nil {
				t.Fatal("loaded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not say %q", err, tc.says)
			}
		})
	}
	// the host still loads and runs good modules
	if got := mustInvoke(t, load(t, h, "echo-wat", Spec{}), "fine"); got != "fine" {
		t.Fatal(got)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	h, _ := newHost(t)
	f := load(t, h, "goguest", Spec{Limits: Limits{Concurrency: 1, Timeout: 300 * time.Millisecond}})
	done := make(chan error, 1)
	go func() {
		_, err := invoke(t, f, "sleep")
		done <- err
	}()
	testutil.Eventually(t, 5*time.Second, "the first call to run", func() bool { return f.Stats().Active == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := f.Invoke(ctx, Call{Input: []byte("echo:x")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "all 1 busy") {
		t.Fatalf("second call: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Fatalf("first call: %v", err)
	}
	// the slot is free again (for a new instance: once the snapshot is
	// made, whose making in the background would compete for the CPU with
	// the instance initialised under the 300 ms limit)
	if h.cfg.snapshots {
		snapSettled(t, f)
	}
	if got := mustInvoke(t, f, "echo:y"); got != "y" {
		t.Fatal(got)
	}
}

func TestCancel(t *testing.T) {
	h, _ := newHost(t)
	for _, guest := range []string{"spin", "goguest"} {
		f := load(t, h, guest, Spec{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			testutil.Eventually(t, 5*time.Second, "the call to run", func() bool { return f.Stats().Active == 1 })
			cancel()
		}()
		in := "spin"
		_, err := f.Invoke(ctx, Call{Input: []byte(in)})
		wantCallError(t, err, ErrCanceled, "canceled")
	}
}

// A call whose caller has already given up fails as a canceled call,
// whichever step of making its instance notices it.
func TestCancelBeforeTheCall(t *testing.T) {
	h, _ := newHost(t)
	f := load(t, h, "echo-wat", Spec{})
	mustInvoke(t, f, "compiled") // the module is compiled: its wait is ready at once
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		_, err := f.InvokeCold(ctx, Call{Input: []byte("x")})
		wantCallError(t, err, ErrCanceled, "canceled")
	}
}

func TestCloseWaitsForCalls(t *testing.T) {
	h, _ := newHost(t)
	f := load(t, h, "goguest", Spec{Limits: Limits{Timeout: 300 * time.Millisecond}})
	done := make(chan error, 1)
	go func() {
		_, err := invoke(t, f, "sleep")
		done <- err
	}()
	testutil.Eventually(t, 5*time.Second, "the call to run", func() bool { return f.Stats().Active == 1 })
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := f.Stats().Active; a != 0 {
		t.Fatalf("Close returned with %d call(s) in flight", a)
	}
	select {
	case err := <-done: // the caller may take a moment to hear the outcome
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("call in flight: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call in flight never returned")
	}
	if _, err := invoke(t, f, "echo:x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}

func TestSingleFlightCompile(t *testing.T) {
	h, _ := newHost(t)
	wasm := testutil.Wasm(t, "upper-go")
	var wg sync.WaitGroup
	funcs := make([]*Function, 8)
	for i := range funcs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			f, err := h.Load(context.Background(), Spec{Name: "upper"}, wasm)
			if err != nil {
				t.Error(err)
				return
			}
			funcs[i] = f
		}(i)
	}
	wg.Wait()
	h.mu.Lock()
	n := len(h.modules)
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d compiled modules for one module, want 1", n)
	}
	for _, f := range funcs {
		if f == nil || f.key != funcs[0].key {
			t.Fatal("functions do not share the compiled module")
		}
	}
	// a different memory limit is different compiled code
	g := load(t, h, "upper-go", Spec{Limits: Limits{Memory: 32 << 20}})
	if g.key == funcs[0].key || h.Stats().Modules != 2 {
		t.Fatalf("different memory limits share compiled code (%d modules)", h.Stats().Modules)
	}
}

func TestConcurrentCalls(t *testing.T) {
	h, _ := newHost(t)
	f := load(t, h, "goguest", Spec{Limits: Limits{Concurrency: 4}})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				want := strings.Repeat(string(rune('a'+g)), i+1)
				res, err := f.Invoke(context.Background(), Call{Input: []byte("echo:" + want)})
				if err != nil || !bytes.Equal(res.Output, []byte(want)) {
					t.Errorf("goroutine %d call %d: %q, %v", g, i, res.Output, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if st := f.Stats(); st.Idle > 4 || st.Calls != 400 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCompilationCacheOnDisk(t *testing.T) {
	dir := t.TempDir()
	for round := 0; round < 2; round++ {
		h, err := New(context.Background(), NewConfig().WithCacheDir(dir))
		if err != nil {
			t.Fatal(err)
		}
		f := load(t, h, "wordcount-c", Spec{})
		mustInvoke(t, f, "a b c")
		h.Close(context.Background())
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			t.Fatal("nothing cached on disk")
		}
	}
}
