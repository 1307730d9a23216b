package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/api"
)

// CreateWorkflow creates a workflow from its YAML definition, which the
// daemon validates. changed is false when the definition is the current
// one already: the version returned is then the existing one.
func (c *Client) CreateWorkflow(ctx context.Context, name string, source []byte) (v api.WorkflowView, changed bool, err error) {
	resp, err := c.do(ctx, http.MethodPut, "/v1/workflows/"+url.PathEscape(name), nil, bytes.NewReader(source), "application/yaml")
	if err != nil {
		return v, false, err
	}
	defer resp.Body.Close()
	return v, resp.StatusCode == http.StatusCreated, json.NewDecoder(resp.Body).Decode(&v)
}

// Workflows lists the workflows, without their sources.
func (c *Client) Workflows(ctx context.Context) ([]api.WorkflowView, error) {
	var out []api.WorkflowView
	return out, c.getJSON(ctx, http.MethodGet, "/v1/workflows", nil, nil, &out)
}

// Workflow gets one workflow with its source.
func (c *Client) Workflow(ctx context.Context, name string) (api.WorkflowView, error) {
	var out api.WorkflowView
	return out, c.getJSON(ctx, http.MethodGet, "/v1/workflows/"+url.PathEscape(name), nil, nil, &out)
}

// WorkflowRevisions returns every definition a workflow name has had,
// newest first; with source, each with its YAML.
func (c *Client) WorkflowRevisions(ctx context.Context, name string, source bool) ([]api.WorkflowView, error) {
	var q url.Values
	if source {
		q = url.Values{"source": {"true"}}
	}
	var out []api.WorkflowView
	return out, c.getJSON(ctx, http.MethodGet, "/v1/workflows/"+url.PathEscape(name)+"/revisions", q, nil, &out)
}

// DeleteWorkflow deletes a workflow.
func (c *Client) DeleteWorkflow(ctx context.Context, name string, opts ...DeleteOption) error {
	return c.getJSON(ctx, http.MethodDelete, "/v1/workflows/"+url.PathEscape(name), query(opts), nil, nil)
}

// InvokeOptions are the options of InvokeWorkflow.
type InvokeOptions struct {
	// Wait waits until the invocation has finished. A finished invocation
	// is returned whatever its status: a failed one is not an error.
	Wait bool
	// IdempotencyKey, if set, is the invocation's id: invoking again with
	// it returns the invocation that has it.
	IdempotencyKey string
	// Raw sends the input as a string (text/plain) rather than as JSON,
	// which the daemon refuses if it does not parse.
	Raw bool
}

// InvokeWorkflow starts an invocation of a workflow with the input: a JSON
// value, or with o.Raw any bytes, taken as a string.
func (c *Client) InvokeWorkflow(ctx context.Context, name string, input []byte, o InvokeOptions) (*engine.Invocation, error) {
	var q url.Values
	if o.Wait {
		q = url.Values{"wait": {"true"}}
	}
	var h http.Header
	if o.IdempotencyKey != "" {
		h = http.Header{api.IdempotencyKeyHeader: {o.IdempotencyKey}}
	}
	ct := "application/json"
	if o.Raw {
		ct = "text/plain; charset=utf-8"
	}
	resp, err := c.doHeader(ctx, http.MethodPost, "/v1/workflows/"+url.PathEscape(name)+"/invoke", q, bytes.NewReader(input), ct, h)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var inv engine.Invocation
	if err := json.NewDecoder(resp.Body).Decode(&inv); err != nil {
		return nil, err
	}
	compactInvocation(&inv)
	return &inv, nil
}

// Invocations lists the invocations of a workflow ("" for all), newest
// first, without their tasks, as many as the daemon lists by default.
func (c *Client) Invocations(ctx context.Context, workflow string) ([]*engine.Invocation, error) {
	return c.ListInvocations(ctx, InvocationFilter{Workflow: workflow})
}

// InvocationFilter says which invocations ListInvocations and
// InvocationPage list.
type InvocationFilter struct {
	// Workflow lists only the invocations of this workflow ("" for all).
	Workflow string
	// Statuses lists only those with any of these statuses
	// (engine.ListStatuses; none for all).
	Statuses []string
	// Since and Until list only those created at or after Since and
	// before Until: RFC 3339 times, or durations before now on the
	// daemon's clock ("1h"); "" for no bound.
	Since, Until string
	// Top lists only top-level invocations, not child workflows'.
	Top bool
	// Limit lists at most this many, the newest (0: the daemon's
	// default, 100).
	Limit int
	// Cursor lists the page after the one whose NextCursor it is.
	Cursor string
	// NoCounts asks InvocationPage not to count the invocations per
	// status.
	NoCounts bool
}

