package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// A command's help, like kubectl's: what it does, how to call it, its
// positional arguments, examples, its subcommands, its own flags, then the
// client flags every client command shares.

// argsAnnotation holds a command's positional arguments for its help:
// one "NAME\thelp" per line.
const argsAnnotation = "sluice_args"

// argSpec is a positional argument.
type argSpec struct {
	name, help string
	// optional: [NAME]; many: NAME... (one or more). Either comes last.
	optional, many bool
}

func arg(name, help string) argSpec         { return argSpec{name: name, help: help} }
func optionalArg(name, help string) argSpec { return argSpec{name: name, help: help, optional: true} }
func manyArgs(name, help string) argSpec    { return argSpec{name: name, help: help, many: true} }

// positional returns the validator of a command's positional arguments;
// withArgs also documents them.
func positional(specs ...argSpec) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		required := 0
		for _, s := range specs {
			if !s.optional {
				required++
			}
		}
		many := len(specs) > 0 && specs[len(specs)-1].many
		usage := fmt.Sprintf("(usage: %s)", cmd.UseLine())
		switch {
		case len(args) < required:
			missing := make([]string, 0, len(specs))
			for _, s := range specs[len(args):] {
				if !s.optional {
					missing = append(missing, s.name)
				}
			}
			return usagef("%s: missing %s %s", path(cmd), strings.Join(missing, " "), usage)
		case !many && len(args) > len(specs):
			return usagef("%s: unexpected argument %q %s", path(cmd), args[len(specs)], usage)
		}
		return nil
	}
}

// withArgs sets a command's positional arguments: checked, and shown in
// its help.
func withArgs(cmd *cobra.Command, specs ...argSpec) *cobra.Command {
	cmd.Args = positional(specs...)
	lines := make([]string, len(specs))
	for i, s := range specs {
		lines[i] = s.name + "\t" + s.help
	}
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[argsAnnotation] = strings.Join(lines, "\n")
	return cmd
}

// helpFunc prints a command's help: its description, then its usage.
func helpFunc(cmd *cobra.Command, _ []string) {
	w := cmd.OutOrStdout()
	if !cmd.HasParent() {
		io.WriteString(w, overview)
		return
	}
	desc := strings.TrimSpace(cmd.Long)
	if desc == "" {
		desc = sentence(cmd.Short)
	}
	fmt.Fprintf(w, "%s\n\n%s", desc, usageText(cmd))
}

// sentence makes a short description a sentence: a capital, a full stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// usageText is a command's usage: how to call it, its arguments,
// examples, subcommands and flags.
func usageText(cmd *cobra.Command) string {
	var b strings.Builder
	b.WriteString("Usage:\n  " + cmd.UseLine() + "\n")
	if a := cmd.Annotations[argsAnnotation]; a != "" {
		b.WriteString("\nArguments:\n")
		var rows [][2]string
		for _, line := range strings.Split(a, "\n") {
			name, help, _ := strings.Cut(line, "\t")
			rows = append(rows, [2]string{name, help})
		}
		writeColumns(&b, rows)
	}
	if ex := strings.Trim(cmd.Example, "\n"); ex != "" {
		b.WriteString("\nExamples:\n" + ex + "\n")
	}
	if cmd.HasAvailableSubCommands() {
		b.WriteString("\nCommands:\n")
		var rows [][2]string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() || c.Name() == "help" {
				rows = append(rows, [2]string{c.Name(), c.Short})
			}
		}
		writeColumns(&b, rows)
	}
	own, shared := pflag.NewFlagSet("own", pflag.ContinueOnError), pflag.NewFlagSet("client", pflag.ContinueOnError)
	own.SortFlags, shared.SortFlags = false, false
	var last []*pflag.Flag // -o and -h, after the command's own
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		switch {
		case len(f.Annotations[flagGroupAnnotation]) > 0:
			shared.AddFlag(f)
		case f.Name == "output" || f.Name == "help":
			last = append(last, f)
		default:
			own.AddFlag(f)
		}
	})
	for _, f := range last {
		own.AddFlag(f)
	}
	if own.HasAvailableFlags() {
		b.WriteString("\nFlags:\n" + own.FlagUsages())
	}
	if shared.HasAvailableFlags() {
		b.WriteString("\nClient flags (anywhere on the line):\n" + shared.FlagUsages())
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\nRun \"sluice help %s COMMAND\" for a command's arguments, flags and examples.\n", path(cmd))
	}
	return b.String()
}

// writeColumns writes two columns, the first padded to the widest.
func writeColumns(b *strings.Builder, rows [][2]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(b, "  %-*s   %s\n", width, r[0], r[1])
	}
}
