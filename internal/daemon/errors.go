package daemon

import (
	"errors"
	"fmt"
)

// Errors of starting a daemon.
var (
	// ErrOptions: the options do not go together (the message names the
	// flags).
	ErrOptions = errors.New("bad daemon options")
	// ErrLockUnsupported: this platform has no flock(2); the data dir is
	// not locked, so nothing stops a second daemon on it.
	ErrLockUnsupported = errors.New("data dir locking is not supported on this platform")
)

// LockedError: another process holds the data dir. Two daemons on one
// data dir write into one NATS Streaming file store at once, which
// damages it.
type LockedError struct {
	// Dir is the data dir and File its lock file.
	Dir, File string
	// PID is the process that holds it, as it wrote in the lock file; 0
	// if it could not be read.
	PID int
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
	}
	return fmt.Sprintf("data dir %s is in use by %s (it holds the lock %s): two daemons on one data dir would damage its NATS Streaming store; stop that daemon first, or give this one its own --data",
		e.Dir, who, e.File)
}
