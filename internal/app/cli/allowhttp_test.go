package cli

import (
	"io"
	"reflect"
	"testing"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/internal/app/daemon"
)

// --allow-http (or SLUICE_ALLOW_HTTP) lists the hosts the http built-in
// may call; none by default.
func TestAllowHTTPFlag(t *testing.T) {
	for _, c := range []struct {
		env  string
		args []string
		want []string
	}{
		{"", nil, nil},
		{"", []string{"--allow-http", "api.example.com,127.0.0.1:8080"}, []string{"api.example.com", "127.0.0.1:8080"}},
		{"", []string{"--allow-http", "a.example", "--allow-http", "*.b.example:443"}, []string{"a.example", "*.b.example:443"}},
		{"api.example.com,[::1]:9000", nil, []string{"api.example.com", "[::1]:9000"}},
		{"api.example.com", []string{"--allow-http", "other.example"}, []string{"other.example"}},
	} {
		t.Setenv("SLUICE_ALLOW_HTTP", c.env)
		fs := pflag.NewFlagSet("daemon", pflag.ContinueOnError)
		o := daemon.DefaultOptions()
		d := daemonFlags(fs, &o)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if err := d.finish(fs, &o, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(o.AllowHTTP, c.want) {
			t.Errorf("env %q, %v: %q, want %q", c.env, c.args, o.AllowHTTP, c.want)
		}
	}
}
