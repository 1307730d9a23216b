package bench

import (
	"context"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/testutil"
)

func startDaemon(tb testing.TB, file ...bool) (*daemon.Daemon, *client.Client) {
	o := daemon.DefaultOptions()
	o.Listen, o.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	o.DataDir = tb.TempDir()
	o.MemoryStore = len(file) == 0 || !file[0]
	d, err := daemon.Start(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Shutdown(context.Background()) })
	return d, client.New(d.Addr(), "")
}

var guests = []string{"echo-wat", "wordcount-c", "upper-go", "echo-c"}

// httpGuests are the guests BenchmarkHTTP runs: those above, and
// http-wat, which reads three request headers and sets a status and
// four headers (Location, two Set-Cookie, Content-Type), with requests
// that carry an Authorization and a repeated header.
var httpGuests = append(slices.Clone(guests), "http-wat")

// BenchmarkHTTP measures, on one module, three servers in turns: the
// invoke route of a daemon (POST /v1/functions/NAME/invoke: routing, the
// catalog, the registry, the host), an HTTP trigger's route on it, and
// the floor, a bare net/http server that runs the same module through the
// same host with nothing else around it. 32 clients over keep-alive
// connections, 1 KiB bodies, everything in this process; b.N requests per
// server, in four rounds whose order alternates, so that the machine's
// drift falls on all three. Read the ratios (trigger/floor, invoke/floor).
// `sluice bench http --floor` measures the same with the daemon and the
// floor in processes of their own.
//
//	go test -run '^$' -bench HTTP -benchtime 100000x -count 6 ./internal/app/bench/
func BenchmarkHTTP(b *testing.B) {
	ctx := context.Background()
	for _, guest := range httpGuests {
		b.Run(guest, func(b *testing.B) {
			var header http.Header
			if guest == "http-wat" {
				header = http.Header{"Authorization": {"Bearer t0k"}, "X-Multi": {"1", "2"}}
			}
			wasm := testutil.Wasm(b, guest)
			d, c := startDaemon(b)
			if _, err := c.Deploy(ctx, "f", wasm, nil); err != nil {
				b.Fatal(err)
			}
			if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "t", Function: "f",
				HTTP: &catalog.HTTPSpec{Path: "/f", Method: "POST"}}); err != nil {
				b.Fatal(err)
			}
			floor, err := StartFloorServer(ctx, wasm, host.Spec{})
			if err != nil {
				b.Fatal(err)
			}
			defer floor.Close(ctx)
			targets := []struct{ name, url string }{
				{"invoke", "http://" + d.Addr() + "/v1/functions/f/invoke"},
				{"trigger", "http://" + d.Addr() + "/fn/f"},
				{"floor", floor.URL},
			}
			const turns = 4
			per := max(b.N, 200) / turns
			res := make([]*HTTPResult, len(targets))
			b.ResetTimer()
			for turn := 0; turn < turns; turn++ {
				for k := range targets {
					i := k
					if turn%2 == 1 {
						i = len(targets) - 1 - k
					}
					r, err := HTTP(ctx, HTTPOptions{URL: targets[i].url, Header: header, Requests: per, Warmup: 200 * time.Millisecond})
					if err != nil {
						b.Fatalf("%s: %v", targets[i].name, err)
					}
					if r.Errors > 0 {
						b.Fatalf("%s: %d requests failed: %s", targets[i].name, r.Errors, r.FirstError)
					}
					if res[i] == nil {
						res[i] = r
					} else {
						res[i] = Merge(res[i], r)
					}
				}
			}
			b.StopTimer()
			for i, t := range targets {
				b.ReportMetric(res[i].RPS, t.name+"-req/s")
				b.ReportMetric(Micros(res[i].Latency.P50), t.name+"-p50-µs")
				b.ReportMetric(Micros(res[i].Latency.P99), t.name+"-p99-µs")
			}
			b.ReportMetric(res[0].RPS/res[2].RPS, "invoke/floor")
			b.ReportMetric(res[1].RPS/res[2].RPS, "trigger/floor")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	cleanMemory()
	cleanStartup()
	os.Exit(code)
}
