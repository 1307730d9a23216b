package daemon

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/egress"
)

// newEgress makes the outbound HTTP client of the engine's http built-in:
// off (every request refused, naming --allow-http) unless the options
// list hosts. self are the daemon's own listening addresses, which a
// name on the list does not reach.
func newEgress(o Options, maxValue int, self ...string) (*egress.Client, error) {
	list, err := egress.ParseAllowList(o.AllowHTTP)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if err := egress.CheckSecrets(o.HTTPSecrets); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	return egress.New(egress.Config{Allow: list, MaxRequestBody: maxValue, Logger: o.Logger.With("component", "egress"),
		Self: self, Secrets: o.HTTPSecrets}), nil
}

// wfHTTP lets the engine send http tasks' requests through the outbound
// client.
type wfHTTP struct{ c *egress.Client }

func (h wfHTTP) Do(ctx context.Context, r engine.HTTPRequest) (engine.HTTPResponse, error) {
	resp, err := h.c.Do(ctx, egress.Request{Method: r.Method, URL: r.URL, Header: r.Header, Body: r.Body, Secrets: r.Secrets})
	if err != nil {
		return engine.HTTPResponse{}, err
	}
	return engine.HTTPResponse{Status: resp.Status, Header: resp.Header, Body: resp.Body}, nil
}

// pluginHTTP sends an Extism plugin's http_request through the same
// outbound client, and so the same allow-list (--allow-http), as the
// workflows' http built-in. The client is made after the host; no plugin
// runs before.
func (d *Daemon) pluginHTTP(ctx context.Context, r host.HTTPRequest) (host.HTTPResponse, error) {
	if d.egress == nil {
		return host.HTTPResponse{}, fmt.Errorf("outbound HTTP is not ready: the daemon is starting")
	}
	resp, err := d.egress.Do(ctx, egress.Request{Method: r.Method, URL: r.URL, Header: r.Header, Body: r.Body})
	if err != nil {
		return host.HTTPResponse{}, err
	}
	return host.HTTPResponse{Status: resp.Status, Header: resp.Header, Body: resp.Body}, nil
}