func (f InvocationFilter) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("workflow", f.Workflow)
	set("status", strings.Join(f.Statuses, ","))
	set("since", f.Since)
	set("until", f.Until)
	set("cursor", f.Cursor)
	if f.Top {
		q.Set("top", "true")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// ListInvocations lists invocations, newest first, without their tasks
// (GET /v1/invocations: one page, without its next cursor).
func (c *Client) ListInvocations(ctx context.Context, f InvocationFilter) ([]*engine.Invocation, error) {
	var out []*engine.Invocation
	if err := c.getJSON(ctx, http.MethodGet, "/v1/invocations", f.query(), nil, &out); err != nil {
		return nil, err
	}
	for _, inv := range out {
		compactInvocation(inv)
	}
	return out, nil
}

// InvocationPage lists a page of invocations, newest first, without
// their tasks, with the next page's cursor and the counts per status
// (GET /v2/invocations).
func (c *Client) InvocationPage(ctx context.Context, f InvocationFilter) (*api.InvocationPage, error) {
	q := f.query()
	if f.NoCounts {
		q.Set("counts", "false")
	}
	var out api.InvocationPage
	if err := c.getJSON(ctx, http.MethodGet, "/v2/invocations", q, nil, &out); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == "http_404" {
			return nil, fmt.Errorf("the daemon at %s does not list invocations by pages (GET /v2/invocations): it is older than this sluice; upgrade it", c.base)
		}
		return nil, err
	}
	for _, inv := range out.Invocations {
		compactInvocation(inv)
	}
	return &out, nil
}

// Invocation gets an invocation with its tasks.
func (c *Client) Invocation(ctx context.Context, id string) (*engine.Invocation, error) {
	var out engine.Invocation
	if err := c.getJSON(ctx, http.MethodGet, "/v1/invocations/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	compactInvocation(&out)
	return &out, nil
}

// InvocationOutput returns a succeeded invocation's output as its exact
// bytes (what a function given it receives), and the Content-Type the
// daemon gives them: application/json, text/plain or
// application/octet-stream.
func (c *Client) InvocationOutput(ctx context.Context, id string) ([]byte, string, error) {
	return c.invocationValue(ctx, id, "output")
}

// InvocationInput returns an invocation's input as its exact bytes, as
// InvocationOutput does its output.
func (c *Client) InvocationInput(ctx context.Context, id string) ([]byte, string, error) {
	return c.invocationValue(ctx, id, "input")
}

func (c *Client) invocationValue(ctx context.Context, id, which string) ([]byte, string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/invocations/"+url.PathEscape(id)+"/"+which, nil, nil, "")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.Header.Get("Content-Type"), err
}

// Events returns an invocation's events in log order.
func (c *Client) Events(ctx context.Context, id string) ([]*engine.Event, error) {
	var out []*engine.Event
	if err := c.getJSON(ctx, http.MethodGet, "/v1/invocations/"+url.PathEscape(id)+"/events", nil, nil, &out); err != nil {
		return nil, err
	}
	for _, ev := range out {
		compactRaw(&ev.Input)
		compactRaw(&ev.Output)
	}
	return out, nil
}

// CancelInvocation cancels a running invocation and returns it.
func (c *Client) CancelInvocation(ctx context.Context, id string) (*engine.Invocation, error) {
	var out engine.Invocation
	if err := c.getJSON(ctx, http.MethodPost, "/v1/invocations/"+url.PathEscape(id)+"/cancel", nil, nil, &out); err != nil {
		return nil, err
	}
	compactInvocation(&out)
	return &out, nil
}

// SignalOptions are the options of SignalInvocation.
type SignalOptions struct {
	// Raw sends the data as a string (text/plain) rather than as JSON,
	// which the daemon refuses if it does not parse.
	Raw bool
}

// SignalInvocation delivers a signal to a running invocation with its
// data (a JSON value, none being null, or with o.Raw any bytes, taken as
// a string): the first wait of that name takes it.
func (c *Client) SignalInvocation(ctx context.Context, id, name string, data []byte, o SignalOptions) (api.SignalView, error) {
	var out api.SignalView
	ct := "application/json"
	if o.Raw {
		ct = "text/plain; charset=utf-8"
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/invocations/"+url.PathEscape(id)+"/signals/"+url.PathEscape(name), nil, bytes.NewReader(data), ct)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// RedriveInvocation continues a failed or canceled invocation: its
// succeeded tasks keep their outputs, the others run again. It returns the
// invocation, running again.
func (c *Client) RedriveInvocation(ctx context.Context, id string) (*engine.Invocation, error) {
	var out engine.Invocation
	if err := c.getJSON(ctx, http.MethodPost, "/v1/invocations/"+url.PathEscape(id)+"/redrive", nil, nil, &out); err != nil {
		return nil, err
	}
	compactInvocation(&out)
	return &out, nil
}

// compactRaw undoes the indentation the API's JSON gives embedded values,
// so that they print on one line.
func compactRaw(raw *json.RawMessage) {
	if len(*raw) == 0 {
		return
	}
	var b bytes.Buffer
	if json.Compact(&b, *raw) == nil {
		*raw = b.Bytes()
	}
}

func compactInvocation(inv *engine.Invocation) {
	compactRaw(&inv.Input)
	compactRaw(&inv.Output)
	for _, t := range inv.Tasks {
		compactRaw(&t.Input)
		compactRaw(&t.Output)
	}
}
