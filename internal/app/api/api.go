// Package api is the daemon's HTTP API (README.md, "HTTP API"): functions,
// triggers, workflows and their invocations, logs, health. Every error is JSON
// {"error": "...", "code": "..."} with a fitting status.
//
// The server bounds what any client holds (Limits: connections, body and
// write deadlines, request bodies in memory), recovers a panic as a 500
// for that request alone, masks env values unless asked (reveal=env), and
// reads logs and topics from their tail, never whole.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/console"
	"github.com/sluicehq/sluice/internal/app/metrics"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/logstream"
	"github.com/sluicehq/sluice/internal/registry"
	"github.com/sluicehq/sluice/logctx"
	"github.com/sluicehq/sluice/triggers"
)

// Backend is what the API serves once the daemon is ready.
type Backend struct {
	Host *host.Host
	// Log is the event log: topics, function logs.
	Log eventlog.Log
	// Broker, if set, describes the broker for /readyz (shown as
	// "broker"); an error makes the daemon not ready, with that message.
	Broker   func() (any, error)
	Catalog  *catalog.Catalog
	Registry *registry.Registry
	HTTP     *triggers.HTTP
	Queue    *triggers.Queue
	// Engine runs workflows; nil answers the workflow invocation routes
	// with 503.
	Engine *engine.Engine
	// Figures are the live figures (GET /v1/figures); nil answers 503.
	Figures *metrics.Figures
}

// Server serves the API. Until SetBackend is called, /healthz answers and
// everything else says the daemon is starting.
type Server struct {
	token    string
	log      *slog.Logger
	backend  atomic.Pointer[Backend]
	metrics  atomic.Pointer[metricsHooks]
	draining atomic.Bool
	// stop is closed by Drain: it ends the streams that never end by
	// themselves (followed logs, a tail of a topic), which would else hold
	// a graceful shutdown until its timeout.
	stop     chan struct{}
	stopOnce sync.Once
	mux      *http.ServeMux
	limits   Limits
	bodies   *budget
}

// New returns a server with DefaultLimits. A non-empty token is required
// as a bearer token on every route but /healthz and /readyz: probes and
// load balancers call them without credentials, and they show nothing but
// the daemon's state.
func New(token string, log *slog.Logger) *Server {
	s := &Server{token: token, log: log, mux: http.NewServeMux(), stop: make(chan struct{})}
	s.SetLimits(DefaultLimits())
	s.routes()
	return s
}

// SetBackend makes the server ready.
func (s *Server) SetBackend(b *Backend) { s.backend.Store(b) }

// Drain makes /readyz fail, so that load balancers stop sending traffic
// while the daemon shuts down, and ends the streams that follow logs or
// topics (their clients see the stream end).
func (s *Server) Drain() {
	s.draining.Store(true)
	s.stopOnce.Do(func() { close(s.stop) })
}

