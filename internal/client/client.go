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
	"strings"
	"time"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/api"
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
}

func (e *Error) Error() string { return e.Message }

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
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		return &Error{Status: resp.StatusCode, Code: body.Code, Message: body.Error}
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

// Functions lists the functions.
func (c *Client) Functions(ctx context.Context) ([]api.FunctionView, error) {
	var out []api.FunctionView
	return out, c.getJSON(ctx, http.MethodGet, "/v1/functions", nil, nil, &out)
}

// Function gets one function.
func (c *Client) Function(ctx context.Context, name string) (api.FunctionView, error) {
	var out api.FunctionView
	return out, c.getJSON(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name), nil, nil, &out)
}

// DeleteFunction deletes a function.
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	return c.getJSON(ctx, http.MethodDelete, "/v1/functions/"+url.PathEscape(name), nil, nil, nil)
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
	q := url.Values{"since": {since.String()}}
	if follow {
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
	resp, err := c.do(ctx, http.MethodPost, "/v1/topics/"+url.PathEscape(topic)+"/publish", nil, bytes.NewReader(data), "application/octet-stream")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Tail streams a topic's messages to fn: new ones, or every stored one
// with fromStart; it ends after count messages (0: no limit) or timeout
// (0: none), or when ctx ends.
func (c *Client) Tail(ctx context.Context, topic string, fromStart bool, count int, timeout time.Duration, fn func(api.TopicMessage) error) error {
	q := url.Values{}
	if fromStart {
		q.Set("from_start", "true")
	}
	if count > 0 {
		q.Set("count", fmt.Sprint(count))
	}
	if timeout > 0 {
		q.Set("timeout", timeout.String())
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/topics/"+url.PathEscape(topic)+"/tail", q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m api.TopicMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
