package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
)

var ctx = context.Background()

// compileCache is shared by the tests' daemons, as by daemons on one node:
// each Go guest compiles once per test run, not once per daemon; with
// SLUICE_TEST_CACHE (make test sets it), once for the runs on both
// brokers.
var compileCache string

func TestMain(m *testing.M) {
	if dir := os.Getenv("SLUICE_TEST_CACHE"); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			panic(err)
		}
		compileCache = dir
		warmCompileCache()
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "sluice-daemon-test-cache-")
	if err != nil {
		panic(err)
	}
	compileCache = dir
	warmCompileCache()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// warmCompileCache compiles the Go guests the tests deploy into the
// shared cache, once, before the tests run in parallel: compiling one
// takes seconds under the race detector, and on a cold cache the tests'
// daemons compiled each of them several times at once (a clean run of the
// package took six minutes instead of one). A guest that is not built is
// left to the test that needs it, which says so.
func warmCompileCache() {
	data, err := os.MkdirTemp("", "sluice-daemon-warm-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(data)
	o := DefaultOptions()
	o.Broker = testBroker()
	o.Listen, o.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	o.DataDir, o.CompileCacheDir = data, compileCache
	o.CompileTimeout = testCompileTimeout
	o.StartTimeout, o.ShutdownTimeout = 30*time.Second, 10*time.Second
	d, err := Start(ctx, o)
	if err != nil {
		panic(fmt.Sprintf("start a daemon to warm the compile cache: %v", err))
	}
	defer d.Shutdown(ctx)
	c := client.New(d.Addr(), "")
	_, file, _, _ := runtime.Caller(0)
	var wg sync.WaitGroup
	for _, g := range []string{"goguest", "wfguest", "upper-go", "http-go", "hello-wasi"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "build", "wasm", g+".wasm"))
		if err != nil {
			continue
		}
		if _, err := c.Deploy(ctx, g, b, nil); err != nil {
			panic(fmt.Sprintf("warm the compile cache with %s: %v", g, err))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Invoke(ctx, g, nil) // compiled before it is called; the call's outcome does not matter
		}()
	}
	wg.Wait()
}

// testCompileTimeout is the tests' bound on compiling one module: the
// Go guests take seconds to compile alone, and minutes under the race
// detector with every package's tests on two shared cores (two minutes,
// the default, was seen run out).
const testCompileTimeout = 10 * time.Minute

type hostRecord = host.Record

// testOptions runs a daemon on free loopback ports with its own data dir.
func testOptions(t *testing.T) Options {
	o := DefaultOptions()
	o.Broker = testBroker()
	o.Listen = "127.0.0.1:0"
	o.NATSListen = "127.0.0.1:0"
	o.DataDir = t.TempDir()
	o.CompileCacheDir = compileCache
	o.CompileTimeout = testCompileTimeout
	o.StartTimeout = 30 * time.Second
	o.ShutdownTimeout = 10 * time.Second
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return o
}

func start(t *testing.T, o Options) (*Daemon, *client.Client) {
	t.Helper()
	d, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, o.ShutdownTimeout)
		defer cancel()
		d.Shutdown(sctx)
	})
	return d, client.New(d.Addr(), o.Token)
}

func deploy(t *testing.T, c *client.Client, name, guest string, q url.Values) api.FunctionView {
	t.Helper()
	v, err := c.Deploy(ctx, name, testutil.Wasm(t, guest), q)
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return v
}

func invoke(t *testing.T, c *client.Client, name, in string) string {
	t.Helper()
	out, err := c.Invoke(ctx, name, []byte(in))
	if err != nil {
		t.Fatalf("invoke %s(%q): %v", name, in, err)
	}
	return string(out)
}

// apiError checks that err is the daemon's error with the status and code
// and that its message says each substring.
func apiError(t *testing.T, err error, status int, code string, says ...string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want an API error %d %s", err, status, code)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("error %d %s %q, want %d %s", e.Status, e.Code, e.Message, status, code)
	}
	for _, s := range says {
		if !strings.Contains(e.Message, s) {
			t.Fatalf("error %q does not say %q", e.Message, s)
		}
	}
}

