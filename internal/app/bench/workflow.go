package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/client"
)

// Defaults of Workflow.
const (
	// DefaultTasks is the length of the chain: long enough that the
	// invocation's own cost is a small share of each task's.
	DefaultTasks = 10
	// DefaultInvocations of each workflow, one at a time.
	DefaultInvocations = 200
)

// WorkflowOptions configure Workflow.
type WorkflowOptions struct {
	// Server and Token reach the daemon's API.
	Server, Token string
	// Function is the deployed function each task runs (required): a
	// no-op such as examples/echo-wat measures the engine alone.
	Function string
	// Tasks is the chain's length (DefaultTasks if 0), Invocations how
	// many of each measured (DefaultInvocations if 0).
	Tasks, Invocations int
	// Input is the workflow's input (DefaultInput if nil), passed from
	// task to task.
	Input []byte
	// Progress, if set, is told how far the run is.
	Progress Progress
}

// WorkflowResult is what Workflow measured. Every latency is seen by the
// client, over HTTP.
type WorkflowResult struct {
	// Function the tasks ran.
	Function string
	Tasks    int
	// RoundTrip is GET /healthz: the HTTP round trip alone.
	RoundTrip Summary
	// Direct is POST /v1/functions/FN/invoke; Call is the time in the
	// function that the daemon reports for it (X-Sluice-Duration).
	Direct, Call Summary
	// One and Chain are invocations (with wait) of a workflow of one task
	// and of a chain of Tasks tasks.
	One, Chain Summary
	// PerTaskP50 and PerTaskP99 are the engine's overhead per task, with
	// the invocation's own cost spread over the tasks: the chain's
	// latency, less one direct call over HTTP and Tasks-1 more calls of
	// the function, divided by Tasks.
	PerTaskP50, PerTaskP99 time.Duration
	// Marginal is what one more task in the chain adds beyond its call:
	// (Chain - One) / (Tasks - 1) - Call, from medians.
	Marginal time.Duration
	// Invocation is what a workflow of one task costs beyond a direct
	// call: One - Direct, from medians.
	Invocation time.Duration
	// Samples are the chain's latencies.
	Samples []time.Duration
}

// chainYAML is a workflow of n tasks running fn, each passing its output
// to the next.
func chainYAML(name, fn string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: sluice/v1\nkind: Workflow\nname: %s\noutput: ${ tasks.t%d.output }\ntasks:\n", name, n-1)
	for i := 0; i < n; i++ {
		if i == 0 {
			fmt.Fprintf(&b, "  t0: { run: %s, inputs: \"${ input }\" }\n", fn)
			continue
		}
		fmt.Fprintf(&b, "  t%d: { run: %s, requires: [t%d], inputs: \"${ tasks.t%d.output }\" }\n", i, fn, i-1, i-1)
	}
	return b.String()
}

// Workflow measures the workflow engine's overhead per task on a daemon:
// chains of no-op tasks invoked one at a time, against direct calls of the
// same function, all interleaved. The workflows are deleted afterwards;
// the invocations' events stay in the log.
func Workflow(ctx context.Context, o WorkflowOptions) (res *WorkflowResult, err error) {
	if o.Tasks <= 0 {
		o.Tasks = DefaultTasks
	}
	if o.Invocations <= 0 {
		o.Invocations = DefaultInvocations
	}
	if o.Input == nil {
		o.Input = DefaultInput
	}
	progress := o.Progress.report
	c := client.New(o.Server, o.Token)
	id := strings.ToLower(nuid.Next()[:10])
	res = &WorkflowResult{Function: o.Function, Tasks: o.Tasks}
	cleanup := func(what string, del func(context.Context) error) {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if derr := del(dctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete %s: %w", what, derr))
		}
	}
	if res.Function == "" {
		return nil, errors.New("bench workflow: name the function the tasks run (a no-op like examples/echo-wat measures the engine alone)")
	}
	one, chain := "sluice-bench-one-"+id, fmt.Sprintf("sluice-bench-chain-%d-%s", o.Tasks, id)
	for name, n := range map[string]int{one: 1, chain: o.Tasks} {
		if _, _, err := c.CreateWorkflow(ctx, name, []byte(chainYAML(name, res.Function, n))); err != nil {
			return nil, fmt.Errorf("create workflow %s: %w", name, err)
		}
		defer cleanup("workflow "+name, func(ctx context.Context) error { return c.DeleteWorkflow(ctx, name) })
	}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	base := c.Base()
	do := func(method, path string, body []byte) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		if o.Token != "" {
			req.Header.Set("Authorization", "Bearer "+o.Token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode/100 != 2 {
			err = fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, oneLine(string(b)))
		}
		return resp, b, err
	}
	var rtt, direct, call, lOne, lChain []time.Duration
	ops := []func() error{
		func() error {
			start := time.Now()
			_, _, err := do(http.MethodGet, "/healthz", nil)
			rtt = append(rtt, time.Since(start))
			return err
		},
		func() error {
			start := time.Now()
			resp, _, err := do(http.MethodPost, "/v1/functions/"+url.PathEscape(res.Function)+"/invoke", o.Input)
			direct = append(direct, time.Since(start))
			if err != nil {
				return err
			}
			d, err := time.ParseDuration(resp.Header.Get("X-Sluice-Duration"))
			if err != nil {
				return fmt.Errorf("the daemon does not report X-Sluice-Duration: %w", err)
			}
			call = append(call, d)
			return nil
		},
		invoker(ctx, c, one, o.Input, &lOne),
		invoker(ctx, c, chain, o.Input, &lChain),
	}
	// Warm-up, then measure in interleaved rounds.
	warm := max(5, o.Invocations/10)
	for i := 0; i < warm; i++ {
		for _, op := range ops {
			if err := op(); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
		progress(0, "warm-up")
	}
	rtt, direct, call, lOne, lChain = nil, nil, nil, nil, nil
	for i := 0; i < o.Invocations; i++ {
		for k := range ops {
			if err := ops[(i+k)%len(ops)](); err != nil {
				return nil, err
			}
		}
		if i%4 == 0 {
			progress(float64(i)/float64(o.Invocations), "invocations")
		}
	}
	res.RoundTrip, res.Direct, res.Call = Summarize(rtt), Summarize(direct), Summarize(call)
	res.One, res.Chain, res.Samples = Summarize(lOne), Summarize(lChain), lChain
	n := time.Duration(o.Tasks)
	res.PerTaskP50 = (res.Chain.P50 - res.Direct.P50 - (n-1)*res.Call.P50) / n
	res.PerTaskP99 = (res.Chain.P99 - res.Direct.P50 - (n-1)*res.Call.P50) / n
	if o.Tasks > 1 {
		res.Marginal = (res.Chain.P50-res.One.P50)/(n-1) - res.Call.P50
	}
	res.Invocation = res.One.P50 - res.Direct.P50
	return res, nil
}

// invoker invokes a workflow and waits for it, appending the latency.
func invoker(ctx context.Context, c *client.Client, name string, in []byte, lat *[]time.Duration) func() error {
	return func() error {
		start := time.Now()
		inv, err := c.InvokeWorkflow(ctx, name, in, client.InvokeOptions{Wait: true, Raw: true})
		*lat = append(*lat, time.Since(start))
		if err != nil {
			return fmt.Errorf("invoke workflow %s: %w", name, err)
		}
		if inv.Status != engine.StatusSucceeded {
			return fmt.Errorf("invocation %s of %s %s: %s", inv.ID, name, inv.Status, inv.Error)
		}
		return nil
	}
}