// streamContext is the context of a stream that follows something: the
// request's, ended by Drain too.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		errcode.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		m := s.metrics.Load()
		if m == nil {
			errcode.Write(w, errcode.New(errcode.Unavailable, "the daemon is starting"))
			return
		}
		m.handler.ServeHTTP(w, r)
	})
	s.handle("PUT /v1/functions/{name}", s.deploy)
	s.handle("GET /v1/functions", s.listFunctions)
	s.handle("GET /v1/functions/{name}", s.getFunction)
	s.handle("GET /v1/functions/{name}/versions", s.functionVersions)
	s.handle("PATCH /v1/functions/{name}", s.update)
	s.handle("DELETE /v1/functions/{name}", s.deleteFunction)
	s.handle("POST /v1/functions/{name}/invoke", s.invoke)
	s.handle("GET /v1/functions/{name}/logs", s.logs)
	s.handle("POST /v1/triggers", s.createTrigger)
	s.handle("GET /v1/triggers", s.listTriggers)
	s.handle("GET /v1/triggers/{name}", s.getTrigger)
	s.handle("DELETE /v1/triggers/{name}", s.deleteTrigger)
	s.handle("PUT /v1/workflows/{name}", s.createWorkflow)
	s.handle("GET /v1/workflows", s.listWorkflows)
	s.handle("GET /v1/workflows/{name}", s.getWorkflow)
	s.handle("GET /v1/workflows/{name}/revisions", s.workflowRevisions)
	s.handle("DELETE /v1/workflows/{name}", s.deleteWorkflow)
	s.handle("POST /v1/workflows/{name}/invoke", s.invokeWorkflow)
	s.handle("GET /v1/invocations", s.listInvocations)
	s.handle("GET /v2/invocations", s.listInvocationPage)
	s.handle("GET /v1/invocations/{id}", s.getInvocation)
	s.handle("GET /v1/invocations/{id}/events", s.invocationEvents)
	s.handle("GET /v1/invocations/{id}/input", s.invocationValue(false))
	s.handle("GET /v1/invocations/{id}/output", s.invocationValue(true))
	s.handle("POST /v1/invocations/{id}/cancel", s.cancelInvocation)
	s.handle("POST /v1/invocations/{id}/signals/{name}", s.signalInvocation)
	s.handle("POST /v1/invocations/{id}/redrive", s.redriveInvocation)
	s.handle("GET /v1/graph", s.graphOf)
	s.handle("GET /v1/topics", s.listTopics)
	s.handle("POST /v1/topics/{topic}/publish", s.publish)
	s.handle("GET /v1/topics/{topic}/tail", s.tail)
	s.handle("GET /v1/topics/{topic}/dead-letters", s.deadLetters)
	s.handle("POST /v1/topics/{topic}/redrive", s.redriveLetters)
	s.consoleRoutes() // console.go
	s.figuresRoutes() // figures.go
	s.mux.HandleFunc(triggers.HTTPPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		b := s.ready(w)
		if b == nil {
			return
		}
		b.HTTP.ServeHTTP(w, r)
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		errcode.Write(w, errcode.New(errcode.NotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)))
	})
}

// readBody reads a request body of at most limit bytes. A longer one is
// refused with 413 and code, saying over; what names the body in a read
// error.
func readBody(r *http.Request, limit int, what string, code errcode.Code, over string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, errcode.ReadError(what, err)
	}
	if len(b) > limit {
		return nil, errcode.New(code, over)
	}
	return b, nil
}

// handle registers a route that needs the backend.
func (s *Server) handle(pattern string, fn func(http.ResponseWriter, *http.Request, *Backend)) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if b := s.ready(w); b != nil {
			fn(w, r, b)
		}
	})
}

func (s *Server) ready(w http.ResponseWriter) *Backend {
	b := s.backend.Load()
	if b == nil {
		errcode.Write(w, errcode.New(errcode.Unavailable, "the daemon is starting: replaying the catalog"))
	}
	return b
}

// RequestIDHeader names the header that carries a request's id: taken from
// the request if it is a fit id (requestID), made up otherwise, and always
// sent back in the response. Every log line about the request, and every
// log record of a function it calls, carries it as request_id.
const RequestIDHeader = "X-Request-Id"

// maxRequestID bounds the length of an id taken from a request.
const maxRequestID = 64

// requestID returns the id of a request: the client's, if it is at most
// maxRequestID characters of [A-Za-z0-9._:-] (nothing that could break a
// log line or a header), else a new one.
func requestID(r *http.Request) string {
	id := r.Header.Get(RequestIDHeader)
	if id == "" || len(id) > maxRequestID {
		return nuid.Next()
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return nuid.Next()
		}
	}
	return id
}

