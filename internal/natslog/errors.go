package natslog

import "errors"

// ErrBlobDamaged: a blob's channel does not hold one whole value (a chunk
// is missing, or a message in it is not a chunk). Putting the value again
// stores it whole.
var ErrBlobDamaged = errors.New("blob damaged")
