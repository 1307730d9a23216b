package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/testutil"
)

// example is what the comment at the top of an example spec promises: the
// command to try and what it prints, or the message it fails with.
type example struct {
	dir    string
	args   []string
	prints string
	fails  string
}

var (
	exampleRun = regexp.MustCompile(`^#\s+sluice (wf invoke .*)$`)
	exampleOut = regexp.MustCompile(`^#\s+(\S.*)$`)
)

// readExample reads the command and its promised result from a spec's
// comment: "#   sluice wf invoke ...", then "# prints:" or "# fails
// with:" and the line after it.
func readExample(t *testing.T, spec string) example {
	t.Helper()
	src, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	ex := example{dir: filepath.Base(filepath.Dir(spec))}
	lines := strings.Split(string(src), "\n")
	for i, l := range lines {
		if m := exampleRun.FindStringSubmatch(l); m != nil && ex.args == nil {
			ex.args = shellWords(t, m[1])
		}
		if i+1 >= len(lines) {
			continue
		}
		m := exampleOut.FindStringSubmatch(lines[i+1])
		switch {
		case m == nil:
		case l == "# prints:":
			ex.prints = m[1]
		case l == "# fails with:":
			ex.fails = m[1]
		}
	}
	if ex.args == nil || ex.prints == "" && ex.fails == "" {
		t.Fatalf("%s: the comment gives no `sluice wf invoke` line with `# prints:` or `# fails with:` after it", spec)
	}
	return ex
}

// shellWords splits a command line as a shell does for the quoting the
// examples use: words separated by spaces, single quotes keeping what
// they hold.
func shellWords(t *testing.T, s string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
			}
			inWord = false
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestWorkflowExamples applies every example under examples/workflows and
// runs the command its comment gives: it prints what the comment says, or
// fails with that message. The examples are the reference's runnable
// half (docs/workflows.md): they stay true.
func TestWorkflowExamples(t *testing.T) {
	t.Parallel()
	testutil.WasmPath(t, "echo-wat")
	testutil.WasmPath(t, "upper-go")
	specs, err := filepath.Glob(filepath.Join(testutil.Root(t), "examples", "workflows", "*", "spec.yaml"))
	if err != nil || len(specs) < 14 {
		t.Fatalf("examples: %v %v", specs, err)
	}
	// the http example calls the daemon's own API, which the examples
	// say listens on 127.0.0.1:8080: here it is another port, allowed
	addr := testutil.FreeAddr(t)
	p := startDaemon(t, t.TempDir(), "--listen", addr, "--allow-http", addr)
	for _, spec := range specs {
		ex := readExample(t, spec)
		t.Run(ex.dir, func(t *testing.T) {
			p.mustSluice(t, "", "apply", "-f", spec)
			args := slices.Clone(ex.args)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "127.0.0.1:8080", addr)
			}
			r := p.sluice(t, "", args...)
			switch {
			case ex.fails != "":
				if r.code != 1 || !strings.Contains(r.stderr, ex.fails) {
					t.Fatalf("sluice %s: want a failure saying %q, got exit %d, stdout %q, stderr %q", strings.Join(ex.args, " "), ex.fails, r.code, r.stdout, r.stderr)
				}
			case r.code != 0 || r.stdout != ex.prints:
				t.Fatalf("sluice %s: want %q, got exit %d, stdout %q, stderr %q", strings.Join(ex.args, " "), ex.prints, r.code, r.stdout, r.stderr)
			}
		})
	}
}
