package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the data dir's lock: a file holding the pid of the
// daemon that uses the dir, locked with flock(2) for as long as it runs.
// The kernel drops the lock when the process ends, however it ends (kill
// -9 included), so a stale file never keeps a daemon out; the file is
// left in place, since removing it could let a third daemon lock a new
// file while a second still waits on the old one.
const lockFileName = "sluice.lock"

// dirLock is a held data dir lock.
type dirLock struct{ f *os.File }

// lockDir takes the data dir's lock, or returns a *LockedError naming
// the process that holds it. On a platform without flock it returns a
// lock that holds nothing and ErrLockUnsupported.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	if err := flock(f); err != nil {
		if errors.Is(err, ErrLockUnsupported) {
			f.Close()
			return &dirLock{}, err
		}
		pid := readPID(f)
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, &LockedError{Dir: dir, File: path, PID: pid}
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	return &dirLock{f: f}, nil
}

func readPID(f *os.File) int {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 32))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// release lets the next daemon in.
func (l *dirLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// LockDataDir takes a data dir's lock as a daemon does, for a command
// that must not run beside a daemon on the same dir (sluice migrate
// --data): a daemon holding it is a *LockedError naming its pid, and a
// daemon started meanwhile is refused. release lets the next one in. On
// a platform without flock it returns ErrLockUnsupported and a release
// that does nothing.
func LockDataDir(dir string) (release func(), err error) {
	l, err := lockDir(dir)
	if l == nil {
		return nil, err
	}
	return l.release, err
}
