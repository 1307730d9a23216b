//go:build wasip1

package sluice

import "unsafe"

//go:wasmimport sluice output
func hostOutput(ptr unsafe.Pointer, size uint32)

//go:wasmimport sluice fail
func hostFail(ptr unsafe.Pointer, size uint32)

//go:wasmimport sluice log
func hostLog(level int32, ptr unsafe.Pointer, size uint32)

//go:wasmimport sluice http_status
func hostHTTPStatus(code int32)

//go:wasmimport sluice http_header
func hostHTTPHeader(name unsafe.Pointer, nameLen uint32, value unsafe.Pointer, valueLen uint32)

//go:wasmimport sluice error_code
func hostErrorCode(ptr unsafe.Pointer, size uint32)

//go:wasmimport sluice meta_get
func hostMetaGet(key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, bufCap uint32) int32

// buffers keeps the buffers handed to the host reachable: the host writes
// inputs into them across calls until it frees them.
var buffers = map[uintptr][]byte{}

//go:wasmexport sluice_alloc
func sluiceAlloc(size uint32) unsafe.Pointer {
	if size == 0 {
		size = 1
	}
	b := make([]byte, size)
	p := unsafe.Pointer(&b[0])
	buffers[uintptr(p)] = b
	return p
}

//go:wasmexport sluice_free
func sluiceFree(ptr unsafe.Pointer, size uint32) {
	delete(buffers, uintptr(ptr))
}

//go:wasmexport sluice_handle
func sluiceHandle(ptr unsafe.Pointer, size uint32) uint32 {
	var in []byte
	if size > 0 {
		in = unsafe.Slice((*byte)(ptr), size)
	}
	out, err := call(in)
	if err != nil {
		msg := err.Error()
		hostFail(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
		if reportCode != nil {
			if code := codeOf(err); code != "" {
				reportCode(code)
			}
		}
		return 1
	}
	if len(out) > 0 {
		hostOutput(unsafe.Pointer(&out[0]), uint32(len(out)))
	}
	return 0
}

// reportCode gives the host a failure's code; set by the first Fail, so
// that a guest that never gives one does not import error_code (and runs
// on hosts older than ABI 1.2).
var reportCode func(code string)

func useCodes() {
	reportCode = func(code string) { hostErrorCode(unsafe.Pointer(unsafe.StringData(code)), uint32(len(code))) }
}

func setStatus(code int) {
	if int(int32(code)) != code {
		code = -1 // refused by the host, not wrapped into a valid status
	}
	hostHTTPStatus(int32(code))
}

func addHeader(name, value string) {
	hostHTTPHeader(unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)), unsafe.Pointer(unsafe.StringData(value)), uint32(len(value)))
}

func writeLog(level Level, msg string) {
	hostLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func readMeta(key string) (string, bool) {
	var small [128]byte
	buf := small[:]
	for {
		n := hostMetaGet(unsafe.Pointer(unsafe.StringData(key)), uint32(len(key)), unsafe.Pointer(&buf[0]), uint32(len(buf)))
		if n < 0 {
			return "", false
		}
		if int(n) <= len(buf) {
			return string(buf[:n]), true
		}
		buf = make([]byte, n)
	}
}
