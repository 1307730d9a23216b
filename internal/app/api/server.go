package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/host"
)

// Limits bound what the HTTP server gives its clients: connections, time
// and memory. A client past a limit gets an answer that says which, and
// the daemon goes on serving the others.
type Limits struct {
	// MaxConns bounds the connections open at once; one more is answered
	// 503 overloaded and closed.
	MaxConns int
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the wait for a request's header.
	ReadHeaderTimeout time.Duration
	// BodyTimeout and MinBodyRate bound the wait for a request's body:
	// after BodyTimeout, it must keep arriving at MinBodyRate bytes per
	// second on average, or the request is answered 408 and the
	// connection closed.
	BodyTimeout time.Duration
	MinBodyRate int
	// WriteTimeout bounds each write of a response, not the wait for it:
	// a call, a ?wait=true or a follow stream takes as long as it takes,
	// but a client that stops reading is dropped.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection idle this long.
	IdleTimeout time.Duration
	// BodyMemory bounds the request bodies held in memory at once, over
	// every request: past it a request is answered 503 overloaded with
	// Retry-After.
	BodyMemory int64
}

// Defaults of Limits.
const (
	// DefaultMaxConns is far more than the clients, load balancers and
	// proxies in front of a daemon keep open, and few enough file
	// descriptors to leave most to NATS Streaming's store (3 per channel);
	// DefaultLimits lowers it to a quarter of the process's descriptor
	// limit when that is smaller.
	DefaultMaxConns = 1024
	// DefaultMaxHeaderBytes: the API's requests carry a token and a few
	// headers; 64 KiB is twice what nginx accepts by default.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultReadHeaderTimeout: a header is one packet or a few.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultBodyTimeout leaves a slow network some slack before the
	// rate counts.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultMinBodyRate (64 KiB/s, a 512 kbit/s uplink) lets a bad mobile
	// connection upload a module, while a client that trickles a body to
	// hold a connection must spend real bandwidth on each one.
	DefaultMinBodyRate = 64 << 10
	// DefaultWriteTimeout gives a client 30 s to take each write, at
	// least 200 KiB/s for a 6 MiB output.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout is longer than the idle timeout of Go's and most
	// HTTP clients (90 s), so that a client never reuses a connection the
	// daemon is closing.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultBodyMemory holds two of the largest module uploads, or 256
	// calls with 1 MiB inputs, at once: a daemon under a flood of calls
	// queued for a busy function answers 503 instead of running out of
	// memory (2,000 such calls held 2.8 GB before this limit).
	DefaultBodyMemory = 256 << 20
)

// DefaultLimits returns the daemon's limits: the defaults, with MaxConns
// at most a quarter of the process's file descriptor limit.
func DefaultLimits() Limits {
	l := Limits{
		MaxConns: DefaultMaxConns, MaxHeaderBytes: DefaultMaxHeaderBytes, ReadHeaderTimeout: DefaultReadHeaderTimeout,
		BodyTimeout: DefaultBodyTimeout, MinBodyRate: DefaultMinBodyRate, WriteTimeout: DefaultWriteTimeout,
		IdleTimeout: DefaultIdleTimeout, BodyMemory: DefaultBodyMemory,
	}
	if n := fileLimit() / 4; n > 0 && n < l.MaxConns {
		l.MaxConns = n
	}
	return l
}

// SetLimits replaces the server's limits (DefaultLimits until then). Call
// it before NewHTTPServer and before serving.
func (s *Server) SetLimits(l Limits) {
	s.limits = l
	s.bodies = &budget{max: l.BodyMemory}
}

// NewHTTPServer returns the daemon's HTTP server for s, with s's limits,
// and ln bounded to s's connection limit: serve with srv.Serve(ln).
func NewHTTPServer(s *Server, ln net.Listener) (*http.Server, net.Listener) {
	l := s.limits
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		// ReadTimeout and WriteTimeout stay 0: they would end long calls
		// and streams (after ReadTimeout, net/http's read of the next
		// request times out and cancels the request's context). Each
		// request gets its body and write deadlines in ServeHTTP.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("HTTP server limits", "max_connections", l.MaxConns, "body_memory", host.FormatBytes(uint64(l.BodyMemory)),
		"body_timeout", l.BodyTimeout, "min_body_rate", host.FormatBytes(uint64(l.MinBodyRate))+"/s")
	return srv, newConnLimiter(ln, l.MaxConns, s.log)
}

// Overload answers.
const (
	// maxRefusing bounds the connections being answered 503 at once; past
	// it, connections over the limit are closed without an answer.
	maxRefusing = 64
	// refuseTimeout bounds answering one of them.
	refuseTimeout = time.Second
	// warnEvery spaces the warnings about refused connections.
	warnEvery = 10 * time.Second
)

// connLimiter is a listener that serves at most max connections at once.
// One more is answered 503 overloaded, with Retry-After, and closed: its
// client hears why, rather than waiting in the kernel's backlog.
type connLimiter struct {
	net.Listener
	slots    chan struct{}
	refusing chan struct{}
	log      *slog.Logger
	max      int
	lastWarn atomic.Int64
	answer   []byte
}

func newConnLimiter(ln net.Listener, max int, log *slog.Logger) *connLimiter {
	body, _ := json.Marshal(errcode.Body{Code: errcode.Overloaded,
		Error: fmt.Sprintf("the daemon has %d connections open, its limit: close idle ones or try again shortly", max)})
	body = append(body, '\n')
	answer := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		errcode.Overloaded.Status(), http.StatusText(errcode.Overloaded.Status()), len(body), body)
	return &connLimiter{
		Listener: ln, slots: make(chan struct{}, max), refusing: make(chan struct{}, maxRefusing),
		log: log, max: max, answer: []byte(answer),
	}
}

