package scaffold

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sluicehq/sluice/guests"
)

// Every template renders, with and without --http, into a project that
// has the contract's files: a Makefile with the default target building
// NAME.wasm, a README that gives the build, test and deploy commands,
// and no template syntax left over.
func TestEveryTemplateRenders(t *testing.T) {
	langs := Languages()
	for _, want := range []string{"c", "go", "wat"} {
		if !slices.Contains(langs, want) {
			t.Fatalf("Languages() = %v: no %s", langs, want)
		}
	}
	for _, lang := range langs {
		for _, http := range []bool{false, true} {
			t.Run(lang+map[bool]string{false: "", true: "/http"}[http], func(t *testing.T) {
				files, err := Render(lang, Data{Name: "hello-there", Ident: "hello_there", HTTP: http})
				if err != nil {
					t.Fatal(err)
				}
				mk, ok := files["Makefile"]
				if !ok {
					t.Fatalf("no Makefile among %v", slices.Sorted(maps.Keys(files)))
				}
				if !strings.Contains(string(mk), "hello-there.wasm") {
					t.Fatalf("the Makefile does not build hello-there.wasm:\n%s", mk)
				}
				readme := string(files["README.md"])
				for _, want := range []string{"make ", "make test", "sluice fn deploy hello-there hello-there.wasm", "docs/guests.md"} {
					if !strings.Contains(readme, want) {
						t.Fatalf("README.md has no %q:\n%s", want, readme)
					}
				}
				if http != strings.Contains(readme, "--http-path /hello-there") {
					t.Fatalf("README.md (http %v) and its trigger:\n%s", http, readme)
				}
				for name, b := range files {
					if strings.HasSuffix(name, ".tmpl") {
						t.Errorf("%s kept its .tmpl suffix", name)
					}
					if strings.Contains(string(b), "{{") || strings.Contains(string(b), "<no value>") {
						t.Errorf("%s: template syntax left:\n%s", name, b)
					}
				}
			})
		}
	}
}

