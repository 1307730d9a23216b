package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/graph"
)

// graphMax bounds a drawing of the graph read as text: a dot of 1,000
// functions and 1,000 triggers is about 300 KB.
const graphMax = 64 << 20

// Graph reads the system's graph.
func (c *Client) Graph(ctx context.Context) (*graph.Graph, error) {
	var g graph.Graph
	return &g, c.getJSON(ctx, http.MethodGet, "/v1/graph", nil, nil, &g)
}

// GraphText reads the system's graph drawn in a format: "dot" or
// "mermaid".
func (c *Client) GraphText(ctx context.Context, format string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/graph", url.Values{"format": {format}}, nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, graphMax))
}

// Topics lists the users' topics with their message counts and last
// sequences.
func (c *Client) Topics(ctx context.Context) ([]eventlog.TopicInfo, error) {
	var out []eventlog.TopicInfo
	return out, c.getJSON(ctx, http.MethodGet, "/v1/topics", nil, nil, &out)
}