// Accept returns the next connection within the limit.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, slots: l.slots}, nil
		default:
		}
		l.refuse(c)
	}
}

// refuse answers a connection over the limit, off the accept loop.
func (l *connLimiter) refuse(c net.Conn) {
	if now := time.Now().UnixNano(); now-l.lastWarn.Load() > int64(warnEvery) {
		l.lastWarn.Store(now)
		l.log.Warn("refusing connections: the API has its limit of connections open", "max_connections", l.max, "from", c.RemoteAddr().String())
	}
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		if _, err := c.Write(l.answer); err != nil {
			return
		}
		// read what the client sent before closing, so that the close
		// does not reset the connection under the answer
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}

// CloseWrite lets net/http half-close the connection before closing it,
// so that an answer to a request whose body was not read (408, 413) is not
// lost to a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// budget is the memory the request bodies may hold, over every request.
type budget struct {
	max  int64
	used atomic.Int64
}

func (b *budget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// bodyChunk is the most a body read takes at once (and reserves ahead).
const bodyChunk = 32 << 10

// requestBody is a request's body as handlers read it: every byte read is
// held against the daemon's body budget until the request ends, and its
// read deadline moves with the bytes that arrive (Limits.MinBodyRate).
type requestBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	budget   *budget
	limits   *Limits
	start    time.Time
	deadline time.Time
	n, held  int64
}

// wrapBody makes r's body a requestBody, if it has one, and sets its
// first read deadline; release gives its memory back.
func (s *Server) wrapBody(r *http.Request, rc *http.ResponseController) *requestBody {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	b := &requestBody{ReadCloser: r.Body, rc: rc, budget: s.bodies, limits: &s.limits, start: time.Now()}
	b.deadline = b.start.Add(s.limits.BodyTimeout)
	_ = rc.SetReadDeadline(b.deadline)
	r.Body = b
	return b
}

func (b *requestBody) release() {
	if b != nil {
		b.budget.give(b.held)
		b.held = 0
	}
}

func (b *requestBody) Read(p []byte) (int, error) {
	if len(p) > bodyChunk {
		p = p[:bodyChunk]
	}
	if want := b.n + int64(len(p)) - b.held; want > 0 {
		if b.n+int64(len(p)) > b.budget.max {
			return 0, &errcode.Error{Code: errcode.PayloadTooLarge,
				Msg: fmt.Sprintf("request body over the %s the daemon holds for all requests at once", host.FormatBytes(uint64(b.budget.max)))}
		}
		if !b.budget.take(want) {
			return 0, &errcode.Error{Code: errcode.Overloaded, RetryAfter: time.Second,
				Msg: fmt.Sprintf("the daemon holds %s of request bodies, its limit, for requests in progress: send this one again shortly", host.FormatBytes(uint64(b.budget.max)))}
		}
		b.held += want
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	var ne net.Error
	switch {
	case err == io.EOF:
		// all read: no deadline for net/http's read of the next request,
		// which would cancel a long call's context when it passed
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.As(err, &ne) && ne.Timeout():
		return n, &errcode.Error{Code: errcode.RequestTimeout,
			Msg: fmt.Sprintf("the request body came too slowly: after %s it must arrive at %s/s at least (%d bytes came in %s)",
				b.limits.BodyTimeout, host.FormatBytes(uint64(b.limits.MinBodyRate)), b.n, time.Since(b.start).Round(time.Millisecond))}
	case n > 0 && b.limits.MinBodyRate > 0:
		d := b.start.Add(b.limits.BodyTimeout + time.Duration(float64(b.n)/float64(b.limits.MinBodyRate)*float64(time.Second)))
		if d.Sub(b.deadline) >= slack(b.limits.BodyTimeout) {
			b.deadline = d
			_ = b.rc.SetReadDeadline(d)
		}
	}
	return n, err
}

// response records a response's status for the request log, and gives
// each write of it Limits.WriteTimeout to complete.
type response struct {
	http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	deadline time.Time
	status   int
	wrote    bool
}

// refresh moves the write deadline to WriteTimeout from now, unless it
// is nearly there already (within slack): most writes cost no timer reset.
func (w *response) refresh() {
	if w.timeout <= 0 {
		return
	}
	d := time.Now().Add(w.timeout)
	if d.Sub(w.deadline) >= slack(w.timeout) {
		w.deadline = d
		_ = w.rc.SetWriteDeadline(d)
	}
}

// slack is how far a deadline of the timeout may lag behind where it
// would be set now: a second, or a quarter of a short timeout.
func slack(timeout time.Duration) time.Duration { return min(time.Second, timeout/4) }

func (w *response) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.refresh()
	w.ResponseWriter.WriteHeader(code)
}

func (w *response) Write(p []byte) (int, error) {
	w.wrote = true
	w.refresh()
	return w.ResponseWriter.Write(p)
}

func (w *response) Flush() {
	w.refresh()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *response) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recovered turns a panic while serving a request into a 500 internal
// answer (or, if the answer had begun, an aborted one) and an error log
// with the stack: one request fails, the daemon goes on. It reports
// whether the connection must be aborted.
func (s *Server) recovered(w *response, r *http.Request, v any) (abort bool) {
	s.log.ErrorContext(r.Context(), "panic serving a request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	if w.wrote {
		return true
	}
	errcode.Write(w, errcode.New(errcode.Internal,
		fmt.Sprintf("the daemon failed on %s %s (a bug; its log has the details): it goes on serving", r.Method, r.URL.Path)))
	return false
}
