package natslog

import "errors"

// ErrBlobDamaged: the store does not hold a blob whole: chunks named by
// its index record are missing or do not match the record's size and
// SHA-256, a record of the index cannot be read, or (a blob of the old
// layout) its channel holds a message that is not a chunk or misses one.
// Putting the value again stores it whole.
var ErrBlobDamaged = errors.New("blob damaged")
