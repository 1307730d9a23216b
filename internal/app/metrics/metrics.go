// Package metrics holds sluice's Prometheus metrics (every name starts
// with sluice_) and serves them at /metrics. Counters the packages keep
// themselves (a function's pool, a trigger's deliveries) are read at
// scrape time; events are observed as they happen.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/triggers"
)

// Sources are what the scrape-time collectors read.
type Sources struct {
	// Functions returns the loaded functions' counters by name.
	Functions func() map[string]host.Stats
	// Triggers returns the message-queue and timer triggers' counters on
	// this daemon, by trigger name.
	Triggers func() map[string]triggers.QueueStats
	// Invocations returns the number of running workflow invocations this
	// daemon drives, by workflow.
	Invocations func() map[string]int
	// Host returns the host's counters: compiled modules, instances,
	// memory budget.
	Host func() host.HostStats
	// Loaded returns how many functions are deployed and how many this
	// daemon has loaded (functions load on their first call).
	Loaded func() (deployed, loaded int)
	// LogsDropped returns how many function log records this daemon
	// could not store (the broker unreachable, or not taking writes).
	LogsDropped func() uint64
	// HTTPRequests returns the requests of the http built-in by outcome:
	// answered, refused (by the allow-list or the checks, nothing sent),
	// failed (sent, no response within the limits).
	HTTPRequests func() map[string]uint64
}

// Metrics is one daemon's metrics.
type Metrics struct {
	reg *prometheus.Registry
	src Sources
	// counts are what the live figures read (figures.go).
	counts counters

	calls, callErrors, coldStarts *prometheus.CounterVec
	callSeconds                   *prometheus.HistogramVec
	lag                           *prometheus.HistogramVec
	wfInvocations, wfTasks        *prometheus.CounterVec
	wfCaught, wfCompensations     *prometheus.CounterVec
	wfStep                        prometheus.Histogram
	appendSeconds                 *prometheus.HistogramVec
	httpRequests                  *prometheus.CounterVec
	httpSeconds                   *prometheus.HistogramVec
}

// fnSeries is a function's children of the vectors every call feeds.
func (m *Metrics) fnSeries(function string) fnSeries {
	return fnSeries{
		calls:      m.calls.WithLabelValues(function),
		coldStarts: m.coldStarts.WithLabelValues(function),
		seconds:    m.callSeconds.WithLabelValues(function),
	}
}

// Buckets: function calls run from microseconds (a warm WAT call) to the
// 30 s default timeout; engine steps and appends from microseconds to
// seconds.
var (
	callBuckets   = prometheus.ExponentialBucketsRange(5e-6, 30, 20)
	stepBuckets   = prometheus.ExponentialBucketsRange(1e-6, 1, 16)
	appendBuckets = prometheus.ExponentialBucketsRange(1e-5, 10, 16)
	lagBuckets    = prometheus.ExponentialBucketsRange(1e-4, 3600, 20)
)

// New returns the metrics, reading what it collects at scrape time from s.
func New(s Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), src: s}
	m.counts.fnSeries = m.fnSeries
	m.counts.lagSeries = func(trigger string) prometheus.Observer { return m.lag.WithLabelValues(trigger) }
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_function_invocations_total", Help: "Calls of a function, on this daemon.",
	}, []string{"function"})
	m.callErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_function_errors_total", Help: "Calls of a function that failed, by the API's error code (timeout, trap, memory_limit, function_error, ...).",
	}, []string{"function", "kind"})
	m.coldStarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_function_cold_starts_total", Help: "Calls that had to create an instance first.",
	}, []string{"function"})
	m.callSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_function_duration_seconds", Help: "Duration of a call, waiting for a slot and instantiation included.", Buckets: callBuckets,
	}, []string{"function"})
	m.lag = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_trigger_lag_seconds", Help: "Time a message waited in its channel before a queue trigger took it.", Buckets: lagBuckets,
	}, []string{"trigger"})
	m.wfInvocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_workflow_invocations_total", Help: "Workflow invocations this daemon drove to their end, by status.",
	}, []string{"workflow", "status"})
	m.wfTasks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_workflow_tasks_total", Help: "Task attempts that ended, by status (succeeded, failed, retrying).",
	}, []string{"workflow", "status"})
	m.wfCaught = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_workflow_tasks_caught_total", Help: "Tasks that failed for good and ran their catch: (TaskCaught), on this daemon.",
	}, []string{"workflow"})
	m.wfCompensations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_workflow_compensations_total", Help: "Compensations (undo tasks run when an invocation failed) this daemon drove to their end, by outcome: succeeded (every undo), undo_failed (at least one failed), canceled.",
	}, []string{"workflow", "outcome"})
	m.wfStep = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sluice_workflow_step_seconds", Help: "Time the engine took to decide an invocation's next steps after a change.", Buckets: stepBuckets,
	})
	m.appendSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_event_append_seconds", Help: "Time from writing a workflow event to the broker's acknowledgement that it is stored.", Buckets: appendBuckets,
	}, []string{"outcome"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_http_requests_total", Help: "API and HTTP-trigger requests, by method and status code.",
	}, []string{"method", "code"})
	m.httpSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_http_request_duration_seconds", Help: "Duration of API and HTTP-trigger requests.", Buckets: callBuckets,
	}, []string{"method"})
	m.reg.MustRegister(m.calls, m.callErrors, m.coldStarts, m.callSeconds, m.lag, m.wfInvocations, m.wfTasks,
		m.wfCaught, m.wfCompensations, m.wfStep, m.appendSeconds, m.httpRequests, m.httpSeconds, &scrape{s: s})
	// The runtime's and the process's own, under sluice_ like the rest.
	prometheus.WrapRegistererWithPrefix("sluice_", m.reg).MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the metrics' registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Call observes a function call (registry.Observer).
