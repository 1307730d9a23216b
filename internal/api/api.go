// Package api is the daemon's HTTP API (DESIGN.md §3): functions,
// triggers, workflows and their invocations, logs, health. Every error is JSON
// {"error": "...", "code": "..."} with a fitting status.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/httperr"
	"github.com/sluicehq/sluice/internal/logctx"
	"github.com/sluicehq/sluice/internal/logstream"
	"github.com/sluicehq/sluice/internal/registry"
	"github.com/sluicehq/sluice/triggers"
)

// Backend is what the API serves once the daemon is ready.
type Backend struct {
	Host     *host.Host
	Conn     *broker.Conn
	Catalog  *catalog.Catalog
	Registry *registry.Registry
	HTTP     *triggers.HTTP
	Queue    *triggers.Queue
	// Engine runs workflows; nil answers the workflow invocation routes
	// with 503.
	Engine *engine.Engine
}

// Server serves the API. Until SetBackend is called, /healthz answers and
// everything else says the daemon is starting.
type Server struct {
	token    string
	log      *slog.Logger
	backend  atomic.Pointer[Backend]
	metrics  atomic.Pointer[metricsHooks]
	draining atomic.Bool
	mux      *http.ServeMux
}

// New returns a server. A non-empty token is required as a bearer token on
// every route but /healthz and /readyz: probes and load balancers call them
// without credentials, and they show nothing but the daemon's state.
func New(token string, log *slog.Logger) *Server {
	s := &Server{token: token, log: log, mux: http.NewServeMux()}
	s.routes()
	return s
}

// SetBackend makes the server ready.
func (s *Server) SetBackend(b *Backend) { s.backend.Store(b) }

// Drain makes /readyz fail, so that load balancers stop sending traffic
// while the daemon shuts down.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httperr.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		m := s.metrics.Load()
		if m == nil {
			httperr.Write(w, httperr.New(http.StatusServiceUnavailable, "unavailable", "the daemon is starting"))
			return
		}
		m.handler.ServeHTTP(w, r)
	})
	s.handle("PUT /v1/functions/{name}", s.deploy)
	s.handle("GET /v1/functions", s.listFunctions)
	s.handle("GET /v1/functions/{name}", s.getFunction)
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
	s.handle("DELETE /v1/workflows/{name}", s.deleteWorkflow)
	s.handle("POST /v1/workflows/{name}/invoke", s.invokeWorkflow)
	s.handle("GET /v1/invocations", s.listInvocations)
	s.handle("GET /v1/invocations/{id}", s.getInvocation)
	s.handle("GET /v1/invocations/{id}/events", s.invocationEvents)
	s.handle("POST /v1/invocations/{id}/cancel", s.cancelInvocation)
	s.handle("POST /v1/topics/{topic}/publish", s.publish)
	s.handle("GET /v1/topics/{topic}/tail", s.tail)
	s.mux.HandleFunc(triggers.HTTPPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		b := s.ready(w)
		if b == nil {
			return
		}
		b.HTTP.ServeHTTP(w, r)
	})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httperr.Write(w, httperr.New(http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)))
	})
}

// readBody reads a request body of at most limit bytes. A longer one is
// refused with 413 and code, saying over; what names the body in a read
// error.
func readBody(r *http.Request, limit int, what, code, over string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, httperr.New(http.StatusBadRequest, "bad_request", "read "+what+": "+err.Error())
	}
	if len(b) > limit {
		return nil, httperr.New(http.StatusRequestEntityTooLarge, code, over)
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
		httperr.Write(w, httperr.New(http.StatusServiceUnavailable, "unavailable", "the daemon is starting: replaying the catalog"))
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

// ServeHTTP gives the request its id, authenticates, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID(r)
	w.Header().Set(RequestIDHeader, id)
	r = r.WithContext(logctx.With(r.Context(), slog.String(logctx.RequestID, id)))
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	if s.token != "" && !public(r.URL.Path) && !s.authorized(r) {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		httperr.Write(rec, httperr.New(http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token (--token, SLUICE_TOKEN)"))
	} else {
		s.mux.ServeHTTP(rec, r)
	}
	level := slog.LevelDebug
	if rec.status >= 500 {
		level = slog.LevelWarn
	}
	took := time.Since(start)
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status, "took", took.Round(time.Microsecond)}
	if call := rec.Header().Get("X-Sluice-Invocation"); call != "" {
		attrs = append(attrs, "call", call) // the function call's id
	}
	s.log.Log(r.Context(), level, "request", attrs...)
	if m := s.metrics.Load(); m != nil && r.URL.Path != "/metrics" {
		(*m).observe(r.Method, rec.status, took)
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
func public(path string) bool { return path == "/healthz" || path == "/readyz" }

func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Load()
	switch {
	case s.draining.Load():
		httperr.Write(w, httperr.New(http.StatusServiceUnavailable, "unavailable", "shutting down"))
	case b == nil:
		httperr.Write(w, httperr.New(http.StatusServiceUnavailable, "unavailable", "starting: replaying the catalog"))
	case !b.Conn.Connected():
		httperr.Write(w, httperr.New(http.StatusServiceUnavailable, "unavailable", "not connected to NATS Streaming (reconnecting)"))
	case b.Catalog.Err() != nil:
		httperr.Write(w, httperr.New(http.StatusServiceUnavailable, "unavailable", b.Catalog.Err().Error()))
	case b.Host.Health() != nil:
		httperr.Write(w, b.Host.Health())
	default:
		httperr.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "catalog_seq": b.Catalog.Seq()})
	}
}

