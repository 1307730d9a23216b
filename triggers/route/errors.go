package route

import (
	"errors"
	"fmt"
)

// ErrPattern: a route pattern is malformed. The error that wraps it says
// what is wrong and how to write it.
var ErrPattern = errors.New("route")

// ConflictError is the error of a route refused because another route
// would take the same requests: the same shape (parameters' names do not
// tell routes apart) and a method in common.
type ConflictError struct {
	// Route and Method are the refused route's ("" is any method).
	Route, Method string
	// Other is the name under which the route it conflicts with was
	// added, OtherRoute and OtherMethod that route.
	Other, OtherRoute, OtherMethod string
}

// Error names both routes and says what to change.
func (e *ConflictError) Error() string {
	why := ""
	if e.OtherRoute != e.Route {
		why = fmt.Sprintf(" (its route %s %s takes the same requests: parameter names do not tell routes apart)", MethodName(e.OtherMethod), e.OtherRoute)
	}
	return fmt.Sprintf("route %s %s is taken by trigger %q%s: use another path or method, or delete trigger %q first",
		MethodName(e.Method), e.Route, e.Other, why, e.Other)
}

// MethodName names a route's method in messages: "" is ANY.
func MethodName(m string) string {
	if m == "" {
		return "ANY"
	}
	return m
}
