package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/bench"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/internal/broker"
)

func benchCommands(e *env) []*cobra.Command {
	return []*cobra.Command{benchColdStart(e), benchHTTP(e), benchMQ(e), benchWorkflow(e), benchFloorServer(e)}
}

// benchFloorServer is the hidden command behind bench http --floor: a
// bare net/http server running one module through a host, in a process
// of its own as the daemon is. It prints its URL, then serves until its
// stdin closes.
func benchFloorServer(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:    "floor-server FILE.wasm",
		Short:  "serve a module from a bare net/http server (bench http --floor runs it)",
		Hidden: true,
	}, arg("FILE.wasm", "the module"))
	fs := cmd.Flags()
	abiKind := fs.String("abi", "auto", "module kind")
	conc := fs.Int("concurrency", 0, "calls at once")
	memory := fs.Uint64("memory", 0, "memory limit in bytes")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return runFloorServer(e, args[0], *abiKind, *conc, *memory)
	}
	return cmd
}

func runFloorServer(e *env, file, abiKind string, conc int, memory uint64) error {
	wasm, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read module: %w", err)
	}
	srv, err := bench.StartFloorServer(e.ctx, wasm, host.Spec{ABI: abi.Kind(abiKind), Limits: host.Limits{Concurrency: conc, Memory: memory}})
	if err != nil {
		return err
	}
	defer srv.Close(context.Background())
	fmt.Fprintln(e.stdout, srv.URL)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, e.stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-e.ctx.Done():
	}
	return nil
}

// startFloorProcess runs `sluice bench floor-server` and returns its URL
// and a function that stops it.
func startFloorProcess(e *env, file string, f api.FunctionView) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(e.ctx, self, "bench", "floor-server", file, "--abi", f.ABI,
		"--concurrency", strconv.Itoa(f.Limits.Concurrency), "--memory", strconv.FormatUint(f.Limits.Memory, 10))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		stdin.Close()
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("floor server: %s", oneLine(stderr.String()))
	}
	return strings.TrimSpace(line), stop, nil
}

// benchInputFlags are the input flags every bench command takes.
type benchInputFlags struct {
	data, file, size string
}

func addBenchInputFlags(fs *pflag.FlagSet, what string) *benchInputFlags {
	var f benchInputFlags
	fs.StringVar(&f.data, "data", "", what+", as a string")
	fs.StringVar(&f.file, "file", "", "read "+what+" from a file")
	fs.StringVar(&f.size, "size", "1KiB", what+" size, of generated text, when neither --data nor --file is given")
	return &f
}

