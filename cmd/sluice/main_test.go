package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// The tests in this file run the real binary, as a user does: the daemon as
// a process they can kill -9, and the CLI.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sluice")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build sluice: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type daemonProc struct {
	cmd    *exec.Cmd
	server string
	nats   string
	node   string // the workflow engine's node id
	broker string // the broker it says it runs on
	log    *bytes.Buffer
	// token, if set, is the API's token: sluice gives it to the CLI in
	// SLUICE_TOKEN.
	token string
}

var readyLine = regexp.MustCompile(`msg="sluice daemon ready" listen=(\S+) nats=(\S+) daemon=\S+ node=(\S+)(?: broker=(\S+))?`)

// startDaemon runs `sluice daemon` on free ports with the data dir and
// waits for it to be ready.
func startDaemon(t testing.TB, data string, extra ...string) *daemonProc {
	t.Helper()
	p := launchDaemon(t, append([]string{"daemon", "--data", data, "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, extra...)...)
	if !slices.Contains(extra, "--broker") && p.broker != testBroker() {
		t.Fatalf("the daemon runs on %q, not on %s (SLUICE_TEST_BROKER)", p.broker, testBroker())
	}
	p.nats = brokerURL(t, data, p.nats) // the log shows it redacted
	return p
}

// launchDaemon runs the binary with args and waits for the daemon to say
// it is ready.
func launchDaemon(t testing.TB, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = brokerEnv(args)
	dieWithTest(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, log: &bytes.Buffer{}}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("daemon log:\n%s", p.log)
		}
	})
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.log.WriteString(line + "\n")
			if m := readyLine.FindStringSubmatch(line); m != nil {
				ready <- m[1:]
			}
		}
	}()
	select {
	case addr := <-ready:
		p.server, p.nats, p.node, p.broker = "http://"+addr[0], addr[1], addr[2], addr[3]
	case <-time.After(60 * time.Second):
		t.Fatalf("daemon not ready after 60s")
	}
	return p
}

// restartAfterKill9 kills the daemon with SIGKILL, as a crash does, and
// starts another on its data dir.
func restartAfterKill9(t testing.TB, p *daemonProc, data string, extra ...string) *daemonProc {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	return startDaemon(t, data, extra...)
}

type result struct {
	stdout, stderr string
	code           int
}

// sluice runs the CLI against the daemon.
func (p *daemonProc) sluice(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "SLUICE_SERVER="+p.server)
	if p.token != "" {
		cmd.Env = append(cmd.Env, "SLUICE_TOKEN="+p.token)
	}
	return runCmd(t, cmd, stdin)
}