func (m *Metrics) Call(function string, res host.Result, err error, took time.Duration) {
	f := m.counts.fn(function)
	f.series.calls.Inc()
	f.series.seconds.Observe(took.Seconds())
	if res.Cold {
		f.series.coldStarts.Inc()
	}
	if err != nil {
		m.callErrors.WithLabelValues(function, errorKind(err)).Inc()
	}
	f.add(err != nil, took)
}

// errorKind is the API's error code for err: timeout, trap, ...
func errorKind(err error) string {
	return string(errcode.Of(err))
}

// Lag observes a queue trigger's message lag (Queue.ObserveLag).
func (m *Metrics) Lag(trigger string, lag time.Duration) {
	l := m.counts.trigger(trigger)
	l.series.Observe(max(lag, 0).Seconds())
	l.add(max(lag, 0))
}

// HTTP observes one request.
func (m *Metrics) HTTP(method string, code int, took time.Duration) {
	m.httpRequests.WithLabelValues(method, statusCode(code)).Inc()
	m.httpSeconds.WithLabelValues(method).Observe(took.Seconds())
}

// InvocationEnded implements engine.Observer.
func (m *Metrics) InvocationEnded(workflow, status string) {
	m.wfInvocations.WithLabelValues(workflow, status).Inc()
	m.counts.ended(workflow, status)
}

// TaskEnded implements engine.Observer.
func (m *Metrics) TaskEnded(workflow, status string) {
	m.wfTasks.WithLabelValues(workflow, status).Inc()
}

// TaskCaught implements engine.FailureObserver.
func (m *Metrics) TaskCaught(workflow string) {
	m.wfCaught.WithLabelValues(workflow).Inc()
}

// CompensationEnded implements engine.FailureObserver.
func (m *Metrics) CompensationEnded(workflow, outcome string) {
	m.wfCompensations.WithLabelValues(workflow, outcome).Inc()
}

// Step implements engine.Observer.
func (m *Metrics) Step(d time.Duration) { m.wfStep.Observe(d.Seconds()) }

// Appended implements engine.Observer.
func (m *Metrics) Appended(d time.Duration, err error) {
	outcome := "stored"
	if err != nil {
		outcome = "failed"
	}
	m.appendSeconds.WithLabelValues(outcome).Observe(d.Seconds())
}

// scrape collects, at scrape time, the counters other packages keep.
type scrape struct{ s Sources }