func (f *benchInputFlags) input(fs *pflag.FlagSet) ([]byte, error) {
	switch {
	case fs.Changed("data") && f.file != "":
		return nil, usagef("give --data or --file, not both")
	case fs.Changed("data"):
		return []byte(f.data), nil
	case f.file != "":
		b, err := os.ReadFile(f.file)
		if err != nil {
			return nil, fmt.Errorf("read input: %w", err)
		}
		return b, nil
	}
	n, err := host.ParseBytes(f.size)
	if err != nil {
		return nil, usagef("--size: %v", err)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b, nil
}

func describeInput(b []byte) string {
	return host.FormatBytes(uint64(len(b)))
}

// progress draws a progress bar on stderr when it is a terminal, and
// nothing otherwise: piped or captured output stays clean.
type progress struct {
	w    io.Writer
	on   bool
	last time.Time
	drew bool
}

func newProgress(e *env) *progress {
	p := &progress{w: e.stderr}
	if f, ok := e.stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

// set shows frac (0 to 1) done and what runs; at most ten times a second.
func (p *progress) set(frac float64, what string) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	const width = 30
	frac = min(max(frac, 0), 1)
	n := int(frac * width)
	if len(what) > 50 {
		what = what[:49] + "…"
	}
	fmt.Fprintf(p.w, "\r\033[K[%s%s] %3.0f%%  %s", strings.Repeat("#", n), strings.Repeat("-", width-n), frac*100, what)
	p.drew = true
}

// clear removes the bar.
func (p *progress) clear() {
	if p.on && p.drew {
		fmt.Fprint(p.w, "\r\033[K")
		p.drew = false
	}
}

func writeSVG(file string, svg []byte) error {
	if err := os.WriteFile(file, svg, 0o644); err != nil {
		return fmt.Errorf("write the SVG: %w", err)
	}
	return nil
}

func benchColdStart(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "coldstart FILE.wasm...",
		Short: "compile, cache load, cold and warm calls vs bare wazero and a process per call (no daemon)",
		Long: `Measure, in this process (no daemon), what a function costs: its first
compilation, a load from the disk cache, cold starts and warm calls through
sluice's invoke path, against bare wazero on the same module and against a
process per call (fork/exec of a native echo built here).`,
		Example: `  sluice bench coldstart build/wasm/echo-wat.wasm build/wasm/upper-go.wasm -n 200 --svg cold.svg`,
	}, manyArgs("FILE.wasm", "the modules to measure"))
	cmd.ValidArgsFunction = completeFiles("wasm")
	fs := cmd.Flags()
	abiKind := fs.String("abi", "auto", "module kind: auto, wasi (a WASI command), reactor (sluice ABI) or extism (an Extism plugin)")
	export := fs.String("export", "", "an Extism plugin's function to call (default: its only one, or handle)")
	samples := fs.IntP("samples", "n", bench.DefaultSamples, "samples per cold and warm figure (at least 10; 100 or more for a p99)")
	output := fs.StringP("output", "o", "table", "output format: table or json")
	svgFile := fs.String("svg", "", "also draw the figures as a bar chart into this SVG `file`")
	noProcess := fs.Bool("no-process", false, "leave out the process-per-call baseline (it builds a native echo with cc or go)")
	in := addBenchInputFlags(fs, "each call's input")
	cmd.RunE = func(cmd *cobra.Command, files []string) error {
		return runColdStart(e, fs, files, *abiKind, *export, *samples, *output, *svgFile, *noProcess, in)
	}
	return cmd
}

