package main

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes a child process get SIGKILL when the test binary dies,
// even if it dies without running its cleanups (a timeout's panic, a
// SIGKILL): no daemon or NATS Streaming node outlives its test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
