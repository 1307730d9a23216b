// Package httperr maps sluice's errors to HTTP statuses and the stable
// machine-readable codes of the API's error bodies: {"error": "...",
// "code": "..."}.
package httperr

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/sluicehq/sluice/host"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/registry"
)

// Body is the JSON body of an error response.
type Body struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Error is an error with its HTTP status and code, for errors the API
// itself raises (bad parameters, auth).
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// New returns an *Error.
func New(status int, code, msg string) *Error { return &Error{Status: status, Code: code, Msg: msg} }

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
	{broker.ErrNotConnected, http.StatusServiceUnavailable, "unavailable"},
	{broker.ErrClosed, http.StatusServiceUnavailable, "unavailable"},
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

// retryAfter is the Retry-After, in seconds, of a refusal that a retry
// soon may get past: a busy function, a full memory budget, no file
// descriptor left. A second lets calls end and instances be released.
const retryAfter = "1"

// Write writes err as a JSON error response.
func Write(w http.ResponseWriter, err error) {
	status, code := Classify(err)
	if errors.Is(err, host.ErrBusy) || errors.Is(err, host.ErrMemoryBudget) || errors.Is(err, host.ErrOutOfFiles) {
		w.Header().Set("Retry-After", retryAfter)
	}
	WriteJSON(w, status, Body{Error: err.Error(), Code: code})
}

// WriteJSON writes v as JSON with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
