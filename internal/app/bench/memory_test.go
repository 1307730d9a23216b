package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/testutil"
)

// BenchmarkMemory measures what a daemon holds with many distinct Go
// functions deployed (upper-go, each made distinct by a custom section, so
// each has its own compiled code), with the real binary as a user runs
// it:
//
//   - restart: a daemon restarted on the data dir (compile cache warm):
//     its start time (process start to ready), then, once it has gone
//     quiet (under 5% of a core for 2 s: what it does in the background
//     after it is ready is done), the time, CPU and RSS, with no call;
//   - called: RSS after a call of every function, each then holding one
//     warm instance (from a snapshot where the build makes them);
//   - idle: RSS once the idle timeout (--idle-timeout 5s) has released
//     their instances and code (the metrics say so), and the time that
//     took;
//   - newnode: a second daemon on the same NATS Streaming with an empty
//     data dir (no compile cache): likewise its start time, and time, CPU
//     and RSS once quiet; then the time and CPU to call half of the
//     functions (each compiled on its first call).
//
// A snapshot's own cost per compiled module is BenchmarkColdCall's
// snapshot-B (host package).
//
// The functions are deployed once per process (minutes: each deploy
// compiles a 2.7 MB module). SLUICE_BENCH_BINARY runs another build of
// sluice (an older one, to compare; it may lack --idle-timeout, then the
// idle step is skipped), SLUICE_BENCH_FUNCTIONS sets how many (100).
//
//	go test -run '^$' -bench '^BenchmarkMemory$' -benchtime 1x -count 3 -timeout 60m ./internal/app/bench/
func BenchmarkMemory(b *testing.B) {
	n := 100
	if v := os.Getenv("SLUICE_BENCH_FUNCTIONS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	bin := memBinary(b)
	data := memDeployed(b, bin, n)
	idle := strings.Contains(runOut(b, bin, "daemon", "--help"), "--idle-timeout")
	for i := 0; i < b.N; i++ {
		args := []string{"daemon", "--data", data}
		if idle {
			args = append(args, "--idle-timeout", "5s")
		}
		d := startProc(b, bin, args...)
		b.ReportMetric(d.ready.Seconds(), "restart-s")
		b.ReportMetric(d.quiet(b).Seconds(), "restart-quiet-s")
		b.ReportMetric(d.cpu().Seconds(), "restart-cpu-s")
		b.ReportMetric(mib(d.rss()), "restart-MiB")

		c := client.New(d.server, "")
		callSome(b, c, n)
		b.ReportMetric(mib(d.rss()), "called-MiB")

		if idle {
			start := time.Now()
			for {
				m := d.metrics(b)
				if m["sluice_host_instances"] == 0 && m["sluice_host_modules_loaded"] == 0 {
					break
				}
				if time.Since(start) > 2*time.Minute {
					b.Fatalf("nothing released after 2 minutes: %v instances, %v modules", m["sluice_host_instances"], m["sluice_host_modules_loaded"])
				}
				time.Sleep(100 * time.Millisecond)
			}
			b.ReportMetric(time.Since(start).Seconds(), "idle-release-s")
			b.ReportMetric(mib(d.rss()), "idle-MiB")
		}

		fresh := b.TempDir()
		e := startProc(b, bin, "daemon", "--data", fresh, "--nats", withoutUser(b, d.nats), "--listen", "127.0.0.1:0", "--nats-user", daemon.DefaultNATSUser, "--nats-password", natsPassword(b, data))
		b.ReportMetric(e.ready.Seconds(), "newnode-s")
		b.ReportMetric(e.quiet(b).Seconds(), "newnode-quiet-s")
		b.ReportMetric(e.cpu().Seconds(), "newnode-cpu-s")
		b.ReportMetric(mib(e.rss()), "newnode-MiB")
		cpu, start := e.cpu(), time.Now()
		callSome(b, client.New(e.server, ""), n/2)
		b.ReportMetric(time.Since(start).Seconds(), "newnode-calls-s")
		b.ReportMetric((e.cpu() - cpu).Seconds(), "newnode-calls-cpu-s")
		e.stop(b)
		d.stop(b)
	}
	b.ReportMetric(0, "ns/op")
}

func mib(bytes uint64) float64 { return float64(bytes) / (1 << 20) }

// callSome calls the first n functions, two at a time.
func callSome(b *testing.B, c *client.Client, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 2)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := c.Invoke(context.Background(), fmt.Sprintf("f%d", i), []byte("abc"))
			if err == nil && string(out) != "ABC" {
				err = fmt.Errorf("f%d answered %q", i, out)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

var (
	memOnce          sync.Once
	memBin, memData  string
	memErr           error
	memDataFunctions int
)

// cleanMemory removes what BenchmarkMemory made once per process.
func cleanMemory() {
	if memBin != "" {
		os.RemoveAll(filepath.Dir(memBin))
	}
	if memData != "" {
		os.RemoveAll(memData)
	}
}

// memBinary is SLUICE_BENCH_BINARY, or sluice built once per process.
func memBinary(b *testing.B) string {
	if bin := os.Getenv("SLUICE_BENCH_BINARY"); bin != "" {
		return bin
	}
	memOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bench-bin-")
		if err != nil {
			memErr = err
			return
		}
		memBin = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", memBin, "github.com/sluicehq/sluice/cmd/sluice").CombinedOutput()
		if err != nil {
			memErr = fmt.Errorf("build sluice: %v\n%s", err, out)
		}
	})
	if memErr != nil {
		b.Fatal(memErr)
	}
	return memBin
}

