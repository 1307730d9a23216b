// hello is a WASI command: it greets whoever is named on stdin. The greeting
// comes from the GREETING environment variable (set with
// `sluice fn deploy ... --env GREETING=Bonjour`). It logs to stderr, and
// exits with code 3 when stdin is empty.
//
//	GOOS=wasip1 GOARCH=wasm go build -o hello.wasm .
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read stdin:", err)
		os.Exit(1)
	}
	name := strings.TrimSpace(string(in))
	if name == "" {
		fmt.Fprintln(os.Stderr, "nobody to greet: send a name")
		os.Exit(3)
	}
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "Hello"
	}
	// the call's metadata is in SLUICE_* variables only if the function
	// was deployed with --meta-env
	if id := os.Getenv("SLUICE_INVOCATION"); id != "" {
		fmt.Fprintf(os.Stderr, "greeting %s (invocation %s)\n", name, id)
	} else {
		fmt.Fprintf(os.Stderr, "greeting %s\n", name)
	}
	fmt.Printf("%s, %s!\n", greeting, name)
}
