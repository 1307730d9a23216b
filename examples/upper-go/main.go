// upper is a Go reactor: it returns its input in upper case, logs how much
// it handled, and fails on an empty input.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
package main

import (
	"bytes"
	"errors"

	sluice "github.com/sluicehq/sluice/guests/go"
)

func init() {
	sluice.Handle(func(in []byte) ([]byte, error) {
		if len(in) == 0 {
			return nil, errors.New("empty input: send some text")
		}
		sluice.Logf(sluice.Info, "upper-casing %d bytes", len(in))
		return bytes.ToUpper(in), nil
	})
}

func main() {}