// ServeHTTP gives the request its id and its deadlines, authenticates,
// then routes. A panic fails this request alone.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID(r)
	w.Header().Set(RequestIDHeader, id)
	r = r.WithContext(logctx.With(r.Context(), slog.String(logctx.RequestID, id)))
	rc := http.NewResponseController(w)
	rec := &response{ResponseWriter: w, rc: rc, timeout: s.limits.WriteTimeout, status: http.StatusOK}
	rec.refresh() // a kept-alive connection may carry the last request's deadline
	body := s.wrapBody(r, rc)
	defer body.release()
	abort := false
	func() {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				abort = s.recovered(rec, r, v)
			}
		}()
		if s.token != "" && !public(r.URL.Path) && !s.authorized(r) {
			rec.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			errcode.Write(rec, errcode.New(errcode.Unauthorized, "missing or wrong bearer token (--token-file, --token, SLUICE_TOKEN_FILE or SLUICE_TOKEN)"))
			return
		}
		s.mux.ServeHTTP(rec, r)
	}()
	rec.refresh() // for the last flush, after the handler
	level := slog.LevelDebug
	if rec.status >= 500 || abort {
		level = slog.LevelWarn
	}
	took := time.Since(start)
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status, "took", took.Round(time.Microsecond)}
	if call := rec.Header().Get("X-Sluice-Invocation"); call != "" {
		attrs = append(attrs, "call", call) // the function call's id
	}
	if tc, ok := logctx.ParseTraceparent(rec.Header().Get(logctx.TraceparentHeader)); ok {
		// the call's span, which the request's other lines carry too
		attrs = append(attrs, logctx.TraceID, hex.EncodeToString(tc.TraceID[:]), logctx.SpanID, hex.EncodeToString(tc.SpanID[:]))
	}
	s.log.Log(r.Context(), level, "request", attrs...)
	if m := s.metrics.Load(); m != nil && r.URL.Path != "/metrics" {
		(*m).observe(r.Method, rec.status, took)
	}
	if abort {
		panic(http.ErrAbortHandler) // the answer had begun: cut it, so that the client sees it is incomplete
	}
}

// metricsHooks are the metrics the server serves and feeds.
type metricsHooks struct {
	handler http.Handler
	observe func(method string, code int, took time.Duration)
}

// SetMetrics serves handler at /metrics (behind the token like every
// route) and reports every request to observe.
func (s *Server) SetMetrics(handler http.Handler, observe func(method string, code int, took time.Duration)) {
	s.metrics.Store(&metricsHooks{handler: handler, observe: observe})
}

// public reports whether a path is served without the token.
func public(path string) bool {
	return path == "/healthz" || path == "/readyz" || console.Public(path)
}

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Load()
	switch {
	case s.draining.Load():
		errcode.Write(w, errcode.New(errcode.Unavailable, "shutting down"))
	case b == nil:
		errcode.Write(w, errcode.New(errcode.Unavailable, "starting: replaying the catalog"))
	case b.Broker == nil && !b.Log.Connected():
		errcode.Write(w, errcode.New(errcode.Unavailable, "not connected to NATS Streaming (reconnecting)"))
	case b.Catalog.Err() != nil:
		errcode.Write(w, errcode.New(errcode.Unavailable, b.Catalog.Err().Error()))
	case b.Host.Health() != nil:
		errcode.Write(w, b.Host.Health())
	default:
		ready := map[string]any{"status": "ready", "catalog_seq": b.Catalog.Seq()}
		if b.Broker != nil {
			st, err := b.Broker()
			if err != nil {
				errcode.Write(w, errcode.New(errcode.Unavailable, err.Error()))
				return
			}
			ready["broker"] = st
		}
		errcode.WriteJSON(w, http.StatusOK, ready)
	}
}

// FunctionView is a function as the API shows it.
type FunctionView struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	ABI     string `json:"abi"`
	// CGI tells whether the function, a WASI command, runs as a CGI
	// script (fn deploy --cgi).
	CGI    bool       `json:"cgi,omitempty"`
	Module string     `json:"module"`
	Size   int        `json:"size"`
	Limits LimitsView `json:"limits"`
	// Env has the function's env names; their values are EnvMask unless
	// the request asked for them (reveal=env).
	Env      map[string]string `json:"env,omitempty"`
	Deployed time.Time         `json:"deployed"`
	Triggers []string          `json:"triggers,omitempty"`
	// Stats are this daemon's counters for the current version, if loaded.
	Stats *host.Stats `json:"stats,omitempty"`

	// Export is an Extism plugin's entry point and ConfigKeys the keys
	// of its config (fn deploy --export, --config), sorted; their
	// values, often secrets, are not shown.
	Export     string   `json:"export,omitempty"`
	ConfigKeys []string `json:"config_keys,omitempty"`
	// Config is the plugin's config itself, only when the request asked
	// for the values (reveal=env), as Env.
	Config map[string]string `json:"config,omitempty"`
	// MetaEnv tells whether the function, a WASI command, gets the call's
	// metadata as SLUICE_* environment variables (fn deploy --meta-env,
	// or deployed before the setting existed).
	MetaEnv bool `json:"meta_env,omitempty"`
}

