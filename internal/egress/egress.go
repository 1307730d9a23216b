// Package egress is the daemon's outbound HTTP client: the one way a
// workflow reaches the network (the engine's http built-in). Guests have
// no network by design, so every request goes through here, and only to
// the hosts the operator listed (`sluice daemon --allow-http`), within
// limits: no proxy from the environment, redirects only to listed hosts
// (at most MaxRedirects), a bounded time, bounded response headers and
// body. The dialer checks the addresses a name resolves to (dial.go): an
// internal one is reached only if the list names it. Headers may take
// daemon-side secrets by name (secret.go). See docs/RATIONALE.md,
// "Calling out: an allow-list".
package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/units"
)

// Limits of a request.
const (
	// DefaultTimeout bounds a request, from its first byte sent to the
	// last of the response read, when Config.Timeout is 0: a function
	// call's default timeout, so a task that calls out waits no longer
	// than one that computes. A task's own timeout: shortens it.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxResponseBody bounds the body read of a response when
	// Config.MaxResponseBody is 0: a function's default max output (6
	// MiB), what a workflow task's output is sized for.
	DefaultMaxResponseBody = 6 << 20
	// DefaultMaxRequestBody bounds a request's body when
	// Config.MaxRequestBody is 0: the largest workflow value by default
	// (the daemon passes its --max-value).
	DefaultMaxRequestBody = 64 << 20
	// MaxResponseHeaderBytes bounds a response's status line and
	// headers (net/http's own default is 1 MiB): what a function's
	// response headers may be (abi.MaxResponseHeaderBytes), far past
	// any real API's.
	MaxResponseHeaderBytes = abi.MaxResponseHeaderBytes
	// MaxRequestHeaderBytes bounds the names and values of a request's
	// headers, for the same reason.
	MaxRequestHeaderBytes = abi.MaxResponseHeaderBytes
	// MaxRedirects is how many redirects a request follows (each to an
	// allowed host): browsers follow about 20, APIs redirect once or
	// twice; more is a loop.
	MaxRedirects = 5
	// dialTimeout and tlsTimeout bound connecting, inside the request's
	// time: a host that does not answer fails the attempt early enough
	// for a retry to fit in a task's timeout.
	dialTimeout = 10 * time.Second
	tlsTimeout  = 10 * time.Second
	// idleConns is how many idle connections are kept per host:
	// workflows calling one API in a foreach reuse them.
	idleConns = 16
)

// Config configures a Client.
type Config struct {
	// Allow is where requests may go; nil or empty turns outbound HTTP
	// off (every request fails with ErrOff).
	Allow *AllowList
	// Timeout bounds each request (0: DefaultTimeout); a context with an
	// earlier deadline shortens it.
	Timeout time.Duration
	// MaxRequestBody and MaxResponseBody bound the bodies (0: the
	// defaults).
	MaxRequestBody, MaxResponseBody int
	// TLS, if set, is the TLS configuration of https requests (a private
	// CA's pool); nil uses the system's roots.
	TLS *tls.Config
	// Logger logs each request at debug.
	Logger *slog.Logger
	// Resolver resolves the names the list allows, once per connection
	// (nil: net.DefaultResolver).
	Resolver Resolver
	// Self lists the daemon's own listening addresses, "HOST:PORT" (its
	// API, its embedded NATS server): not dialed unless the list names
	// the address itself, as internal addresses. An unspecified host
	// (":8080") is every address of the machine's interfaces.
	Self []string
	// Secrets are the values a request's header may take by name
	// (Request.Secrets), so that they never pass through a workflow:
	// sluice daemon --http-secret NAME=@FILE.
	Secrets []Secret
}

// Request is one request to send.
type Request struct {
	// Method is an HTTP method ("" is GET).
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// Secrets names, for a header, the secret (Config.Secrets) whose
	// value it takes: resolved here, when the request is sent, so that
	// the value is in no event, log or message. A secret not configured
	// fails the request with ErrNoSecret.
	Secrets map[string]string
}

// Response is a response, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Stats count the requests of a Client.
type Stats struct {
	// Answered counts the requests that got a response (any status);
	// Refused those the allow-list or the checks refused before anything
	// was sent; Failed those sent that got no response within the limits
	// (or were canceled).
	Answered, Refused, Failed uint64
}

// Client sends requests within a Config. It is safe for concurrent use.
type Client struct {
	cfg                       Config
	hc                        *http.Client
	log                       *slog.Logger
	dialer                    *net.Dialer
	resolver                  Resolver
	self                      map[netip.AddrPort]bool
	secrets                   map[string]Secret
	answered, refused, failed atomic.Uint64
}

