// Package app_test checks the direction of the layout: the roof
// (internal/app: the composition root, HTTP API, CLI, metrics, migrate)
// imports the plumbing and the components, never the other way round,
// and the leaf contracts import nothing of the project's own.
package app_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sluicehq/sluice"

// brokers: the implementations of the contract and what they sit on.
var brokers = []string{"internal/broker", "internal/natslog", "internal/jslog"}

// rules: a folder of the project (relative to the root, "/" separated)
// and the project packages its non-test files may not import: an import
// is refused when it has one of the prefixes, under module. Small leaves
// of internal/ (units, logctx, schedule, testutil) are open to all.
var rules = []struct {
	dir    string
	forbid []string
	why    string
}{
	{"errcode", []string{""}, "a leaf contract imports nothing of the project"},
	{"fn", []string{""}, "a leaf contract imports nothing of the project"},
	{"abi", []string{""}, "a leaf contract imports nothing of the project"},
	{"eventlog", append([]string{"host", "engine", "triggers", "internal/app", "internal/catalog", "internal/registry"}, brokers...), "the event-log contract knows none of its users or implementations"},
	{"host", append([]string{"engine", "triggers", "internal/app", "internal/catalog", "internal/registry"}, brokers...), "the host sits on the contracts"},
	{"engine", append([]string{"host", "triggers", "internal/app", "internal/registry"}, brokers...), "the engine sits on the contracts (eventlog, fn), never on a broker"},
	{"triggers", append([]string{"host", "engine", "internal/app", "internal/catalog", "internal/registry"}, brokers...), "the triggers sit on the contracts (eventlog, fn), never on a broker"},
	{"internal", []string{"internal/app"}, "the plumbing never imports the roof"},
	{"guests", []string{""}, "the guest SDKs are compiled into guests"},
}

func TestImportsRunDown(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	for _, r := range rules {
		err := filepath.WalkDir(filepath.Join(root, r.dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if d.Name() == "testdata" || rel == "internal/app" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			own := module + "/" + r.dir
			for _, im := range f.Imports {
				p, _ := strconv.Unquote(im.Path.Value)
				if !strings.HasPrefix(p, module+"/") || p == own || strings.HasPrefix(p, own+"/") && r.dir != "internal" {
					continue
				}
				for _, f := range r.forbid {
					if strings.HasPrefix(p, module+"/"+f) {
						t.Errorf("%s imports %s: %s", rel, p, r.why)
					}
				}
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: the walk missed the tree", checked)
	}
}