// LimitsView shows a function's effective limits.
type LimitsView struct {
	Memory      uint64 `json:"memory"`
	Timeout     string `json:"timeout"`
	Concurrency int    `json:"concurrency"`
	MaxInput    int    `json:"max_input"`
	MaxOutput   int    `json:"max_output"`
}

// EffectiveLimits returns the limits a function with the configuration
// runs with: the configured ones, the host's defaults for the others.
func EffectiveLimits(cfg catalog.Config) LimitsView {
	l := registry.Spec(&catalog.Function{Config: cfg}).Limits.WithDefaults()
	return LimitsView{Memory: l.Memory, Timeout: l.Timeout.String(), Concurrency: l.Concurrency, MaxInput: l.MaxInput, MaxOutput: l.MaxOutput}
}

// EnvMask stands for every env value in what the API shows, unless the
// request asks for the values (reveal=env): they are often secrets, and a
// listing is copied to terminals, tickets and logs.
const EnvMask = "********"

// maskEnv returns env with every value masked.
func maskEnv(env map[string]string) map[string]string {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]string, len(env))
	for k := range env {
		out[k] = EnvMask
	}
	return out
}

// revealEnv reads the reveal parameter of the function routes: "env"
// shows env values, "" masks them.
func revealEnv(r *http.Request) (bool, error) {
	switch v := r.URL.Query().Get("reveal"); v {
	case "":
		return false, nil
	case "env":
		return true, nil
	default:
		return false, fmt.Errorf("%w: reveal=%q: the only thing to reveal is env", catalog.ErrInvalid, v)
	}
}

// view shows a function: with stats, this daemon's counters; with
// reveal, its env values.
func (b *Backend) view(ctx context.Context, fn *catalog.Function, stats, reveal bool) FunctionView {
	v := FunctionView{
		Name: fn.Name, Version: fn.Version, ABI: fn.Config.ABI, CGI: fn.Config.CGI, MetaEnv: fn.Config.MetaEnvOn(), Module: fn.Module, Size: fn.Size,
		Export: fn.Config.Export, ConfigKeys: slices.Sorted(maps.Keys(fn.Config.PluginConfig)),
		Limits: EffectiveLimits(fn.Config), Env: maskEnv(fn.Config.Env), Deployed: fn.Deployed,
	}
	if reveal {
		v.Env, v.Config = fn.Config.Env, fn.Config.PluginConfig
	}
	for _, t := range b.Catalog.Triggers() {
		if t.Function == fn.Name {
			v.Triggers = append(v.Triggers, t.Name)
		}
	}
	if stats {
		if f, cur, ok := b.Registry.Loaded(fn.Name); ok && cur.Version == fn.Version {
			st := f.Stats()
			v.Stats = &st
		}
	}
	return v
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	if err := catalog.ValidateName("function", name); err != nil {
		errcode.Write(w, err)
		return
	}
	cfg, err := ParseConfig(r.URL.Query())
	if err != nil {
		errcode.Write(w, err)
		return
	}
	wasm, err := readBody(r, catalog.MaxModuleSize, "module", errcode.ModuleTooLarge,
		fmt.Sprintf("module is over the limit of %d MiB", catalog.MaxModuleSize>>20))
	if err != nil {
		errcode.Write(w, err)
		return
	}
	// Compile and check it here, so that a module that cannot run is
	// refused now, with the reason, and never reaches the catalog.
	fn := &catalog.Function{Name: name, Config: cfg}
	f, err := b.Host.Load(r.Context(), registry.Spec(fn), wasm)
	if err != nil {
		errcode.Write(w, fmt.Errorf("deploy %q: %w", name, err))
		return
	}
	cfg.ABI, cfg.Export = string(f.Spec().ABI), f.Spec().Export
	f.Close(r.Context())
	fn, err = b.Catalog.Deploy(r.Context(), catalog.Function{Name: name, Config: cfg}, wasm)
	if err != nil {
		errcode.Write(w, fmt.Errorf("deploy %q: %w", name, err))
		return
	}
	s.log.InfoContext(r.Context(), "function deployed", "function", name, "version", fn.Version, "abi", cfg.ABI, "module", fn.Module[:12], "size", fn.Size)
	errcode.WriteJSON(w, http.StatusCreated, b.view(r.Context(), fn, false, false))
}

