//go:build !wasip1

package sluice

import (
	"fmt"
	"os"
	"sync"
)

var (
	testMu   sync.Mutex
	testMeta map[string]string
	testResp *Response
)

// Response is what a handler answered in a native call (CallResponse):
// its output and the HTTP status and headers it set. Status is 0 and
// Header nil if it set none.
type Response struct {
	Output []byte
	Status int
	Header map[string][]string
}

// Call runs the registered handler natively with the given metadata, as
// sluice would run it in a guest; for unit tests of a handler. It exists
// only in native builds.
func Call(in []byte, meta map[string]string) ([]byte, error) {
	r, err := CallResponse(in, meta)
	return r.Output, err
}

// CallResponse is Call, and returns the HTTP status and headers the
// handler set with SetStatus and AddHeader. Native calls run one at a
// time. It exists only in native builds.
func CallResponse(in []byte, meta map[string]string) (Response, error) {
	callMu.Lock()
	defer callMu.Unlock()
	var r Response
	testMu.Lock()
	testMeta, testResp = meta, &r
	testMu.Unlock()
	out, err := call(in)
	testMu.Lock()
	testResp = nil
	testMu.Unlock()
	if err != nil {
		return Response{}, err
	}
	r.Output = out
	return r, nil
}

func useCodes() {}

// callMu runs native calls one at a time, as an instance runs them.
var callMu sync.Mutex

func setStatus(code int) {
	testMu.Lock()
	defer testMu.Unlock()
	if testResp != nil {
		testResp.Status = code
	}
}

func addHeader(name, value string) {
	testMu.Lock()
	defer testMu.Unlock()
	if testResp == nil {
		return
	}
	if testResp.Header == nil {
		testResp.Header = map[string][]string{}
	}
	testResp.Header[name] = append(testResp.Header[name], value)
}

func writeLog(level Level, msg string) {
	fmt.Fprintf(os.Stderr, "[%d] %s\n", level, msg)
}

func readMeta(key string) (string, bool) {
	testMu.Lock()
	defer testMu.Unlock()
	v, ok := testMeta[key]
	return v, ok
}
