package console

import "errors"

// ErrTooLarge is a graph with more nodes than a layout draws
// (MaxLayoutNodes).
var ErrTooLarge = errors.New("too large to draw")
