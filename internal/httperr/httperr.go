// Package httperr maps sluice's errors to HTTP statuses and the stable
// machine-readable codes of the API's error bodies: {"error": "...",
// "code": "..."}.
package httperr

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/registry"
)

// Body is the JSON body of an error response.
type Body struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// Dependents are what uses the function or workflow a refused delete
	// would delete (409 conflict).
	Dependents []catalog.Dependent `json:"dependents,omitempty"`
}

// Error is an error with its HTTP status and code, for errors the API
// itself raises (bad parameters, auth, overload).
type Error struct {
	Status int
	Code   string
	Msg    string
	// RetryAfter, if set, is sent as the Retry-After header: the request
	// was refused for now, and may be sent again after it.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }

// New returns an *Error.
func New(status int, code, msg string) *Error { return &Error{Status: status, Code: code, Msg: msg} }

// ReadError is the error to answer when reading a request body failed:
// the reader's own *Error if it has one (the daemon refused to wait for
// or to hold the body), else 400 bad_request saying what was read.
func ReadError(what string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return New(http.StatusBadRequest, "bad_request", "read "+what+": "+err.Error())
}

// Statuses are the status of every code the API answers with; the
// README's table of codes lists the same (TestREADMEListsEveryCode).
var Statuses = map[string]int{
	"invalid_argument": http.StatusBadRequest, "invalid_workflow": http.StatusBadRequest, "bad_request": http.StatusBadRequest,
	"unauthorized": http.StatusUnauthorized, "not_found": http.StatusNotFound, "method_not_allowed": http.StatusMethodNotAllowed,
	"request_timeout": http.StatusRequestTimeout, "conflict": http.StatusConflict,
	"input_too_large": http.StatusRequestEntityTooLarge, "payload_too_large": http.StatusRequestEntityTooLarge, "module_too_large": http.StatusRequestEntityTooLarge,
	"invalid_module": http.StatusUnprocessableEntity, "no_abi": http.StatusUnprocessableEntity, "memory_too_small": http.StatusUnprocessableEntity,
	"canceled": 499, "internal": http.StatusInternalServerError,
	"trap": http.StatusBadGateway, "exit": http.StatusBadGateway, "function_error": http.StatusBadGateway,
	"memory_limit": http.StatusBadGateway, "output_too_large": http.StatusBadGateway,
	"unavailable": http.StatusServiceUnavailable, "overloaded": http.StatusServiceUnavailable, "busy": http.StatusServiceUnavailable,
	"memory_budget": http.StatusServiceUnavailable, "out_of_files": http.StatusServiceUnavailable, "timeout": http.StatusGatewayTimeout,
}

// Codes, by the error they stand for.
var codes = []struct {
	err    error
	status int
	code   string
}{
	{host.ErrTimeout, http.StatusGatewayTimeout, "timeout"},
	{host.ErrCanceled, 499, "canceled"},
	{host.ErrMemoryLimit, http.StatusBadGateway, "memory_limit"},
	{host.ErrTrap, http.StatusBadGateway, "trap"},
	{host.ErrExit, http.StatusBadGateway, "exit"},
	{host.ErrFunctionFailed, http.StatusBadGateway, "function_error"},
	{host.ErrOutputTooLarge, http.StatusBadGateway, "output_too_large"},
	{host.ErrInputTooLarge, http.StatusRequestEntityTooLarge, "input_too_large"},
	{host.ErrBusy, http.StatusServiceUnavailable, "busy"},
	{host.ErrMemoryBudget, http.StatusServiceUnavailable, "memory_budget"},
	{host.ErrOutOfFiles, http.StatusServiceUnavailable, "out_of_files"},
	{host.ErrInvalidConfig, http.StatusBadRequest, "invalid_argument"},
	{host.ErrInvalidModule, http.StatusUnprocessableEntity, "invalid_module"},
	{host.ErrNoABI, http.StatusUnprocessableEntity, "no_abi"},
	{host.ErrMemoryTooSmall, http.StatusUnprocessableEntity, "memory_too_small"},
	{registry.ErrNotFound, http.StatusNotFound, "not_found"},
	{catalog.ErrNotFound, http.StatusNotFound, "not_found"},
	{catalog.ErrConflict, http.StatusConflict, "conflict"},
	{catalog.ErrInvalid, http.StatusBadRequest, "invalid_argument"},
	{eventlog.ErrNotConnected, http.StatusServiceUnavailable, "unavailable"},
	{eventlog.ErrClosed, http.StatusServiceUnavailable, "unavailable"},
	{eventlog.ErrTooLarge, http.StatusRequestEntityTooLarge, "payload_too_large"},
	{eventlog.ErrInvalidName, http.StatusBadRequest, "invalid_argument"},
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "unavailable"},
	{context.Canceled, 499, "canceled"},
}

// Classify returns the HTTP status and code of err.
func Classify(err error) (int, string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.status, c.code
		}
	}
	return http.StatusInternalServerError, "internal"
}

// retryAfter is the Retry-After of a refusal that a retry soon may get
// past: a busy function, a full memory budget, no file descriptor left. A
// second lets calls end and instances be released.
const retryAfter = time.Second

// Write writes err as a JSON error response, with the dependents of an
// *catalog.InUseError and the Retry-After of an *Error that has one or of
// a host refusal that a retry may get past.
func Write(w http.ResponseWriter, err error) {
	status, code := Classify(err)
	body := Body{Error: err.Error(), Code: code}
	var inUse *catalog.InUseError
	if errors.As(err, &inUse) {
		body.Dependents = inUse.Dependents
	}
	var wait time.Duration
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		wait = e.RetryAfter
	} else if errors.Is(err, host.ErrBusy) || errors.Is(err, host.ErrMemoryBudget) || errors.Is(err, host.ErrOutOfFiles) {
		wait = retryAfter
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	}
	WriteJSON(w, status, body)
}

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
