package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/testutil"
)

// extismPlugins are the plugins built with Extism's own PDKs (make wasm):
// the same exports in Go and in AssemblyScript.
var extismPlugins = []string{"extism-go", "extism-as"}

// loadExtism loads one export of a plugin.
func loadExtism(t *testing.T, h *Host, plugin, export string, spec Spec) *Function {
	t.Helper()
	spec.Name, spec.Export = export, export
	if spec.ABI == "" {
		spec.ABI = abi.Auto
	}
	f, err := h.Load(context.Background(), spec, testutil.Wasm(t, plugin))
	if err != nil {
		t.Fatalf("load %s --export %s: %v", plugin, export, err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f
}

// Plugins of both PDKs, unmodified, are detected as Extism plugins and
// run: bytes in and out, config and vars, errors, logs, traps, timeouts.
func TestExtismPlugins(t *testing.T) {
	for _, plugin := range extismPlugins {
		t.Run(plugin, func(t *testing.T) {
			h, sink := newHost(t)

			t.Run("bytes in and out", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "upper", Spec{})
				if f.Spec().ABI != abi.Extism {
					t.Fatalf("detected as %s, want extism", f.Spec().ABI)
				}
				if got := mustInvoke(t, f, "hello, plugin"); got != "HELLO, PLUGIN" {
					t.Fatalf("upper = %q", got)
				}
				// longer than a u64 load and not a multiple of 8; and empty
				long := strings.Repeat("abcdefghij", 1000) + "xyz"
				if got := mustInvoke(t, f, long); got != strings.ToUpper(long) {
					t.Fatalf("upper of %d bytes gave %d bytes", len(long), len(got))
				}
				if got := mustInvoke(t, f, ""); got != "" {
					t.Fatalf("upper of nothing = %q", got)
				}
			})

			t.Run("config and vars on a warm instance", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "greet", Spec{Config: map[string]string{"greeting": "bonjour"}, Limits: Limits{Concurrency: 1}})
				for n := 1; n <= 3; n++ {
					if got, want := mustInvoke(t, f, "ada"), fmt.Sprintf("bonjour, ada #%d", n); got != want {
						t.Fatalf("call %d = %q, want %q", n, got, want)
					}
				}
				if st := f.Stats(); st.ColdStarts != 1 {
					t.Fatalf("cold starts = %d, want 1: the instance was not reused", st.ColdStarts)
				}
				// a fresh instance starts with no vars
				res, err := f.InvokeCold(context.Background(), Call{Input: []byte("bob")})
				if err != nil || string(res.Output) != "bonjour, bob #1" {
					t.Fatalf("fresh instance = %q, %v; want its own count from 1", res.Output, err)
				}
				// without the config key, the plugin's default
				g := loadExtism(t, h, plugin, "greet", Spec{Env: map[string]string{"greeting": "not config"}})
				if got := mustInvoke(t, g, "ada"); got != "hello, ada #1" {
					t.Fatalf("without config = %q; env must not reach config_get", got)
				}
			})

			t.Run("error", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "fail", Spec{})
				_, err := invoke(t, f, "42")
				wantCallError(t, err, ErrFunctionFailed, `function "fail" failed: no such order: 42`)
				_, err = invoke(t, f, "43")
				wantCallError(t, err, ErrFunctionFailed, "no such order: 43")
				if st := f.Stats(); st.ColdStarts != 1 {
					t.Fatalf("cold starts = %d, want 1: a reported error keeps the instance", st.ColdStarts)
				}
			})

			t.Run("log line", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "logs", Spec{})
				res, err := f.Invoke(context.Background(), Call{ID: plugin + "-log-1", Input: []byte("x")})
				if err != nil || string(res.Output) != "logged" {
					t.Fatalf("logs = %q, %v", res.Output, err)
				}
				if got := sink.messages(plugin + "-log-1"); !slices.Contains(got, "log: hello from the plugin: x") {
					t.Fatalf("log records = %q", got)
				}
			})

			t.Run("trap", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "boom", Spec{})
				_, err := invoke(t, f, "now")
				wantCallError(t, err, ErrTrap, `function "boom" trapped`)
				_, err = invoke(t, f, "again")
				wantCallError(t, err, ErrTrap)
			})

			t.Run("timeout", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "spin", Spec{Limits: Limits{Timeout: 200 * time.Millisecond}})
				_, err := invoke(t, f, "")
				wantCallError(t, err, ErrTimeout, "timed out after 200ms")
			})

			t.Run("cancel", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "spin", Spec{})
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					testutil.Eventually(t, 10*time.Second, "the call to start", func() bool { return f.Stats().Active == 1 })
					cancel()
				}()
				_, err := f.Invoke(ctx, Call{})
				wantCallError(t, err, ErrCanceled)
			})

			t.Run("forbidden http_request", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "fetch", Spec{})
				_, err := invoke(t, f, "https://forbidden.example/secrets")
				wantCallError(t, err, ErrFunctionFailed, "http_request: GET forbidden.example", "--allow-http")
			})

			t.Run("concurrent calls", func(t *testing.T) {
				f := loadExtism(t, h, plugin, "upper", Spec{Limits: Limits{Concurrency: 3}})
				var wg sync.WaitGroup
				errs := make(chan error, 12)
				for k := range 12 { // 3 running, 9 waiting: within the queue's bound
					wg.Add(1)
					go func() {
						defer wg.Done()
						in := fmt.Sprintf("call %d of many", k)
						res, err := f.Invoke(context.Background(), Call{Input: []byte(in)})
						if err == nil && string(res.Output) != strings.ToUpper(in) {
							err = fmt.Errorf("%q gave %q", in, res.Output)
						}
						errs <- err
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				if st := f.Stats(); st.ColdStarts > 3 || st.Idle == 0 {
					t.Fatalf("stats %+v: want at most 3 instances, pooled", st)
				}
			})
		})
	}
}

