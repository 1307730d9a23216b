package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/daemon"
)

// --max-value sets the largest workflow value, within its bounds.
func TestMaxValueFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
		err  string
	}{
		{nil, engine.DefaultMaxValue, ""},
		{[]string{"--max-value", "128MiB"}, 128 << 20, ""},
		{[]string{"--max-value", "512KiB"}, 512 << 10, ""},
		{[]string{"--max-value", "100KiB"}, 0, "--max-value \"100KiB\": want a size from 512 KiB to 256 MiB"},
		{[]string{"--max-value", "1GiB"}, 0, "want a size from 512 KiB to 256 MiB"},
		{[]string{"--max-value", "lots"}, 0, "want a size from"},
	} {
		fs := pflag.NewFlagSet("daemon", pflag.ContinueOnError)
		o := daemon.DefaultOptions()
		d := daemonFlags(fs, &o)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		err := d.finish(fs, &o, io.Discard)
		switch {
		case c.err == "" && (err != nil || o.MaxValue != c.want):
			t.Errorf("%v: %d, %v; want %d", c.args, o.MaxValue, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: %v; want %q", c.args, err, c.err)
		}
	}
}
