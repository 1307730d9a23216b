package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// What the CLI prints. Much of it came from a guest or from whoever can
// publish to a topic: log lines, error messages, outputs, payloads. None of
// it may drive the operator's terminal (move the cursor, clear the screen,
// retitle the window, hide a line with a carriage return, reverse text with
// a bidi override), so every control character in it is printed visibly,
// as a Go escape (\x1b, \r, \u202e), wherever text is formatted for people:
// tables, log lines, one-line errors. Data (a function's output, a
// payload, a workflow's source) is printed as its exact bytes when stdout
// is a pipe or a file, and made visible the same way (keeping newlines and
// tabs) when it is a terminal. JSON escapes control characters itself; the
// few it leaves (DEL, C1 controls, bidi overrides) are escaped as \u00XX,
// which decodes to the same value.

// isControl reports whether r is a character that a terminal acts on
// rather than shows: C0 and C1 controls, DEL, and the Unicode bidi
// overrides and isolates.
func isControl(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// visible returns s on one line with every control character and invalid
// UTF-8 byte written as an escape.
func visible(s string) string { return makeVisible(s, false) }

// visibleText is visible for text of several lines: newlines and tabs
// stay.
func visibleText(s string) string { return makeVisible(s, true) }

func makeVisible(s string, lines bool) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case lines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case !isControl(r):
			b.WriteString(s[i : i+n])
		default:
			b.WriteString(escape(r))
		}
		i += n
	}
	return b.String()
}

func escape(r rune) string {
	switch r {
	case '\a':
		return `\a`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\v':
		return `\v`
	}
	if r < 0x80 {
		return fmt.Sprintf(`\x%02x`, r)
	}
	return fmt.Sprintf(`\u%04x`, r)
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// writeData writes data to stdout: the exact bytes for a pipe or a file,
// made visible for a terminal.
func (e *env) writeData(b []byte) error {
	if e.tty {
		_, err := io.WriteString(e.stdout, visibleText(string(b)))
		return err
	}
	_, err := e.stdout.Write(b)
	return err
}

// printJSON prints v as indented JSON: a listing or an object.
func printJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(jsonSafe(b.Bytes()))
	return err
}

// printNDJSON prints v as one line of compact JSON: one record of a
// stream (fn logs, topic tail), so that line tools read each whole.
func printNDJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(jsonSafe(b), '\n'))
	return err
}

// jsonSafe escapes the control characters encoding/json leaves in
// strings (DEL, C1, bidi overrides) as \uXXXX: the same JSON value, safe
// on a terminal. Outside strings JSON is ASCII, so every such rune is in
// a string.
func jsonSafe(b []byte) []byte {
	clean := true
	for _, c := range b {
		if c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if isControl(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// table prints rows under a header, aligned; every cell made visible.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = visible(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// fields prints "key: value" lines, keys padded to width, values made
// visible.
func fields(w io.Writer, width int, rows [][2]string) {
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s %s\n", width, r[0], visible(r[1]))
	}
}