// A plugin's request goes through the host's HTTPDoer (the daemon's
// allow-list): an allowed one is answered, a refused one fails the call
// with the doer's message.
func TestExtismHTTPRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", r.Header.Get("Accept"))
		io.WriteString(w, "pong from "+r.URL.Path)
	}))
	defer srv.Close()
	allowed := strings.TrimPrefix(srv.URL, "http://")
	doer := func(ctx context.Context, r HTTPRequest) (HTTPResponse, error) {
		if !strings.HasPrefix(r.URL, srv.URL+"/") {
			return HTTPResponse{}, fmt.Errorf("host not allowed: not in the daemon's allow-list (sluice daemon --allow-http %s)", allowed)
		}
		req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, nil)
		if err != nil {
			return HTTPResponse{}, err
		}
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return HTTPResponse{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return HTTPResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}, err
	}
	h, err := New(context.Background(), NewConfig().WithCacheDir(sharedCache).WithHTTP(doer))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	f := loadExtism(t, h, "extism-go", "fetch", Spec{})
	if got := mustInvoke(t, f, srv.URL+"/ping"); got != "200 pong from /ping" {
		t.Fatalf("fetch = %q", got)
	}
	_, err = invoke(t, f, "http://forbidden.example/")
	wantCallError(t, err, ErrFunctionFailed, "http_request: GET forbidden.example: host not allowed", "--allow-http")
	if got := mustInvoke(t, f, srv.URL+"/again"); got != "200 pong from /again" {
		t.Fatalf("fetch after a refusal = %q", got)
	}
}

// extismHostileWAT is a plugin whose exports misuse the kernel: each
// passes offsets or lengths that are not its own.
const extismHostileWAT = `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "load_u64" (func $load_u64 (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "load_zero") (result i32) (drop (call $load_u64 (i64.const 0))) (i32.const 0))
  (func (export "load_past_block") (result i32)
    (drop (call $load_u64 (call $alloc (i64.const 4)))) (i32.const 0))
  (func (export "store_wraps") (result i32)
    (call $store_u64 (i64.const -1) (i64.const 1)) (i32.const 0))
  (func (export "store_after_free") (result i32) (local $p i64)
    (local.set $p (call $alloc (i64.const 16)))
    (drop (call $alloc (i64.const 16)))
    (call $free (local.get $p))
    (call $store_u8 (local.get $p) (i32.const 1)) (i32.const 0))
  (func (export "free_bogus") (result i32) (call $free (i64.const 12345)) (i32.const 0))
  (func (export "output_past_block") (result i32)
    (call $output_set (call $alloc (i64.const 8)) (i64.const 4096)) (i32.const 0))
  (func (export "output_huge") (result i32)
    (call $output_set (i64.const 8) (i64.const 0x7fffffffffff)) (i32.const 0))
  (func (export "input_past_end") (result i32)
    (drop (call $input_load_u64 (call $input_length))) (i32.const 0))
  (func (export "input_byte_past_end") (result i32)
    (drop (call $input_load_u8 (i64.const 1000000))) (i32.const 0))
  (func (export "error_not_a_block") (result i32) (call $error_set (i64.const 99)) (i32.const 1))
  (func (export "log_not_a_block") (result i32) (call $log_info (i64.const 77)) (i32.const 0))
  (func (export "config_not_a_block") (result i32) (drop (call $config_get (i64.const 5))) (i32.const 0))
  (func (export "alloc_too_much") (result i32) (drop (call $alloc (i64.const 0x100000000))) (i32.const 0))
  (func (export "alloc_forever") (result i32)
    (loop $l (drop (call $alloc (i64.const 65536))) (br $l)) (i32.const 0))
  (func (export "vars_too_large") (result i32) (local $k i64)
    (local.set $k (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $k) (i32.const 107))
    (call $var_set (local.get $k) (call $alloc (i64.const 2000000))) (i32.const 0))
  (func (export "status_only") (result i32) (i32.const 7))
  ;; a well-behaved one: echoes its input through input_offset, frees
  ;; what it allocates, and checks length
  (func (export "echo") (result i32) (local $p i64) (local $q i64)
    (local.set $q (call $alloc (i64.const 100)))
    (call $free (local.get $q))
    (local.set $p (call $input_offset))
    (if (i64.ne (call $length (local.get $p)) (call $input_length)) (then (unreachable)))
    (if (i64.ne (call $length (i64.const 0)) (i64.const 0)) (then (unreachable)))
    (call $output_set (local.get $p) (call $input_length)) (i32.const 0))
)`

