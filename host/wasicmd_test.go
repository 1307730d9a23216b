package host

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/abi"
	"github.com/sluicehq/sluice/testutil"
)

// A WASI command from another toolchain (C with wasi-libc, Go's
// GOOS=wasip1) behaves under sluice exactly as under a plain WASI runtime
// given the same stdin, environment and argv[0], whatever metadata the
// call carries: the same stdout (its environment counted and listed, its
// arguments, stdin, clocks, randomness, no file to open) and the same exit
// code; its stderr goes to the logs.
func TestCommandAsPlainWASI(t *testing.T) {
	h, sink := newHost(t)
	// what a call through an HTTP trigger carries
	meta := map[string]string{
		abi.MetaTrigger: "web", abi.MetaHTTPMethod: "POST", abi.MetaHTTPPath: "/cmd",
		"http.header.content-type": "text/plain",
	}
	env := map[string]string{"REGION": "eu-west", "GREETING": "Bonjour", "EMPTY": ""}
	for _, tc := range []struct {
		name, guest, in string
		env             map[string]string
		exit            uint32
		stderr          string // a line the command writes to stderr
	}{
		{name: "c, env", guest: "wasicmd-c", in: "hello\nworld", env: env, stderr: "wasicmd: read 11 bytes, 3 variables"},
		{name: "c, no env", guest: "wasicmd-c", in: "", stderr: "wasicmd: read 0 bytes, 0 variables"},
		{name: "c, exit 7", guest: "wasicmd-c", in: "exit=7", env: env, exit: 7, stderr: "wasicmd: read 6 bytes, 3 variables"},
		{name: "go", guest: "hello-wasi", in: "Ada", env: env, stderr: "greeting Ada"},
		{name: "go, exit 3", guest: "hello-wasi", in: "", env: env, exit: 3, stderr: "nobody to greet: send a name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wasm := testutil.Wasm(t, tc.guest)
			plain := testutil.RunPlainWASI(t, wasm, "cmd", tc.env, tc.in)
			if plain.Exit != tc.exit || !strings.Contains(plain.Stderr, tc.stderr) {
				t.Fatalf("plain wazero: exit %d, stderr %q; want exit %d and %q", plain.Exit, plain.Stderr, tc.exit, tc.stderr)
			}

			f, err := h.Load(context.Background(), Spec{Name: "cmd", Version: 3, Env: tc.env}, wasm)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close(context.Background())
			id := "plain-" + strings.NewReplacer(" ", "", ",", "-").Replace(tc.name)
			res, err := f.Invoke(context.Background(), Call{ID: id, Input: []byte(tc.in), Meta: meta})
			var exit uint32
			if err != nil {
				exit = wantCallError(t, err, ErrExit, "exited with code").ExitCode
			}
			if exit != plain.Exit {
				t.Fatalf("exit code %d under sluice, %d under plain wazero (%v)", exit, plain.Exit, err)
			}
			if err == nil && string(res.Output) != plain.Stdout {
				t.Fatalf("stdout under sluice:\n%s\nunder plain wazero:\n%s", res.Output, plain.Stdout)
			}
			if logs := strings.Join(sink.messages(id), "\n"); !strings.Contains(logs, "stderr: "+tc.stderr) {
				t.Fatalf("logs %q do not have the command's stderr %q", logs, tc.stderr)
			}
		})
	}
	// what the C command printed, so that a broken guest cannot pass
	plain := testutil.RunPlainWASI(t, testutil.Wasm(t, "wasicmd-c"), "cmd", env, "hi")
	for _, line := range []string{"argc=1\nargv[0]=cmd\n", "envc=3\nenv=EMPTY\nenv=GREETING\nenv=REGION\n", "stdin=2:hi\n", "clocks=ok\n", "random=ok\n",
		"open /: refused\n", "open .: refused\n", "open /etc/passwd: refused\n"} {
		if !strings.Contains(plain.Stdout, line) {
			t.Fatalf("wasicmd-c printed %q, without %q", plain.Stdout, line)
		}
	}
}

// A command deployed with MetaEnv (fn deploy --meta-env) sees the call's
// metadata as SLUICE_* variables after its deployment's, in the order of
// their keys; without it, none; a reactor cannot ask for them.
func TestCommandMetaEnv(t *testing.T) {
	h, _ := newHost(t)
	meta := map[string]string{abi.MetaTrigger: "web", abi.MetaHTTPMethod: "POST"}
	env := map[string]string{"REGION": "eu-west"}
	lines := func(t *testing.T, spec Spec) string {
		t.Helper()
		f := load(t, h, "wasicmd-c", spec)
		defer f.Close(context.Background())
		res, err := f.Invoke(context.Background(), Call{ID: "inv-7", Input: []byte("x"), Meta: meta})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range strings.Split(string(res.Output), "\n") {
			if strings.HasPrefix(l, "envc=") || strings.HasPrefix(l, "env=") {
				names = append(names, l)
			}
		}
		return strings.Join(names, " ")
	}
	if got, want := lines(t, Spec{Name: "cmd", Version: 2, Env: env}), "envc=1 env=REGION"; got != want {
		t.Fatalf("without MetaEnv: %s, want %s", got, want)
	}
	want := "envc=6 env=REGION env=SLUICE_HTTP_METHOD env=SLUICE_TRIGGER env=SLUICE_FUNCTION env=SLUICE_VERSION env=SLUICE_INVOCATION"
	if got := lines(t, Spec{Name: "cmd", Version: 2, Env: env, MetaEnv: true}); got != want {
		t.Fatalf("with MetaEnv: %s, want %s", got, want)
	}
	f := load(t, h, "getenv-c", Spec{Name: "cmd", Version: 2, MetaEnv: true})
	for name, value := range map[string]string{"SLUICE_INVOCATION": "inv-8", "SLUICE_FUNCTION": "cmd", "SLUICE_VERSION": "2", "SLUICE_HTTP_METHOD": "POST"} {
		res, err := f.Invoke(context.Background(), Call{ID: "inv-8", Input: []byte(name), Meta: meta})
		if err != nil || string(res.Output) != value {
			t.Fatalf("%s = %q, %v; want %q", name, res.Output, err, value)
		}
	}

	_, err := h.Load(context.Background(), Spec{Name: "r", MetaEnv: true}, testutil.Wasm(t, "goguest"))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "--meta-env is for WASI commands") || !strings.Contains(err.Error(), "sluice.meta_get") {
		t.Fatalf("a reactor with MetaEnv: %v", err)
	}
}
