// goguest is a Go reactor whose behaviour the tests choose with the input:
// "echo:X", "error", "panic", "exit", "hog", "spin", "sleep", "meta:KEY",
// "env:KEY", "log", "count", "big:N", "nap:MS" (sleep, then answer with the
// function's version), "rand" (math/rand/v2 numbers, the iteration order of
// a new map, and lookups in a map filled at init).
package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	sluice "github.com/sluicehq/sluice/guests/go"
)

var (
	calls int
	hoard [][]byte
	// primes is filled when the instance is initialised: its hash layout
	// depends on the runtime's hash keys, drawn at start.
	primes = map[string]int{}
)

func init() {
	for i, p := range []int{2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71} {
		primes[strconv.Itoa(p)] = i
	}
}

// random answers with what depends on the randomness of the instance.
func random() []byte {
	m := map[int]bool{}
	for i := range 16 {
		m[i] = true
	}
	order := make([]int, 0, len(m))
	for k := range m {
		order = append(order, k)
	}
	found := 0
	for i := range 100 {
		if _, ok := primes[strconv.Itoa(i)]; ok {
			found++
		}
	}
	return []byte(fmt.Sprintf("%d %d %v primes=%d", rand.Uint64(), rand.N(1000), order, found))
}

func handle(in []byte) ([]byte, error) {
	calls++
	cmd, arg, _ := strings.Cut(string(in), ":")
	switch cmd {
	case "echo":
		return []byte(arg), nil
	case "error":
		return nil, errors.New("the order has no items")
	case "coded":
		return nil, sluice.Fail("out_of_stock", "the item is out of stock")
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
	case "rand":
		return random(), nil
	case "big":
		n, _ := strconv.Atoi(arg)
		return make([]byte, n), nil
	}
	return nil, fmt.Errorf("unknown command %q", cmd)
}

func init() { sluice.Handle(handle) }

func main() {}
