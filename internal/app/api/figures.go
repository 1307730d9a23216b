package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/internal/app/metrics"
	"github.com/sluicehq/sluice/internal/catalog"
)

// The live figures: this daemon's calls, errors, latency and lag over
// the last minutes, once or as a stream of one event per sample.
func (s *Server) figuresRoutes() {
	s.handle("GET /v1/figures", s.figures)
	s.handle("GET /v1/figures/stream", s.streamFigures)
}

// figuresQuery reads ?window= (a duration up to metrics.FiguresSpan,
// metrics.DefaultWindow if absent), ?series= (true to add the series)
// and ?scope= (only "daemon": the cluster's figures are Prometheus's, see
// the README). It writes the error and answers nil if the query is wrong.
func figuresQuery(w http.ResponseWriter, r *http.Request, b *Backend) (*metrics.Figures, time.Duration, bool) {
	if b.Figures == nil {
		errcode.Write(w, errcode.New(errcode.Unavailable, "this daemon keeps no figures"))
		return nil, 0, false
	}
	q := r.URL.Query()
	window := metrics.DefaultWindow
	if v := q.Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < metrics.SamplePeriod || d > metrics.FiguresSpan {
			errcode.Write(w, fmt.Errorf("%w: window %q: want a duration from %v to %v, like 5m",
				catalog.ErrInvalid, v, metrics.SamplePeriod, metrics.FiguresSpan))
			return nil, 0, false
		}
		window = d
	}
	if v := q.Get("scope"); v != "" && v != "daemon" {
		errcode.Write(w, fmt.Errorf("%w: scope %q: each daemon answers its own figures (scope=daemon); sum them across daemons with Prometheus, scraping every daemon's /metrics", catalog.ErrInvalid, v))
		return nil, 0, false
	}
	series := false
	switch v := q.Get("series"); v {
	case "", "false", "0":
	case "true", "1":
		series = true
	default:
		errcode.Write(w, fmt.Errorf("%w: series %q: want true or false", catalog.ErrInvalid, v))
		return nil, 0, false
	}
	return b.Figures, window, series
}

// figures answers a metrics.Snapshot over ?window=.
func (s *Server) figures(w http.ResponseWriter, r *http.Request, b *Backend) {
	f, window, series := figuresQuery(w, r, b)
	if f == nil {
		return
	}
	errcode.WriteJSON(w, http.StatusOK, f.Snapshot(window, series))
}

// streamFigures sends the figures as server-sent events: a "figures"
// event (data: a metrics.Snapshot) at once and after each sample, one per
// metrics.SamplePeriod, until the client goes or Drain. It runs in the
// request's goroutine alone and computes nothing between samples; with
// nobody connected, nothing runs but the sampler.
func (s *Server) streamFigures(w http.ResponseWriter, r *http.Request, b *Backend) {
	f, window, series := figuresQuery(w, r, b)
	if f == nil {
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // a proxy in front must not hold the events back
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	for {
		next := f.Sampled() // before the snapshot: a sample in between is not missed
		if _, err := fmt.Fprintf(w, "event: figures\ndata: %s\n\n", mustJSON(f.Snapshot(window, series))); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !s.awaitSample(w, r, flusher, next, heartbeat.C) {
			return
		}
	}
}

// awaitSample waits for the next sample, sending a heartbeat comment
// while none comes; false when the stream is to end (the client gone, or
// Drain).
func (s *Server) awaitSample(w http.ResponseWriter, r *http.Request, flusher http.Flusher, next <-chan struct{}, heartbeat <-chan time.Time) bool {
	for {
		select {
		case <-r.Context().Done():
			return false
		case <-s.stop:
			return false
		case <-next:
			return true
		case <-heartbeat:
			if _, err := fmt.Fprint(w, ": still here\n\n"); err != nil {
				return false
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}