// update makes a new version of a function with its module and a changed
// configuration (PatchConfig), checked as a deploy is: loaded by the host
// with the new limits. A change that changes nothing answers 200 with the
// current version.
func (s *Server) update(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	fn, ok := b.Catalog.Function(name)
	if !ok {
		errcode.Write(w, fmt.Errorf("%w: no function %q", catalog.ErrNotFound, name))
		return
	}
	cfg, err := PatchConfig(fn.Config, r.URL.Query())
	if err != nil {
		errcode.Write(w, fmt.Errorf("update %q: %w", name, err))
		return
	}
	wasm, err := b.Catalog.Module(r.Context(), fn)
	if err != nil {
		errcode.Write(w, fmt.Errorf("update %q: %w", name, err))
		return
	}
	f, err := b.Host.Load(r.Context(), registry.Spec(&catalog.Function{Name: name, Config: cfg}), wasm)
	if err != nil {
		errcode.Write(w, fmt.Errorf("update %q: %w", name, err))
		return
	}
	cfg.ABI = string(f.Spec().ABI)
	f.Close(r.Context())
	if sameConfig(cfg, fn.Config) {
		errcode.WriteJSON(w, http.StatusOK, b.view(r.Context(), fn, false, false))
		return
	}
	nf, err := b.Catalog.Update(r.Context(), fn, cfg)
	if err != nil {
		errcode.Write(w, fmt.Errorf("update %q: %w", name, err))
		return
	}
	s.log.InfoContext(r.Context(), "function updated", "function", name, "version", nf.Version, "from", fn.Version)
	errcode.WriteJSON(w, http.StatusCreated, b.view(r.Context(), nf, false, false))
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request, b *Backend) {
	reveal, err := revealEnv(r)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	fns := b.Catalog.Functions()
	out := make([]FunctionView, 0, len(fns))
	for _, fn := range fns {
		out = append(out, b.view(r.Context(), fn, false, reveal))
	}
	errcode.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request, b *Backend) {
	reveal, err := revealEnv(r)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	fn, ok := b.Catalog.Function(r.PathValue("name"))
	if !ok {
		errcode.Write(w, fmt.Errorf("%w: no function %q", catalog.ErrNotFound, r.PathValue("name")))
		return
	}
	errcode.WriteJSON(w, http.StatusOK, b.view(r.Context(), fn, true, reveal))
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	force, err := boolParam(r, "force")
	if err != nil {
		errcode.Write(w, err)
		return
	}
	if err := b.Catalog.DeleteFunction(r.Context(), name, force); err != nil {
		errcode.Write(w, deleteError(fmt.Sprintf("delete %q", name), err))
		return
	}
	s.log.InfoContext(r.Context(), "function deleted", "function", name, "force", force)
	w.WriteHeader(http.StatusNoContent)
}

