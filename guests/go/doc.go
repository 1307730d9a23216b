// Package sluice is the Go guest SDK of sluice: it turns a Go function into
// a sluice reactor (ABI version 1, see abi/README.md) so that sluice keeps
// instances warm and a call costs microseconds.
//
// Register the handler in an init function (a -buildmode=c-shared module
// never runs main) and build for WASI:
//
//	package main
//
//	import (
//		"bytes"
//
//		sluice "github.com/sluicehq/sluice/guests/go"
//	)
//
//	func init() {
//		sluice.Handle(func(in []byte) ([]byte, error) {
//			return bytes.ToUpper(in), nil
//		})
//	}
//
//	func main() {}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
//
// The input slice is only valid during the call: copy what you keep. A
// returned error fails the call with its message; a panic is recovered and
// fails the call the same way, and the instance stays usable.
//
// Behind an HTTP trigger, a handler reads the request's method, path,
// query, headers (Meta("http.header.authorization")) and sets the
// response's status and headers with SetStatus and AddHeader. Package
// sluicehttp (guests/go/sluicehttp) runs an http.Handler instead, for
// ordinary net/http code; it is a package of its own because net/http
// adds 2 MB to every module that links it.
//
// Built for any other platform the package works as a plain Go library, so
// handlers can be unit tested natively with Call (or CallResponse, which
// returns the status and headers too).
//
// Outside sluice's repository, `sluice new fn NAME --lang go` writes a
// module with a copy of this package in sluice-sdk/ and the go.mod lines
// that use it; docs/guests.md gives the lines for a checkout of sluice.
package sluice

import (
	"errors"
	"fmt"
	"sync"
)

// Handler handles one call: input bytes in, output bytes or an error out.
type Handler func(in []byte) ([]byte, error)

// Level is the level of a log record.
type Level int32

// Log levels, as in the ABI.
const (
	Debug Level = 0
	Info  Level = 1
	Warn  Level = 2
	Error Level = 3
)

var (
	handlerMu sync.Mutex
	handler   Handler
)

// Handle registers the function's handler. Call it once, from an init
// function.
func Handle(h Handler) {
	handlerMu.Lock()
	handler = h
	handlerMu.Unlock()
}

// Logf writes one log record to the function's logs, visible with
// `sluice fn logs NAME`.
func Logf(level Level, format string, args ...any) {
	writeLog(level, fmt.Sprintf(format, args...))
}

// Meta returns call metadata: the trigger, HTTP method, message sequence,
// redelivery flag and so on (the keys are listed in abi/README.md).
func Meta(key string) (string, bool) {
	return readMeta(key)
}

// SetStatus sets the HTTP status a trigger answers the call's request
// with (200-599; another fails the call). A later call replaces it.
// Without one, the trigger answers 200. Go authors writing net/http code
// use package sluicehttp instead.
func SetStatus(code int) { setStatus(code) }

// AddHeader adds one value of an HTTP response header; call it again for
// several values of one name (Set-Cookie). A name that is not an HTTP
// token, a value holding CR, LF or NUL, or more than 100 values or 64 KiB
// in all fail the call; framing and hop-by-hop headers (Content-Length,
// Transfer-Encoding, Connection, ...) are dropped (abi/README.md).
func AddHeader(name, value string) { addHeader(name, value) }

// Redelivered tells whether a message-queue trigger delivers this message
// again after an earlier attempt failed or timed out: a handler with side
// effects uses it (with Meta("sequence")) to stay idempotent.
func Redelivered() bool {
	v, _ := Meta("redelivered")
	return v == "true"
}

// Failure is a failure with a code of its own (ABI 1.2): a workflow's retry
// filters (retry: {on: [card_declined]}) and catch see the code, where a
// plain error is function_error. Make one with Fail.
type Failure struct {
	Code    string
	Message string
}

func (e *Failure) Error() string { return e.Message }

// ErrorCode returns the failure's code.
func (e *Failure) ErrorCode() string { return e.Code }

// Fail returns an error that fails the call with message and code: a
// lowercase letter, then up to 63 of a-z, 0-9, '_', '.', '-'
// (card_declined). The host drops a code that is not one, and says so in
// the message. A handler returns it, wrapped or not:
//
//	return nil, sluice.Fail("card_declined", "the card was declined")
func Fail(code, message string) error {
	useCodes()
	return &Failure{Code: code, Message: message}
}

// codeOf is the code of the first error in err's chain that has one
// (an ErrorCode method: a Failure), or "".
func codeOf(err error) string {
	var c interface{ ErrorCode() string }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	return ""
}

// call runs the registered handler and turns a panic into an error.
func call(in []byte) (out []byte, err error) {
	handlerMu.Lock()
	h := handler
	handlerMu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("no handler registered: call sluice.Handle from an init function")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return h(in)
}
