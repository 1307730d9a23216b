package egress

import "github.com/sluicehq/sluice/errcode"

// Errors of a request. Every error Do returns is an *Error that Is one of
// them, with a message that names the request and what to change; its
// code (errcode.Of) says whether trying again may help: unavailable and
// timeout may, the others will not.
var (
	// ErrOff: the daemon was started without an allow-list
	// (--allow-http): no request leaves it.
	ErrOff = errcode.Sentinel(errcode.InvalidArgument, "outbound HTTP is off")
	// ErrNotAllowed: the URL's host and port (or a redirect's) are not
	// in the allow-list.
	ErrNotAllowed = errcode.Sentinel(errcode.InvalidArgument, "host not allowed")
	// ErrBadRequest: the request cannot be sent as given: a URL that is
	// not http or https, carries user info, or names its host in a form
	// that could mean another (a trailing dot, an IP address written in
	// decimal or octal); a method that is not a token; a header that is
	// malformed or that the client sets itself.
	ErrBadRequest = errcode.Sentinel(errcode.InvalidArgument, "bad request")
	// ErrNoSecret: a header takes a secret (Request.Secrets) the daemon
	// was not given, or whose file cannot be read: a retry would meet
	// the same until the daemon is restarted with it.
	ErrNoSecret = errcode.Sentinel(errcode.InvalidArgument, "secret not set")
	// ErrRequestTooLarge: the request's body is over Config.MaxRequestBody.
	ErrRequestTooLarge = errcode.Sentinel(errcode.InputTooLarge, "request body too large")
	// ErrResponseTooLarge: the response's body is over
	// Config.MaxResponseBody.
	ErrResponseTooLarge = errcode.Sentinel(errcode.OutputTooLarge, "response body too large")
	// ErrBadResponse: the server answered something that is not an HTTP
	// response within the limits (headers over MaxResponseHeaderBytes,
	// more than MaxRedirects redirects, a malformed answer).
	ErrBadResponse = errcode.Sentinel(errcode.InvalidResponse, "bad response")
	// ErrTimeout: no whole response within the request's time.
	ErrTimeout = errcode.Sentinel(errcode.Timeout, "timeout")
	// ErrUnavailable: the server could not be reached (no such name,
	// connection refused or reset, TLS handshake failed).
	ErrUnavailable = errcode.Sentinel(errcode.Unavailable, "unavailable")
)

// Error is the error of a request: one of the sentinels (Kind) with a
// message for the user.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrNotAllowed) and the like work.
func (e *Error) Unwrap() error { return e.Kind }

// ErrorCode is the code of its kind.
func (e *Error) ErrorCode() errcode.Code { return errcode.Of(e.Kind) }