func runColdStart(e *env, fs *pflag.FlagSet, files []string, abiKind, export string, samples int, output, svgFile string, noProcess bool, in *benchInputFlags) error {
	if output != "table" && output != "json" {
		return usagef("-o %q: use table or json", output)
	}
	kind := abi.Kind(abiKind)
	switch kind {
	case abi.Auto, abi.WASI, abi.Reactor, abi.Extism:
	default:
		return usagef("--abi %q: use auto, wasi, reactor or extism", abiKind)
	}
	if samples < bench.MinSamples {
		return usagef("-n %d: want at least %d samples", samples, bench.MinSamples)
	}
	input, err := in.input(fs)
	if err != nil {
		return err
	}
	mods := make([][]byte, len(files))
	for i, f := range files {
		if mods[i], err = os.ReadFile(f); err != nil {
			return fmt.Errorf("read module: %w", err)
		}
	}

	p := newProgress(e)
	defer p.clear()
	units := float64(len(files) + boolToInt(!noProcess))
	timer := bench.MeasureTimer()
	results := make([]*bench.ColdStart, 0, len(files))
	for i, f := range files {
		r, err := bench.ColdStartModule(e.ctx, f, mods[i], bench.ColdStartOptions{
			ABI: kind, Export: export, Samples: samples, Input: input, Timer: timer,
			Progress: func(done, total int, what string) {
				p.set((float64(i)+float64(done)/float64(total))/units, filepath.Base(f)+": "+what)
			},
		})
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	var procs []bench.ProcessResult
	var skipped []string
	if !noProcess {
		procs, skipped, err = bench.Process(e.ctx, bench.ProcessOptions{Samples: samples, Input: input,
			Progress: func(done, total int, what string) {
				p.set((float64(len(files))+float64(done)/float64(total))/units, what)
			}})
		if err != nil {
			return err
		}
	}
	p.clear()

	machine := bench.ThisMachine()
	method := []string{
		fmt.Sprintf("%s input, %d samples per figure; sluice and bare wazero interleaved in one process", describeInput(input), samples),
		"machine: " + machine.String(),
		fmt.Sprintf("timer: %s per reading; calls shorter than %s are timed in batches", timer.Cost, bench.FormatDuration(timer.MinSample)),
	}
	if svgFile != "" {
		if err := writeSVG(svgFile, coldStartSVG(results, procs, method)); err != nil {
			return err
		}
	}
	for _, s := range skipped {
		fmt.Fprintf(e.stderr, "sluice: process baseline without %s\n", s)
	}
	if output == "json" {
		return printJSON(e.stdout, results)
	}
	fmt.Fprintf(e.stdout, "sluice bench coldstart: %s\n%s\n%s\n\n", method[0], method[1], method[2])
	rows := make([][]string, 0, len(results)+len(procs))
	for _, r := range results {
		floor := []string{"-", "-", "-", "-"} // an Extism plugin has no floor
		if r.NoFloor == "" {
			floor = []string{bench.FormatDuration(r.FloorCold.P50), bench.FormatDuration(r.FloorWarm.P50),
				fmt.Sprintf("%.2f×", r.ColdOverFloor()), warmOverFloor(r)}
		}
		rows = append(rows, append([]string{
			r.Module, r.ABI, host.FormatBytes(uint64(r.Size)),
			us(r.CompileUS), us(r.CacheLoadUS),
			bench.FormatDuration(r.Cold.P50), bench.FormatDuration(r.Cold.P99),
			bench.FormatDuration(r.Warm.P50), bench.FormatDuration(r.Warm.P99),
		}, floor...))
	}
	for _, pr := range procs {
		rows = append(rows, []string{pr.Name, "process", "-", "-", "-",
			bench.FormatDuration(pr.Call.P50), bench.FormatDuration(pr.Call.P99), "-", "-", "-", "-", "-", "-"})
	}
	if err := table(e.stdout, []string{"MODULE", "ABI", "SIZE", "COMPILE", "CACHE LOAD", "COLD P50", "COLD P99",
		"WARM P50", "WARM P99", "FLOOR COLD", "FLOOR WARM", "COLD÷FLOOR", "WARM−FLOOR"}, rows); err != nil {
		return err
	}
	fmt.Fprint(e.stdout, `
compile:     first compilation, no cache (sluice instruments the module, then wazero compiles it)
cache load:  a new host loading the module from the on-disk compilation cache (a restarted daemon)
cold:        a fresh instance and its first call, through sluice's invoke path (medians and p99)
warm:        a call on a pooled reactor or Extism instance; a WASI command makes a fresh instance per call, so warm = cold
floor:       bare wazero on the same module and input, no sluice code, measured in the same run
`)
	for _, pr := range procs {
		fmt.Fprintf(e.stdout, "%-12s fork/exec and wait of a native echo built here from %s source, with the same input", "process:", pr.Lang)
		if len(results) > 0 {
			r := results[0]
			fmt.Fprintf(e.stdout, ": %.0f× the cold start of %s", float64(pr.Call.P50)/float64(r.Cold.P50), r.Module)
			if r.ABI != string(abi.WASI) {
				fmt.Fprintf(e.stdout, ", %.0f× its warm call", float64(pr.Call.P50)/float64(r.Warm.P50))
			}
		}
		fmt.Fprintln(e.stdout)
	}
	for _, r := range results {
		if r.NoFloor != "" {
			fmt.Fprintf(e.stdout, "no floor for %s: %s\n", r.Module, r.NoFloor)
		} else if !r.SameOutput {
			fmt.Fprintf(e.stdout, "note: sluice and bare wazero gave different outputs for %s (does it depend on time, randomness or its environment?)\n", r.Module)
		}
	}
	return nil
}

func coldStartSVG(results []*bench.ColdStart, procs []bench.ProcessResult, method []string) []byte {
	var groups []bench.BarGroup
	for _, r := range results {
		g := bench.BarGroup{Label: fmt.Sprintf("%s (%s, %s)", filepath.Base(r.Module), r.ABI, host.FormatBytes(uint64(r.Size)))}
		switch {
		case r.NoFloor != "":
			g.Bars = []bench.Bar{
				{Label: "sluice: cold start", P50: r.Cold.P50, P99: r.Cold.P99, Kind: "sluice"},
				{Label: "sluice: warm call", P50: r.Warm.P50, P99: r.Warm.P99, Kind: "sluice"},
			}
		case r.ABI == string(abi.Reactor):
			g.Bars = []bench.Bar{
				{Label: "sluice: cold start", P50: r.Cold.P50, P99: r.Cold.P99, Kind: "sluice"},
				{Label: "bare wazero: cold start", P50: r.FloorCold.P50, P99: r.FloorCold.P99, Kind: "floor"},
				{Label: "sluice: warm call", P50: r.Warm.P50, P99: r.Warm.P99, Kind: "sluice"},
				{Label: "bare wazero: warm call", P50: r.FloorWarm.P50, P99: r.FloorWarm.P99, Kind: "floor"},
			}
		default:
			g.Bars = []bench.Bar{
				{Label: "sluice: every call (cold)", P50: r.Cold.P50, P99: r.Cold.P99, Kind: "sluice"},
				{Label: "bare wazero: every call", P50: r.FloorCold.P50, P99: r.FloorCold.P99, Kind: "floor"},
			}
		}
		groups = append(groups, g)
	}
	if len(procs) > 0 {
		g := bench.BarGroup{Label: "a process per call (fork/exec of a native echo)"}
		for _, p := range procs {
			g.Bars = append(g.Bars, bench.Bar{Label: "native echo in " + p.Lang, P50: p.Call.P50, P99: p.Call.P99, Kind: "process"})
		}
		groups = append(groups, g)
	}
	return bench.BarChart("sluice bench coldstart", method, groups)
}

// warmOverFloor is what sluice adds to a warm call; a WASI command has
// none (its every call is cold).
func warmOverFloor(r *bench.ColdStart) string {
	if r.ABI != string(abi.Reactor) {
		return "= cold"
	}
	return signed(r.Warm.P50 - r.FloorWarm.P50)
}

func us(v float64) string { return bench.FormatDuration(time.Duration(v * float64(time.Microsecond))) }

func signed(d time.Duration) string {
	if d < 0 {
		return "−" + bench.FormatDuration(-d)
	}
	return "+" + bench.FormatDuration(d)
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// functionLine describes a deployed function for a report.
func functionLine(f api.FunctionView) string {
	return fmt.Sprintf("function %s version %d (%s, module %s, concurrency %d, memory %s)",
		f.Name, f.Version, f.ABI, host.FormatBytes(uint64(f.Size)), f.Limits.Concurrency, host.FormatBytes(f.Limits.Memory))
}

func benchHTTP(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "http --fn NAME",
		Short: "requests/s and latency of a function over HTTP on a daemon",
		Long: `Load a function on a daemon over HTTP with clients in a closed loop, and print
requests/s and latency percentiles; --floor also measures a bare net/http
server running the same module (a process of its own, like the daemon) and
prints the ratio.`,
		Example: `  sluice bench http --fn echo -c 32 -d 10s --floor build/wasm/echo-wat.wasm`,
	})
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	fn := fs.String("fn", "", "the deployed function to call (POST /v1/functions/NAME/invoke)")
	path := fs.String("path", "", "call an HTTP trigger's route instead, e.g. /fn/hello (--fn still names its function)")
	method := fs.String("method", "POST", "the HTTP method, with --path")
	conc := fs.IntP("concurrency", "c", bench.DefaultConcurrency, "clients, each with one request in flight")
	dur := fs.DurationP("duration", "d", bench.DefaultDuration, "how long to measure, after the warm-up")
	floorFile := fs.String("floor", "", "also measure a bare net/http server (a process of its own, like the daemon) running this `FILE.wasm` the same way, and print the ratio")
	svgFile := fs.String("svg", "", "draw the latency histogram into this SVG `file`")
	in := addBenchInputFlags(fs, "each request's body")
	_ = cmd.RegisterFlagCompletionFunc("fn", completeFlag(cf, functionNames))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return runBenchHTTP(e, cf, fs, *fn, *path, *method, *conc, *dur, *floorFile, *svgFile, in)
	}
	return cmd
}

