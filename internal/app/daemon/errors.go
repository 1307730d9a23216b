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

// BrokerMismatchError: the data dir holds the store of another broker
// than --broker. Started on it, the daemon would find an empty catalog
// (no functions, triggers or workflows) beside the store that has them.
type BrokerMismatchError struct {
	// Dir is the data dir; Made the broker whose store it holds
	// (DATA/broker, or what is in it); Want the --broker asked for.
	Dir, Made, Want string
}

func (e *BrokerMismatchError) Error() string {
	return fmt.Sprintf("data dir %s holds a %s store, and this daemon was started with --broker %s: it would start with an empty catalog. Start it with --broker %s, copy the data over to %s with sluice migrate, or give this daemon a new --data",
		e.Dir, e.Made, e.Want, e.Made, e.Want)
}