// deleteError says what a refused delete was (what names it): an
// *InUseError says it already, with what to do.
func deleteError(what string, err error) error {
	var inUse *catalog.InUseError
	if errors.As(err, &inUse) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// boolParam reads a true/false query parameter; absent is false.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s=%q: want true or false", catalog.ErrInvalid, name, v)
	}
	return b, nil
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	fn, ok := b.Catalog.Function(name)
	if !ok {
		errcode.Write(w, fmt.Errorf("%w: no function %q is deployed", registry.ErrNotFound, name))
		return
	}
	limit := registry.Spec(fn).Limits.WithDefaults().MaxInput
	in, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		errcode.Write(w, errcode.ReadError("input", err))
		return
	}
	id := host.NewID()
	w.Header().Set("X-Sluice-Invocation", id)
	tc := triggers.TraceOf(r.Header)
	w.Header().Set(logctx.TraceparentHeader, tc.Traceparent())
	res, cur, err := b.Registry.Invoke(logctx.WithTrace(r.Context(), tc), name, host.Call{ID: id, Input: in})
	if cur != nil {
		w.Header().Set("X-Sluice-Version", strconv.Itoa(cur.Version))
	}
	if err != nil {
		errcode.Write(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	// The HTTP answer the function set, if any, is told, not acted on:
	// this is the API's answer (200: the call succeeded), and a function's
	// Set-Cookie or Location is for its own clients, not the API's.
	if res.Status != 0 {
		w.Header().Set(StatusHeader, strconv.Itoa(res.Status))
	}
	for _, name := range slices.Sorted(maps.Keys(res.Header)) {
		for _, v := range res.Header[name] {
			w.Header().Add(HeaderHeader, name+": "+v)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(res.Output)))
	w.Header().Set("X-Sluice-Cold", strconv.FormatBool(res.Cold))
	w.Header().Set("X-Sluice-Duration", res.Duration.Round(time.Microsecond).String())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Output)
}

// The headers of an invoke's answer that carry the HTTP response a
// function set: its status, and each of its header values as
// "Name: value", one X-Sluice-Header per value, sorted by name.
const (
	StatusHeader = "X-Sluice-Status"
	HeaderHeader = "X-Sluice-Header"
)

