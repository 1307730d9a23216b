//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package daemon

import (
	"errors"
	"os"
	"syscall"
)

// errLocked: another open file holds the lock.
var errLocked = errors.New("locked")

// flock takes an exclusive flock(2) on f without waiting. Unlike fcntl
// locks, a flock belongs to the open file, not the process: a second
// daemon in the same process (as the tests start them) is kept out too,
// and closing f releases it.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errLocked
		}
		return err
	}
}

// ownerOnly makes what this process creates from now on owner-only: the
// data dir holds functions' environments (secrets, in the store) and the
// broker's password, and the libraries that write there (the NATS
// Streaming file store, wazero's compile cache) create their files 0666
// and 0777 less the umask.
func ownerOnly() { syscall.Umask(0o077) }