// FunctionView is a function as the API shows it.
type FunctionView struct {
	Name     string            `json:"name"`
	Version  int               `json:"version"`
	ABI      string            `json:"abi"`
	Module   string            `json:"module"`
	Size     int               `json:"size"`
	Limits   LimitsView        `json:"limits"`
	Env      map[string]string `json:"env,omitempty"`
	Deployed time.Time         `json:"deployed"`
	Triggers []string          `json:"triggers,omitempty"`
	// Stats are this daemon's counters for the current version, if loaded.
	Stats *host.Stats `json:"stats,omitempty"`
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

func (b *Backend) view(ctx context.Context, fn *catalog.Function, stats bool) FunctionView {
	v := FunctionView{
		Name: fn.Name, Version: fn.Version, ABI: fn.Config.ABI, Module: fn.Module, Size: fn.Size,
		Limits: EffectiveLimits(fn.Config), Env: fn.Config.Env, Deployed: fn.Deployed,
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
		httperr.Write(w, err)
		return
	}
	cfg, err := ParseConfig(r.URL.Query())
	if err != nil {
		httperr.Write(w, err)
		return
	}
	wasm, err := readBody(r, catalog.MaxModuleSize, "module", "module_too_large",
		fmt.Sprintf("module is over the limit of %d MiB", catalog.MaxModuleSize>>20))
	if err != nil {
		httperr.Write(w, err)
		return
	}
	// Compile and check it here, so that a module that cannot run is
	// refused now, with the reason, and never reaches the catalog.
	fn := &catalog.Function{Name: name, Config: cfg}
	f, err := b.Host.Load(r.Context(), registry.Spec(fn), wasm)
	if err != nil {
		httperr.Write(w, fmt.Errorf("deploy %q: %w", name, err))
		return
	}
	cfg.ABI = string(f.Spec().ABI)
	f.Close(r.Context())
	fn, err = b.Catalog.Deploy(r.Context(), catalog.Function{Name: name, Config: cfg}, wasm)
	if err != nil {
		httperr.Write(w, fmt.Errorf("deploy %q: %w", name, err))
		return
	}
	s.log.InfoContext(r.Context(), "function deployed", "function", name, "version", fn.Version, "abi", cfg.ABI, "module", fn.Module[:12], "size", fn.Size)
	httperr.WriteJSON(w, http.StatusCreated, b.view(r.Context(), fn, false))
}

// ParseConfig reads a function's configuration from deploy query
// parameters: abi, memory (e.g. 64MiB), timeout (e.g. 30s), concurrency,
// max-input, max-output, env (K=V, repeated).
func ParseConfig(q url.Values) (catalog.Config, error) {
	var cfg catalog.Config
	bad := func(param string, err error) (catalog.Config, error) {
		return cfg, fmt.Errorf("%w: %s: %v", catalog.ErrInvalid, param, err)
	}
	kind, err := abi.ParseKind(q.Get("abi"))
	if err != nil {
		return bad("abi", err)
	}
	cfg.ABI = string(kind)
	if v := q.Get("memory"); v != "" {
		if cfg.Memory, err = host.ParseBytes(v); err != nil {
			return bad("memory", err)
		}
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return bad("timeout", err)
		}
		if d <= 0 {
			return bad("timeout", errors.New("must be positive"))
		}
		cfg.Timeout = catalog.Duration(d)
	}
	ints := map[string]*int{"concurrency": &cfg.Concurrency}
	for param, dst := range ints {
		if v := q.Get(param); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return bad(param, fmt.Errorf("want a positive integer, got %q", v))
			}
			*dst = n
		}
	}
	for param, dst := range map[string]*int{"max-input": &cfg.MaxInput, "max-output": &cfg.MaxOutput} {
		if v := q.Get(param); v != "" {
			n, err := host.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<30 {
				return bad(param, fmt.Errorf("want a size between 1 B and 1 GiB, got %q", v))
			}
			*dst = int(n)
		}
	}
	for _, kv := range q["env"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, "\x00=") {
			return bad("env", fmt.Errorf("want KEY=VALUE, got %q", kv))
		}
		if cfg.Env == nil {
			cfg.Env = map[string]string{}
		}
		cfg.Env[k] = v
	}
	spec := registry.Spec(&catalog.Function{Config: cfg})
	if err := spec.Limits.Validate(); err != nil {
		return bad("limits", err)
	}
	return cfg, nil
}

