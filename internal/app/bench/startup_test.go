package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/testutil"
)

// startupObjects is how many modules BenchmarkStartup3000 deploys and how
// many topics it publishes to: the scale at which NATS Streaming's start
// was measured to take 19 to 23 s (a channel, and its files, per module
// and per topic).
const startupObjects = 3000

// startupTimeout is the daemon's --start-timeout in BenchmarkStartup3000:
// at its default (a minute) a daemon on an embedded NATS Streaming with
// 6,000 channels gave up while the server was still recovering them (two
// minutes on a loaded 2-core machine).
const startupTimeout = 15 * time.Minute

// startupDeployers is how many deploys and publications run at once while
// the data is made: enough to keep the daemon busy on two cores, not so
// many that the setup's own clients crowd it.
const startupDeployers = 4

// BenchmarkStartup3000 measures the start of the real binary, on each
// broker embedded with its file store, on a data dir holding
// startupObjects distinct modules (echo-wat, each made distinct by a
// custom section: a module each in the store) and as many topics, each
// with one message (NATS Streaming keeps a channel per topic; JetStream a
// subject in one stream). Each iteration starts `sluice daemon` on that
// data dir and reports the time from the process's start to the first
// 200 of GET /readyz (ready-s), then its RSS (MiB) and open file
// descriptors (fds), and stops it with SIGINT. The daemon is given
// --start-timeout startupTimeout: at the default a daemon on NATS
// Streaming may give up before its server has recovered. The data dir is made once
// per broker and process (minutes), so -count restarts the same data;
// SLUICE_BENCH_OBJECTS sets another number than startupObjects.
//
// Not in make bench (the setup takes minutes):
//
//	go test -run '^$' -bench '^BenchmarkStartup3000$' -benchtime 1x -count 3 -timeout 60m ./internal/app/bench/
func BenchmarkStartup3000(b *testing.B) {
	n := startupObjects
	if v := os.Getenv("SLUICE_BENCH_OBJECTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	bin := memBinary(b)
	for _, broker := range []string{daemon.BrokerNATSStreaming, daemon.BrokerJetStream} {
		b.Run(broker, func(b *testing.B) {
			data := startupData(b, bin, broker, n)
			for i := 0; i < b.N; i++ {
				ready, pid, stop := startTimed(b, bin, "daemon", "--data", data, "--broker", broker, "--nats-listen", "127.0.0.1:0",
					"--start-timeout", startupTimeout.String())
				b.ReportMetric(ready.Seconds(), "ready-s")
				b.ReportMetric(mib(rssOf(pid.Pid)), "MiB")
				b.ReportMetric(float64(openFDs(b, pid.Pid)), "fds")
				stop()
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

var (
	startupMu   sync.Mutex
	startupDirs = map[string]string{}
)

// cleanStartup removes the data dirs BenchmarkStartup3000 made.
func cleanStartup() {
	startupMu.Lock()
	defer startupMu.Unlock()
	for _, dir := range startupDirs {
		os.RemoveAll(dir)
	}
}

// startupData returns a data dir for broker where n distinct modules are
// deployed and as many topics hold a message, made once per process.
func startupData(b *testing.B, bin, broker string, n int) string {
	startupMu.Lock()
	defer startupMu.Unlock()
	if dir, ok := startupDirs[broker]; ok {
		return dir
	}
	dir, err := os.MkdirTemp("", "sluice-bench-startup-")
	if err != nil {
		b.Fatal(err)
	}
	startupDirs[broker] = dir
	wasm := testutil.Wasm(b, "echo-wat")
	d := startProc(b, bin, "daemon", "--data", dir, "--broker", broker)
	defer d.stop(b)
	c := client.New(d.server, "")
	ctx := context.Background()
	start := time.Now()
	work := make(chan int)
	errs := make(chan error, startupDeployers)
	var wg sync.WaitGroup
	for range startupDeployers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := fmt.Sprintf("f%04d", i)
				if _, err := c.Deploy(ctx, name, distinctModule(wasm, name), nil); err != nil {
					errs <- fmt.Errorf("deploy %s: %w", name, err)
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case work <- i:
		case err := <-errs:
			close(work)
			wg.Wait()
			b.Fatal(err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	publishTopics(b, d, dir, broker, n)
	b.Logf("%s: %d modules deployed and %d topics published to in %s", broker, n, n, time.Since(start).Round(time.Second))
	return dir
}

// publishTopics publishes a message to each of n topics on the daemon's
// broker, as another application would (with the data dir's
// credentials). Not through the API: its publish route reads the message
// back through a subscription, and on JetStream the ephemeral consumers
// of a thousand quick publications outlive them and reach the server's
// consumer limit.
func publishTopics(b *testing.B, d *proc, dir, brokerName string, n int) {
	pw, err := os.ReadFile(filepath.Join(dir, "nats-password"))
	if err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(d.nats)
	if err != nil {
		b.Fatal(err)
	}
	u.User = url.UserPassword(daemon.DefaultNATSUser, strings.TrimSpace(string(pw)))
	var l eventlog.Log
	for _, br := range mqBrokers {
		if br.name == brokerName {
			l = br.connect(b, u.String(), n)
		}
	}
	if l == nil {
		b.Fatalf("no broker %q", brokerName)
	}
	defer l.Close()
	acks := make(chan error, n)
	for i := 0; i < n; i++ {
		if err := l.PublishAsync(fmt.Sprintf("topic-%04d", i), eventlog.Message{Data: []byte("x")}, func(_ uint64, err error) { acks <- err }); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := <-acks; err != nil {
			b.Fatal(err)
		}
	}
}

// distinctModule is wasm with a custom section named name appended: the
// same code, other bytes (so another module in the store and the cache).
func distinctModule(wasm []byte, name string) []byte {
	section := append([]byte{byte(len(name))}, name...)
	section = append(section, 0)
	return append(append(append([]byte{}, wasm...), 0, byte(len(section))), section...)
}

// startTimed runs the binary with --listen on a free port, and returns
// the time from its start to the first 200 of GET /readyz, its process,
// and how to stop it (SIGINT, then wait).
func startTimed(b *testing.B, bin string, args ...string) (time.Duration, *os.Process, func()) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append(args, "--listen", addr)...)
	out := &syncBuffer{}
	cmd.Stderr = out
	hc := &http.Client{Timeout: time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		<-exited
	}
	b.Cleanup(func() { cmd.Process.Kill() })
	for {
		resp, err := hc.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), cmd.Process, stop
			}
		}
		select {
		case err := <-exited:
			b.Fatalf("the daemon ended before it was ready (%v):\n%s", err, out)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(start) > startupTimeout {
			stop()
			b.Fatalf("not ready after %s:\n%s", startupTimeout, out)
		}
	}
}

// openFDs is how many file descriptors the process holds.
func openFDs(b *testing.B, pid int) int {
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		b.Fatal(err)
	}
	return len(fds)
}

// syncBuffer is a log the process writes while the benchmark may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.buf)
}
