// Package scaffold writes the project of a new function (`sluice new fn`):
// a handler, its native test, a Makefile and a README, from the templates
// of its language, and a copy of that language's guest SDK.
//
// A language is a folder of templates/ (templates/go, templates/c, ...):
// every folder there is one, so that adding a language is adding a
// folder. Every file in it is a text/template rendered with Data; a file
// named *.tmpl loses the suffix when written (go.mod and .go files must be
// *.tmpl: the Go tools would read them as part of this module), and a file
// that renders to nothing but whitespace is not written, so that a file
// can exist only with or without HTTP. The SDK is the language's folder of
// guests.FS (guests/go, guests/c, ...), copied into sluice-sdk/; a
// language without one (wat) gets none.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"

	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/guests"
)

//go:embed all:templates
var templates embed.FS

// SDKDir is the folder of the project that holds the copy of the guest
// SDK; the templates refer to it by this relative path.
const SDKDir = "sluice-sdk"

// Data is what every template is rendered with.
type Data struct {
	// Name is the function's name, as fn deploy accepts it (hello-world).
	Name string
	// Ident is Name with '-' as '_' (hello_world): for crate and package
	// names.
	Ident string
	// HTTP: the function answers HTTP requests (--http).
	HTTP bool
}

// Options say what to write, and where.
type Options struct {
	Name string
	Lang string
	HTTP bool
	// Dir is the project's directory; "" is ./Name.
	Dir string
	// Force writes into a directory that holds files already: the
	// project's files replace those of the same names, and sluice-sdk/
	// is replaced as a whole (so that no file of an older SDK stays).
	Force bool
}

// Project is what Write wrote.
type Project struct {
	// Dir is the project's directory, as given (or ./Name).
	Dir string
	// Files are the project's own files, relative to Dir ("/"
	// separated), sorted; SDKFiles those of sluice-sdk/ (empty for a
	// language without an SDK).
	Files, SDKFiles []string
}

// Languages returns the languages that have templates, sorted.
func Languages() []string {
	entries, err := templates.ReadDir("templates")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	var langs []string
	for _, e := range entries {
		if e.IsDir() {
			langs = append(langs, e.Name())
		}
	}
	sort.Strings(langs)
	return langs
}

// Write renders the language's templates and copies its SDK into the
// project's directory. Everything is rendered before anything is
// written, so a template that fails leaves nothing behind.
func Write(o Options) (*Project, error) {
	if !fn.ValidName(o.Name) {
		if o.Name == "" {
			return nil, fmt.Errorf("%w: the function's name is missing", ErrName)
		}
		return nil, fmt.Errorf("%w %q: use %s", ErrName, o.Name, fn.NameRule)
	}
	known := Languages()
	if o.Lang == "" || !slices.Contains(known, o.Lang) {
		return nil, &UnknownLanguageError{Lang: o.Lang, Known: known}
	}
	dir := o.Dir
	if dir == "" {
		dir = o.Name
	}
	files, err := Render(o.Lang, Data{Name: o.Name, Ident: strings.ReplaceAll(o.Name, "-", "_"), HTTP: o.HTTP})
	if err != nil {
		return nil, err
	}
	sdk, err := SDK(o.Lang)
	if err != nil {
		return nil, err
	}
	if err := ready(dir, o.Force); err != nil {
		return nil, err
	}
	p := &Project{Dir: dir}
	if len(sdk) > 0 {
		if err := os.RemoveAll(filepath.Join(dir, SDKDir)); err != nil {
			return nil, fmt.Errorf("replace %s: %w", filepath.Join(dir, SDKDir), err)
		}
		for _, name := range sortedKeys(sdk) {
			if err := writeFile(dir, path.Join(SDKDir, name), sdk[name]); err != nil {
				return nil, err
			}
			p.SDKFiles = append(p.SDKFiles, path.Join(SDKDir, name))
		}
	}
	// the templates after the SDK: a template may add to sluice-sdk/
	// (the Go SDK's go.mod)
	for _, name := range sortedKeys(files) {
		if err := writeFile(dir, name, files[name]); err != nil {
			return nil, err
		}
		if strings.HasPrefix(name, SDKDir+"/") {
			p.SDKFiles = append(p.SDKFiles, name)
		} else {
			p.Files = append(p.Files, name)
		}
	}
	sort.Strings(p.SDKFiles)
	return p, nil
}

// Render renders a language's templates: the files a project gets, by
// their path in it ("/" separated), without the SDK's copy.
func Render(lang string, d Data) (map[string][]byte, error) {
	root := path.Join("templates", lang)
	if _, err := fs.Stat(templates, root); err != nil || !slices.Contains(Languages(), lang) {
		return nil, &UnknownLanguageError{Lang: lang, Known: Languages()}
	}
	sub, err := fs.Sub(templates, root)
	if err != nil {
		return nil, err
	}
	return render(sub, d)
}

// render renders every file of fsys with d.
func render(fsys fs.FS, d Data) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		t, err := template.New(p).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return fmt.Errorf("template %s: %w", p, err)
		}
		var out bytes.Buffer
		if err := t.Execute(&out, d); err != nil {
			return fmt.Errorf("template %s: %w", p, err)
		}
		if len(bytes.TrimSpace(out.Bytes())) == 0 {
			return nil // a file of the other variant (with or without HTTP)
		}
		files[strings.TrimSuffix(p, ".tmpl")] = out.Bytes()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// SDK returns the files of a language's guest SDK, by their path under
// sluice-sdk/; none for a language without one.
func SDK(lang string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(guests.FS, lang, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == lang {
			return fs.SkipAll // no SDK: WAT
		}
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(guests.FS, p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, lang+"/")] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the %s SDK: %w", lang, err)
	}
	return files, nil
}

// ready checks that dir can take the project: it does not exist, or it
// is an empty directory, or force is given.
func ready(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("project directory: %w", err)
	case len(entries) > 0 && !force:
		return fmt.Errorf("%s: %w (it holds %s): choose another --dir, or give --force to write the project's files over those of the same names",
			dir, ErrNotEmpty, entries[0].Name())
	}
	return nil
}

// writeFile writes one file of the project, making its folders.
func writeFile(dir, name string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func sortedKeys(m map[string][]byte) []string { return slices.Sorted(maps.Keys(m)) }
