package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// The process-per-call baseline: a native program that copies stdin to
// stdout, like the echo guests (examples/echo-wat, host/testdata/echo-c),
// built from source on the machine and started once per call with the
// same input. It is what a platform that runs a process (or a container,
// which adds to it) per call pays at best.
const (
	nativeEchoGo = `// echo copies stdin to stdout: the process-per-call baseline of sluice bench.
package main

import (
	"io"
	"os"
)

func main() {
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		os.Exit(1)
	}
}
`
	nativeEchoC = `/* echo copies stdin to stdout: the process-per-call baseline of sluice bench. */
#include <unistd.h>

int main(void) {
	static char buf[1 << 16];
	ssize_t n;
	while ((n = read(0, buf, sizeof buf)) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(1, buf + off, (size_t)(n - off));
			if (w < 0) return 1;
			off += w;
		}
	}
	return n < 0;
}
`
)

// ProcessOptions configure Process.
type ProcessOptions struct {
	// Samples per figure (DefaultSamples if 0) and each call's input
	// (DefaultInput if nil).
	Samples int
	Input   []byte
	// Progress, if set, is told how far the run is and what runs.
	Progress func(done, total int, what string)
}

// ProcessResult is the process-per-call baseline for one native build.
type ProcessResult struct {
	// Name is how reports name the row, e.g. "process (fork/exec native echo, C)".
	Name string
	// Lang is the language the native echo was built from: "C" or "Go".
	Lang string
	// Call is the distribution of fork, exec, the copy and wait, per call.
	Call Summary
}

// processSteps is Progress's total for one native echo: build, warm-up,
// the rounds.
const processSteps = 2 + rounds

// Process builds a native echo with each toolchain it finds (cc for C, go
// for Go) in a temporary directory and times running it once per call.
// skipped says why a toolchain was not used.
func Process(ctx context.Context, o ProcessOptions) (results []ProcessResult, skipped []string, err error) {
	if o.Samples == 0 {
		o.Samples = DefaultSamples
	}
	if o.Input == nil {
		o.Input = DefaultInput
	}
	dir, err := os.MkdirTemp("", "sluice-bench-native-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	builds := []struct {
		lang  string
		build func(dir string) (string, error)
	}{
		{"C", buildNativeC},
		{"Go", buildNativeGo},
	}
	for i, b := range builds {
		step := 0
		progress := func(what string) {
			if o.Progress != nil {
				o.Progress(i*processSteps+step, len(builds)*processSteps, what)
				step++
			}
		}
		progress("build native echo (" + b.lang + ")")
		bin, err := b.build(filepath.Join(dir, strings.ToLower(b.lang)))
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", b.lang, err))
			continue
		}
		r, err := timeProcess(ctx, bin, o, func() { progress("fork/exec native echo (" + b.lang + ")") })
		if err != nil {
			return nil, nil, fmt.Errorf("native echo (%s): %w", b.lang, err)
		}
		r.Lang, r.Name = b.lang, "process (fork/exec native echo, "+b.lang+")"
		results = append(results, r)
	}
	return results, skipped, nil
}

func timeProcess(ctx context.Context, bin string, o ProcessOptions, step func()) (ProcessResult, error) {
	var out bytes.Buffer
	run := func() error {
		out.Reset()
		cmd := exec.Command(bin)
		cmd.Stdin, cmd.Stdout = bytes.NewReader(o.Input), &out
		if err := cmd.Run(); err != nil {
			return err
		}
		if !bytes.Equal(out.Bytes(), o.Input) {
			return fmt.Errorf("the native echo's output is not its input (%d bytes for %d)", out.Len(), len(o.Input))
		}
		return nil
	}
	step()
	if _, err := warmUp(ctx, run, max(10, o.Samples/10), 100*time.Millisecond); err != nil {
		return ProcessResult{}, err
	}
	runtime.GC()
	samples := make([]time.Duration, 0, o.Samples)
	for r := 0; r < rounds; r++ {
		if err := ctx.Err(); err != nil {
			return ProcessResult{}, err
		}
		var err error
		if samples, err = sampleInto(samples, run, o.Samples/rounds+boolInt(r < o.Samples%rounds), 1); err != nil {
			return ProcessResult{}, err
		}
		step()
	}
	return ProcessResult{Call: Summarize(samples)}, nil
}

func buildNativeC(dir string) (string, error) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		return "", fmt.Errorf("no C compiler (cc) in PATH")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src, bin := filepath.Join(dir, "echo.c"), filepath.Join(dir, "echo")
	if err := os.WriteFile(src, []byte(nativeEchoC), 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command(cc, "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cc: %v: %s", err, oneLine(string(out)))
	}
	return bin, nil
}

func buildNativeGo(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no Go toolchain (go) in PATH")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{"go.mod": "module echo\n\ngo 1.21\n", "main.go": nativeEchoGo}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "echo")
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = dir
	// a native build for this machine, whatever the caller's environment
	// says about targets, workspaces or vendoring
	cmd.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off", "GO111MODULE=on")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, oneLine(string(out)))
	}
	return bin, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
