// Command extism-go is an Extism plugin built with Extism's own Go PDK
// (github.com/extism/go-pdk), unmodified by sluice: the host tests run it
// to show that such plugins run under sluice as they do under Extism.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o extism-go.wasm .
package main

import (
	"errors"
	"strconv"
	"strings"

	"github.com/extism/go-pdk"
)

// upper answers its input in upper case.
//
//go:wasmexport upper
func upper() int32 {
	pdk.OutputString(strings.ToUpper(pdk.InputString()))
	return 0
}

// greet answers the config's greeting and a count of its calls kept in a
// var: "GREETING, INPUT #N".
//
//go:wasmexport greet
func greet() int32 {
	greeting, ok := pdk.GetConfig("greeting")
	if !ok {
		greeting = "hello"
	}
	n := pdk.GetVarInt("count") + 1
	pdk.SetVarInt("count", n)
	pdk.OutputString(greeting + ", " + pdk.InputString() + " #" + strconv.Itoa(n))
	return 0
}

// fail reports an error.
//
//go:wasmexport fail
func fail() int32 {
	pdk.SetError(errors.New("no such order: " + pdk.InputString()))
	return 1
}

// status returns non-zero without a message.
//
//go:wasmexport status
func status() int32 { return 3 }

// logs writes a log line and answers "logged".
//
//go:wasmexport logs
func logs() int32 {
	pdk.Log(pdk.LogInfo, "hello from the plugin: "+pdk.InputString())
	pdk.OutputString("logged")
	return 0
}

// boom panics, which traps.
//
//go:wasmexport boom
func boom() int32 {
	panic("boom: " + pdk.InputString())
}

var sink int

// spin never returns.
//
//go:wasmexport spin
func spin() int32 {
	for i := 0; ; i++ {
		sink += i
	}
}

// fetch sends a request to the URL in its input and answers the status
// and the body.
//
//go:wasmexport fetch
func fetch() int32 {
	req := pdk.NewHTTPRequest(pdk.MethodGet, pdk.InputString())
	req.SetHeader("Accept", "text/plain")
	resp := req.Send()
	pdk.OutputString(strconv.Itoa(int(resp.Status())) + " " + string(resp.Body()))
	return 0
}

func main() {}