// The rules of rendering: the data reaches every file, .tmpl is dropped,
// a file that renders to whitespace only is left out (a file of one
// variant), folders are kept, and a missing field is an error rather than
// "<no value>".
func TestRenderRules(t *testing.T) {
	fsys := fstest.MapFS{
		"Makefile":        {Data: []byte("{{.Name}}.wasm: # {{.Ident}}\n")},
		"main.go.tmpl":    {Data: []byte("package main // {{.HTTP}}\n")},
		"http_only.txt":   {Data: []byte("{{if .HTTP}}web{{end}}\n  \n")},
		"sdk/go.mod.tmpl": {Data: []byte("module x\n")},
		"escaped.txt":     {Data: []byte(`{{"{{"}}x}}`)},
	}
	files, err := render(fsys, Data{Name: "a-b", Ident: "a_b"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Makefile": "a-b.wasm: # a_b\n", "main.go": "package main // false\n", "sdk/go.mod": "module x\n", "escaped.txt": "{{x}}"}
	if len(files) != len(want) {
		t.Fatalf("files %v, want %v", slices.Sorted(maps.Keys(files)), slices.Sorted(maps.Keys(want)))
	}
	for name, w := range want {
		if string(files[name]) != w {
			t.Fatalf("%s = %q, want %q", name, files[name], w)
		}
	}
	files, err = render(fsys, Data{Name: "a", HTTP: true})
	if err != nil || string(files["http_only.txt"]) != "web\n  \n" {
		t.Fatalf("with HTTP: %q, %v", files["http_only.txt"], err)
	}
	_, err = render(fstest.MapFS{"x": {Data: []byte("{{.Nope}}")}}, Data{})
	if err == nil || !strings.Contains(err.Error(), "template x") {
		t.Fatalf("a missing field: %v", err)
	}
}

// Rendering follows the contract: data in, .tmpl dropped, a file that
// renders to whitespace left out (the variant's files), and the SDK
// copied from guests.FS under sluice-sdk/.
func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	p, err := Write(Options{Name: "greet-me", Lang: "go", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Makefile", "README.md", "go.mod", "main.go", "main_test.go", ".gitignore"} {
		if !slices.Contains(p.Files, want) {
			t.Fatalf("files %v: no %s", p.Files, want)
		}
	}
	gomod := read(t, dir, "go.mod")
	if !strings.HasPrefix(gomod, "module greet-me\n") || !strings.Contains(gomod, "replace github.com/sluicehq/sluice/guests/go => ./sluice-sdk") {
		t.Fatalf("go.mod:\n%s", gomod)
	}
	if main := read(t, dir, "main.go"); strings.Contains(main, "sluicehttp") || !strings.Contains(main, `sluice.Fail("empty_input", "empty input")`) {
		t.Fatalf("main.go without --http:\n%s", main)
	}
	// the SDK: the files of guests/go, not its tests, and the template's go.mod
	for _, f := range []string{"doc.go", "guest_wasip1.go", "guest_other.go", "sluicehttp/sluicehttp.go", "sluicehttp/native.go", "go.mod"} {
		if !slices.Contains(p.SDKFiles, "sluice-sdk/"+f) {
			t.Fatalf("SDK files %v: no %s", p.SDKFiles, f)
		}
	}
	if src, want := read(t, dir, "sluice-sdk/doc.go"), mustRead(t, "go/doc.go"); src != want {
		t.Fatal("sluice-sdk/doc.go differs from guests/go/doc.go")
	}
	if _, err := os.Stat(filepath.Join(dir, "sluice-sdk", "sluice_test.go")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the SDK's tests were copied: %v", err)
	}
	if got := read(t, dir, "sluice-sdk/go.mod"); !strings.Contains(got, "module github.com/sluicehq/sluice/guests/go\n") {
		t.Fatalf("sluice-sdk/go.mod:\n%s", got)
	}

	// --http: another handler; wat has no SDK
	dir = filepath.Join(t.TempDir(), "web")
	if _, err := Write(Options{Name: "web", Lang: "go", HTTP: true, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if main := read(t, dir, "main.go"); !strings.Contains(main, "sluicehttp.Handle") {
		t.Fatalf("main.go with --http:\n%s", main)
	}
	dir = filepath.Join(t.TempDir(), "w")
	p, err = Write(Options{Name: "w", Lang: "wat", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.SDKFiles) != 0 {
		t.Fatalf("wat got an SDK: %v", p.SDKFiles)
	}
	if _, err := os.Stat(filepath.Join(dir, SDKDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("wat: %s/ exists: %v", SDKDir, err)
	}
}

// The default directory is ./NAME.
func TestWriteDefaultDir(t *testing.T) {
	t.Chdir(t.TempDir())
	p, err := Write(Options{Name: "hi", Lang: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Dir != "hi" {
		t.Fatalf("dir %q", p.Dir)
	}
	if h := read(t, "hi", "sluice-sdk/sluice.h"); h != mustRead(t, "c/sluice.h") {
		t.Fatal("sluice-sdk/sluice.h differs from guests/c/sluice.h")
	}
}

// A directory with files is refused without --force, and nothing is
// written; with it, the project's files replace those of the same names,
// other files stay, and sluice-sdk/ is replaced whole.
func TestRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte("mine\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, SDKDir), 0o755)
	os.WriteFile(filepath.Join(dir, SDKDir, "stale.h"), []byte("old\n"), 0o644)

	_, err := Write(Options{Name: "c1", Lang: "c", Dir: dir})
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err %v, want ErrNotEmpty naming the dir and --force", err)
	}
	if got := read(t, dir, "Makefile"); got != "mine\n" {
		t.Fatalf("the refused write changed the Makefile: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "handler.c")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused write wrote handler.c: %v", err)
	}

	if _, err := Write(Options{Name: "c1", Lang: "c", Dir: dir, Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, dir, "Makefile"); !strings.Contains(got, "c1.wasm") {
		t.Fatalf("--force kept the old Makefile: %q", got)
	}
	if got := read(t, dir, "notes.txt"); got != "keep\n" {
		t.Fatalf("--force changed another file: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, SDKDir, "stale.h")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("--force kept a file of the old SDK: %v", err)
	}

	// an empty directory needs no --force
	if _, err := Write(Options{Name: "c2", Lang: "c", Dir: t.TempDir()}); err != nil {
		t.Fatalf("an empty directory: %v", err)
	}
}

// Names are those fn deploy accepts; an unknown language lists the ones
// there are.
func TestMistakes(t *testing.T) {
	for _, tc := range []struct {
		name, lang string
		is         error
		want       string
	}{
		{"Hello", "go", ErrName, `"Hello": use 1 to 63 lowercase letters`},
		{"-x", "go", ErrName, `"-x"`},
		{"a_b", "go", ErrName, `"a_b"`},
		{strings.Repeat("a", 64), "go", ErrName, "1 to 63"},
		{"", "go", ErrName, "name is missing"},
		{"ok", "cobol", nil, `no template for language "cobol": use one of ` + strings.Join(Languages(), ", ")},
		{"ok", "", nil, "no language given: use one of " + strings.Join(Languages(), ", ")},
		{"ok", "../go", nil, `no template for language "../go"`},
	} {
		t.Run(tc.name+"/"+tc.lang, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "p")
			_, err := Write(Options{Name: tc.name, Lang: tc.lang, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			var unknown *UnknownLanguageError
			if tc.is != nil && !errors.Is(err, tc.is) || tc.is == nil && !errors.As(err, &unknown) {
				t.Fatalf("err %v (%T)", err, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a refused project wrote %s", dir)
			}
		})
	}
}

// guests.FS holds every source file of the Go SDK (a file added to
// guests/go and not to embed.go's patterns would be missing from every
// project) and none of its tests.
func TestGuestsFSHasTheWholeGoSDK(t *testing.T) {
	root := filepath.Join("..", "..", "..", "guests")
	err := filepath.WalkDir(filepath.Join(root, "go"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		_, err = fs.Stat(guests.FS, filepath.ToSlash(rel))
		if strings.HasSuffix(p, "_test.go") {
			if err == nil {
				t.Errorf("guests.FS holds the test %s", rel)
			}
		} else if err != nil {
			t.Errorf("guests.FS lacks %s: add it to guests/embed.go", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(guests.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