func runBenchHTTP(e *env, cf *clientFlags, fs *pflag.FlagSet, fn, path, method string, conc int, dur time.Duration, floorFile, svgFile string, in *benchInputFlags) error {
	if fn == "" {
		return usagef("bench http: --fn NAME is required")
	}
	if conc <= 0 || dur <= 0 {
		return usagef("bench http: -c and -d must be positive")
	}
	body, err := in.input(fs)
	if err != nil {
		return err
	}
	c := cf.client()
	f, err := c.Function(e.ctx, fn)
	if err != nil {
		return err
	}
	target, m := c.Base()+"/v1/functions/"+url.PathEscape(fn)+"/invoke", "POST"
	if path != "" {
		if !strings.HasPrefix(path, "/") {
			return usagef("--path %q: want a route like /fn/hello", path)
		}
		target, m = c.Base()+path, strings.ToUpper(method)
	}
	if floorFile != "" {
		if _, err := os.Stat(floorFile); err != nil {
			return fmt.Errorf("--floor: %w", err)
		}
	}
	p := newProgress(e)
	defer p.clear()
	run := func(url, method string, d time.Duration, what string, from, span float64) (*bench.HTTPResult, error) {
		return bench.HTTP(e.ctx, bench.HTTPOptions{URL: url, Method: method, Token: cf.resolved, Body: body, Concurrency: conc, Duration: d,
			Progress: func(frac float64, stage string) { p.set(from+frac*span, what+": "+stage) }})
	}
	var res, floor *bench.HTTPResult
	if floorFile == "" {
		if res, err = run(target, m, dur, "daemon", 0, 1); err != nil {
			return err
		}
	} else {
		floorURL, stop, err := startFloorProcess(e, floorFile, f)
		if err != nil {
			return err
		}
		defer stop()
		// daemon, floor, floor, daemon: a drift in the machine's speed
		// during the run falls on both alike
		var parts [4]*bench.HTTPResult
		for i, daemonTurn := range []bool{true, false, false, true} {
			u, mm, what := floorURL, "POST", "floor"
			if daemonTurn {
				u, mm, what = target, m, "daemon"
			}
			if parts[i], err = run(u, mm, dur/2, what, float64(i)/4, 0.25); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		res, floor = bench.Merge(parts[0], parts[3]), bench.Merge(parts[1], parts[2])
	}
	p.clear()
	how := fmt.Sprintf("%d clients in a closed loop over keep-alive connections, %s bodies, a %s warm-up then %s",
		conc, describeInput(body), min(max(dur/5, 200*time.Millisecond), 2*time.Second), dur)
	lines := []string{fmt.Sprintf("%s %s on %s", m, target, functionLine(f)), how}
	if floorFile != "" {
		lines[1] = fmt.Sprintf("%d clients in a closed loop over keep-alive connections, %s bodies; %s for the daemon and for the floor, in turns of %s (daemon, floor, floor, daemon), each after a %s warm-up",
			conc, describeInput(body), dur, dur/2, min(max(dur/10, 200*time.Millisecond), 2*time.Second))
		lines = append(lines, "floor: "+floorFile+" in a bare net/http server that runs it through the same host, a process of its own as the daemon is")
	}
	lines = append(lines, "client: "+bench.ThisMachine().String())
	if svgFile != "" {
		if err := writeSVG(svgFile, httpHistogram(lines, res, floor)); err != nil {
			return err
		}
	}
	type row struct {
		Target     string  `json:"target"`
		RPS        float64 `json:"requests_per_s"`
		Requests   int     `json:"requests"`
		Errors     int     `json:"errors"`
		P50US      float64 `json:"p50_us"`
		P90US      float64 `json:"p90_us"`
		P99US      float64 `json:"p99_us"`
		MaxUS      float64 `json:"max_us"`
		FirstError string  `json:"first_error,omitempty"`
	}
	mk := func(name string, r *bench.HTTPResult) row {
		return row{name, r.RPS, r.Requests, r.Errors, bench.Micros(r.Latency.P50), bench.Micros(r.Latency.P90), bench.Micros(r.Latency.P99), bench.Micros(r.Latency.Max), r.FirstError}
	}
	rows := []row{mk("daemon", res)}
	if floor != nil {
		rows = append(rows, mk("floor", floor))
	}
	if cf.json() {
		out := map[string]any{
			"url": target, "method": m, "function": f.Name, "version": f.Version, "abi": f.ABI, "module_bytes": f.Size,
			"concurrency": conc, "duration_s": dur.Seconds(), "body_bytes": len(body), "results": rows,
		}
		if floor != nil {
			out["ratio"] = res.RPS / floor.RPS
		}
		if err := printJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "sluice bench http: %s\n\n", strings.Join(lines, "\n"))
		var t [][]string
		for _, r := range rows {
			name := "daemon"
			if r.Target == "floor" {
				name = "floor: bare net/http + host"
			}
			t = append(t, []string{name, fmt.Sprintf("%.0f", r.RPS), fmt.Sprint(r.Requests), fmt.Sprint(r.Errors),
				us(r.P50US), us(r.P90US), us(r.P99US), us(r.MaxUS)})
		}
		if err := table(e.stdout, []string{"SERVER", "REQUESTS/S", "REQUESTS", "ERRORS", "P50", "P90", "P99", "MAX"}, t); err != nil {
			return err
		}
		if floor != nil {
			fmt.Fprintf(e.stdout, "\nthe daemon serves %.0f%% of the floor's requests/s\n", 100*res.RPS/floor.RPS)
		}
	}
	for _, r := range rows {
		if r.Errors > 0 {
			return fmt.Errorf("%s: %d requests failed; the first: %s", r.Target, r.Errors, r.FirstError)
		}
	}
	return nil
}

