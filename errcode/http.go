package errcode

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Error is an error raised with its code by the part of the daemon that
// answers a request (a bad parameter, a missing token, an overload).
type Error struct {
	Code Code
	Msg  string
	// RetryAfter, if set, is sent as the Retry-After header: the request
	// was refused for now, and may be sent again after it.
	RetryAfter time.Duration
}

// New returns an *Error.
func New(code Code, msg string) *Error { return &Error{Code: code, Msg: msg} }

func (e *Error) Error() string   { return e.Msg }
func (e *Error) ErrorCode() Code { return e.Code }

// Body is the JSON body of an error response.
type Body struct {
	Error string `json:"error"`
	Code  Code   `json:"code"`
	// Dependents are what uses the function or workflow a refused delete
	// would delete (409 conflict), from an error that implements
	// Dependents.
	Dependents any `json:"dependents,omitempty"`
	// FunctionCode is the code a function gave its own failure (ABI 1.2
	// error_code: out_of_stock, card_declined), beside Code
	// (function_error or exit), from an error that implements GuestCoded.
	FunctionCode string `json:"function_code,omitempty"`
}

// GuestCoded is an error that carries the code a function gave its own
// failure, or "" when it gave none.
type GuestCoded interface {
	error
	GuestCode() string
}

// Dependents is an error that names what stands in its way (a delete
// refused because others use what it deletes).
type Dependents interface {
	error
	ErrorDependents() any
}

// DefaultRetryAfter is the Retry-After of a refusal whose code is
// Retryable and that does not say: a second lets calls end and instances
// be released.
const DefaultRetryAfter = time.Second

// Write writes err as a JSON error response: the status of its code, the
// dependents of an error that has them, and Retry-After for a code that is
// Retryable.
func Write(w http.ResponseWriter, err error) {
	code := Of(err)
	body := Body{Error: err.Error(), Code: code}
	var d Dependents
	if errors.As(err, &d) {
		body.Dependents = d.ErrorDependents()
	}
	var g GuestCoded
	if errors.As(err, &g) {
		body.FunctionCode = g.GuestCode()
	}
	wait := time.Duration(0)
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		wait = e.RetryAfter
	} else if code.Retryable() {
		wait = DefaultRetryAfter
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	}
	WriteJSON(w, code.Status(), body)
}

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ReadError is the error to answer when reading a request body failed:
// the reader's own *Error if it has one (the daemon refused to wait for
// or to hold the body), else bad_request saying what was read.
func ReadError(what string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return New(BadRequest, "read "+what+": "+err.Error())
}
