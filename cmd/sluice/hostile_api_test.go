package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/testutil"
)

// The API as a careless or hostile client meets it, against the real
// binary: slow bodies, too many connections, too many bodies held at once,
// deletes of what is in use, secrets in listings and logs, changes without
// the module, and reads of large histories.

// loggedDaemon runs `sluice daemon` with its log in a file (read it with
// daemonLog once the daemon has stopped) and waits until it is ready.
func loggedDaemon(t *testing.T, extra ...string) (*daemonProc, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	args := append([]string{"daemon", "--data", t.TempDir(), "--listen", addr, "--nats-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(binary, args...)
	dieWithTest(cmd)
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, server: "http://" + addr, log: &bytes.Buffer{}}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("daemon log:\n%s", b)
		}
	})
	testutil.Eventually(t, 60*time.Second, "the daemon to be ready", func() bool {
		resp, err := http.Get(p.server + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p, logPath
}

// stop ends the daemon with SIGTERM and returns its log.
func stopLogged(t *testing.T, p *daemonProc, logPath string) string {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// request is one HTTP request to the daemon; it answers the status, the
// body and the headers.
func request(t *testing.T, p *daemonProc, method, path string, body io.Reader) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, p.server+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// errorBody is the API's error body.
type errorBody struct {
	Error      string `json:"error"`
	Code       string `json:"code"`
	Dependents []struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"dependents"`
}

func decodeError(t *testing.T, body string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code == "" {
		t.Fatalf("not an error body: %q", body)
	}
	return e
}

// rawRequest opens a connection and sends a request's header and the
// first bytes of its body.
func rawRequest(t *testing.T, p *daemonProc, head string, body []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(p.server, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHostileAPI(t *testing.T) {
	t.Parallel()
	secret := "s3cr3t-" + nuid.Next()
	p, logPath := loggedDaemon(t, "--log-level", "debug")
	limits := api.DefaultLimits() // the daemon's: it has this process's descriptor limit
	p.mustSluice(t, "", "fn", "deploy", "echo", testutil.WasmPath(t, "echo-wat"), "--max-input", "8MiB")

	// A body that trickles in: started now, looked at last. Its start is
	// taken before the request is sent: the daemon's body timeout starts
	// when it reads the headers, which may be before rawRequest returns
	// (a cut measured from after it came 5 ms "early" in CI).
	slowStart := time.Now()
	slow := rawRequest(t, p, "POST /v1/functions/echo/invoke HTTP/1.1\r\nHost: sluice\r\nContent-Length: 1000000\r\n\r\n", []byte("0123456789"))

	t.Run("env values are secrets", func(t *testing.T) {
		p.mustSluice(t, "", "fn", "deploy", "hello", testutil.WasmPath(t, "hello-wasi"), "--env", "GREETING="+secret, "--env", "LANG=fr")
		if out := p.mustSluice(t, "", "fn", "invoke", "hello", "--data", "Ada"); out != secret+", Ada!\n" {
			t.Fatalf("the function does not see its env: %q", out)
		}
		for _, args := range [][]string{{"fn", "list", "-o", "json"}, {"fn", "get", "hello", "-o", "json"}, {"fn", "get", "hello"},
			{"topic", "tail", "sluice.catalog", "--from-start", "--count", "3", "--timeout", "10s"}} {
			out := p.mustSluice(t, "", args...)
			if strings.Contains(out, secret) || !strings.Contains(out, "GREETING") {
				t.Fatalf("sluice %s shows the env value, or not its name:\n%s", strings.Join(args, " "), out)
			}
		}
		var v api.FunctionView
		status, body, _ := request(t, p, "GET", "/v1/functions/hello?reveal=env", nil)
		if status != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Env["GREETING"] != secret || v.Env["LANG"] != "fr" {
			t.Fatalf("reveal=env: %d %s", status, body)
		}
		status, body, _ = request(t, p, "PUT", "/v1/functions/bad?env=K=a%00"+secret, bytes.NewReader(testutil.Wasm(t, "echo-wat")))
		if e := decodeError(t, body); status != 400 || !strings.Contains(e.Error, "NUL") || strings.Contains(body, secret) {
			t.Fatalf("an env value with a NUL: %d %s", status, body)
		}
	})

	t.Run("PATCH changes the configuration, not the module", func(t *testing.T) {
		before := p.mustSluice(t, "", "fn", "get", "hello", "-o", "json")
		var v1, v2 api.FunctionView
		json.Unmarshal([]byte(before), &v1)
		status, body, _ := request(t, p, "PATCH", "/v1/functions/hello?timeout=5s&concurrency=3&env=LANG=de&unset-env=GREETING&env=NEW=1", nil)
		if status != 201 || json.Unmarshal([]byte(body), &v2) != nil {
			t.Fatalf("PATCH: %d %s", status, body)
		}
		if v2.Version != v1.Version+1 || v2.Module != v1.Module || v2.ABI != "wasi" || v2.Limits.Timeout != "5s" || v2.Limits.Concurrency != 3 ||
			v2.Limits.Memory != v1.Limits.Memory || len(v2.Env) != 2 || v2.Env["LANG"] != api.EnvMask || v2.Env["NEW"] != api.EnvMask {
			t.Fatalf("after PATCH: %+v (before %+v)", v2, v1)
		}
		if out := p.mustSluice(t, "", "fn", "invoke", "hello", "--data", "Ada"); out != "Hello, Ada!\n" {
			t.Fatalf("after unsetting GREETING: %q", out)
		}
		for _, tc := range []struct {
			query  string
			status int
			code   string
			says   string
		}{
			{"memory=64KiB", 422, "memory_too_small", "memory"},
			{"timout=5s", 400, "invalid_argument", "unknown parameter"},
			{"", 400, "invalid_argument", "nothing to change"},
			{"unset-env=GREETING", 400, "invalid_argument", `no env variable "GREETING"`},
		} {
			status, body, _ := request(t, p, "PATCH", "/v1/functions/hello?"+tc.query, nil)
			if e := decodeError(t, body); status != tc.status || e.Code != tc.code || !strings.Contains(e.Error, tc.says) {
				t.Fatalf("PATCH ?%s: %d %s", tc.query, status, body)
			}
		}
		if status, body, _ := request(t, p, "PATCH", "/v1/functions/hello?timeout=5s", nil); status != 200 || !strings.Contains(body, fmt.Sprintf(`"version": %d`, v2.Version)) {
			t.Fatalf("a PATCH that changes nothing: %d %s", status, body)
		}
	})

	t.Run("deletes of what is in use", func(t *testing.T) {
		p.mustSluice(t, "", "fn", "deploy", "price", testutil.WasmPath(t, "echo-wat"))
		wf := "apiVersion: sluice/v1\nkind: Workflow\nname: order\ntasks:\n  p: {run: price, inputs: \"${ input }\"}\n"
		p.mustSluice(t, wf, "wf", "create", "order", "-f", "-")
		p.mustSluice(t, "", "trigger", "create", "t1", "--workflow", "order", "--http-path", "/order")
		p.mustSluice(t, "", "trigger", "create", "t2", "--fn", "price", "--http-path", "/price")
		status, body, _ := request(t, p, "DELETE", "/v1/functions/price", nil)
		e := decodeError(t, body)
		if status != 409 || e.Code != "conflict" ||
			e.Error != `function "price" is used by workflow "order" and trigger "t2": delete them first, or delete with --force` ||
			len(e.Dependents) != 2 || e.Dependents[0].Kind != "workflow" || e.Dependents[0].Name != "order" ||
			e.Dependents[1].Kind != "trigger" || e.Dependents[1].Name != "t2" {
			t.Fatalf("delete of a function in use: %d %s", status, body)
		}
		status, body, _ = request(t, p, "DELETE", "/v1/workflows/order", nil)
		if e := decodeError(t, body); status != 409 || len(e.Dependents) != 1 || e.Dependents[0].Name != "t1" {
			t.Fatalf("delete of a workflow in use: %d %s", status, body)
		}
		if r := p.sluice(t, "", "fn", "delete", "price"); r.code != 1 || !strings.Contains(r.stderr, "--force") {
			t.Fatalf("fn delete of a function in use: %+v", r)
		}
		if out := p.mustSluice(t, "", "fn", "get", "price"); !strings.Contains(out, "price") {
			t.Fatalf("a refused delete deleted: %s", out)
		}
		if status, body, _ := request(t, p, "DELETE", "/v1/functions/price?force=true", nil); status != 204 {
			t.Fatalf("delete --force: %d %s", status, body)
		}
		if status, _, _ := request(t, p, "GET", "/v1/functions/price", nil); status != 404 {
			t.Fatalf("the function is still there after --force: %d", status)
		}
	})

	t.Run("tails and limits of what is read", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			p.mustSluice(t, "", "fn", "invoke", "hello", "--data", fmt.Sprint("caller-", i))
		}
		type record struct{ Message string }
		logs := func(q string) []record {
			status, body, _ := request(t, p, "GET", "/v1/functions/hello/logs?"+q, nil)
			if status != 200 {
				t.Fatalf("logs?%s: %d %s", q, status, body)
			}
			var out []record
			for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
				var r record
				if line != "" && json.Unmarshal([]byte(line), &r) == nil {
					out = append(out, r)
				}
			}
			return out
		}
		testutil.Eventually(t, 10*time.Second, "the 5 calls' logs", func() bool {
			all := logs("")
			return len(all) > 0 && strings.Contains(all[len(all)-1].Message, "caller-4")
		})
		if got := logs("tail=2"); len(got) != 2 || !strings.Contains(got[0].Message, "caller-3") || !strings.Contains(got[1].Message, "caller-4") {
			t.Fatalf("logs?tail=2: %+v", got)
		}
		if status, body, _ := request(t, p, "GET", "/v1/functions/hello/logs?tail=10001", nil); status != 400 || !strings.Contains(body, "0 to 10000") {
			t.Fatalf("a tail over the maximum: %d %s", status, body)
		}

		topic := "hostile.tail"
		var seqs []uint64
		for i := 0; i < 5; i++ {
			status, body, _ := request(t, p, "POST", "/v1/topics/"+topic+"/publish", strings.NewReader(fmt.Sprint("m", i)))
			var pub api.Published
			if status != 201 || json.Unmarshal([]byte(body), &pub) != nil || pub.Topic != topic {
				t.Fatalf("publish: %d %s", status, body)
			}
			seqs = append(seqs, pub.Sequence)
		}
		if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
			t.Fatalf("publish answered sequences %v", seqs)
		}
		status, body, _ := request(t, p, "GET", "/v1/topics/"+topic+"/tail?tail=2&count=2&timeout=20s", nil)
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			var m api.TopicMessage
			json.Unmarshal([]byte(line), &m)
			got = append(got, fmt.Sprintf("%d:%s", m.Sequence, m.Data))
		}
		if status != 200 || strings.Join(got, " ") != "4:m3 5:m4" {
			t.Fatalf("topic tail=2: %d %v", status, got)
		}
		// several publishers at once: each hears where its own message is
		var wg sync.WaitGroup
		stored := make([]uint64, 8)
		for i := range stored {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				req, _ := http.NewRequest("POST", p.server+"/v1/topics/"+topic+"/publish", strings.NewReader(fmt.Sprint("c", i)))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				var pub api.Published
				json.NewDecoder(resp.Body).Decode(&pub)
				stored[i] = pub.Sequence
			}(i)
		}
		wg.Wait()
		_, body, _ = request(t, p, "GET", "/v1/topics/"+topic+"/tail?tail=8&count=8&timeout=20s", nil)
		at := map[uint64]string{}
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			var m api.TopicMessage
			json.Unmarshal([]byte(line), &m)
			at[m.Sequence] = string(m.Data)
		}
		for i, seq := range stored {
			if at[seq] != fmt.Sprint("c", i) {
				t.Fatalf("message c%d was answered sequence %d, which holds %q", i, seq, at[seq])
			}
		}

		for i := 0; i < 3; i++ {
			// price was deleted with --force: the invocations fail, and say why
			if r := p.sluice(t, "", "wf", "invoke", "order", "--data", `{"n": 1}`, "--wait"); r.code != 1 || !strings.Contains(r.stderr, `"price"`) {
				t.Fatalf("wf invoke of a workflow whose function was deleted: %+v", r)
			}
		}
		var invs []struct{ ID, Status, Workflow string }
		status, body, _ = request(t, p, "GET", "/v1/invocations?limit=2&workflow=order", nil)
		if status != 200 || json.Unmarshal([]byte(body), &invs) != nil || len(invs) != 2 {
			t.Fatalf("invocations?limit=2: %d %s", status, body)
		}
		status, body, _ = request(t, p, "GET", "/v1/invocations?status=succeeded", nil)
		if status != 200 || json.Unmarshal([]byte(body), &invs) != nil || len(invs) != 0 {
			// price was deleted with --force: every invocation of order fails
			t.Fatalf("invocations?status=succeeded: %d %s", status, body)
		}
		status, body, _ = request(t, p, "GET", "/v1/invocations?status=failed&limit=1000", nil)
		if status != 200 || json.Unmarshal([]byte(body), &invs) != nil || len(invs) != 3 || invs[0].Status != "failed" {
			t.Fatalf("invocations?status=failed: %d %s", status, body)
		}
		if status, body, _ := request(t, p, "GET", "/v1/invocations?limit=1001", nil); status != 400 {
			t.Fatalf("invocations?limit=1001: %d %s", status, body)
		}
	})

	t.Run("request bodies held at once are bounded", func(t *testing.T) {
		// bodies of 5 MiB that stop coming, each held by its request,
		// until the next one is over the daemon's budget
		chunk := make([]byte, 5<<20)
		held := int64(0)
		var conns []net.Conn
		for held+2*int64(len(chunk)) <= limits.BodyMemory {
			conns = append(conns, rawRequest(t, p, "POST /v1/functions/echo/invoke HTTP/1.1\r\nHost: sluice\r\nContent-Length: 6000000\r\n\r\n", chunk))
			held += int64(len(chunk))
		}
		// one more of 8 MiB (the function's max input) does not fit
		over := rawRequest(t, p, "POST /v1/functions/echo/invoke HTTP/1.1\r\nHost: sluice\r\nContent-Length: 8388608\r\n\r\n", nil)
		go over.Write(make([]byte, 8<<20)) // cut short by the answer
		over.SetReadDeadline(time.Now().Add(60 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(over), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if e := decodeError(t, string(b)); resp.StatusCode != 503 || e.Code != "overloaded" || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("a body over the budget: %d %s", resp.StatusCode, b)
		}
		// the daemon serves requests without bodies meanwhile, and bodies
		// again once the others are gone
		if out := p.mustSluice(t, "", "fn", "get", "echo"); !strings.Contains(out, "echo") {
			t.Fatalf("fn get: %s", out)
		}
		for _, c := range conns {
			c.Close()
		}
		testutil.Eventually(t, 20*time.Second, "a body to be taken again", func() bool {
			resp, err := http.Post(p.server+"/v1/functions/echo/invoke", "application/octet-stream", bytes.NewReader(chunk))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	})

	t.Run("connections are bounded", func(t *testing.T) {
		var conns []net.Conn
		for i := 0; i < limits.MaxConns; i++ {
			c, err := net.Dial("tcp", strings.TrimPrefix(p.server, "http://"))
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, c)
		}
		// Connections of the subtests before may still hold slots when
		// these are dialed, so that some of these are refused, and give
		// them back after: an extra connection is then served (it failed
		// so in CI). A served one keeps its slot (net/http keeps it open),
		// and the next is tried, until one is refused.
		var resp *http.Response
		var b []byte
		for served := 0; ; served++ {
			extra := rawRequest(t, p, "GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n", nil)
			extra.SetReadDeadline(time.Now().Add(30 * time.Second))
			var err error
			if resp, err = http.ReadResponse(bufio.NewReader(extra), nil); err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || served == 64 {
				break
			}
		}
		if e := decodeError(t, string(b)); resp.StatusCode != 503 || e.Code != "overloaded" ||
			!strings.Contains(e.Error, fmt.Sprintf("%d connections open", limits.MaxConns)) {
			t.Fatalf("one connection over the limit: %d %s", resp.StatusCode, b)
		}
		for _, c := range conns {
			c.Close()
		}
		testutil.Eventually(t, 20*time.Second, "the daemon to take connections again", func() bool {
			resp, err := (&http.Client{Transport: &http.Transport{}}).Get(p.server + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	})

	t.Run("a slow body is cut, the others are served", func(t *testing.T) {
		slow.SetReadDeadline(time.Now().Add(60 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if e := decodeError(t, string(b)); resp.StatusCode != 408 || e.Code != "request_timeout" {
			t.Fatalf("slow body: %d %s", resp.StatusCode, b)
		}
		if took := time.Since(slowStart); took < limits.BodyTimeout {
			t.Fatalf("cut after %s, before the body timeout of %s", took, limits.BodyTimeout)
		}
		if n, err := slow.Read(make([]byte, 1)); err == nil {
			t.Fatalf("the connection is still open (read %d bytes)", n)
		}
		if out := p.mustSluice(t, "", "fn", "invoke", "echo", "--data", "still here"); out != "still here" {
			t.Fatalf("after the slow body: %q", out)
		}
	})

	// no env value reaches a log line, at the debug level either
	if log := stopLogged(t, p, logPath); strings.Contains(log, secret) {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, secret) {
				t.Fatalf("an env value in the daemon's log: %s", line)
			}
		}
	}
}