func httpHistogram(lines []string, res, floor *bench.HTTPResult) []byte {
	series := []bench.Series{{Name: "daemon", Samples: res.Samples}}
	if floor != nil {
		series = append(series, bench.Series{Name: "floor", Samples: floor.Samples})
	}
	return bench.Histogram("sluice bench http", lines, "requests", series...)
}

// natsURL is where bench mq reaches NATS Streaming by default: the
// daemon's host on the port `sluice daemon` embeds it on.
func natsURL(server string) string {
	if v := os.Getenv("SLUICE_NATS"); v != "" {
		return v
	}
	host := "127.0.0.1"
	if u, err := url.Parse(server); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	_, port, _ := strings.Cut(daemon.DefaultNATSListen, ":")
	return "nats://" + host + ":" + port
}

// mqBrokerName is how bench mq's report names the broker.
func mqBrokerName(b, cluster string) string {
	if b == daemon.BrokerJetStream {
		return "JetStream"
	}
	return "NATS Streaming (cluster " + cluster + ")"
}

func benchMQ(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "mq --fn NAME",
		Short: "messages/s and latency of a message-queue trigger on a daemon",
		Long: `Create a temporary queue trigger for a function on a daemon, publish a burst of
messages to its broker (NATS Streaming or JetStream: the daemon's /readyz says
which) and measure messages/s, then latency one message at a time.`,
		Example: `  sluice bench mq --fn echo --inflight 16 -n 10000`,
	})
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	fn := fs.String("fn", "", "the deployed function the temporary trigger calls")
	inflight := fs.Int("inflight", bench.DefaultInflight, "the trigger's --max-inflight: messages processed at once")
	n := fs.IntP("messages", "n", bench.DefaultMessages, "messages in the burst that measures throughput")
	lat := fs.Int("latency", bench.DefaultLatencyMessages, "messages sent one at a time for the latency percentiles")
	nats := fs.String("nats", "", "the daemon's NATS `URL` (NATS Streaming or JetStream), with its credentials: nats://sluice:PASSWORD@host:4222 (env SLUICE_NATS; default: the --server host, port 4222)")
	cluster := fs.String("cluster-id", envOr("SLUICE_CLUSTER_ID", daemon.DefaultClusterID), "NATS Streaming cluster id (env SLUICE_CLUSTER_ID)")
	svgFile := fs.String("svg", "", "draw the latency histogram into this SVG `file`")
	in := addBenchInputFlags(fs, "each message")
	_ = cmd.RegisterFlagCompletionFunc("fn", completeFlag(cf, functionNames))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return runBenchMQ(e, cf, fs, *fn, *inflight, *n, *lat, *nats, *cluster, *svgFile, in)
	}
	return cmd
}