// Every offset and length a plugin gives the kernel is checked: a bad one
// fails the call with a message naming the kernel function, never the
// host, and the function goes on serving calls.
func TestExtismHostileOffsets(t *testing.T) {
	h, _ := newHost(t)
	wasm := testutil.WAT(t, extismHostileWAT)
	load := func(export string, limits Limits) *Function {
		f, err := h.Load(context.Background(), Spec{Name: "hostile", ABI: abi.Extism, Export: export, Limits: limits}, wasm)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close(context.Background()) })
		return f
	}
	for _, tc := range []struct {
		export string
		kind   error
		says   string
	}{
		{"load_zero", ErrTrap, "load_u64: offset 0 (+8 bytes) is outside every allocated block"},
		{"load_past_block", ErrTrap, "load_u64: offset 8 (+8 bytes) is outside"},
		{"store_wraps", ErrTrap, "store_u64: offset 18446744073709551615"},
		{"store_after_free", ErrTrap, "store_u8: offset 8 is outside"},
		{"free_bogus", ErrTrap, "free: offset 12345 is not the start of an allocated block"},
		{"output_past_block", ErrTrap, "output_set: offset 8 (+4096 bytes)"},
		{"output_huge", ErrOutputTooLarge, "the limit is 6 MiB"},
		{"input_past_end", ErrTrap, "input_load_u64: offset 5 (+8 bytes) is outside the input (5 bytes)"},
		{"input_byte_past_end", ErrTrap, "input_load_u8: offset 1000000"},
		{"error_not_a_block", ErrTrap, "error_set: offset 99 is not the start"},
		{"log_not_a_block", ErrTrap, "log_info: offset 77"},
		{"config_not_a_block", ErrTrap, "config_get: offset 5"},
		{"alloc_too_much", ErrMemoryLimit, "it reached its limit of 1 MiB (raise --memory): extism:host/env alloc(4294967296): the call's Extism kernel memory would hold 4 GiB, over the function's memory limit of 1 MiB"},
		{"alloc_forever", ErrMemoryLimit, "over the function's memory limit of 1 MiB"},
		{"vars_too_large", ErrFunctionFailed, "var_set: the plugin's vars would hold 1.9 MiB, over their limit of 1 MiB"},
		{"status_only", ErrFunctionFailed, "status_only returned 7 without an error message (error_set)"},
	} {
		t.Run(tc.export, func(t *testing.T) {
			limits := Limits{Memory: 1 << 20}
			if tc.export == "vars_too_large" {
				limits.Memory = 4 << 20 // room for the value, not for the vars
			}
			f := load(tc.export, limits)
			_, err := invoke(t, f, "hello")
			wantCallError(t, err, tc.kind, tc.says)
		})
	}
	// the host and a well-behaved export carry on, call after call
	f := load("echo", Limits{Concurrency: 1})
	for range 3 {
		if got := mustInvoke(t, f, "still here"); got != "still here" {
			t.Fatalf("echo = %q", got)
		}
	}
}

