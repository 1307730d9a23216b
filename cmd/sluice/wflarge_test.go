package main

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

const largeWorkflow = `apiVersion: sluice/v1
kind: Workflow
name: large
output: ${ tasks.b.output }
tasks:
  a:   { run: echo, inputs: "${ input }" }
  nap: { run: sleep, requires: [a], inputs: 2s }
  b:   { run: echo, requires: [nap], inputs: "${ tasks.a.output }" }
`

// TestKill9LargeValues sends a 1 MiB and a 32 MiB value through a
// workflow (input -> task -> task -> output), kills the daemon with
// SIGKILL between the tasks, restarts it, and checks that both outputs
// are the inputs, byte for byte.
func TestKill9LargeValues(t *testing.T) {
	// not in parallel: its nap must outlast storing 33 MiB twice
	data := t.TempDir()
	p := startDaemon(t, data)
	// a function takes 6 MiB by default: 32 MiB needs larger limits
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"),
		"--max-input", "40MiB", "--max-output", "40MiB", "--memory", "128MiB")
	def := filepath.Join(t.TempDir(), "large.yaml")
	if err := os.WriteFile(def, []byte(largeWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	p.mustSluice(t, "", "wf", "create", "large", "-f", def)

	sizes := map[string]int{"one-mib": 1 << 20, "thirty-two-mib": 32 << 20}
	files, sums := map[string]string{}, map[string]string{}
	for id, n := range sizes {
		b := make([]byte, n)
		rand.New(rand.NewSource(int64(n))).Read(b)
		files[id] = filepath.Join(t.TempDir(), id+".bin")
		if err := os.WriteFile(files[id], b, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		sums[id] = hex.EncodeToString(s[:])
		if got := strings.TrimSpace(p.mustSluice(t, "", "wf", "invoke", "large", "--raw", "--file", files[id], "--id", id)); got != id {
			t.Fatalf("invoke: %q", got)
		}
	}
	// Kill once both are past their first task and one at least is
	// between its tasks. (Both at once can wait for ever on a loaded
	// machine: the 1 MiB one may end its nap before the 32 MiB one is
	// stored and starts its own.)
	testutil.Eventually(t, 60*time.Second, "the invocations between their tasks", func() bool {
		napping := 0
		for id := range sizes {
			st := p.status(t, id)
			if st.Tasks["a"].Status != "succeeded" {
				return false
			}
			if st.Tasks["nap"].Status == "running" {
				napping++
			}
		}
		return napping > 0
	})
	// An invocation's status runs ahead of the log by the events in
	// flight: a's success could still be on its way to the server (it
	// was, once, on a loaded machine: a ran again after the restart).
	// Reading the events back waits for them to be stored.
	for id := range sizes {
		if _, succeeded := eventsOnce(t, p, id); !succeeded["a"] {
			t.Fatalf("%s: a succeeded by its status, but its success is not in the log", id)
		}
	}
	q := restartAfterKill9(t, p, data)
	for id, n := range sizes {
		// the same id: the invocation that ran, waited for, its output
		// printed as its exact bytes
		out := q.mustSluice(t, "", "wf", "invoke", "large", "--raw", "--file", files[id], "--id", id, "--wait")
		s := sha256.Sum256([]byte(out))
		if len(out) != n || hex.EncodeToString(s[:]) != sums[id] {
			t.Fatalf("%s: output of %d bytes, sha256 %x; want %d bytes, sha256 %s", id, len(out), s, n, sums[id])
		}
		st := q.status(t, id)
		if st.Status != "succeeded" || st.Tasks["a"].Attempts != 1 {
			t.Fatalf("%s: %s, a ran %d times", id, st.Status, st.Tasks["a"].Attempts)
		}
	}
}