func runBenchMQ(e *env, cf *clientFlags, fs *pflag.FlagSet, fn string, inflight, n, lat int, nats, cluster, svgFile string, in *benchInputFlags) error {
	if fn == "" {
		return usagef("bench mq: --fn NAME is required")
	}
	if inflight <= 0 || n <= 0 || lat <= 0 {
		return usagef("bench mq: --inflight, -n and --latency must be positive")
	}
	payload, err := in.input(fs)
	if err != nil {
		return err
	}
	if nats == "" {
		nats = natsURL(cf.server)
	}
	c := cf.client()
	f, err := c.Function(e.ctx, fn)
	if err != nil {
		return err
	}
	p := newProgress(e)
	defer p.clear()
	res, err := bench.MQ(e.ctx, bench.MQOptions{Client: c, NATSURL: nats, ClusterID: cluster, Function: fn,
		Inflight: inflight, Messages: n, Latency: lat, Payload: payload, Progress: p.set})
	p.clear()
	if err != nil {
		return err
	}
	lines := []string{
		fmt.Sprintf("a queue trigger (max-inflight %d) on %s, results to %s, on %s", inflight, res.Topic, res.RespTopic, functionLine(f)),
		fmt.Sprintf("%s messages published to %s at %s; store: the daemon's (sluice daemon embeds a file store, fsync on)", describeInput(payload), mqBrokerName(res.Broker, cluster), broker.Redact(nats)),
		fmt.Sprintf("throughput: a burst of %d messages, first publication to last result; latency: %d messages one at a time, publish to result", n, lat),
		"client: " + bench.ThisMachine().String(),
	}
	if svgFile != "" {
		if err := writeSVG(svgFile, bench.Histogram("sluice bench mq", lines, "messages one at a time", bench.Series{Name: "trigger", Samples: res.Samples})); err != nil {
			return err
		}
	}
	if cf.json() {
		return printJSON(e.stdout, map[string]any{
			"function": f.Name, "version": f.Version, "abi": f.ABI, "module_bytes": f.Size, "nats": nats, "broker": res.Broker,
			"inflight": inflight, "messages": n, "message_bytes": len(payload), "latency_messages": lat,
			"msgs_per_s": res.MsgsPerSec, "burst_s": res.Elapsed.Seconds(),
			"p50_us": bench.Micros(res.Latency.P50), "p90_us": bench.Micros(res.Latency.P90),
			"p99_us": bench.Micros(res.Latency.P99), "max_us": bench.Micros(res.Latency.Max),
			"redelivered": res.Redelivered,
		})
	}
	if res.Redelivered > 0 {
		lines = append(lines, fmt.Sprintf("%d results were redeliveries (at least once): the figures may be off by as many", res.Redelivered))
	}
	fmt.Fprintf(e.stdout, "sluice bench mq: %s\n", strings.Join(lines, "\n"))
	fmt.Fprintln(e.stdout)
	return table(e.stdout, []string{"MSGS/S", "BURST", "P50", "P90", "P99", "MAX"}, [][]string{{
		fmt.Sprintf("%.0f", res.MsgsPerSec), bench.FormatDuration(res.Elapsed),
		bench.FormatDuration(res.Latency.P50), bench.FormatDuration(res.Latency.P90), bench.FormatDuration(res.Latency.P99), bench.FormatDuration(res.Latency.Max),
	}})
}

