package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/sluicehq/sluice/testutil"
)

// openPTY opens a pseudo-terminal: what a program writes to tty, the test
// reads from the returned reader.
func openPTY(t *testing.T) (tty *os.File, read func() string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("TIOCGPTN: %v", e)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("TIOCSPTLCK: %v", e)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty: %v", err)
	}
	got := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, master) // ends with EIO once every end of tty is closed
		got <- b.String()
	}()
	return tty, func() string { return <-got }
}

// On a terminal, fn invoke shows the output's control characters as
// escapes; to a pipe it writes the exact bytes (TestGuestTextKeptOffTheTerminal).
func TestInvokeOnATerminal(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	tty, read := openPTY(t)
	cmd := exec.Command(binary, "fn", "invoke", "echo", "--server", p.server)
	cmd.Stdin = strings.NewReader("\x1b]0;owned\a\x1b[2Jline one\nline\ttwo\r\n")
	cmd.Stdout = tty
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fn invoke: %v: %s", err, stderr.String())
	}
	// the terminal turns each \n into \r\n
	if got, want := read(), `\x1b]0;owned\a\x1b[2Jline one`+"\r\n"+"line\ttwo"+`\r`+"\r\n"; got != want {
		t.Fatalf("on a terminal:\n got %q\nwant %q", got, want)
	}
}
