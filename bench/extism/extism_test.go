package extismbench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/testutil"
)

// export is the plugins' function both hosts call: it answers its input
// in upper case.
const export = "upper"

// plugins are the Extism plugins measured, by the language of their PDK:
// built by `make wasm` from host/testdata, unmodified.
var plugins = []struct{ lang, guest string }{
	{"go", "extism-go"},
	{"as", "extism-as"},
}

// input is each call's input: 1 KiB of lower-case text, as in `sluice
// bench coldstart`.
var input = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// runner is one host's way to call a plugin: cold makes a fresh instance,
// calls it once and throws it away; warm calls a kept instance.
type runner interface {
	cold(ctx context.Context, in []byte) ([]byte, error)
	warm(ctx context.Context, in []byte) ([]byte, error)
}

// sluiceRunner is the plugin loaded by package host as the daemon loads
// it (`sluice fn deploy NAME plugin.wasm --export upper`), with the
// default limits.
type sluiceRunner struct{ f *host.Function }

func newSluice(ctx context.Context, wasm []byte) (*sluiceRunner, func(), error) {
	cfg := host.NewConfig()
	if dir := cacheDir("sluice"); dir != "" {
		cfg = cfg.WithCacheDir(dir)
	}
	h, err := host.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	f, err := h.Load(ctx, host.Spec{Name: "upper", ABI: abi.Extism, Export: export}, wasm)
	if err != nil {
		h.Close(ctx)
		return nil, nil, err
	}
	return &sluiceRunner{f}, func() { h.Close(ctx) }, nil
}

func (s *sluiceRunner) cold(ctx context.Context, in []byte) ([]byte, error) {
	r, err := s.f.InvokeCold(ctx, host.Call{Input: in})
	return r.Output, err
}

func (s *sluiceRunner) warm(ctx context.Context, in []byte) ([]byte, error) {
	r, err := s.f.Invoke(ctx, host.Call{Input: in})
	return r.Output, err
}

// sdkRunner is the plugin on Extism's Go SDK as its documentation shows
// it for many instances: compiled once (NewCompiledPlugin, WASI on, the
// SDK's defaults otherwise), an instance per use.
type sdkRunner struct {
	c    *extism.CompiledPlugin
	kept *extism.Plugin
}

func newSDK(ctx context.Context, wasm []byte) (*sdkRunner, func(), error) {
	cfg := extism.PluginConfig{EnableWasi: true}
	if dir := cacheDir("extism-sdk"); dir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return nil, nil, err
		}
		cfg.RuntimeConfig = wazero.NewRuntimeConfig().WithCompilationCache(cache)
	}
	c, err := extism.NewCompiledPlugin(ctx, extism.Manifest{Wasm: []extism.Wasm{extism.WasmData{Data: wasm}}}, cfg, nil)
	if err != nil {
		return nil, nil, err
	}
	s := &sdkRunner{c: c}
	return s, func() {
		if s.kept != nil {
			s.kept.Close(ctx)
		}
		c.Close(ctx)
	}, nil
}

func (s *sdkRunner) call(p *extism.Plugin, in []byte) ([]byte, error) {
	rc, out, err := p.Call(export, in)
	if err == nil && rc != 0 {
		err = fmt.Errorf("%s returned %d", export, rc)
	}
	return out, err
}

func (s *sdkRunner) cold(ctx context.Context, in []byte) ([]byte, error) {
	p, err := s.c.Instance(ctx, extism.PluginInstanceConfig{})
	if err != nil {
		return nil, err
	}
	defer p.Close(ctx)
	return s.call(p, in)
}

func (s *sdkRunner) warm(ctx context.Context, in []byte) ([]byte, error) {
	if s.kept == nil {
		p, err := s.c.Instance(ctx, extism.PluginInstanceConfig{})
		if err != nil {
			return nil, err
		}
		s.kept = p
	}
	return s.call(s.kept, in)
}

// cacheDir is where a host keeps the plugins' compiled code on disk when
// SLUICE_TEST_CACHE names a directory (make test sets it): compiling the
// Go plugin takes one to five seconds per host on a busy machine, and no
// figure here includes a compilation. Each host has a directory of its
// own: sluice's removes the entries it did not seal.
func cacheDir(hostName string) string {
	dir := os.Getenv("SLUICE_TEST_CACHE")
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "bench-extism", hostName)
}

// hosts are the two hosts compared, by the name of their sub-benchmark.
var hosts = []struct {
	name string
	load func(ctx context.Context, wasm []byte) (runner, func(), error)
}{
	{"sluice", func(ctx context.Context, wasm []byte) (runner, func(), error) { return newSluice(ctx, wasm) }},
	{"extism-sdk", func(ctx context.Context, wasm []byte) (runner, func(), error) { return newSDK(ctx, wasm) }},
}

