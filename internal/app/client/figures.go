package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/sluicehq/sluice/internal/app/metrics"
)

// Figures reads the daemon's live figures over the last window (0: the
// daemon's default, metrics.DefaultWindow).
func (c *Client) Figures(ctx context.Context, window time.Duration) (*metrics.Snapshot, error) {
	q := url.Values{}
	if window > 0 {
		q.Set("window", window.String())
	}
	var s metrics.Snapshot
	return &s, c.getJSON(ctx, http.MethodGet, "/v1/figures", q, nil, &s)
}
