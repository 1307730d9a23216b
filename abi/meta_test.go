package abi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Every metadata key sluice sets (a Meta constant of abi.go) is in the
// call metadata table of README.md, where guest authors look for it.
func TestREADMEListsEveryMetaKey(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "## Call metadata")
	end := strings.Index(string(readme), "## The wasi kind")
	if start < 0 || end < start {
		t.Fatal("README.md has no Call metadata section")
	}
	table := string(readme[start:end])
	keys := 0
	for _, file := range []string{"abi.go", "http.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		inspectMeta(t, f, table, &keys)
	}
	if keys < 25 {
		t.Fatalf("only %d Meta keys found in abi.go and http.go", keys)
	}
}

func inspectMeta(t *testing.T, f *ast.File, table string, keys *int) {
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Meta") || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.BasicLit)
		if !ok {
			return true
		}
		key, _ := strconv.Unquote(lit.Value)
		if key == MetaHTTPParamPrefix || key == MetaHTTPHeaderPrefix {
			key += "NAME"
		}
		*keys++
		if !strings.Contains(table, "`"+key+"`") {
			t.Errorf("%s (%q) is not in README.md's call metadata table", vs.Names[0].Name, key)
		}
		return true
	})
}