// loaded keeps each host's compiled plugin for the whole process, so that
// the six runs of -count 6 compile each plugin once: compiling a Go
// plugin takes about a second, and it is not what is measured.
var loaded sync.Map // host name + "/" + guest -> runner

func load(tb testing.TB, hostName, guest string) runner {
	tb.Helper()
	key := hostName + "/" + guest
	if r, ok := loaded.Load(key); ok {
		return r.(runner)
	}
	for _, h := range hosts {
		if h.name == hostName {
			r, _, err := h.load(context.Background(), testutil.Wasm(tb, guest))
			if err != nil {
				tb.Fatalf("%s on %s: %v", guest, hostName, err)
			}
			// kept until the process ends, as a daemon keeps a function
			loaded.Store(key, r)
			return r
		}
	}
	tb.Fatalf("no host %q", hostName)
	return nil
}

// TestSameOutput checks that both hosts give the same answer to the same
// call of the same plugin, cold and warm, and that it is the right one:
// the benchmarks compare the same work.
func TestSameOutput(t *testing.T) {
	ctx := context.Background()
	inputs := [][]byte{input, []byte("hello, extism"), bytes.Repeat([]byte("xyz"), 10000)}
	for _, p := range plugins {
		t.Run(p.lang, func(t *testing.T) {
			for _, in := range inputs {
				want := []byte(strings.ToUpper(string(in)))
				for _, h := range hosts {
					r := load(t, h.name, p.guest)
					for _, call := range []struct {
						name string
						run  func(context.Context, []byte) ([]byte, error)
					}{{"cold", r.cold}, {"warm", r.warm}, {"warm again", r.warm}} {
						out, err := call.run(ctx, in)
						if err != nil {
							t.Fatalf("%s, %s call of %d bytes: %v", h.name, call.name, len(in), err)
						}
						if !bytes.Equal(out, want) {
							t.Fatalf("%s, %s call of %q...: got %d bytes %.40q, want %.40q",
								h.name, call.name, in[:min(len(in), 20)], len(out), out, want)
						}
					}
				}
			}
		})
	}
}

// BenchmarkExtismCold is a fresh instance of the plugin and its first
// call, thrown away after: sluice's Function.InvokeCold against the SDK's
// CompiledPlugin.Instance, Call and Close.
//
//	cd bench/extism && go test -run '^$' -bench Extism -count 6
func BenchmarkExtismCold(b *testing.B) { benchExtism(b, false) }

// BenchmarkExtismWarm is a call on a kept instance: sluice's pooled one
// (Function.Invoke) against a kept Plugin's Call.
func BenchmarkExtismWarm(b *testing.B) { benchExtism(b, true) }

func benchExtism(b *testing.B, warm bool) {
	ctx := context.Background()
	for _, h := range hosts {
		b.Run(h.name, func(b *testing.B) {
			for _, p := range plugins {
				b.Run(p.lang, func(b *testing.B) {
					r := load(b, h.name, p.guest)
					call := r.cold
					if warm {
						call = r.warm
					}
					if _, err := call(ctx, input); err != nil { // the kept instance made, code paged in
						b.Fatal(err)
					}
					b.SetBytes(int64(len(input)))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := call(ctx, input); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkExtismPaired is the same comparison with the two hosts'
// calls interleaved, one each per iteration (who goes first alternates),
// so that a change in the machine's speed during the run falls on both:
// on a shared machine the ratio it reports (sluice/sdk) moves far less
// than the ratio of the separate benchmarks' medians.
//
//	cd bench/extism && go test -run '^$' -bench ExtismPaired -count 6
func BenchmarkExtismPaired(b *testing.B) {
	ctx := context.Background()
	for _, kind := range []string{"cold", "warm"} {
		b.Run(kind, func(b *testing.B) {
			for _, p := range plugins {
				b.Run(p.lang, func(b *testing.B) {
					var calls [2]func(context.Context, []byte) ([]byte, error)
					for i, h := range hosts {
						r := load(b, h.name, p.guest)
						calls[i] = r.cold
						if kind == "warm" {
							calls[i] = r.warm
						}
						if _, err := calls[i](ctx, input); err != nil {
							b.Fatal(err)
						}
					}
					var spent [2]time.Duration
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						for k := range 2 {
							side := (i + k) % 2
							start := time.Now()
							if _, err := calls[side](ctx, input); err != nil {
								b.Fatal(err)
							}
							spent[side] += time.Since(start)
						}
					}
					b.ReportMetric(spent[0].Seconds()*1e6/float64(b.N), "sluice-µs/call")
					b.ReportMetric(spent[1].Seconds()*1e6/float64(b.N), "sdk-µs/call")
					b.ReportMetric(float64(spent[0])/float64(spent[1]), "sluice/sdk")
				})
			}
		})
	}
}
