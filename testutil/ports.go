package testutil

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports for a server a test starts later, on an address it must know in
// advance (a cluster's peers, a restart on the same port). A port taken
// from a listener on port 0 and closed is in the kernel's ephemeral
// range, where the next listener on port 0 (another daemon's API, in the
// same test) may be given it before the server binds it: a selfcluster
// test lost a member so. FreePort picks below that range instead, where
// the kernel hands out no port by itself.
var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// FreePort returns a loopback TCP port that is free now, not handed out
// before in this process, and outside the kernel's ephemeral range when
// that range leaves room below it.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	if low := ephemeralLow(); low > 12000 {
		for range 200 {
			p := 10000 + rand.IntN(low-10000)
			if given[p] {
				continue
			}
			if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
				ln.Close()
				given[p] = true
				return p
			}
		}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[p] {
			given[p] = true
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (0 if
// unknown).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// FreeAddr is FreePort as a loopback host:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}
