package catalog

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/errcode"
)

// Errors of the catalog's operations. Applying an event returns them to
// the writer of the event, which gives them to its user.
var (
	// ErrNotFound: the function, trigger or workflow does not exist.
	ErrNotFound = errcode.Sentinel(errcode.NotFound, "not found")
	// ErrConflict: the operation contradicts the catalog's state (a name
	// or route taken, a function changed meanwhile, something in use).
	ErrConflict = errcode.Sentinel(errcode.Conflict, "conflict")
	// ErrInvalid: the operation or event is malformed (a bad name, spec
	// or configuration). An event from the channel that is invalid was not
	// written by a sluice daemon's API: it is skipped with a warning.
	ErrInvalid = errcode.Sentinel(errcode.InvalidArgument, "invalid")
)

// Dependent is something that uses what a delete would delete: a
// workflow (whose current version names it) or a trigger (that runs it).
type Dependent struct {
	Kind string `json:"kind"` // "workflow" or "trigger"
	Name string `json:"name"`
}

// InUseError is the error of a delete refused because others use what it
// deletes; it is an ErrConflict. Dependents are sorted, workflows first.
type InUseError struct {
	// Kind and Name are what was to be deleted: "function" or "workflow".
	Kind, Name string
	Dependents []Dependent
}

// Error says what uses it and what to do, e.g. `function "price" is used
// by workflow "order" and trigger "t1": delete them first, or delete with
// --force`.
func (e *InUseError) Error() string {
	names := make([]string, len(e.Dependents))
	for i, d := range e.Dependents {
		names[i] = fmt.Sprintf("%s %q", d.Kind, d.Name)
	}
	list := names[len(names)-1]
	if len(names) > 1 {
		list = strings.Join(names[:len(names)-1], ", ") + " and " + list
	}
	them := "them"
	if len(names) == 1 {
		them = "it"
	}
	return fmt.Sprintf("%s %q is used by %s: delete %s first, or delete with --force", e.Kind, e.Name, list, them)
}

// ErrorDependents gives the API's 409 body its dependents.
func (e *InUseError) ErrorDependents() any { return e.Dependents }

// Unwrap makes an InUseError an ErrConflict.
func (e *InUseError) Unwrap() error { return ErrConflict }