var (
	descIdle         = prometheus.NewDesc("sluice_function_instances_idle", "Pooled reactor instances waiting for a call.", []string{"function"}, nil)
	descActive       = prometheus.NewDesc("sluice_function_calls_active", "Calls running now.", []string{"function"}, nil)
	descDelivered    = prometheus.NewDesc("sluice_trigger_deliveries_total", "Messages a queue or timer trigger received on this daemon, redeliveries included.", []string{"trigger"}, nil)
	descRedelivered  = prometheus.NewDesc("sluice_trigger_redeliveries_total", "Messages received again after a failure or a lost ack.", []string{"trigger"}, nil)
	descSucceeded    = prometheus.NewDesc("sluice_trigger_succeeded_total", "Messages whose function or workflow succeeded.", []string{"trigger"}, nil)
	descFailed       = prometheus.NewDesc("sluice_trigger_failures_total", "Attempts that failed.", []string{"trigger"}, nil)
	descDead         = prometheus.NewDesc("sluice_trigger_dead_letters_total", "Messages given up on after every retry.", []string{"trigger"}, nil)
	descInflight     = prometheus.NewDesc("sluice_trigger_inflight", "Messages being processed now.", []string{"trigger"}, nil)
	descWfRunning    = prometheus.NewDesc("sluice_workflow_invocations_running", "Running invocations this daemon drives.", []string{"workflow"}, nil)
	descDeployed     = prometheus.NewDesc("sluice_functions_deployed", "Functions in the catalog.", nil, nil)
	descLoaded       = prometheus.NewDesc("sluice_functions_loaded", "Functions this daemon has loaded: a function loads on its first call.", nil, nil)
	descModules      = prometheus.NewDesc("sluice_host_modules_loaded", "Compiled modules in memory (one per module and memory limit).", nil, nil)
	descCompiling    = prometheus.NewDesc("sluice_host_modules_compiling", "Modules being compiled or loaded from the compile cache.", nil, nil)
	descInstances    = prometheus.NewDesc("sluice_host_instances", "Live instances, by state: running a call, or idle in a pool.", []string{"state"}, nil)
	descMemUsed      = prometheus.NewDesc("sluice_host_memory_used_bytes", "Estimated memory of compiled modules and instances, counted against the memory budget.", nil, nil)
	descMemBudget    = prometheus.NewDesc("sluice_host_memory_budget_bytes", "The memory budget (--memory-budget); 0 if none.", nil, nil)
	descLogsDropped  = prometheus.NewDesc("sluice_function_log_records_dropped_total", "Function log records this daemon could not store: the broker was unreachable or took no writes (logs are best effort; calls are not held up for them).", nil, nil)
	descReleased     = prometheus.NewDesc("sluice_host_released_total", "Instances and compiled modules released, by kind and reason: budget (to make room), idle (after --idle-timeout).", []string{"kind", "reason"}, nil)
	descHTTPRequests = prometheus.NewDesc("sluice_workflow_http_requests_total", "Requests of the workflows' http built-in, by outcome: answered (any status), refused (by --allow-http or the request's checks: nothing sent), failed (no response within the limits).", []string{"outcome"}, nil)
	allScrapedDescs  = []*prometheus.Desc{descHTTPRequests, descIdle, descActive, descDelivered, descRedelivered, descSucceeded, descFailed, descDead, descInflight, descWfRunning,
		descDeployed, descLoaded, descModules, descCompiling, descInstances, descMemUsed, descMemBudget, descReleased, descLogsDropped}
)

func (c *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allScrapedDescs {
		ch <- d
	}
}

func (c *scrape) Collect(ch chan<- prometheus.Metric) {
	if c.s.Functions != nil {
		for name, st := range c.s.Functions() {
			ch <- prometheus.MustNewConstMetric(descIdle, prometheus.GaugeValue, float64(st.Idle), name)
			ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(st.Active), name)
		}
	}
	if c.s.Triggers != nil {
		for name, st := range c.s.Triggers() {
			ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(st.Delivered), name)
			ch <- prometheus.MustNewConstMetric(descRedelivered, prometheus.CounterValue, float64(st.Redelivered), name)
			ch <- prometheus.MustNewConstMetric(descSucceeded, prometheus.CounterValue, float64(st.Succeeded), name)
			ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(st.Failed), name)
			ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(st.DeadLettered), name)
			ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(st.InFlight), name)
		}
	}
	if c.s.Invocations != nil {
		for wf, n := range c.s.Invocations() {
			ch <- prometheus.MustNewConstMetric(descWfRunning, prometheus.GaugeValue, float64(n), wf)
		}
	}
	if c.s.Loaded != nil {
		deployed, loaded := c.s.Loaded()
		ch <- prometheus.MustNewConstMetric(descDeployed, prometheus.GaugeValue, float64(deployed))
		ch <- prometheus.MustNewConstMetric(descLoaded, prometheus.GaugeValue, float64(loaded))
	}
	if c.s.HTTPRequests != nil {
		for outcome, n := range c.s.HTTPRequests() {
			ch <- prometheus.MustNewConstMetric(descHTTPRequests, prometheus.CounterValue, float64(n), outcome)
		}
	}
	if c.s.LogsDropped != nil {
		ch <- prometheus.MustNewConstMetric(descLogsDropped, prometheus.CounterValue, float64(c.s.LogsDropped()))
	}
	if c.s.Host != nil {
		st := c.s.Host()
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		gauge(descModules, float64(st.Modules))
		gauge(descCompiling, float64(st.Compiling))
		gauge(descInstances, float64(st.Instances-st.Idle), "running")
		gauge(descInstances, float64(st.Idle), "idle")
		gauge(descMemUsed, float64(st.MemoryUsed))
		gauge(descMemBudget, float64(st.MemoryBudget))
		for _, r := range []struct {
			kind, reason string
			n            uint64
		}{
			{"instance", "budget", st.EvictedInstances}, {"module", "budget", st.EvictedModules},
			{"instance", "idle", st.ExpiredInstances}, {"module", "idle", st.ExpiredModules},
		} {
			ch <- prometheus.MustNewConstMetric(descReleased, prometheus.CounterValue, float64(r.n), r.kind, r.reason)
		}
	}
}

func statusCode(code int) string { return strconv.Itoa(code) }
