// Package errcode is the one registry of sluice's error codes: the stable,
// machine-readable `code` of the API's error bodies, each with its HTTP
// status and whether a retry soon may succeed. The README's table of codes
// is checked against it by a test.
//
// It is a leaf: components declare what their errors mean here, without
// knowing HTTP. A sentinel error made with Sentinel carries its code, so
// `errors.Is` keeps working and Of finds the code through any wrapping:
//
//	var ErrTimeout = errcode.Sentinel(errcode.Timeout, "timeout")
//
// An error type whose code depends on its value implements Coder. The
// HTTP side (Write) lives here too, so that every part of the daemon that
// answers a request answers errors the same way.
package errcode

import (
	"context"
	"errors"
	"net/http"
	"sort"
)

// Code is a stable, machine-readable error code.
type Code string

// The codes. The README's table lists each with its status and meaning.
const (
	InvalidArgument  Code = "invalid_argument"
	InvalidWorkflow  Code = "invalid_workflow"
	BadRequest       Code = "bad_request"
	Unauthorized     Code = "unauthorized"
	NotFound         Code = "not_found"
	MethodNotAllowed Code = "method_not_allowed"
	RequestTimeout   Code = "request_timeout"
	Conflict         Code = "conflict"
	InputTooLarge    Code = "input_too_large"
	PayloadTooLarge  Code = "payload_too_large"
	ModuleTooLarge   Code = "module_too_large"
	InvalidModule    Code = "invalid_module"
	NoABI            Code = "no_abi"
	MemoryTooSmall   Code = "memory_too_small"
	Canceled         Code = "canceled"
	Internal         Code = "internal"
	Trap             Code = "trap"
	Exit             Code = "exit"
	FunctionError    Code = "function_error"
	MemoryLimit      Code = "memory_limit"
	OutputTooLarge   Code = "output_too_large"
	WorkflowFailed   Code = "workflow_failed"
	WorkflowCanceled Code = "workflow_canceled"
	InvalidResponse  Code = "invalid_response"
	Unavailable      Code = "unavailable"
	Overloaded       Code = "overloaded"
	Busy             Code = "busy"
	MemoryBudget     Code = "memory_budget"
	OutOfFiles       Code = "out_of_files"
	Timeout          Code = "timeout"
)

// StatusClientClosedRequest is the status of a request whose client went
// away (nginx's 499; net/http has no name for it).
const StatusClientClosedRequest = 499

// info is what the registry knows of a code.
type info struct {
	status int
	// retry: a retry after a short wait may get past it (the answer
	// carries Retry-After).
	retry bool
}

var registry = map[Code]info{
	InvalidArgument:  {status: http.StatusBadRequest},
	InvalidWorkflow:  {status: http.StatusBadRequest},
	BadRequest:       {status: http.StatusBadRequest},
	Unauthorized:     {status: http.StatusUnauthorized},
	NotFound:         {status: http.StatusNotFound},
	MethodNotAllowed: {status: http.StatusMethodNotAllowed},
	RequestTimeout:   {status: http.StatusRequestTimeout},
	Conflict:         {status: http.StatusConflict},
	InputTooLarge:    {status: http.StatusRequestEntityTooLarge},
	PayloadTooLarge:  {status: http.StatusRequestEntityTooLarge},
	ModuleTooLarge:   {status: http.StatusRequestEntityTooLarge},
	InvalidModule:    {status: http.StatusUnprocessableEntity},
	NoABI:            {status: http.StatusUnprocessableEntity},
	MemoryTooSmall:   {status: http.StatusUnprocessableEntity},
	Canceled:         {status: StatusClientClosedRequest},
	Internal:         {status: http.StatusInternalServerError},
	Trap:             {status: http.StatusBadGateway},
	Exit:             {status: http.StatusBadGateway},
	FunctionError:    {status: http.StatusBadGateway},
	MemoryLimit:      {status: http.StatusBadGateway},
	OutputTooLarge:   {status: http.StatusBadGateway},
	// a workflow behind a trigger is the upstream of the request, as a
	// function is: its failure is a bad gateway, not sluice's bug
	WorkflowFailed:   {status: http.StatusBadGateway},
	WorkflowCanceled: {status: http.StatusBadGateway},
	InvalidResponse:  {status: http.StatusBadGateway},
	Unavailable:      {status: http.StatusServiceUnavailable},
	Overloaded:       {status: http.StatusServiceUnavailable, retry: true},
	Busy:             {status: http.StatusServiceUnavailable, retry: true},
	MemoryBudget:     {status: http.StatusServiceUnavailable, retry: true},
	OutOfFiles:       {status: http.StatusServiceUnavailable, retry: true},
	Timeout:          {status: http.StatusGatewayTimeout},
}

// Status is the HTTP status a code is answered with (500 for a code the
// registry does not know, which a test keeps from happening).
func (c Code) Status() int {
	if i, ok := registry[c]; ok {
		return i.status
	}
	return http.StatusInternalServerError
}

// Retryable tells whether a retry after a short wait may get past an
// error of this code: the answer carries Retry-After.
func (c Code) Retryable() bool { return registry[c].retry }

// Known tells whether the registry has the code.
func (c Code) Known() bool {
	_, ok := registry[c]
	return ok
}

// Codes returns every code, sorted.
func Codes() []Code {
	out := make([]Code, 0, len(registry))
	for c := range registry {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Coder is an error that knows its code.
type Coder interface {
	error
	ErrorCode() Code
}

// sentinel is an error made by Sentinel.
type sentinel struct {
	code Code
	msg  string
}

func (s *sentinel) Error() string   { return s.msg }
func (s *sentinel) ErrorCode() Code { return s.code }

// Sentinel returns a new sentinel error (compare it with errors.Is) whose
// code is code, wherever it is wrapped.
func Sentinel(code Code, msg string) error { return &sentinel{code: code, msg: msg} }

// Of returns the code of err: that of the outermost Coder in its chain,
// Canceled for a canceled context, Unavailable for a context's deadline
// (something sluice waited for did not come), Internal otherwise.
func Of(err error) Code {
	var c Coder
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return Unavailable
	}
	return Internal
}
