// Package client is the Go client of the daemon's HTTP API, used by the
// CLI and the tests.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
)

// Client talks to one daemon.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client for the daemon at server (e.g.
// http://127.0.0.1:8080), authenticating with token if it is not empty.
func New(server, token string) *Client {
	server = strings.TrimRight(server, "/")
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &Client{base: server, token: token, hc: &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
	}}}
}

// Error is an error the daemon answered with.
type Error struct {
	Status  int
	Code    string
	Message string
	// Dependents are what keeps a delete from happening (409 conflict):
	// the workflows and triggers that use what was to be deleted.
	Dependents []Dependent
	// FunctionCode is the code a function gave its own failure
	// (sluice.error_code), when Code is function_error or exit.
	FunctionCode string
}

func (e *Error) Error() string { return e.Message }

// Dependent is a workflow or trigger that uses a function or workflow.
type Dependent struct {
	Kind string `json:"kind"` // "workflow" or "trigger"
	Name string `json:"name"`
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	return c.doHeader(ctx, method, path, q, body, contentType, nil)
}

// doHeader is do with extra request headers.
func (c *Client) doHeader(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string, header http.Header) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("cannot reach the sluice daemon at %s (is `sluice daemon` running? set --server or SLUICE_SERVER): %v", c.base, op.Err)
		}
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body struct {
		Error        string      `json:"error"`
		Code         string      `json:"code"`
		Dependents   []Dependent `json:"dependents"`
		FunctionCode string      `json:"function_code"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		return &Error{Status: resp.StatusCode, Code: body.Code, Message: body.Error, Dependents: body.Dependents, FunctionCode: body.FunctionCode}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = resp.Status
	}
	return &Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: msg}
}

func (c *Client) getJSON(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, method, path, q, body, ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Deploy deploys a module under name with the configuration in q (see
// api.ParseConfig).
func (c *Client) Deploy(ctx context.Context, name string, wasm []byte, q url.Values) (api.FunctionView, error) {
	var v api.FunctionView
	resp, err := c.do(ctx, http.MethodPut, "/v1/functions/"+url.PathEscape(name), q, bytes.NewReader(wasm), "application/wasm")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// A ReadOption changes what a read shows.
type ReadOption func(url.Values)

// RevealEnv shows functions' environment values, which the daemon masks
// unless asked.
func RevealEnv(reveal bool) ReadOption {
	return func(q url.Values) {
		if reveal {
			q.Set("reveal", "env")
		}
	}
}

// A DeleteOption changes how a delete is done.
type DeleteOption func(url.Values)

// Force deletes even what workflows or triggers use; without it the
// daemon refuses with a 409 *Error that names them (Error.Dependents).
func Force(force bool) DeleteOption {
	return func(q url.Values) {
		if force {
			q.Set("force", "true")
		}
	}
}

func query[O ~func(url.Values)](opts []O) url.Values {
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	return q
}

// Functions lists the functions.
func (c *Client) Functions(ctx context.Context, opts ...ReadOption) ([]api.FunctionView, error) {
	var out []api.FunctionView
	return out, c.getJSON(ctx, http.MethodGet, "/v1/functions", query(opts), nil, &out)
}

// Function gets one function.
func (c *Client) Function(ctx context.Context, name string, opts ...ReadOption) (api.FunctionView, error) {
	var out api.FunctionView
	return out, c.getJSON(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name), query(opts), nil, &out)
}

// FunctionVersions returns the versions of a function the daemon keeps,
// newest first.
func (c *Client) FunctionVersions(ctx context.Context, name string, opts ...ReadOption) ([]api.FunctionView, error) {
	var out []api.FunctionView
	return out, c.getJSON(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name)+"/versions", query(opts), nil, &out)
}

// UpdateFunction changes a function's configuration without its module:
// a new version with the same module. q holds the changes, as deploy's
// query does (see api.ParseConfig), plus unset-env=KEY to remove a
// variable; env=K=V sets one and keeps the others. changed is false when
// the function already had that configuration: the daemon then made no
// new version.
func (c *Client) UpdateFunction(ctx context.Context, name string, q url.Values) (v api.FunctionView, changed bool, err error) {
	resp, err := c.do(ctx, http.MethodPatch, "/v1/functions/"+url.PathEscape(name), q, nil, "")
	if err != nil {
		return v, false, err
	}
	defer resp.Body.Close()
	return v, resp.StatusCode == http.StatusCreated, json.NewDecoder(resp.Body).Decode(&v)
}

// DeleteFunction deletes a function.
func (c *Client) DeleteFunction(ctx context.Context, name string, opts ...DeleteOption) error {
	return c.getJSON(ctx, http.MethodDelete, "/v1/functions/"+url.PathEscape(name), query(opts), nil, nil)
}

// Invoke calls a function and returns its output.
func (c *Client) Invoke(ctx context.Context, name string, in []byte) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/functions/"+url.PathEscape(name)+"/invoke", nil, bytes.NewReader(in), "application/octet-stream")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Logs reads a function's logs since a duration ago; with follow it goes
// on until ctx ends.
func (c *Client) Logs(ctx context.Context, name string, since time.Duration, follow bool, fn func(host.Record)) error {
	return c.ReadLogs(ctx, name, LogsOptions{Since: since, Follow: follow}, fn)
}

// LogsOptions say which of a function's log records ReadLogs reads.
type LogsOptions struct {
	// Since is how far back to look (0: the daemon's default, an hour).
	Since time.Duration
	// Tail is how many of the most recent records to read (0: the
	// daemon's default, 100).
	Tail int
	// Follow goes on with new records until the context ends.
	Follow bool
}

// ReadLogs reads a function's log records, oldest first.
func (c *Client) ReadLogs(ctx context.Context, name string, o LogsOptions, fn func(host.Record)) error {
	q := url.Values{}
	if o.Since > 0 {
		q.Set("since", o.Since.String())
	}
	if o.Tail > 0 {
		q.Set("tail", strconv.Itoa(o.Tail))
	}
	if o.Follow {
		q.Set("follow", "true")
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name)+"/logs", q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			host.Record
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("read logs: %w", err)
		}
		if line.Error != "" {
			return errors.New(line.Error)
		}
		fn(line.Record)
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// CreateTrigger creates a trigger.
func (c *Client) CreateTrigger(ctx context.Context, req api.TriggerRequest) (catalog.Trigger, error) {
	var t catalog.Trigger
	return t, c.getJSON(ctx, http.MethodPost, "/v1/triggers", nil, req, &t)
}

// Trigger gets one trigger, with this daemon's counters.
func (c *Client) Trigger(ctx context.Context, name string) (api.TriggerView, error) {
	var t api.TriggerView
	return t, c.getJSON(ctx, http.MethodGet, "/v1/triggers/"+url.PathEscape(name), nil, nil, &t)
}

// Triggers lists the triggers.
func (c *Client) Triggers(ctx context.Context) ([]catalog.Trigger, error) {
	var out []catalog.Trigger
	return out, c.getJSON(ctx, http.MethodGet, "/v1/triggers", nil, nil, &out)
}

// DeleteTrigger deletes a trigger.
func (c *Client) DeleteTrigger(ctx context.Context, name string) error {
	return c.getJSON(ctx, http.MethodDelete, "/v1/triggers/"+url.PathEscape(name), nil, nil, nil)
}

// Base is the daemon's base URL.
func (c *Client) Base() string { return c.base }

// Publish publishes a message to a topic through the daemon.
func (c *Client) Publish(ctx context.Context, topic string, data []byte) error {
	_, err := c.PublishSeq(ctx, topic, data)
	return err
}

// PublishSeq publishes a message to a topic through the daemon and returns
// the sequence NATS Streaming stored it at (0 if the daemon does not say).
func (c *Client) PublishSeq(ctx context.Context, topic string, data []byte) (uint64, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/topics/"+url.PathEscape(topic)+"/publish", nil, bytes.NewReader(data), "application/octet-stream")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Sequence uint64 `json:"sequence"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return 0, fmt.Errorf("publish to %s: the daemon's answer: %w", topic, err)
	}
	return out.Sequence, nil
}

// TailOptions say which of a topic's messages Tail reads.
type TailOptions struct {
	// FromStart starts with the oldest stored message.
	FromStart bool
	// Last starts with the last N stored messages (0: new ones only).
	Last int
	// Count ends after this many messages (0: no limit).
	Count int
	// Timeout ends after this long (0: never).
	Timeout time.Duration
}

// Tail streams a topic's messages to fn, as o says, until ctx ends.
func (c *Client) Tail(ctx context.Context, topic string, o TailOptions, fn func(api.TopicMessage) error) error {
	q := url.Values{}
	if o.FromStart {
		q.Set("from_start", "true")
	}
	if o.Last > 0 {
		q.Set("tail", strconv.Itoa(o.Last))
	}
	if o.Count > 0 {
		q.Set("count", strconv.Itoa(o.Count))
	}
	if o.Timeout > 0 {
		q.Set("timeout", o.Timeout.String())
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/topics/"+url.PathEscape(topic)+"/tail", q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var line struct {
			api.TopicMessage
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		if line.Error != "" {
			return errors.New(line.Error)
		}
		if err := fn(line.TopicMessage); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