// memDeployed returns a data dir where n distinct Go functions are
// deployed and the compile cache holds them, made once per process.
func memDeployed(b *testing.B, bin string, n int) string {
	if memData != "" && memDataFunctions == n {
		return memData
	}
	dir, err := os.MkdirTemp("", "sluice-bench-data-")
	if err != nil {
		b.Fatal(err)
	}
	wasm := testutil.Wasm(b, "upper-go")
	d := startProc(b, bin, "daemon", "--data", dir)
	c := client.New(d.server, "")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%d", i)
		if _, err := c.Deploy(context.Background(), name, distinctModule(wasm, name), nil); err != nil {
			b.Fatalf("deploy %s: %v", name, err)
		}
	}
	d.stop(b)
	memData, memDataFunctions = dir, n
	return dir
}

// natsPassword is the password a daemon generated for its embedded NATS
// server in its data dir, which another daemon joining that server needs
// (the daemon's log shows its URL with the password redacted).
func natsPassword(b *testing.B, data string) string {
	pw, err := os.ReadFile(filepath.Join(data, "nats-password"))
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(string(pw))
}

// withoutUser is a NATS URL without the (redacted) credentials the
// daemon's log shows in it.
func withoutUser(b *testing.B, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	u.User = nil
	return u.String()
}

// proc is a daemon process.
type proc struct {
	cmd          *exec.Cmd
	server, nats string
	started      time.Time
	ready        time.Duration // from start to ready
	log          *strings.Builder
	mu           sync.Mutex
}

var readyRE = regexp.MustCompile(`msg="sluice daemon ready" listen=(\S+) nats=(\S+)`)

// startProc runs the binary with args (on free ports unless args say) and
// waits for it to be ready.
func startProc(b *testing.B, bin string, args ...string) *proc {
	b.Helper()
	if !strings.Contains(strings.Join(args, " "), "--listen") {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	if !strings.Contains(strings.Join(args, " "), "--nats ") {
		args = append(args, "--nats-listen", "127.0.0.1:0")
	}
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	p := &proc{cmd: cmd, log: &strings.Builder{}}
	start := time.Now()
	p.started = start
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan []string, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1:]
			}
		}
	}()
	select {
	case m := <-ready:
		p.ready = time.Since(start)
		p.server, p.nats = "http://"+m[0], m[1]
	case <-exited:
		p.mu.Lock()
		defer p.mu.Unlock()
		b.Fatalf("daemon ended before it was ready:\n%s", p.log)
	case <-time.After(5 * time.Minute):
		p.mu.Lock()
		defer p.mu.Unlock()
		b.Fatalf("daemon not ready after 5 minutes:\n%s", p.log)
	}
	return p
}

// quiet waits until the process uses under 5% of a core over 2 s, and
// returns the time since it started.
func (p *proc) quiet(b *testing.B) time.Duration {
	const window = 2 * time.Second
	for {
		before := p.cpu()
		time.Sleep(window)
		if p.cpu()-before < window/20 {
			return time.Since(p.started) - window
		}
		if time.Since(p.started) > 10*time.Minute {
			b.Fatal("the daemon is still busy after 10 minutes")
		}
	}
}

// stop ends the daemon with SIGTERM and waits for it.
func (p *proc) stop(b *testing.B) {
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
}

// rss is the process's resident set size.
func (p *proc) rss() uint64 { return rssOf(p.cmd.Process.Pid) }

// rssOf is a process's resident set size.
func rssOf(pid int) uint64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpu is the CPU time the process has used (user and system).
func (p *proc) cpu() time.Duration {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseUint(fields[11], 10, 64)
	stime, _ := strconv.ParseUint(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks, USER_HZ = 100
}

// metrics reads the daemon's metrics, summing the samples of a metric
// with labels under its name.
func (p *proc) metrics(b *testing.B) map[string]float64 {
	resp, err := http.Get(p.server + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		base, _, _ := strings.Cut(name, "{")
		out[base] += v
	}
	return out
}

func runOut(b *testing.B, bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	return string(out)
}
