// Package bench holds sluice's end-to-end benchmarks: the HTTP invoke path
// of a real daemon, measured in the same run as a bare net/http server that
// runs the same module the same way, so that the ratio is what to read.
//
//	go test -run '^$' -bench . -count 5 ./bench/
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/client"
	"github.com/sluicehq/sluice/internal/daemon"
	"github.com/sluicehq/sluice/internal/testutil"
)

// concurrency is the number of clients in flight: enough to keep both
// cores busy through the network stack.
const concurrency = 32

var payload = bytes.Repeat([]byte("sluice "), 1024/7+1)[:1024]

// load sends n requests from concurrency clients and reports requests/s and
// latency percentiles.
func load(b *testing.B, url string, n int) {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	call := func() (time.Duration, error) {
		start := time.Now()
		resp, err := hc.Post(url, "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start), err
	}
	for i := 0; i < concurrency; i++ { // warm up connections and instances
		if _, err := call(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, n)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= n {
					return
				}
				d, err := call()
				if err != nil {
					b.Error(err)
					return
				}
				lat[k] = d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(a, c int) bool { return lat[a] < lat[c] })
	b.ReportMetric(float64(n)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

func startDaemon(b *testing.B) (*daemon.Daemon, *client.Client) {
	o := daemon.DefaultOptions()
	o.Listen, o.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	o.DataDir = b.TempDir()
	o.MemoryStore = true
	d, err := daemon.Start(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Shutdown(context.Background()) })
	return d, client.New(d.Addr(), "")
}

var guests = []string{"echo-wat", "wordcount-c", "upper-go", "echo-c"}

// BenchmarkHTTPInvoke is POST /v1/functions/NAME/invoke on a daemon:
// routing, the registry, the host, with 32 clients over keep-alive
// connections, 1 KiB bodies.
func BenchmarkHTTPInvoke(b *testing.B) {
	for _, guest := range guests {
		b.Run(guest+"/daemon", func(b *testing.B) {
			d, c := startDaemon(b)
			if _, err := c.Deploy(context.Background(), "f", testutil.Wasm(b, guest), nil); err != nil {
				b.Fatal(err)
			}
			load(b, "http://"+d.Addr()+"/v1/functions/f/invoke", max(b.N, 200))
		})
		// The floor: a bare net/http server that runs the same module
		// through the same host, with nothing else around it.
		b.Run(guest+"/net-http", func(b *testing.B) {
			h, err := host.New(context.Background(), host.NewConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			f, err := h.Load(context.Background(), host.Spec{Name: "f"}, testutil.Wasm(b, guest))
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				in, _ := io.ReadAll(r.Body)
				res, err := f.Invoke(r.Context(), host.Call{Input: in})
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				w.Write(res.Output)
			})}
			go srv.Serve(ln)
			defer srv.Close()
			load(b, "http://"+ln.Addr().String()+"/", max(b.N, 200))
		})
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
