//go:build !wasip1

package sluice

import (
	"fmt"
	"os"
	"sync"
)

var (
	testMetaMu sync.Mutex
	testMeta   map[string]string
)

// Call runs the registered handler natively with the given metadata, as
// sluice would run it in a guest; for unit tests of a handler. It exists
// only in native builds.
func Call(in []byte, meta map[string]string) ([]byte, error) {
	testMetaMu.Lock()
	testMeta = meta
	testMetaMu.Unlock()
	return call(in)
}

func writeLog(level Level, msg string) {
	fmt.Fprintf(os.Stderr, "[%d] %s\n", level, msg)
}

func readMeta(key string) (string, bool) {
	testMetaMu.Lock()
	defer testMetaMu.Unlock()
	v, ok := testMeta[key]
	return v, ok
}
