package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/redrive"
)

// DeadLetters returns a page of the dead letters on an error topic,
// oldest first: up to limit (0: the daemon's default) after the sequence
// after (0: from the first; a page's Next for the following page).
func (c *Client) DeadLetters(ctx context.Context, topic string, after uint64, limit int) (api.DeadLetterPage, error) {
	var out api.DeadLetterPage
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	err := c.getJSON(ctx, http.MethodGet, "/v1/topics/"+url.PathEscape(topic)+"/dead-letters", q, nil, &out)
	return out, err
}

// Redrive publishes dead letters of an error topic back to their source
// topic (or req.To). A letter redriven already is skipped (unless
// req.Force); if every letter asked for by sequence was, the error is a
// 409 conflict saying when and by whom.
func (c *Client) Redrive(ctx context.Context, topic string, req api.RedriveRequest) (redrive.Result, error) {
	var out redrive.Result
	err := c.getJSON(ctx, http.MethodPost, "/v1/topics/"+url.PathEscape(topic)+"/redrive", nil, req, &out)
	return out, err
}
