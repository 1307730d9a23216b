package scaffold

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrName: the function's name is not one fn deploy accepts.
	ErrName = errors.New("invalid function name")
	// ErrNotEmpty: the project's directory holds files already, and
	// Force was not given.
	ErrNotEmpty = errors.New("directory is not empty")
)

// UnknownLanguageError is a language with no template: Known lists the
// ones there are.
type UnknownLanguageError struct {
	Lang  string
	Known []string
}

func (e *UnknownLanguageError) Error() string {
	if e.Lang == "" {
		return fmt.Sprintf("no language given: use one of %s", strings.Join(e.Known, ", "))
	}
	return fmt.Sprintf("no template for language %q: use one of %s", e.Lang, strings.Join(e.Known, ", "))
}