func (s *Server) listFunctions(w http.ResponseWriter, r *http.Request, b *Backend) {
	fns := b.Catalog.Functions()
	out := make([]FunctionView, 0, len(fns))
	for _, fn := range fns {
		out = append(out, b.view(r.Context(), fn, false))
	}
	httperr.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) getFunction(w http.ResponseWriter, r *http.Request, b *Backend) {
	fn, ok := b.Catalog.Function(r.PathValue("name"))
	if !ok {
		httperr.Write(w, fmt.Errorf("%w: no function %q", catalog.ErrNotFound, r.PathValue("name")))
		return
	}
	httperr.WriteJSON(w, http.StatusOK, b.view(r.Context(), fn, true))
}

func (s *Server) deleteFunction(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	if err := b.Catalog.DeleteFunction(r.Context(), name); err != nil {
		httperr.Write(w, fmt.Errorf("delete %q: %w", name, err))
		return
	}
	s.log.InfoContext(r.Context(), "function deleted", "function", name)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	fn, ok := b.Catalog.Function(name)
	if !ok {
		httperr.Write(w, fmt.Errorf("%w: no function %q is deployed", registry.ErrNotFound, name))
		return
	}
	limit := registry.Spec(fn).Limits.WithDefaults().MaxInput
	in, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		httperr.Write(w, httperr.New(http.StatusBadRequest, "bad_request", "read input: "+err.Error()))
		return
	}
	id := host.NewID()
	w.Header().Set("X-Sluice-Invocation", id)
	res, cur, err := b.Registry.Invoke(r.Context(), name, host.Call{ID: id, Input: in})
	if cur != nil {
		w.Header().Set("X-Sluice-Version", strconv.Itoa(cur.Version))
	}
	if err != nil {
		httperr.Write(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(res.Output)))
	w.Header().Set("X-Sluice-Cold", strconv.FormatBool(res.Cold))
	w.Header().Set("X-Sluice-Duration", res.Duration.Round(time.Microsecond).String())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Output)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	if _, ok := b.Catalog.Function(name); !ok {
		// reading would create the log channel of a name that never was
		httperr.Write(w, fmt.Errorf("%w: no function %q", catalog.ErrNotFound, name))
		return
	}
	since := time.Hour
	if v := r.URL.Query().Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			httperr.Write(w, fmt.Errorf("%w: since: want a duration like 10m, got %q", catalog.ErrInvalid, v))
			return
		}
		since = d
	}
	follow := r.URL.Query().Get("follow") == "true"
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	err := logstream.Read(r.Context(), b.Conn, name, since, follow, func(rec host.Record) error {
		if err := enc.Encode(rec); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && r.Context().Err() == nil {
		_ = enc.Encode(httperr.Body{Error: err.Error(), Code: "unavailable"})
	}
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
		httperr.Write(w, fmt.Errorf("%w: trigger: %v", catalog.ErrInvalid, err))
		return
	}
	t, err := req.Trigger()
	if err != nil {
		httperr.Write(w, err)
		return
	}
	created, err := b.Catalog.CreateTrigger(r.Context(), t)
	if err != nil {
		httperr.Write(w, fmt.Errorf("create trigger %q: %w", req.Name, err))
		return
	}
	s.log.InfoContext(r.Context(), "trigger created", "trigger", created.Name, "kind", created.Kind(), "function", created.Function, "workflow", created.Workflow)
	httperr.WriteJSON(w, http.StatusCreated, created)
}

func (s *Server) listTriggers(w http.ResponseWriter, r *http.Request, b *Backend) {
	httperr.WriteJSON(w, http.StatusOK, b.Catalog.Triggers())
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
		httperr.Write(w, fmt.Errorf("%w: no trigger %q", catalog.ErrNotFound, r.PathValue("name")))
		return
	}
	v := TriggerView{Trigger: *t}
	if st, ok := b.Queue.Stats(t.Name); ok {
		v.Stats = &st
	}
	httperr.WriteJSON(w, http.StatusOK, v)
}

func (s *Server) deleteTrigger(w http.ResponseWriter, r *http.Request, b *Backend) {
	name := r.PathValue("name")
	if err := b.Catalog.DeleteTrigger(r.Context(), name); err != nil {
		httperr.Write(w, fmt.Errorf("delete trigger %q: %w", name, err))
		return
	}
	s.log.InfoContext(r.Context(), "trigger deleted", "trigger", name)
	w.WriteHeader(http.StatusNoContent)
}
