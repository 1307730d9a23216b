package daemon

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/testutil"
)

// scrape reads /metrics and returns the value of each sample line.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	d, c := start(t, testOptions(t))
	deploy(t, c, "echo", "echo-wat", nil)
	deploy(t, c, "go", "goguest", nil)
	for i := 0; i < 3; i++ {
		invoke(t, c, "echo", "hi")
	}
	if _, err := c.Invoke(ctx, "go", []byte("error")); err == nil {
		t.Fatal("the failing call succeeded")
	}
	if _, _, err := c.CreateWorkflow(ctx, "pair", []byte("apiVersion: sluice/v1\nkind: Workflow\nname: pair\ntasks:\n  a: { run: echo, inputs: x }\n  b: { run: echo, requires: [a], inputs: y }\n")); err != nil {
		t.Fatal(err)
	}
	if inv, err := c.InvokeWorkflow(ctx, "pair", nil, client.InvokeOptions{Wait: true}); err != nil || inv.Status != "succeeded" {
		t.Fatalf("%v %+v", err, inv)
	}
	a := newApp(t, d.NATSURL())
	out := a.collect("m.out")
	if _, err := c.CreateTrigger(ctx, api.TriggerRequest{Name: "q", Function: "echo", Queue: &api.QueueRequest{Topic: "m.in", RespTopic: "m.out"}}); err != nil {
		t.Fatal(err)
	}
	a.publish("m.in", payloads("p", 10)...)
	testutil.Eventually(t, 20*time.Second, "10 results", func() bool { return len(out.distinct()) == 10 })

	// At least once: a message may be delivered again (under load the
	// connection can be re-made, which redelivers what was in flight), and
	// every delivery is counted and calls the function.
	var m map[string]float64
	var delivered float64
	testutil.Eventually(t, 10*time.Second, "the counters to settle", func() bool {
		m = scrape(t, d.Addr())
		delivered = m[`sluice_trigger_deliveries_total{trigger="q"}`]
		return delivered-m[`sluice_trigger_redeliveries_total{trigger="q"}`] == 10 &&
			m[`sluice_trigger_succeeded_total{trigger="q"}`] == delivered &&
			m[`sluice_event_append_seconds_count{outcome="stored"}`] >= 8
	})
	if delivered > 10 {
		t.Logf("%v deliveries of 10 messages (at least once)", delivered)
	}
	want := map[string]func(float64) bool{
		`sluice_function_invocations_total{function="echo"}`:                    func(v float64) bool { return v == 3+2+delivered },
		`sluice_function_invocations_total{function="go"}`:                      func(v float64) bool { return v == 1 },
		`sluice_function_errors_total{function="go",kind="function_error"}`:     func(v float64) bool { return v == 1 },
		`sluice_function_cold_starts_total{function="echo"}`:                    func(v float64) bool { return v >= 1 },
		`sluice_function_duration_seconds_count{function="echo"}`:               func(v float64) bool { return v == 3+2+delivered },
		`sluice_function_instances_idle{function="echo"}`:                       func(v float64) bool { return v >= 1 },
		`sluice_function_calls_active{function="echo"}`:                         func(v float64) bool { return v == 0 },
		`sluice_workflow_invocations_total{status="succeeded",workflow="pair"}`: func(v float64) bool { return v == 1 },
		`sluice_workflow_tasks_total{status="succeeded",workflow="pair"}`:       func(v float64) bool { return v == 2 },
		`sluice_workflow_step_seconds_count`:                                    func(v float64) bool { return v >= 3 },
		`sluice_trigger_succeeded_total{trigger="q"}`:                           func(v float64) bool { return v == delivered },
		`sluice_trigger_dead_letters_total{trigger="q"}`:                        func(v float64) bool { return v == 0 },
		`sluice_trigger_lag_seconds_count{trigger="q"}`:                         func(v float64) bool { return v == delivered },
		`sluice_http_requests_total{code="200",method="POST"}`:                  func(v float64) bool { return v >= 4 },
	}
	for name, ok := range want {
		if v, found := m[name]; !found || !ok(v) {
			t.Errorf("%s = %v (present %v)", name, v, found)
		}
	}
	for name := range m {
		if !regexp.MustCompile(`^sluice_`).MatchString(name) {
			t.Errorf("metric %s does not start with sluice_", name)
		}
	}
}

// TestLogsDroppedAreCounted: function logs are best effort; records the
// broker cannot take while it is away are dropped, and counted in
// sluice_function_log_records_dropped_total rather than lost unseen.
func TestLogsDroppedAreCounted(t *testing.T) {
	t.Parallel()
	natsURL, stop := startBroker(t, t.TempDir(), "127.0.0.1:0")
	o := testOptions(t)
	o.NATSURL = natsURL
	d, c := start(t, o)
	deploy(t, c, "go", "goguest", nil)
	invoke(t, c, "go", "log")
	const name = "sluice_function_log_records_dropped_total"
	if got := scrape(t, d.Addr())[name]; got != 0 {
		t.Fatalf("%s = %v with the broker up", name, got)
	}
	stop()
	testutil.Eventually(t, 30*time.Second, "the daemon to see the broker gone", func() bool { return !d.events.Connected() })
	for range 3 {
		if out, err := c.Invoke(ctx, "go", []byte("log")); err != nil || string(out) != "logged" {
			t.Fatalf("a call with the broker away: %q %v", out, err)
		}
	}
	testutil.Eventually(t, 30*time.Second, "the dropped records to be counted", func() bool {
		return scrape(t, d.Addr())[name] >= 6 // two records a call
	})
}
