package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/host"
)

// Defaults of HTTP.
const (
	// DefaultConcurrency is 32 clients in flight: enough to keep two cores
	// busy through the network stack, and a function's default
	// concurrency limit.
	DefaultConcurrency = 32
	// DefaultDuration is long enough for a few hundred thousand requests
	// and a stable p99.
	DefaultDuration = 10 * time.Second
)

// HTTPOptions configure HTTP.
type HTTPOptions struct {
	// URL is where each request goes; Method is POST if empty.
	URL, Method string
	// Token is sent as a bearer token if set.
	Token string
	// Header is sent with each request, besides Content-Type (and
	// Authorization with Token).
	Header http.Header
	// Body is each request's body (DefaultInput if nil).
	Body []byte
	// Concurrency is the number of clients, each with one request in
	// flight over its own keep-alive connection.
	Concurrency int
	// Duration is how long the measurement lasts, after the warm-up;
	// Requests, if set, makes it a fixed number of requests instead.
	Duration time.Duration
	Requests int
	// Warmup is how long every client sends requests first that are not
	// counted (default: a fifth of Duration, 0.2 to 2 s). It opens the
	// connections, fills the instance pools and grows the heaps.
	Warmup time.Duration
	// Progress, if set, is called about ten times a second with the
	// fraction done.
	Progress Progress
}

// Progress, if not nil, hears how far a measurement is: the fraction done
// and what it is doing.
type Progress func(frac float64, what string)

// report calls p if it is set.
func (p Progress) report(frac float64, what string) {
	if p != nil {
		p(frac, what)
	}
}

// HTTPResult is what HTTP measured.
type HTTPResult struct {
	// Requests answered with 2xx, and those that failed.
	Requests, Errors int
	// FirstError describes the first failure.
	FirstError string
	Elapsed    time.Duration
	// RPS is successful requests per second.
	RPS     float64
	Latency Summary
	// Samples are the latencies of the successful requests.
	Samples []time.Duration
}

// HTTP sends requests from Concurrency clients, each waiting for its
// answer before sending the next (a closed loop), and measures requests
// per second and the latency of each request.
func HTTP(ctx context.Context, o HTTPOptions) (*HTTPResult, error) {
	if o.Method == "" {
		o.Method = http.MethodPost
	}
	if o.Body == nil {
		o.Body = DefaultInput
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Duration <= 0 && o.Requests <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Warmup == 0 {
		o.Warmup = min(max(o.Duration/5, 200*time.Millisecond), 2*time.Second)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: o.Concurrency, MaxConnsPerHost: o.Concurrency, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	call := func(ctx context.Context) (time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, o.Method, o.URL, bytes.NewReader(o.Body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		for name, values := range o.Header {
			req.Header[name] = values
		}
		if o.Token != "" {
			req.Header.Set("Authorization", "Bearer "+o.Token)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode/100 != 2 {
			return 0, fmt.Errorf("%s: %s", resp.Status, oneLine(string(body)))
		}
		return d, nil
	}
	// One request first: a wrong URL fails here, plainly.
	if _, err := call(ctx); err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.Method, o.URL, err)
	}

	var (
		stop      atomic.Bool
		next      atomic.Int64 // requests handed out, with Requests
		errs      atomic.Int64
		firstErr  atomic.Pointer[string]
		counting  atomic.Bool
		wg        sync.WaitGroup
		perWorker = make([][]time.Duration, o.Concurrency)
	)
	worker := func(w int) {
		defer wg.Done()
		lat := make([]time.Duration, 0, 4096)
		for !stop.Load() && ctx.Err() == nil {
			if o.Requests > 0 && counting.Load() && next.Add(1) > int64(o.Requests) {
				break
			}
			d, err := call(ctx)
			if !counting.Load() {
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				errs.Add(1)
				msg := err.Error()
				firstErr.CompareAndSwap(nil, &msg)
				continue
			}
			lat = append(lat, d)
		}
		perWorker[w] = lat
	}
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go worker(w)
	}
	wait := func(d time.Duration, what string, frac func(time.Duration) float64) {
		start := time.Now()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for time.Since(start) < d && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-tick.C:
				o.Progress.report(frac(time.Since(start)), what)
			}
		}
	}
	wait(o.Warmup, "warm-up", func(time.Duration) float64 { return 0 })
	counting.Store(true)
	start := time.Now()
	if o.Requests > 0 {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		tick := time.NewTicker(100 * time.Millisecond)
	loop:
		for {
			select {
			case <-done:
				break loop
			case <-tick.C:
				o.Progress.report(min(1, float64(next.Load())/float64(o.Requests)), "load")
			}
		}
		tick.Stop()
	} else {
		wait(o.Duration, "load", func(d time.Duration) float64 { return float64(d) / float64(o.Duration) })
		stop.Store(true)
		wg.Wait()
	}
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var all []time.Duration
	for _, l := range perWorker {
		all = append(all, l...)
	}
	r := &HTTPResult{Requests: len(all), Errors: int(errs.Load()), Elapsed: elapsed, Samples: all, Latency: Summarize(all)}
	if p := firstErr.Load(); p != nil {
		r.FirstError = *p
	}
	if len(all) == 0 {
		return r, fmt.Errorf("every request failed: %s", r.FirstError)
	}
	r.RPS = float64(r.Requests) / elapsed.Seconds()
	return r, nil
}

// Merge combines two measurements of the same target, as if one.
func Merge(a, b *HTTPResult) *HTTPResult {
	r := &HTTPResult{Requests: a.Requests + b.Requests, Errors: a.Errors + b.Errors, Elapsed: a.Elapsed + b.Elapsed,
		FirstError: a.FirstError, Samples: append(slices.Clone(a.Samples), b.Samples...)}
	if r.FirstError == "" {
		r.FirstError = b.FirstError
	}
	r.Latency = Summarize(r.Samples)
	if r.Elapsed > 0 {
		r.RPS = float64(r.Requests) / r.Elapsed.Seconds()
	}
	return r
}

// FloorServer serves a module the way the daemon's invoke route does, with
// nothing else around it: a bare net/http server that reads the body,
// calls the function through the same host and writes the output. It is
// the floor an HTTP benchmark of the daemon is read against.
type FloorServer struct {
	URL string
	h   *host.Host
	srv *http.Server
}

// StartFloorServer loads wasm with spec into a new host and serves it on
// a free loopback port.
func StartFloorServer(ctx context.Context, wasm []byte, spec host.Spec) (*FloorServer, error) {
	h, err := host.New(ctx, host.NewConfig())
	if err != nil {
		return nil, err
	}
	if spec.Name == "" {
		spec.Name = "floor"
	}
	f, err := h.Load(ctx, spec, wasm)
	if err != nil {
		h.Close(ctx)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.Close(ctx)
		return nil, err
	}
	fs := &FloorServer{URL: "http://" + ln.Addr().String() + "/", h: h}
	fs.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := f.Invoke(r.Context(), host.Call{Input: in})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write(res.Output)
	})}
	go func() {
		if err := fs.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fs.h.Close(context.Background())
		}
	}()
	return fs, nil
}

// Close stops the server and its host.
func (fs *FloorServer) Close(ctx context.Context) error {
	err := fs.srv.Close()
	return errors.Join(err, fs.h.Close(ctx))
}