// A module that imports kernel functions sluice does not implement, or
// its host application's functions, is refused at load, naming them; an
// export that is not an entry point too.
func TestExtismRefused(t *testing.T) {
	h, _ := newHost(t)
	for _, tc := range []struct {
		name, wat, export string
		says              []string
	}{
		{name: "unimplemented kernel function", wat: `(module
  (import "extism:host/env" "alloc" (func (param i64) (result i64)))
  (import "extism:host/env" "stream_send" (func (param i64)))
  (func (export "run") (result i32) (i32.const 0)))`, says: []string{"kernel functions sluice does not implement: stream_send"}},
		{name: "host application's function", wat: `(module
  (import "extism:host/user" "kv_read" (func (param i64) (result i64)))
  (func (export "run") (result i32) (i32.const 0)))`, says: []string{"extism:host/user: kv_read"}},
		{name: "no such export", export: "nope", wat: `(module
  (import "extism:host/env" "alloc" (func (param i64) (result i64)))
  (func (export "run") (result i32) (i32.const 0)))`, says: []string{`exports no function "nope" (its entry points: run)`}},
		{name: "several exports, no handle", wat: `(module
  (import "extism:host/env" "alloc" (func (param i64) (result i64)))
  (func (export "a") (result i32) (i32.const 0))
  (func (export "b") (result i32) (i32.const 0)))`, says: []string{"choose one with --export (one of: a, b)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Load(context.Background(), Spec{Name: "refused", Export: tc.export}, testutil.WAT(t, tc.wat))
			if !errors.Is(err, ErrNoABI) {
				t.Fatalf("load error = %v, want ErrNoABI", err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("error %q does not say %q", err, s)
				}
			}
		})
	}
	// --export and --config are for plugins only
	_, err := h.Load(context.Background(), Spec{Name: "refused", Config: map[string]string{"k": "v"}}, testutil.Wasm(t, "echo-wat"))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "--export and --config are for Extism plugins") {
		t.Fatalf("config on a reactor: %v", err)
	}
}

// FuzzExtismMemory runs sequences of kernel memory operations: whatever
// the offsets and lengths, nothing panics, every span returned lies in
// one live block, and the limit holds.
func FuzzExtismMemory(f *testing.F) {
	f.Add([]byte{0, 16, 1, 8, 2, 8, 3, 0})
	f.Add([]byte{0, 200, 0, 1, 4, 8, 1, 8, 0, 3, 2, 16})
	f.Add([]byte{0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 1, 8, 0, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const limit = 4096
		var m extismMemory
		m.reset(limit)
		var offs []uint64
		for k := 0; k+1 < len(ops); k += 2 {
			arg := uint64(ops[k+1])
			pick := func() uint64 {
				if len(offs) == 0 || arg%3 == 0 {
					return arg // a made-up offset
				}
				return offs[int(arg)%len(offs)] + arg%5
			}
			switch ops[k] % 5 {
			case 0:
				off, err := m.alloc(arg * 7)
				if err == nil && off != 0 {
					offs = append(offs, off)
				}
			case 1:
				m.free(pick())
			case 2:
				off, n := pick(), arg%17
				if s, ok := m.span(off, n); ok {
					if uint64(len(s)) != n {
						t.Fatalf("span(%d, %d) has %d bytes", off, n, len(s))
					}
					for j := range s {
						s[j] = byte(j)
					}
				}
			case 3:
				if b, ok := m.bytes(pick()); ok && uint64(len(b)) > limit {
					t.Fatalf("a block of %d bytes under a limit of %d", len(b), limit)
				}
			case 4:
				m.reset(limit)
				offs = offs[:0]
			}
			if uint64(len(m.arena)) > limit {
				t.Fatalf("arena of %d bytes over the limit of %d", len(m.arena), limit)
			}
			var end uint64
			for _, b := range m.blocks {
				if b.start < end || b.start < extismBase || b.length > b.size {
					t.Fatalf("blocks overlap or are malformed: %+v", m.blocks)
				}
				end = b.start + b.size
			}
		}
	})
}

// BenchmarkExtismWarmCall is a warm call of a plugin's upper on a pooled
// instance, 1 KiB in and out.
func BenchmarkExtismWarmCall(b *testing.B) {
	in := []byte(strings.Repeat("a", 1024))
	for _, plugin := range extismPlugins {
		b.Run(plugin, func(b *testing.B) {
			h, err := New(context.Background(), NewConfig().WithCacheDir(sharedCache))
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			f, err := h.Load(context.Background(), Spec{Name: "upper", Export: "upper", Limits: Limits{Concurrency: 1}}, testutil.Wasm(b, plugin))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Invoke(context.Background(), Call{Input: in}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := f.Invoke(context.Background(), Call{Input: in}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