// logs streams a function's log records as NDJSON: the last tail
// (default logstream.DefaultTail) of those stored since since (default:
// all that are kept), then with follow=true the new ones.
func (s *Server) logs(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	if _, ok := b.Catalog.Function(name); !ok {
		// reading would create the log channel of a name that never was
		errcode.Write(w, fmt.Errorf("%w: no function %q", catalog.ErrNotFound, name))
		return
	}
	q := r.URL.Query()
	o := logstream.ReadOptions{Tail: logstream.DefaultTail}
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errcode.Write(w, fmt.Errorf("%w: since: want a duration like 10m, got %q", catalog.ErrInvalid, v))
			return
		}
		o.Since = d
	}
	var err error
	if o.Tail, err = tailParam(r, logstream.DefaultTail); err != nil {
		errcode.Write(w, err)
		return
	}
	if o.Follow, err = boolParam(r, "follow"); err != nil {
		errcode.Write(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	ctx, cancel := s.streamContext(r)
	defer cancel()
	err = logstream.Read(ctx, b.Log, name, o, func(rec host.Record) error {
		if err := enc.Encode(rec); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		_ = enc.Encode(errcode.Body{Error: err.Error(), Code: errcode.Unavailable})
	}
}

// maxTail bounds the tail parameter of the log and topic routes.
const maxTail = logstream.MaxTail

// tailParam reads the tail parameter: how many of the last records or
// messages to start with.
func tailParam(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("tail")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxTail {
		return 0, fmt.Errorf("%w: tail=%q: want a number from 0 to %d", catalog.ErrInvalid, v, maxTail)
	}
	return n, nil
}

// TriggerRequest is the body of POST /v1/triggers: a name, a function or
// a workflow, and one of HTTP, Queue or Cron.
type TriggerRequest struct {
	Name     string            `json:"name"`
	Function string            `json:"function,omitempty"`
	Workflow string            `json:"workflow,omitempty"`
	HTTP     *catalog.HTTPSpec `json:"http,omitempty"`
	Queue    *QueueRequest     `json:"queue,omitempty"`
	Cron     *catalog.CronSpec `json:"cron,omitempty"`
}

// QueueRequest is a message-queue trigger in a TriggerRequest; omitted
// settings take their defaults (3 retries, 16 in flight, 30s ack wait).
type QueueRequest struct {
	Topic       string `json:"topic"`
	RespTopic   string `json:"resp_topic,omitempty"`
	ErrorTopic  string `json:"error_topic,omitempty"`
	MaxRetries  *int   `json:"max_retries,omitempty"`
	MaxInflight int    `json:"max_inflight,omitempty"`
	AckWait     string `json:"ack_wait,omitempty"`
}

func (q *QueueRequest) spec() (*catalog.QueueSpec, error) {
	spec := &catalog.QueueSpec{
		Topic: q.Topic, RespTopic: q.RespTopic, ErrorTopic: q.ErrorTopic,
		MaxRetries: catalog.DefaultMaxRetries, MaxInflight: catalog.DefaultMaxInflight, AckWait: catalog.DefaultAckWait,
	}
	if q.MaxRetries != nil {
		spec.MaxRetries = *q.MaxRetries
	}
	if q.MaxInflight != 0 {
		spec.MaxInflight = q.MaxInflight
	}
	if q.AckWait != "" {
		d, err := time.ParseDuration(q.AckWait)
		if err != nil {
			return nil, fmt.Errorf("%w: --ack-wait %q: %v", catalog.ErrInvalid, q.AckWait, err)
		}
		spec.AckWait = catalog.Duration(d)
	}
	return spec, nil
}

// Trigger returns the trigger the request creates, defaults applied and
// the HTTP method in upper case; the catalog validates it.
func (req *TriggerRequest) Trigger() (catalog.Trigger, error) {
	t := catalog.Trigger{Name: req.Name, Function: req.Function, Workflow: req.Workflow, Cron: req.Cron}
	if req.HTTP != nil {
		h := *req.HTTP
		h.Method = strings.ToUpper(h.Method)
		t.HTTP = &h
	}
	if req.Queue != nil {
		var err error
		if t.Queue, err = req.Queue.spec(); err != nil {
			return t, err
		}
	}
	return t, nil
}

func (s *Server) createTrigger(w http.ResponseWriter, r *http.Request, b *Backend) {
	var req TriggerRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var refused *errcode.Error // the body came too slowly, or could not be held
		if errors.As(err, &refused) {
			errcode.Write(w, refused)
			return
		}
		errcode.Write(w, fmt.Errorf("%w: trigger: %v", catalog.ErrInvalid, err))
		return
	}
	t, err := req.Trigger()
	if err != nil {
		errcode.Write(w, err)
		return
	}
	created, err := b.Catalog.CreateTrigger(r.Context(), t)
	if err != nil {
		errcode.Write(w, fmt.Errorf("create trigger %q: %w", req.Name, err))
		return
	}
	s.log.InfoContext(r.Context(), "trigger created", "trigger", created.Name, "kind", created.Kind(), "function", created.Function, "workflow", created.Workflow)
	errcode.WriteJSON(w, http.StatusCreated, created)
}

func (s *Server) listTriggers(w http.ResponseWriter, r *http.Request, b *Backend) {
	errcode.WriteJSON(w, http.StatusOK, b.Catalog.Triggers())
}

// TriggerView is a trigger as GET /v1/triggers/NAME shows it, with this
// daemon's counters for queue and timer triggers.
type TriggerView struct {
	catalog.Trigger
	Stats *triggers.QueueStats `json:"stats,omitempty"`
}

func (s *Server) getTrigger(w http.ResponseWriter, r *http.Request, b *Backend) {
	t, ok := b.Catalog.Trigger(r.PathValue("name"))
	if !ok {
		errcode.Write(w, fmt.Errorf("%w: no trigger %q", catalog.ErrNotFound, r.PathValue("name")))
		return
	}
	v := TriggerView{Trigger: *t}
	if st, ok := b.Queue.Stats(t.Name); ok {
		v.Stats = &st
	}
	errcode.WriteJSON(w, http.StatusOK, v)
}

func (s *Server) deleteTrigger(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	if err := b.Catalog.DeleteTrigger(r.Context(), name); err != nil {
		errcode.Write(w, fmt.Errorf("delete trigger %q: %w", name, err))
		return
	}
	s.log.InfoContext(r.Context(), "trigger deleted", "trigger", name)
	w.WriteHeader(http.StatusNoContent)
}
