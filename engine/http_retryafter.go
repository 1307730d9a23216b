package engine

// Retry-After: a 429 Too Many Requests or 503 Service Unavailable is a
// failed attempt (code unavailable), as every 408, 429 and 5xx is; when
// it says how long to wait (Retry-After: seconds or an HTTP-date) and the
// task has retry:, the next attempt waits that long instead of the
// backoff, capped by retry.max_backoff (maxRetryAfter without one), and
// without jitter (the server named the time). The owner computes the
// wait when it records the failure and TaskRetrying records the wake
// time, as for any retry: replay reads it and never parses a header.

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter caps the wait a Retry-After asks for when the task's
// retry: has no max_backoff: the longest any backoff waits (maxBackoff).
// A server asking for an hour is asked again after ten minutes: the task
// holds no goroutine meanwhile, and the attempt costs one request.
const maxRetryAfter = maxBackoff

// statusError is the failed attempt of a response whose status says to
// come back later, with its Retry-After for a 429 or a 503.
func statusError(req HTTPRequest, resp HTTPResponse) *httpStatusError {
	e := &httpStatusError{}
	after := ""
	if resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable {
		e.retryAfter = strings.TrimSpace(resp.Header.Get("Retry-After"))
		if e.retryAfter != "" {
			after = fmt.Sprintf(" (Retry-After: %s)", clip(e.retryAfter))
		}
	}
	e.msg = fmt.Sprintf("%s %s answered %d %s%s%s", req.Method, redact(req.URL), resp.Status,
		http.StatusText(resp.Status), after, bodyHint(resp.Body))
	return e
}

// serverWait is the wait before the next attempt that a failed attempt's
// response asked for, capped by the retry policy; -1 if it asked for
// none (or for something that does not parse): the backoff applies.
func serverWait(err error, r retryPolicy, now time.Time) time.Duration {
	var se *httpStatusError
	if !errors.As(err, &se) || se.retryAfter == "" {
		return -1
	}
	d, ok := parseRetryAfter(se.retryAfter, now)
	if !ok {
		return -1
	}
	limit := maxRetryAfter
	if r.maxBackoff > 0 {
		limit = r.maxBackoff
	}
	return min(d, limit)
}

// parseRetryAfter reads Retry-After (RFC 9110 10.2.3): a number of
// seconds, or an HTTP-date (a date past is no wait).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v != "" && strings.Trim(v, "0123456789") == "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxBackoff/time.Second) {
			return maxBackoff, true // more than any cap: the cap
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