// New returns a client.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRequestBody <= 0 {
		cfg.MaxRequestBody = DefaultMaxRequestBody
	}
	if cfg.MaxResponseBody <= 0 {
		cfg.MaxResponseBody = DefaultMaxResponseBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: cfg.Logger, dialer: &net.Dialer{Timeout: dialTimeout}, resolver: cfg.Resolver,
		self: selfAddrs(cfg.Self), secrets: map[string]Secret{}}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	for _, s := range cfg.Secrets {
		c.secrets[s.Name] = s
	}
	tr := &http.Transport{
		Proxy:                  nil, // never HTTP_PROXY and the like: the list names where requests go
		DialContext:            c.dial,
		TLSClientConfig:        cfg.TLS,
		TLSHandshakeTimeout:    tlsTimeout,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		MaxIdleConnsPerHost:    idleConns,
		IdleConnTimeout:        90 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c
}

// Close closes the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Stats returns the counts of requests so far.
func (c *Client) Stats() Stats {
	return Stats{Answered: c.answered.Load(), Refused: c.refused.Load(), Failed: c.failed.Load()}
}

// Allowed lists the allow-list's entries, as given.
func (c *Client) Allowed() string { return c.cfg.Allow.String() }

// checkRedirect follows a redirect only to an allowed host, at most
// MaxRedirects times.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return &Error{Kind: ErrBadResponse, Msg: fmt.Sprintf("%s %s: more than %d redirects (the last to %s)",
			via[0].Method, show(via[0].URL), MaxRedirects, show(req.URL))}
	}
	_, t, err := checkURL(req.URL.String())
	if err != nil {
		return &Error{Kind: ErrBadRequest, Msg: fmt.Sprintf("%s %s was redirected: %v", via[0].Method, show(via[0].URL), err)}
	}
	if !c.cfg.Allow.allows(req.URL.Scheme, t) {
		return &Error{Kind: ErrNotAllowed, Msg: fmt.Sprintf("%s %s was redirected to %s, whose host %s is not in the daemon's allow-list (sluice daemon --allow-http %s)",
			via[0].Method, show(via[0].URL), show(req.URL), t, c.Allowed())}
	}
	return nil
}

// Do sends a request and reads its response whole. Any status is a
// response; the errors are *Error.
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	start := time.Now()
	req, err := c.request(ctx, r)
	if err != nil {
		c.refused.Add(1)
		c.log.DebugContext(ctx, "outbound HTTP request refused", "method", r.Method, "url", clip(r.URL), "err", err)
		return nil, err
	}
	method, where := req.Method, show(req.URL)
	ctx, cancel := context.WithTimeout(req.Context(), c.cfg.Timeout)
	defer cancel()
	resp, err := c.hc.Do(req.WithContext(ctx))
	var out *Response
	if err == nil {
		out, err = c.read(resp, method, where)
	}
	if err != nil {
		err = c.failure(req.Context(), ctx, err, method, where)
		if errors.Is(err, ErrNotAllowed) {
			c.refused.Add(1) // by the dialer: nothing was sent
			c.log.DebugContext(ctx, "outbound HTTP request refused", "method", method, "url", where, "err", err)
			return nil, err
		}
		c.failed.Add(1)
		c.log.DebugContext(ctx, "outbound HTTP request failed", "method", method, "url", where, "duration", time.Since(start), "err", err)
		return nil, err
	}
	c.answered.Add(1)
	c.log.DebugContext(ctx, "outbound HTTP request", "method", method, "url", where, "status", out.Status,
		"bytes", len(out.Body), "duration", time.Since(start))
	return out, nil
}

