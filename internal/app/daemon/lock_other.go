//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package daemon

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

func flock(*os.File) error { return ErrLockUnsupported }

// ownerOnly: no umask here; the data dir is created owner-only.
func ownerOnly() {}