// runCmd runs cmd with stdin and returns what it printed and its exit
// code; a command that could not start fails the test.
func runCmd(t testing.TB, cmd *exec.Cmd, stdin string) result {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func (p *daemonProc) mustSluice(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := p.sluice(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("sluice %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func TestCLI(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	hello := testutil.WasmPath(t, "hello-wasi")
	if out := p.mustSluice(t, "", "fn", "deploy", "hello", hello, "--env", "GREETING=Hi"); !strings.HasPrefix(out, "deployed hello version 1 (wasi") {
		t.Fatalf("deploy said %q", out)
	}
	// The output, and only it, on stdout, from --data, --file and stdin.
	if r := p.sluice(t, "", "fn", "invoke", "hello", "--data", "Ada"); r.stdout != "Hi, Ada!\n" || r.stderr != "" || r.code != 0 {
		t.Fatalf("invoke --data: %+v", r)
	}
	if r := p.sluice(t, "Grace", "fn", "invoke", "hello"); r.stdout != "Hi, Grace!\n" {
		t.Fatalf("invoke from stdin: %+v", r)
	}
	in := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(in, []byte("Linus"), 0o644)
	if r := p.sluice(t, "", "fn", "invoke", "hello", "--file", in); r.stdout != "Hi, Linus!\n" {
		t.Fatalf("invoke --file: %+v", r)
	}
	// A failure: exit 1, nothing on stdout, one line on stderr with the cause.
	r := p.sluice(t, "", "fn", "invoke", "hello", "--data", "")
	if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
		!strings.Contains(r.stderr, `function "hello" exited with code 3: nobody to greet: send a name`) {
		t.Fatalf("failed invoke: %+v", r)
	}
	r = p.sluice(t, "", "fn", "invoke", "missing")
	if r.code != 1 || !strings.Contains(r.stderr, `no function "missing"`) {
		t.Fatalf("missing function: %+v", r)
	}
	// Usage errors: exit 2.
	for _, args := range [][]string{{"fn", "invoke"}, {"fn", "frobnicate"}, {"nonsense"}, {"fn", "deploy", "x"}} {
		if r := p.sluice(t, "", args...); r.code != 2 || !strings.HasPrefix(r.stderr, "sluice: ") {
			t.Fatalf("sluice %v: %+v", args, r)
		}
	}
	out := p.mustSluice(t, "", "fn", "list")
	if !strings.Contains(out, "hello") || !strings.Contains(out, "wasi") {
		t.Fatalf("fn list:\n%s", out)
	}
	if out := p.mustSluice(t, "", "fn", "get", "hello", "-o", "json"); !strings.Contains(out, `"GREETING": "********"`) { // env values are masked
		t.Fatalf("fn get -o json:\n%s", out)
	}
	if out := p.mustSluice(t, "", "fn", "get", "hello", "--show-env", "-o", "json"); !strings.Contains(out, `"GREETING": "Hi"`) {
		t.Fatalf("fn get --show-env -o json:\n%s", out)
	}
	p.mustSluice(t, "", "trigger", "create", "hi", "--fn", "hello", "--http-path", "/hi", "--method", "post")
	if out := p.mustSluice(t, "", "trigger", "list"); !strings.Contains(out, "POST /fn/hi") {
		t.Fatalf("trigger list:\n%s", out)
	}
	resp, err := http.Post(p.server+"/fn/hi", "text/plain", strings.NewReader("HTTP"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "Hi, HTTP!\n" {
		t.Fatalf("HTTP trigger: %d %q", resp.StatusCode, body)
	}
	var logs string
	testutil.Eventually(t, 10*time.Second, "the logs", func() bool {
		logs = p.mustSluice(t, "", "fn", "logs", "hello")
		return strings.Count(logs, "greeting") == 4
	})
	if !strings.Contains(logs, "stderr greeting Ada") {
		t.Fatalf("fn logs:\n%s", logs)
	}

	// topics and a message-queue trigger, from the command line
	out = p.mustSluice(t, "", "trigger", "create", "greet", "--fn", "hello", "--topic", "names", "--resp-topic", "greetings")
	if !strings.Contains(out, "topic names, results to greetings") {
		t.Fatalf("trigger create --topic: %q", out)
	}
	p.mustSluice(t, "", "topic", "publish", "names", "--data", "Ada")
	p.mustSluice(t, "Grace", "topic", "publish", "names")
	if out := p.mustSluice(t, "", "topic", "tail", "greetings", "--from-start", "--count", "2", "--timeout", "20s"); out != "Hi, Ada!\n\nHi, Grace!\n\n" {
		t.Fatalf("topic tail: %q", out)
	}
	r = p.sluice(t, "", "topic", "tail", "greetings", "--count", "1", "--timeout", "300ms")
	if r.code != 1 || !strings.Contains(r.stderr, "got 0 of 1 messages before the timeout") {
		t.Fatalf("topic tail timing out: %+v", r)
	}
	r = p.sluice(t, "", "trigger", "create", "loop", "--fn", "hello", "--topic", "names", "--resp-topic", "names")
	if r.code != 1 || !strings.Contains(r.stderr, "forever") {
		t.Fatalf("a trigger feeding itself: %+v", r)
	}
	r = p.sluice(t, "", "topic", "publish", "sluice.catalog", "--data", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "sluice's own") {
		t.Fatalf("publishing to sluice's channels: %+v", r)
	}
	if out := p.mustSluice(t, "", "topic", "tail", "sluice.catalog", "--from-start", "--count", "1", "--timeout", "5s"); !strings.Contains(out, `"type":"Sync"`) {
		t.Fatalf("tail of the catalog: %q", out)
	}
}

// TestKill9LosesNothing kills the daemon process with SIGKILL right after
// operations returned, restarts it on the same data dir and checks that
// everything is there and works.
func TestKill9LosesNothing(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startDaemon(t, data)
	p.mustSluice(t, "", "fn", "deploy", "upper", testutil.WasmPath(t, "upper-go"))
	p.mustSluice(t, "", "fn", "deploy", "wc", testutil.WasmPath(t, "wordcount-c"), "--memory", "2MiB")
	p.mustSluice(t, "", "trigger", "create", "up", "--fn", "upper", "--http-path", "/up")
	p.mustSluice(t, "", "fn", "deploy", "upper", testutil.WasmPath(t, "upper-go"), "--timeout", "5s")
	p.mustSluice(t, "", "fn", "deploy", "gone", testutil.WasmPath(t, "echo-wat"))
	p.mustSluice(t, "", "fn", "delete", "gone")
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()

	q := startDaemon(t, data)
	if out := q.mustSluice(t, "", "fn", "invoke", "upper", "--data", "back"); out != "BACK" {
		t.Fatalf("after kill -9: %q", out)
	}
	if out := q.mustSluice(t, "", "fn", "invoke", "wc", "--data", "one two"); out != `{"bytes":7,"words":2,"lines":1}` {
		t.Fatalf("after kill -9: %q", out)
	}
	out := q.mustSluice(t, "", "fn", "get", "upper")
	if !strings.Contains(out, "version:      2") || !strings.Contains(out, "timeout:      5s") {
		t.Fatalf("fn get after kill -9:\n%s", out)
	}
	if r := q.sluice(t, "", "fn", "get", "gone"); r.code != 1 {
		t.Fatalf("deleted function is back: %+v", r)
	}
	resp, err := http.Post(q.server+"/fn/up", "text/plain", strings.NewReader("trigger"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "TRIGGER" {
		t.Fatalf("trigger after kill -9: %d %q", resp.StatusCode, body)
	}
}

// TestSIGTERMFinishesCalls sends SIGTERM while calls run: they complete,
// then the daemon exits 0.
func TestSIGTERMFinishesCalls(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, t.TempDir())
	p.mustSluice(t, "", "fn", "deploy", "slow", testutil.WasmPath(t, "goguest"))
	p.mustSluice(t, "", "fn", "invoke", "slow", "--data", "nap:0")
	done := make(chan result, 1)
	go func() { done <- p.sluice(t, "", "fn", "invoke", "slow", "--data", "nap:1000") }()
	time.Sleep(300 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	r := <-done
	if r.code != 0 || r.stdout != "version 1" {
		t.Fatalf("call in flight at SIGTERM: %+v", r)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit after SIGTERM: %v", err)
	}
}

// TestKill9MidStreamLosesNoMessage kills the daemon with SIGKILL while a
// queue trigger is working through thousands of messages, restarts it on
// the same data dir, and counts: every message gets its result (duplicates
// allowed: at least once).
func TestKill9MidStreamLosesNoMessage(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startDaemon(t, data)
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"))
	p.mustSluice(t, "", "trigger", "create", "q", "--fn", "echo", "--topic", "in", "--resp-topic", "out", "--ack-wait", "2s", "--max-inflight", "64")

	const n = 5000
	pub := publishN(t, p.nats, "in", "m%05d", n)
	// kill -9 in the middle: some results are out, not all
	seen, sub := countTopic(t, pub, "out")
	testutil.Eventually(t, 60*time.Second, "the stream to be under way", func() bool { return seen.distinct() >= n/10 })
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	sub.Close()
	pub.Close()
	before := seen.distinct()
	if before >= n {
		t.Fatalf("all %d results were out before the kill: the test did not kill mid-stream", n)
	}

	q := startDaemon(t, data)
	seen, sub = countTopic(t, connectLog(t, testBroker(), q.nats, 1), "out")
	defer sub.Close()
	testutil.Eventually(t, 120*time.Second, "a result for every message", func() bool { return seen.distinct() == n })
	for i := 0; i < n; i++ {
		if seen.count(fmt.Sprintf("m%05d", i)) == 0 {
			t.Fatalf("message m%05d has no result", i)
		}
	}
	t.Logf("%d messages: %d results before the kill, %d results in all after the restart (%d duplicates)", n, before, seen.all(), seen.all()-n)
}