func TestDeployAndInvoke(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	tests := []struct {
		name, guest, abi, in, out string
		q                         url.Values
	}{
		{"hello", "hello-wasi", "wasi", "Ada", "Bonjour, Ada!\n", url.Values{"env": {"GREETING=Bonjour"}}},
		{"upper", "upper-go", "reactor", "quiet", "QUIET", nil},
		{"echo", "echo-wat", "reactor", "ping", "ping", nil},
		{"wc", "wordcount-c", "reactor", "a b c", `{"bytes":5,"words":3,"lines":1}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := deploy(t, c, tc.name, tc.guest, tc.q)
			if v.Version != 1 || v.ABI != tc.abi || len(v.Module) != 64 {
				t.Fatalf("deployed %+v", v)
			}
			for i := 0; i < 2; i++ {
				if got := invoke(t, c, tc.name, tc.in); got != tc.out {
					t.Fatalf("output %q, want %q", got, tc.out)
				}
			}
		})
	}
	fns, err := c.Functions(ctx)
	if err != nil || len(fns) != len(tests) {
		t.Fatalf("list: %d functions, %v", len(fns), err)
	}
	f, err := c.Function(ctx, "upper")
	if err != nil || f.Stats == nil || f.Stats.Calls != 2 || f.Stats.ColdStarts != 1 {
		t.Fatalf("get: %+v, %v", f, err)
	}
	if f.Limits.Memory != 64<<20 || f.Limits.Timeout != "30s" || f.Limits.Concurrency != 32 {
		t.Fatalf("default limits %+v", f.Limits)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	deploy(t, c, "echo", "echo-wat", nil)
	deploy(t, c, "go", "goguest", url.Values{"timeout": {"2s"}, "memory": {"16MiB"}, "max-input": {"1KiB"}})
	deploy(t, c, "spin", "spin", url.Values{"timeout": {"100ms"}})
	deploy(t, c, "exit", "exit", nil)
	deploy(t, c, "trap", "trap", nil)

	t.Run("deploy", func(t *testing.T) {
		tests := []struct {
			name   string
			fn     string
			wasm   []byte
			q      url.Values
			status int
			code   string
			says   string
		}{
			{"not wasm", "x", []byte("hello world"), nil, 422, "invalid_module", "magic number"},
			{"truncated", "x", testutil.Wasm(t, "echo-wat")[:50], nil, 422, "invalid_module", ""},
			{"no abi", "x", testutil.Wasm(t, "noabi"), nil, 422, "no_abi", "export _start"},
			{"bad import", "x", testutil.Wasm(t, "badimport"), nil, 422, "no_abi", "env.now"},
			{"memory too small", "x", testutil.Wasm(t, "bigmem"), nil, 422, "memory_too_small", "raise --memory"},
			{"bad name", "Bad_Name", testutil.Wasm(t, "echo-wat"), nil, 400, "invalid_argument", "lowercase letters"},
			{"long name", strings.Repeat("a", 64), testutil.Wasm(t, "echo-wat"), nil, 400, "invalid_argument", ""},
			{"bad abi", "x", testutil.Wasm(t, "echo-wat"), url.Values{"abi": {"wasix"}}, 400, "invalid_argument", "auto, wasi, reactor or extism"},
			{"bad memory", "x", testutil.Wasm(t, "echo-wat"), url.Values{"memory": {"lots"}}, 400, "invalid_argument", "memory"},
			{"bad timeout", "x", testutil.Wasm(t, "echo-wat"), url.Values{"timeout": {"-1s"}}, 400, "invalid_argument", "timeout"},
			{"bad env", "x", testutil.Wasm(t, "echo-wat"), url.Values{"env": {"NOEQUALS"}}, 400, "invalid_argument", "KEY=VALUE"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.Deploy(ctx, tc.fn, tc.wasm, tc.q)
				apiError(t, err, tc.status, tc.code, tc.says)
			})
		}
	})
	// A first call instantiates the Go guest (its runtime starts) within
	// the timeout, and the memory case grows it to 16 MiB: on a loaded
	// machine under the race detector each took more than 300 ms, and the
	// memory case timed out instead of reaching the limit. Warm the pool
	// first, and give go 2 s.
	testutil.Eventually(t, 30*time.Second, "a first call of go", func() bool {
		out, err := c.Invoke(ctx, "go", []byte("echo:warm"))
		return err == nil && string(out) == "warm"
	})
	t.Run("invoke", func(t *testing.T) {
		tests := []struct {
			name, fn, in string
			status       int
			code         string
			says         string
		}{
			{"missing function", "nope", "", 404, "not_found", `no function "nope"`},
			{"input too large", "go", strings.Repeat("x", 2000), 413, "input_too_large", "the limit is 1 KiB"},
			{"trap", "trap", "", 502, "trap", "unreachable"},
			{"endless loop", "spin", "", 504, "timeout", "timed out after 100ms"},
			{"exit code", "exit", "", 502, "exit", "exited with code 3: disk on fire"},
			{"memory", "go", "hog", 502, "memory_limit", "limit of 16 MiB"},
			{"go error", "go", "error", 502, "function_error", "the order has no items"},
			{"go panic", "go", "panic", 502, "function_error", "panic: assignment to entry in nil map"},
			{"go coded failure", "go", "coded", 502, "function_error", "the item is out of stock"},
			{"go sleeps", "go", "sleep", 504, "timeout", "timed out after 2s"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := c.Invoke(ctx, tc.fn, []byte(tc.in))
				apiError(t, err, tc.status, tc.code, tc.says)
				// the function's own code, beside the daemon's
				var e *client.Error
				if errors.As(err, &e) && e.FunctionCode != map[bool]string{true: "out_of_stock"}[tc.in == "coded"] {
					t.Fatalf("function code %q", e.FunctionCode)
				}
			})
		}
	})
	// The daemon keeps serving, and nothing deployed is lost.
	if got := invoke(t, c, "echo", "still here"); got != "still here" {
		t.Fatal(got)
	}
	if got := invoke(t, c, "go", "echo:and here"); got != "and here" {
		t.Fatal(got)
	}
	if got := invoke(t, c, "spin", "ok"); got != "ok" {
		t.Fatal(got)
	}
	fns, _ := c.Functions(ctx)
	if len(fns) != 5 {
		t.Fatalf("%d functions after the failures, want 5", len(fns))
	}
}

func TestHTTPTrigger(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "go", "goguest", nil)
	deploy(t, c, "upper", "upper-go", nil)
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "meta", Function: "go", HTTP: &catalog.HTTPSpec{Path: "/meta"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "shout", Function: "upper", HTTP: &catalog.HTTPSpec{Path: "/api/shout", Method: "post"}}); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) (int, string, http.Header) {
		return httpCall(t, d, method, path, body)
	}
	if status, body, h := call("POST", "/api/shout", "hey"); status != 200 || body != "HEY" || h.Get("X-Sluice-Invocation") == "" {
		t.Fatalf("POST /api/shout: %d %q", status, body)
	}
	if status, body, h := call("GET", "/api/shout", ""); status != 405 || h.Get("Allow") != "POST" || !strings.Contains(body, "method_not_allowed") {
		t.Fatalf("GET /api/shout: %d %q", status, body)
	}
	for key, want := range map[string]string{"http.method": "PUT", "http.path": "/meta", "http.query": "a=1&b=2", "trigger": "meta"} {
		status, body, _ := call("PUT", "/meta?a=1&b=2", "meta:"+key)
		if status != 200 || body != want {
			t.Fatalf("meta %s: %d %q, want %q", key, status, body, want)
		}
	}
	if status, body, _ := call("POST", "/meta", "error"); status != 502 || !strings.Contains(body, `"code": "function_error"`) {
		t.Fatalf("function error over HTTP: %d %q", status, body)
	}
	if status, _, _ := call("GET", "/nowhere", ""); status != 404 {
		t.Fatalf("unknown route: %d", status)
	}

	_, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "again", Function: "go", HTTP: &catalog.HTTPSpec{Path: "/meta", Method: "GET"}})
	apiError(t, err, 409, "conflict", `route GET /meta is taken by trigger "meta"`)
	_, err = c.CreateTrigger(ctx, api.TriggerRequest{Name: "ghost", Function: "nope", HTTP: &catalog.HTTPSpec{Path: "/ghost"}})
	apiError(t, err, 404, "not_found", `no function "nope"`)
	_, err = c.CreateTrigger(ctx, api.TriggerRequest{Name: "bad", Function: "go", HTTP: &catalog.HTTPSpec{Path: "relative"}})
	apiError(t, err, 400, "invalid_argument", "absolute path")
	err = c.DeleteFunction(ctx, "upper")
	apiError(t, err, 409, "conflict", `function "upper" is used by trigger "shout": delete it first, or delete with --force`)

	if err := c.DeleteTrigger(ctx, "shout"); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := call("POST", "/api/shout", "hey"); status != 404 {
		t.Fatalf("deleted route: %d", status)
	}
	if err := c.DeleteFunction(ctx, "upper"); err != nil {
		t.Fatalf("delete after its trigger is gone: %v", err)
	}
	_, err = c.Invoke(ctx, "upper", nil)
	apiError(t, err, 404, "not_found")
}

func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	d, c := start(t, o)
	deploy(t, c, "hello", "hello-wasi", nil)
	deploy(t, c, "upper", "upper-go", nil)
	deploy(t, c, "upper", "upper-go", url.Values{"memory": {"32MiB"}}) // version 2
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "up", Function: "upper", HTTP: &catalog.HTTPSpec{Path: "/up"}}); err != nil {
		t.Fatal(err)
	}
	natsListen := d.NATSAddr()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	o.NATSListen = natsListen
	d2, c2 := start(t, o)
	f, err := c2.Function(ctx, "upper")
	if err != nil || f.Version != 2 || f.Limits.Memory != 32<<20 || len(f.Triggers) != 1 {
		t.Fatalf("after restart: %+v, %v", f, err)
	}
	if got := invoke(t, c2, "hello", "again"); got != "Hello, again!\n" {
		t.Fatal(got)
	}
	resp, err := http.Post("http://"+d2.Addr()+"/fn/up", "text/plain", strings.NewReader("restored"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "RESTORED" {
		t.Fatalf("trigger after restart: %d %q", resp.StatusCode, b)
	}
}

func TestTwoDaemonsShareTheCatalog(t *testing.T) {
	t.Parallel()
	a, ca := start(t, testOptions(t))
	ob := testOptions(t)
	ob.NATSURL = a.NATSURL()
	b, cb := start(t, ob)

	deploy(t, ca, "upper", "upper-go", nil)
	// b learned of it through NATS Streaming, not from a
	waitForFunction(t, cb, "upper")
	if got := invoke(t, cb, "upper", "from b"); got != "FROM B" {
		t.Fatal(got)
	}
	if _, err := cb.CreateTrigger(ctx, api.TriggerRequest{Name: "up", Function: "upper", HTTP: &catalog.HTTPSpec{Path: "/up"}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "daemon a to serve b's trigger", func() bool {
		resp, err := http.Post("http://"+a.Addr()+"/fn/up", "text/plain", strings.NewReader("x"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	deploy(t, cb, "upper", "goguest", nil) // version 2, deployed on b
	testutil.Eventually(t, 10*time.Second, "daemon a to run version 2", func() bool {
		out, err := ca.Invoke(ctx, "upper", []byte("echo:v2"))
		return err == nil && string(out) == "v2"
	})
	if err := ca.DeleteTrigger(ctx, "up"); err != nil {
		t.Fatal(err)
	}
	if err := ca.DeleteFunction(ctx, "upper"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "daemon b to forget the function", func() bool {
		_, err := cb.Invoke(ctx, "upper", nil)
		var e *client.Error
		return errors.As(err, &e) && e.Status == 404
	})
	_ = b
}

func TestRedeployLetsCallsFinishOnTheOldVersion(t *testing.T) {
	t.Parallel()
	_, c := start(t, testOptions(t))
	deploy(t, c, "slow", "goguest", nil)
	if got := invoke(t, c, "slow", "nap:0"); got != "version 1" {
		t.Fatal(got)
	}
	done := make(chan string, 1)
	go func() {
		out, err := c.Invoke(ctx, "slow", []byte("nap:1500"))
		if err != nil {
			done <- err.Error()
			return
		}
		done <- string(out)
	}()
	time.Sleep(200 * time.Millisecond) // let the call start on version 1
	deploy(t, c, "slow", "goguest", nil)
	if got := invoke(t, c, "slow", "nap:0"); got != "version 2" {
		t.Fatalf("new call: %q", got)
	}
	if got := <-done; got != "version 1" {
		t.Fatalf("call in flight during the redeploy: %q", got)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.Token = "s3cret"
	d, c := start(t, o)
	resp, err := http.Get("http://" + d.Addr() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz without token: %v %v", resp, err)
	}
	resp.Body.Close()
	_, err = client.New(d.Addr(), "").Functions(ctx)
	apiError(t, err, 401, "unauthorized")
	_, err = client.New(d.Addr(), "wrong").Functions(ctx)
	apiError(t, err, 401, "unauthorized")
	if _, err := c.Functions(ctx); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	// Probes call /readyz without credentials (a Kubernetes probe cannot
	// read a Secret); it shows nothing but readiness.
	if resp, err := http.Get("http://" + d.Addr() + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz without token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/metrics", "/fn/anything", "/v1/triggers"} {
		resp, err := http.Get("http://" + d.Addr() + path)
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("%s without token: %v %v", path, resp.Status, err)
		}
		resp.Body.Close()
	}

	open := testOptions(t)
	open.Listen = "0.0.0.0:0"
	if _, err := Start(ctx, open); err == nil || !strings.Contains(err.Error(), "without --token") {
		t.Fatalf("public listener without a token: %v", err)
	}
	open.Insecure = true
	start(t, open)
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	d, _ := start(t, testOptions(t))
	resp, err := http.Get("http://" + d.Addr() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp.Status, err)
	}
	resp.Body.Close()
}

func TestGracefulShutdownFinishesCalls(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "slow", "goguest", nil)
	invoke(t, c, "slow", "nap:0")
	var wg sync.WaitGroup
	results := make([]string, 4)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := c.Invoke(ctx, "slow", []byte("nap:3000"))
			results[i] = fmt.Sprint(string(out), err)
		}(i)
	}
	// Shut down once every call is running (a fixed pause let a busy
	// machine start the shutdown before a request had reached the
	// daemon: that request met a closing connection, not a draining
	// daemon).
	testutil.Eventually(t, 10*time.Second, "all four calls running", func() bool {
		return scrape(t, d.Addr())[`sluice_function_calls_active{function="slow"}`] == float64(len(results))
	})
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, r := range results {
		if r != "version 1<nil>" {
			t.Fatalf("call %d during shutdown: %q", i, r)
		}
	}
	if _, err := c.Functions(ctx); err == nil {
		t.Fatal("the daemon still answers after shutdown")
	}
}

func TestLogsFromEveryDaemon(t *testing.T) {
	t.Parallel()
	a, ca := start(t, testOptions(t))
	ob := testOptions(t)
	ob.NATSURL = a.NATSURL()
	_, cb := start(t, ob)
	deploy(t, ca, "go", "goguest", nil)
	invoke(t, ca, "go", "log")
	waitForFunction(t, cb, "go")
	invoke(t, cb, "go", "log")
	var lines []string
	testutil.Eventually(t, 10*time.Second, "logs of both calls", func() bool {
		lines = nil
		err := ca.Logs(ctx, "go", time.Hour, false, func(r hostRecord) {
			lines = append(lines, r.Stream+": "+r.Message)
		})
		return err == nil && len(lines) == 4
	})
	want := "log: a warning from the guest|stderr: a line on stderr|log: a warning from the guest|stderr: a line on stderr"
	if got := strings.Join(lines, "|"); got != want {
		t.Fatalf("logs:\n%s", got)
	}
	// follow: a new call's logs arrive while following (calls are made
	// until one arrives: the follow may start after the first)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan string, 64)
	go ca.Logs(fctx, "go", time.Millisecond, true, func(r hostRecord) { got <- r.Message })
	testutil.Eventually(t, 20*time.Second, "a log line while following", func() bool {
		invoke(t, cb, "go", "log")
		select {
		case m := <-got:
			if m != "a warning from the guest" {
				t.Fatalf("followed %q", m)
			}
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
}

// TestShutdownEndsFollowedStreams: a client following a function's logs
// or tailing a topic does not hold a graceful shutdown: the daemon ends
// those streams when it drains, and its API server stops at once rather
// than at the shutdown's deadline.
func TestShutdownEndsFollowedStreams(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "go", "goguest", nil)
	invoke(t, c, "go", "log")
	logsDone, tailDone := make(chan error, 1), make(chan error, 1)
	var followed, tailed atomic.Int32
	go func() {
		logsDone <- c.Logs(ctx, "go", time.Hour, true, func(hostRecord) { followed.Add(1) })
	}()
	go func() {
		tailDone <- c.Tail(ctx, "quiet-topic", client.TailOptions{}, func(api.TopicMessage) error { tailed.Add(1); return nil })
	}()
	testutil.Eventually(t, 10*time.Second, "the follow to start", func() bool { return followed.Load() > 0 })
	testutil.Eventually(t, 10*time.Second, "the tail to start", func() bool {
		if err := c.Publish(ctx, "quiet-topic", []byte("x")); err != nil {
			t.Fatal(err)
		}
		return tailed.Load() > 0
	})
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with streams open: %v", err)
	}
	for what, done := range map[string]chan error{"logs": logsDone, "tail": tailDone} {
		select {
		case <-done:
		case <-sctx.Done():
			t.Fatalf("the %s stream is still open after the shutdown", what)
		}
	}
}

func TestCatalogSurvivesLargeModules(t *testing.T) {
	t.Parallel()
	// A Go guest is over NATS's 1 MB payload limit: it is stored in chunks
	// and a second daemon without a local copy fetches and runs it.
	a, ca := start(t, testOptions(t))
	v := deploy(t, ca, "big", "goguest", nil)
	if v.Size < 2<<20 {
		t.Fatalf("guest of %d bytes does not exercise chunking", v.Size)
	}
	ob := testOptions(t)
	ob.NATSURL = a.NATSURL()
	_, cb := start(t, ob)
	if got := invoke(t, cb, "big", "echo:fetched"); got != "fetched" {
		t.Fatal(got)
	}
	cached, err := os.ReadFile(ob.DataDir + "/cache/modules/" + v.Module + ".wasm")
	if err != nil || !bytes.Equal(cached, testutil.Wasm(t, "goguest")) {
		t.Fatalf("module not cached by the second daemon: %v", err)
	}
}

// waitForFunction waits until a daemon's catalog has the function: what
// another daemon deployed reaches it through NATS Streaming.
func waitForFunction(t *testing.T, c *client.Client, name string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "the daemon to see function "+name, func() bool {
		_, err := c.Function(ctx, name)
		return err == nil
	})
}

// TestTwoDaemonsShareWorkflows: an invocation started on one daemon is
// visible on the other, and the other can cancel it (the owner writes the
// cancellation).
func TestTwoDaemonsShareWorkflows(t *testing.T) {
	t.Parallel()
	a, ca := start(t, testOptions(t))
	ob := testOptions(t)
	ob.NATSURL = a.NATSURL()
	b, cb := start(t, ob)
	if a.Node() == b.Node() {
		t.Fatalf("both daemons are node %s", a.Node())
	}
	if _, _, err := ca.CreateWorkflow(ctx, "nap", []byte("apiVersion: sluice/v1\nkind: Workflow\nname: nap\ntasks:\n  z: { run: sleep, inputs: 1h }\n")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "daemon b to know the workflow", func() bool {
		_, err := cb.Workflow(ctx, "nap")
		return err == nil
	})
	inv, err := cb.InvokeWorkflow(ctx, "nap", nil, client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Owner != b.Node() {
		t.Fatalf("owner %q, want daemon b %q", inv.Owner, b.Node())
	}
	testutil.Eventually(t, 10*time.Second, "daemon a to see b's invocation sleeping", func() bool {
		got, err := ca.Invocation(ctx, inv.ID)
		return err == nil && got.Tasks["z"] != nil && got.Tasks["z"].Status == "running"
	})
	got, err := ca.CancelInvocation(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "canceled" {
		t.Fatalf("after cancel on daemon a: %s", got.Status)
	}
	testutil.Eventually(t, 10*time.Second, "daemon b to show it canceled", func() bool {
		got, err := cb.Invocation(ctx, inv.ID)
		return err == nil && got.Status == "canceled"
	})
}
