package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/app/scaffold"
)

func newCommands(e *env) []*cobra.Command {
	return []*cobra.Command{newFn(e)}
}

// newFn is `sluice new fn NAME --lang L`: a function's project, written
// from the language's templates.
func newFn(e *env) *cobra.Command {
	langs := scaffold.Languages()
	cmd := withArgs(&cobra.Command{
		Use:   "fn NAME --lang LANG [--http] [--dir DIR]",
		Short: "write a new function's project: handler, test, Makefile, README and SDK",
		Long: `Write the project of a new function into ./NAME (or --dir): a handler that
answers "hello, " and its input, its native test, a Makefile, a README and
a copy of the language's sluice SDK in sluice-sdk/. It builds outside this
repository, offline: make builds NAME.wasm, make test runs the test, and
sluice fn deploy NAME NAME.wasm deploys it. With --http the handler answers
HTTP requests (status, headers, body) behind an HTTP trigger.

A directory that holds files already is refused, unless --force: then the
project's files replace those of the same names, and sluice-sdk/ is
replaced as a whole (how to take a newer SDK).`,
		Example: `  # a Go function, then build, test and deploy it
  sluice new fn hello --lang go
  cd hello && make && make test && sluice fn deploy hello hello.wasm

  # a C function behind an HTTP route
  sluice new fn greet --lang c --http --dir ./greet-c`,
	}, arg("NAME", "the function's name: "+nameHelp))
	fs := cmd.Flags()
	lang := fs.String("lang", "", "the `language`: "+strings.Join(langs, ", "))
	http := fs.Bool("http", false, "the function answers HTTP requests: status, headers and body")
	dir := fs.String("dir", "", "the project's `directory` (default ./NAME)")
	force := fs.Bool("force", false, "write into a directory that holds files already")
	_ = cmd.RegisterFlagCompletionFunc("lang", cobra.FixedCompletions(langs, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagDirname("dir")
	cmd.ValidArgsFunction = cobra.NoFileCompletions
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, err := scaffold.Write(scaffold.Options{Name: args[0], Lang: *lang, HTTP: *http, Dir: *dir, Force: *force})
		var unknown *scaffold.UnknownLanguageError
		switch {
		case errors.As(err, &unknown):
			return usagef("--lang: %v", err)
		case errors.Is(err, scaffold.ErrName):
			return usagef("%v", err)
		case err != nil:
			return err
		}
		printProject(e, p, args[0], *lang, *http)
		return nil
	}
	return cmd
}

// printProject says what was written and what to run next.
func printProject(e *env, p *scaffold.Project, name, lang string, http bool) {
	kind := "function"
	if http {
		kind = "HTTP function"
	}
	fmt.Fprintf(e.stdout, "wrote the %s project of the %s %s in %s:\n", lang, kind, name, p.Dir)
	for _, f := range p.Files {
		fmt.Fprintf(e.stdout, "  %s\n", filepath.Join(p.Dir, filepath.FromSlash(f)))
	}
	if len(p.SDKFiles) > 0 {
		fmt.Fprintf(e.stdout, "  %s/ (sluice's %s SDK, %d files)\n", filepath.Join(p.Dir, scaffold.SDKDir), lang, len(p.SDKFiles))
	}
	fmt.Fprintf(e.stdout, "next:\n  cd %s\n  make              # builds %s.wasm\n  make test         # runs its test\n  sluice fn deploy %s %s.wasm\n",
		p.Dir, name, name, name)
	if http {
		fmt.Fprintf(e.stdout, "  sluice trigger create %s --fn %s --http-path /%s --method POST\n  curl -d Ada http://127.0.0.1:8080/fn/%s\n", name, name, name, name)
	} else {
		fmt.Fprintf(e.stdout, "  sluice fn invoke %s --data Ada\n", name)
	}
	fmt.Fprintf(e.stdout, "  sluice fn logs %s\n", name)
}
