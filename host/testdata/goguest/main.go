// goguest is a Go reactor whose behaviour the tests choose with the input:
// "echo:X", "error", "panic", "exit", "hog", "spin", "sleep", "meta:KEY",
// "env:KEY", "log", "count", "big:N", "nap:MS" (sleep, then answer with the
// function's version).
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	sluice "github.com/sluicehq/sluice/guests/go"
)

var (
	calls int
	hoard [][]byte
)

func handle(in []byte) ([]byte, error) {
	calls++
	cmd, arg, _ := strings.Cut(string(in), ":")
	switch cmd {
	case "echo":
		return []byte(arg), nil
	case "error":
		return nil, errors.New("the order has no items")
	case "panic":
		var m map[string]int
		m["x"] = 1
	case "exit":
		fmt.Fprintln(os.Stderr, "giving up")
		os.Exit(4)
	case "hog":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "spin":
		n := 0
		for {
			n++
		}
	case "sleep":
		time.Sleep(time.Hour)
	case "meta":
		v, ok := sluice.Meta(arg)
		if !ok {
			return []byte("<absent>"), nil
		}
		return []byte(v), nil
	case "env":
		return []byte(os.Getenv(arg)), nil
	case "log":
		sluice.Logf(sluice.Warn, "a warning from the guest")
		fmt.Fprintln(os.Stderr, "a line on stderr")
		return []byte("logged"), nil
	case "count":
		return []byte(strconv.Itoa(calls)), nil
	case "nap":
		ms, _ := strconv.Atoi(arg)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		v, _ := sluice.Meta("version")
		return []byte("version " + v), nil
	case "big":
		n, _ := strconv.Atoi(arg)
		return make([]byte, n), nil
	}
	return nil, fmt.Errorf("unknown command %q", cmd)
}

func init() { sluice.Handle(handle) }

func main() {}
