// Package app_test checks the direction of the layout: the roof
// (internal/app: the composition root, HTTP API, CLI, metrics, migrate)
// imports the plumbing and the components, never the other way round,
// the components import only the leaves, and the leaves nothing of the
// project's own.
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

// rules: a folder of the project (relative to the root, "/" separated)
// and the project packages its non-test files may not import: an import
// is refused when it has one of the prefixes, under module. The floors,
// from the ground: the leaves (contracts and small tools, importing
// nothing of the project); the components (host, engine, triggers), on
// the leaves only; the plumbing in internal/ (brokers, catalog,
// registry, log streams); the roof, internal/app, that nothing imports.
var rules = []struct {
	dir    string
	forbid []string
	why    string
}{
	{"errcode", []string{""}, "a leaf imports nothing of the project"},
	{"fn", []string{""}, "a leaf imports nothing of the project"},
	{"abi", []string{""}, "a leaf imports nothing of the project"},
	{"logctx", []string{""}, "a leaf imports nothing of the project"},
	{"units", []string{""}, "a leaf imports nothing of the project"},
	{"schedule", []string{""}, "a leaf imports nothing of the project"},
	{"jsonquote", []string{""}, "a leaf imports nothing of the project"},
	{"testutil", []string{""}, "a leaf imports nothing of the project"},
	{"eventlog", []string{"host", "engine", "triggers", "internal/"}, "the event-log contract knows none of its users or implementations"},
	{"host", []string{"engine", "triggers", "internal/"}, "a component sits on the leaves only"},
	{"engine", []string{"host", "triggers", "internal/"}, "a component sits on the leaves only, never on a broker or the catalog"},
	{"triggers", []string{"host", "engine", "internal/"}, "a component sits on the leaves only, never on a broker or the catalog"},
	{"internal/egress", []string{"host", "engine", "triggers", "internal/"}, "the outbound HTTP client knows none of its users: the daemon adapts it to the engine"},
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
