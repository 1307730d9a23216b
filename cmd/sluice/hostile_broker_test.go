package main

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/nats-io/stan.go"

	"github.com/sluicehq/sluice/testutil"
)

// The broker as a hostile client meets it, and two daemons on one data
// dir, against the real binary.

// brokerURL returns the daemon's NATS URL, which its log shows redacted,
// with the credentials an operator finds in the data dir: what another
// application on the machine connects with.
func brokerURL(t testing.TB, data, shown string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "nats-password"))
	if errors.Is(err, os.ErrNotExist) {
		return shown // --nats: the daemon embeds no server
	}
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(shown)
	if err != nil {
		t.Fatalf("the ready line's nats=%q: %v", shown, err)
	}
	u.User = url.UserPassword("sluice", strings.TrimSpace(string(b)))
	return u.String()
}

// proc is a daemon process whose log a test may read while it runs.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   bytes.Buffer
	ready chan []string
	eof   chan struct{}
}

// launch starts the binary with args, without waiting for anything.
func launch(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), ready: make(chan []string, 1), eof: make(chan struct{})}
	p.cmd.Env = brokerEnv(args)
	dieWithTest(p.cmd)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", strings.Join(args, " "), p.logText())
		}
	})
	go func() {
		defer close(p.eof)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				p.ready <- m[1:]
			}
		}
	}()
	return p
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// waitReady waits for the ready line and returns the API's URL and the
// NATS URL it shows.
func (p *proc) waitReady(t *testing.T) (server, natsShown string) {
	t.Helper()
	select {
	case m := <-p.ready:
		return "http://" + m[0], m[1]
	case <-p.eof:
		t.Fatalf("the daemon ended before it was ready:\n%s", p.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon not ready after 60s")
	}
	return "", ""
}

// waitExit waits for the process to end and returns its exit code.
func (p *proc) waitExit(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { <-p.eof; done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatalf("still running after 60s:\n%s", p.logText())
	}
	return -1
}

// TestForgedBroker is the attack on an open broker: with the API behind
// a token, a client that reaches the NATS port without credentials, or
// with wrong ones, is refused (it cannot read sluice.catalog, where the
// functions' environments are, nor publish to it), and the daemon goes
// on serving. An application given the credentials still gets in.
func TestForgedBroker(t *testing.T) {
	t.Parallel()
	const token = "api-token-for-the-test"
	data := t.TempDir()
	// Listening on every address: authenticated, that is allowed.
	d := launch(t, "daemon", "--data", data, "--listen", "127.0.0.1:0", "--nats-listen", "0.0.0.0:0", "--token", token)
	server, shown := d.waitReady(t)
	p := &daemonProc{server: server, nats: shown}
	sluice := func(args ...string) string { return p.mustSluice(t, "", append(args, "--token", token)...) }
	sluice("fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"), "--env", "API_KEY=hunter2")
	sluice("trigger", "create", "jobs", "--fn", "echo", "--topic", "jobs", "--resp-topic", "done")

	u, err := url.Parse(shown)
	if err != nil {
		t.Fatal(err)
	}
	addr := u.Host
	bare := "nats://" + addr

	// The intruder: no credentials, a guessed password, a guessed token.
	for _, o := range [][]nats.Option{nil, {nats.UserInfo("sluice", "sluice")}, {nats.UserInfo("admin", "")}, {nats.Token("sluice")}} {
		nc, err := nats.Connect(bare, append(o, nats.NoReconnect(), nats.Timeout(5*time.Second))...)
		if !errors.Is(err, nats.ErrAuthorization) {
			if nc != nil {
				nc.Close()
			}
			t.Fatalf("NATS client %d without the credentials: %v, want %v", len(o), err, nats.ErrAuthorization)
		}
	}
	if sc, err := stan.Connect("sluice", "intruder-"+nuid.Next(), stan.NatsURL(bare)); err == nil {
		sc.Close()
		t.Fatal("a NATS Streaming client without credentials connected")
	}
	// By hand, as the protocol goes: subscribe to everything and publish
	// a forged catalog event. The server answers with an authorization
	// error and hangs up; nothing is delivered, nothing acknowledged.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	forged := `{"type":"FunctionDeployed","function":{"name":"evil"}}`
	conn.Write([]byte("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB > 1\r\nSUB _STAN.> 2\r\n" +
		"PUB _STAN.pub.sluice.sluice.catalog " + strconv.Itoa(len(forged)) + "\r\n" + forged + "\r\nPING\r\n"))
	var replies []string
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		replies = append(replies, sc.Text())
	}
	got := strings.Join(replies, " | ")
	if !strings.Contains(got, "-ERR 'Authorization Violation'") || strings.Contains(got, "PONG") || strings.Contains(got, "MSG ") {
		t.Fatalf("a raw client without credentials got: %s", got)
	}

	// The daemon goes on serving, with nothing forged in its catalog.
	if out := p.mustSluice(t, "", "fn", "invoke", "echo", "--data", "still serving", "--token", token); out != "still serving" {
		t.Fatalf("invoke after the attack: %q", out)
	}
	if out := sluice("fn", "list"); strings.Contains(out, "evil") {
		t.Fatalf("a forged function:\n%s", out)
	}
	resp, err := http.Get(server + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz after the attack: %v %v", resp, err)
	}
	resp.Body.Close()

	// An application with the credentials publishes and reads as before.
	pub := publishN(t, brokerURL(t, data, shown), "jobs", "job%d", 3)
	defer pub.Close()
	results, sub := countTopic(t, pub, "done")
	defer sub.Close()
	testutil.Eventually(t, 30*time.Second, "3 results for the application with the credentials", func() bool { return results.distinct() == 3 })

	// The log says where the password is, never what it is.
	password := strings.TrimPrefix(brokerURL(t, data, shown), "nats://sluice:")
	password = password[:strings.Index(password, "@")]
	log := d.logText()
	if strings.Contains(log, password) {
		t.Fatalf("the log shows the NATS password:\n%s", log)
	}
	if !strings.Contains(log, "password="+filepath.Join(data, "nats-password")) {
		t.Fatalf("the log does not say where the NATS password is:\n%s", log)
	}
	if !strings.Contains(log, "send the password in clear") {
		t.Fatalf("no warning about a public NATS listener without TLS:\n%s", log)
	}
	fi, err := os.Stat(filepath.Join(data, "nats-password"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the password file: %v %v, want -rw-------", fi, err)
	}
}

// TestTwoDaemonsOneDataDir: a second daemon on a data dir in use refuses
// to start, naming the dir and the pid of the first, which serves on;
// after the first is killed -9 the dir is free and its store whole.
func TestTwoDaemonsOneDataDir(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	a := startDaemon(t, data)
	a.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))

	b := launch(t, "daemon", "--data", data, "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0")
	if code := b.waitExit(t); code != 1 {
		t.Fatalf("second daemon on %s: exit %d, want 1\n%s", data, code, b.logText())
	}
	msg := b.logText()
	for _, s := range []string{data, "process " + strconv.Itoa(a.cmd.Process.Pid), "--data"} {
		if !strings.Contains(msg, s) {
			t.Fatalf("the second daemon's error does not say %q:\n%s", s, msg)
		}
	}
	if out := a.mustSluice(t, "", "fn", "invoke", "echo", "--data", "first"); out != "first" {
		t.Fatalf("the first daemon after the second was refused: %q", out)
	}

	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	c := startDaemon(t, data)
	if out := c.mustSluice(t, "", "fn", "invoke", "echo", "--data", "after kill -9"); out != "after kill -9" {
		t.Fatalf("after the first was killed: %q", out)
	}
}