// request checks a request and makes it.
func (c *Client) request(ctx context.Context, r Request) (*http.Request, error) {
	if c.cfg.Allow.Empty() {
		return nil, &Error{Kind: ErrOff, Msg: "outbound HTTP is off on this daemon: start it with --allow-http HOST[:PORT],... (or SLUICE_ALLOW_HTTP) naming the hosts workflows may call"}
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	if err := checkMethod(method); err != nil {
		return nil, &Error{Kind: ErrBadRequest, Msg: err.Error()}
	}
	u, t, err := checkURL(r.URL)
	if err != nil {
		return nil, &Error{Kind: ErrBadRequest, Msg: fmt.Sprintf("%s: %v", method, err)}
	}
	if !c.cfg.Allow.allows(u.Scheme, t) {
		hint := ""
		if !t.defaultPort {
			hint = " (an entry without a port allows 80 for http and 443 for https only)"
		}
		return nil, &Error{Kind: ErrNotAllowed, Msg: fmt.Sprintf("%s %s: host %s is not in the daemon's allow-list (sluice daemon --allow-http %s)%s",
			method, show(u), t, c.Allowed(), hint)}
	}
	if len(r.Body) > c.cfg.MaxRequestBody {
		return nil, &Error{Kind: ErrRequestTooLarge, Msg: fmt.Sprintf("%s %s: the body of %d bytes is over the %s a request may send",
			method, show(u), len(r.Body), units.Bytes(uint64(c.cfg.MaxRequestBody)))}
	}
	if err := checkHeader(r.Header); err != nil {
		return nil, &Error{Kind: ErrBadRequest, Msg: fmt.Sprintf("%s %s: %v", method, show(u), err)}
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, &Error{Kind: ErrBadRequest, Msg: fmt.Sprintf("%s %s: %v", method, show(u), err)}
	}
	req.Header = r.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if err := c.withSecrets(req.Header, r.Secrets); err != nil {
		return nil, withRequest(err, method, show(u))
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "sluice")
	}
	return req, nil
}

// read reads a response's body within the limit.
func (c *Client) read(resp *http.Response, method, where string) (*Response, error) {
	defer resp.Body.Close()
	max := c.cfg.MaxResponseBody
	tooLarge := func(n string) error {
		return &Error{Kind: ErrResponseTooLarge, Msg: fmt.Sprintf("%s %s: the response's body is %s, over the %s a request reads",
			method, where, n, units.Bytes(uint64(max)))}
	}
	if resp.ContentLength > int64(max) {
		return nil, tooLarge(fmt.Sprintf("%d bytes", resp.ContentLength))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(body) > max {
		return nil, tooLarge("more than that")
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// failure turns what the transport returned into an *Error (or the
// caller's own cancelation, as it is).
func (c *Client) failure(caller, ctx context.Context, err error, method, where string) error {
	var e *Error
	if errors.As(err, &e) {
		return e // a redirect or a connection refused by the list
	}
	if caller.Err() != nil {
		return caller.Err() // canceled, or the caller's own deadline: the caller says why
	}
	if ctx.Err() != nil {
		return &Error{Kind: ErrTimeout, Msg: fmt.Sprintf("%s %s: no whole response within %s (the limit of a request; a task's timeout: shortens it)",
			method, where, c.cfg.Timeout)}
	}
	msg := unwrapURLError(err).Error()
	if strings.Contains(msg, "response headers exceeded") {
		return &Error{Kind: ErrBadResponse, Msg: fmt.Sprintf("%s %s: the response's headers are over %d KiB, the most a request reads",
			method, where, MaxResponseHeaderBytes>>10)}
	}
	if strings.Contains(msg, "malformed HTTP") {
		return &Error{Kind: ErrBadResponse, Msg: fmt.Sprintf("%s %s: the server's answer is not HTTP: %s", method, where, msg)}
	}
	return &Error{Kind: ErrUnavailable, Msg: fmt.Sprintf("%s %s: the server could not be reached: %s", method, where, msg)}
}

// checkMethod refuses a method that is not an HTTP token.
func checkMethod(m string) error {
	if len(m) > 32 {
		return fmt.Errorf("method %q: at most 32 characters", clip(m))
	}
	if err := abi.CheckHeader(m, ""); err != nil {
		return fmt.Errorf("method %q is not an HTTP method (letters, digits and !#$%%&'*+-.^_`|~ only)", clip(m))
	}
	return nil
}

// setByClient are the headers the client sets itself: the framing, the
// connection's, and Host, which is the URL's (a request goes to the host
// the list allowed, under that name).
var setByClient = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Keep-Alive": true,
	"Upgrade": true, "Te": true, "Trailer": true, "Proxy-Connection": true, "Proxy-Authorization": true,
}

// checkHeader checks a request's headers: valid names and values, none
// the client sets, within MaxRequestHeaderBytes.
func checkHeader(h http.Header) error {
	size := 0
	for name, values := range h {
		for _, v := range values {
			if err := abi.CheckHeader(name, v); err != nil {
				return err
			}
			size += len(name) + len(v)
		}
		if setByClient[http.CanonicalHeaderKey(name)] {
			return fmt.Errorf("header %s is set by the client, not by a request", http.CanonicalHeaderKey(name))
		}
	}
	if size > MaxRequestHeaderBytes {
		return fmt.Errorf("headers of %d bytes: at most %d KiB", size, MaxRequestHeaderBytes>>10)
	}
	return nil
}

// show is a URL as messages and logs quote it: without its query and
// fragment, which may hold a key, nor a password.
func show(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.RawFragment = "", "", ""
	return c.Redacted()
}