func benchWorkflow(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "workflow --fn NAME",
		Short: "the workflow engine's overhead per task on a daemon",
		Long: `Create chains of 1 and --tasks tasks running a function on a daemon, invoke
them one at a time, interleaved with direct calls, and print the engine's
overhead per task.`,
		Example: `  sluice fn deploy echo build/wasm/echo-wat.wasm
  sluice bench workflow --fn echo --tasks 10 -n 200`,
	})
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	fn := fs.String("fn", "", "the deployed function each task runs, e.g. examples/echo-wat deployed as echo (required)")
	tasks := fs.Int("tasks", bench.DefaultTasks, "tasks in the chain")
	n := fs.IntP("invocations", "n", bench.DefaultInvocations, "invocations of each workflow, one at a time")
	svgFile := fs.String("svg", "", "draw the chain's latency histogram into this SVG `file`")
	in := addBenchInputFlags(fs, "the workflow's input")
	_ = cmd.RegisterFlagCompletionFunc("fn", completeFlag(cf, functionNames))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return runBenchWorkflow(e, cf, fs, *fn, *tasks, *n, *svgFile, in)
	}
	return cmd
}

func runBenchWorkflow(e *env, cf *clientFlags, fs *pflag.FlagSet, fn string, tasks, n int, svgFile string, in *benchInputFlags) error {
	if tasks < 2 || n <= 0 {
		return usagef("bench workflow: --tasks must be at least 2 and -n positive")
	}
	if fn == "" {
		return usagef("bench workflow: --fn is required: deploy a no-op first, e.g. sluice fn deploy echo build/wasm/echo-wat.wasm, then --fn echo")
	}
	input, err := in.input(fs)
	if err != nil {
		return err
	}
	p := newProgress(e)
	defer p.clear()
	res, err := bench.Workflow(e.ctx, bench.WorkflowOptions{Server: cf.server, Token: cf.resolved, Function: fn,
		Tasks: tasks, Invocations: n, Input: input, Progress: p.set})
	p.clear()
	if err != nil {
		return err
	}
	fnDesc := "function " + res.Function
	lines := []string{
		fmt.Sprintf("chains of 1 and %d tasks running %s, on %s", tasks, fnDesc, cf.client().Base()),
		fmt.Sprintf("%s input passed from task to task; %d invocations each, one at a time, waited for; interleaved with direct calls", describeInput(input), n),
		"store: the daemon's NATS Streaming (sluice daemon embeds a file store, fsync on); client: " + bench.ThisMachine().String(),
	}
	if svgFile != "" {
		if err := writeSVG(svgFile, bench.Histogram("sluice bench workflow", lines, fmt.Sprintf("invocations of %d tasks", tasks), bench.Series{Name: "chain", Samples: res.Samples})); err != nil {
			return err
		}
	}
	if cf.json() {
		return printJSON(e.stdout, map[string]any{
			"function": res.Function, "tasks": tasks, "invocations": n, "input_bytes": len(input),
			"per_task_p50_us": bench.Micros(res.PerTaskP50), "per_task_p99_us": bench.Micros(res.PerTaskP99),
			"marginal_task_us": bench.Micros(res.Marginal), "invocation_us": bench.Micros(res.Invocation),
			"chain_p50_us": bench.Micros(res.Chain.P50), "chain_p99_us": bench.Micros(res.Chain.P99),
			"one_task_p50_us": bench.Micros(res.One.P50), "direct_p50_us": bench.Micros(res.Direct.P50),
			"call_p50_us": bench.Micros(res.Call.P50), "round_trip_p50_us": bench.Micros(res.RoundTrip.P50),
		})
	}
	fmt.Fprintf(e.stdout, "sluice bench workflow: %s\n\n", strings.Join(lines, "\n"))
	d := bench.FormatDuration
	if err := table(e.stdout, []string{"MEASURED", "P50", "P99"}, [][]string{
		{"GET /healthz (the HTTP round trip)", d(res.RoundTrip.P50), d(res.RoundTrip.P99)},
		{"direct call, POST /v1/functions/FN/invoke", d(res.Direct.P50), d(res.Direct.P99)},
		{"  of which in the function (X-Sluice-Duration)", d(res.Call.P50), d(res.Call.P99)},
		{"workflow of 1 task, invoke --wait", d(res.One.P50), d(res.One.P99)},
		{fmt.Sprintf("workflow of %d tasks, invoke --wait", tasks), d(res.Chain.P50), d(res.Chain.P99)},
	}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nengine overhead per task: %s p50, %s p99 (chain − direct call − %d more calls, ÷ %d: the invocation's own cost spread over its tasks)\n",
		d(res.PerTaskP50), d(res.PerTaskP99), tasks-1, tasks)
	fmt.Fprintf(e.stdout, "one more task in a chain: %s; an invocation of one task beyond a direct call: %s\n", d(res.Marginal), d(res.Invocation))
	return nil
}
