package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/testutil"
)

// testLimits are small limits, so that the tests reach them quickly.
func testLimits() Limits {
	l := DefaultLimits()
	l.BodyTimeout = 300 * time.Millisecond
	l.MinBodyRate = 1 << 10
	l.WriteTimeout = 300 * time.Millisecond
	l.ReadHeaderTimeout = time.Minute
	return l
}

// serve runs a Server with the limits and extra routes on a loopback
// port, as the daemon does, and returns its address.
func serve(t *testing.T, l Limits, routes map[string]http.HandlerFunc) string {
	t.Helper()
	s := New("", slog.New(slog.DiscardHandler))
	s.SetLimits(l)
	for pattern, h := range routes {
		s.mux.HandleFunc(pattern, h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, lln := NewHTTPServer(s, ln)
	go srv.Serve(lln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// echo reads the body as the API's routes do and answers its length.
func echo(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(r, 1<<20, "body", errcode.PayloadTooLarge, "too large")
	if err != nil {
		errcode.Write(w, err)
		return
	}
	fmt.Fprint(w, len(b))
}

// answer reads one HTTP response from a raw connection.
func answer(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func code(t *testing.T, body string) string {
	t.Helper()
	var e errcode.Body
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not an error body: %q", body)
	}
	return string(e.Code)
}

// A client that sends its body too slowly is answered 408 and its
// connection closed, while others are served.
func TestSlowBodyIsCut(t *testing.T) {
	addr := serve(t, testLimits(), map[string]http.HandlerFunc{"POST /echo": echo})
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789")
	resp, err := http.Post("http://"+addr+"/echo", "text/plain", strings.NewReader("fast"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("another client: %d", resp.StatusCode)
	}
	resp, body := answer(t, slow)
	if resp.StatusCode != http.StatusRequestTimeout || code(t, body) != "request_timeout" || !strings.Contains(body, "10 bytes came") {
		t.Fatalf("slow body: %d %s", resp.StatusCode, body)
	}
	slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := slow.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the connection is still open (read %d bytes)", n)
	}
}

// A body that keeps coming at the minimum rate or faster is read however
// long it takes, and the wait after it (a long call) is not cut: the
// request's context lives on.
func TestSteadyBodyAndLongCall(t *testing.T) {
	l := testLimits()
	called := make(chan error, 1)
	addr := serve(t, l, map[string]http.HandlerFunc{"POST /call": func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			errcode.Write(w, errcode.ReadError("body", err))
			return
		}
		select { // a call that runs past every deadline of the request
		case <-r.Context().Done():
			called <- r.Context().Err()
		case <-time.After(3 * l.BodyTimeout):
			called <- nil
			fmt.Fprint(w, len(b))
		}
	}})
	pr, pw := io.Pipe()
	go func() {
		// 5 KiB/s, five times the minimum rate, for longer than BodyTimeout
		for i := 0; i < 20; i++ {
			pw.Write(bytes.Repeat([]byte("x"), 100))
			time.Sleep(20 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+addr+"/call", pr)
	req.ContentLength = 2000
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "2000" {
		t.Fatalf("steady body: %d %s", resp.StatusCode, b)
	}
	if err := <-called; err != nil {
		t.Fatalf("the call's context ended: %v", err)
	}
}

// Past the daemon-wide body budget a request is answered 503 overloaded
// with Retry-After; a body larger than the whole budget 413.
func TestBodyBudget(t *testing.T) {
	l := testLimits()
	l.BodyMemory = 64 << 10
	hold := make(chan struct{})
	holding := make(chan struct{}, 1)
	addr := serve(t, l, map[string]http.HandlerFunc{
		"POST /hold": func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			holding <- struct{}{}
			<-hold
		},
		"POST /echo": echo,
	})
	post := func(path string, n int) (int, string, http.Header) {
		resp, err := http.Post("http://"+addr+path, "application/octet-stream", bytes.NewReader(make([]byte, n)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	held := make(chan int, 1)
	go func() { status, _, _ := post("/hold", 40<<10); held <- status }()
	<-holding
	status, body, h := post("/echo", 40<<10)
	if status != 503 || code(t, body) != "overloaded" || h.Get("Retry-After") != "1" || !strings.Contains(body, "64 KiB of request bodies") {
		t.Fatalf("over the budget: %d %s %v", status, body, h)
	}
	if status, body, _ := post("/echo", 10<<10); status != 200 || body != "10240" {
		t.Fatalf("within the budget: %d %s", status, body)
	}
	close(hold)
	if status := <-held; status != 200 {
		t.Fatalf("held request: %d", status)
	}
	if status, body, _ := post("/echo", 40<<10); status != 200 || body != "40960" {
		t.Fatalf("after the budget was given back: %d %s", status, body)
	}
	if status, body, _ := post("/echo", 100<<10); status != 413 || code(t, body) != "payload_too_large" {
		t.Fatalf("over the whole budget: %d %s", status, body)
	}
}

// Past MaxConns a connection is answered 503 overloaded and closed; once
// one closes, new ones are served.
func TestConnectionLimit(t *testing.T) {
	l := testLimits()
	l.MaxConns = 2
	addr := serve(t, l, nil)
	var open []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		open = append(open, c)
	}
	// the two are accepted, so a third is over the limit
	fmt.Fprintf(open[0], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := answer(t, open[0]); resp.StatusCode != 200 {
		t.Fatalf("first connection: %d", resp.StatusCode)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintf(third, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := answer(t, third)
	if resp.StatusCode != 503 || code(t, body) != "overloaded" || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "2 connections open") {
		t.Fatalf("over the limit: %d %s", resp.StatusCode, body)
	}
	open[1].Close()
	testutil.Eventually(t, 10*time.Second, "a connection to be served again", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, _ := answer(t, c)
		return resp.StatusCode == 200
	})
}

// A panic in a handler is a 500 internal answer for that request (or an
// aborted one if the answer had begun); the server goes on.
func TestPanicFailsOneRequest(t *testing.T) {
	addr := serve(t, testLimits(), map[string]http.HandlerFunc{
		"GET /panic": func(w http.ResponseWriter, r *http.Request) { panic("a bug") },
		"GET /late": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("half an answer"))
			w.(http.Flusher).Flush()
			panic("a bug")
		},
	})
	resp, err := http.Get("http://" + addr + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || code(t, string(b)) != "internal" || !strings.Contains(string(b), "GET /panic") {
		t.Fatalf("panic: %d %s", resp.StatusCode, b)
	}
	resp, err = http.Get("http://" + addr + "/late")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("an answer cut by a panic reads as complete")
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the panics: %v", err)
	}
}

// A client that stops reading is dropped after WriteTimeout; one whose
// answer takes longer than WriteTimeout to come is not, and its kept-alive
// connection serves the next request.
func TestWriteDeadline(t *testing.T) {
	l := testLimits()
	wrote := make(chan error, 1)
	addr := serve(t, l, map[string]http.HandlerFunc{
		"GET /big": func(w http.ResponseWriter, r *http.Request) {
			chunk := make([]byte, 1<<20)
			for i := 0; i < 256; i++ {
				if _, err := w.Write(chunk); err != nil {
					wrote <- err
					return
				}
			}
			wrote <- nil
		},
		"GET /slow": func(w http.ResponseWriter, r *http.Request) {
			<-time.After(3 * l.WriteTimeout) // a call that takes its time
			fmt.Fprint(w, "done")
		},
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	if err := <-wrote; err == nil {
		t.Fatal("256 MiB written to a client that reads nothing")
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	br := bufio.NewReader(c2)
	for i := 0; i < 2; i++ {
		fmt.Fprintf(c2, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		c2.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "done" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
}
