//go:build unix

package api

import "syscall"

// fileLimit is the process's soft limit of open file descriptors, or 0
// if it cannot be read.
func fileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<30 {
		return 0
	}
	return int(l.Cur)
}
