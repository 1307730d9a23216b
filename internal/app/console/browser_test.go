//go:build browser

package console_test

// The console in a real browser: headless Chromium, driven through the
// DevTools protocol (chromedp), against a real daemon with real functions
// and workflows. One daemon (with a token) and one browser serve every
// test; each test opens its own tab. Screenshots of each page go to
// build/screenshots/.

import (
	"bytes"
	"context"
	"fmt"
	"image"
	pngpkg "image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/console"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/testutil"
)

const testToken = "console-test-token-7f3a"

// the shared daemon and browser, started by TestMain.
var (
	base    string // http://127.0.0.1:PORT
	cli     *client.Client
	browser context.Context
)

// Chromium is Debian's chromium package (scripts/deps installs it); the
// flags keep it from reaching anywhere but the daemon.
const chromium = "/usr/bin/chromium"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "sluice-console-test-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	o := daemon.DefaultOptions()
	if b := os.Getenv("SLUICE_TEST_BROKER"); b != "" {
		o.Broker = b
	}
	o.Listen, o.NATSListen = "127.0.0.1:0", "127.0.0.1:0"
	o.DataDir = filepath.Join(tmp, "data")
	o.CompileCacheDir = os.Getenv("SLUICE_TEST_CACHE")
	if o.CompileCacheDir == "" {
		o.CompileCacheDir = filepath.Join(tmp, "cache")
	}
	o.Token = testToken
	o.StartTimeout, o.ShutdownTimeout = 30*time.Second, 10*time.Second
	d, err := daemon.Start(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "start a daemon: %v\n", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, o.ShutdownTimeout)
		defer cancel()
		d.Shutdown(sctx)
	}()
	base, cli = "http://"+d.Addr(), client.New(d.Addr(), testToken)

	if _, err := exec.LookPath(chromium); err != nil {
		fmt.Fprintf(os.Stderr, "the console's browser tests need Chromium at %s: run scripts/deps (make deps) or apt-get install chromium\n", chromium)
		return 1
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(filepath.Join(tmp, "chromium")),
	)
	defer cancelAlloc()
	b, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(b); err != nil {
		fmt.Fprintf(os.Stderr, "start chromium: %v\n", err)
		return 1
	}
	browser = b
	return m.Run()
}

// tab is a browser tab of one test, watched: every request it makes,
// every response's headers, every console message and exception.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	requests []string
	statuses map[string][]int64 // by URL
	csp      map[string]string  // by URL, the documents' CSP
	problems []string           // exceptions, CSP reports, console errors
}

func newTab(t *testing.T) *tab {
	t.Helper()
	tb := &tab{t: t, statuses: map[string][]int64{}, csp: map[string]string{}}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithListener(tb.see))
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	// a stuck browser fails the test, not the run
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute*time.Duration(patience()))
	tb.ctx = ctx
	t.Cleanup(func() {
		tb.check()
		cancelTime()
		cancel()
	})
	return tb
}

// see notes an event of the tab (in the tab's loop: fast, no command).
func (tb *tab) see(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, e.Request.URL)
	case *network.EventResponseReceived:
		tb.statuses[e.Response.URL] = append(tb.statuses[e.Response.URL], e.Response.Status)
		if e.Type == network.ResourceTypeDocument {
			for k, v := range e.Response.Headers {
				if strings.EqualFold(k, "Content-Security-Policy") {
					tb.csp[e.Response.URL] = fmt.Sprint(v)
				}
			}
		}
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		tb.problems = append(tb.problems, fmt.Sprintf("exception: %s at %s:%d", d.Text, d.URL, d.LineNumber))
	case *log.EventEntryAdded:
		// The browser logs every answer of 4xx as an error: a 401 before
		// the login, a 404 of a route this daemon lacks are for the page
		// to handle (the tests check what it shows); a 5xx is a problem.
		network := e.Entry.Source == log.EntrySourceNetwork && !strings.Contains(e.Entry.Text, "status of 5")
		if e.Entry.Level == log.EntryLevelError && !network {
			tb.problems = append(tb.problems, "console: "+e.Entry.Text+" "+e.Entry.URL)
		}
	}
}

// check fails the test if the tab asked anything of another origin, or
// if the page threw or the browser refused something (a CSP violation is
// logged as an error).
func (tb *tab) check() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.requests) == 0 {
		tb.t.Errorf("the tab made no request at all: the network events were not seen")
	}
	for _, u := range tb.requests {
		if !strings.HasPrefix(u, base+"/") && !strings.HasPrefix(u, "data:") {
			tb.t.Errorf("a request left for another origin: %s", u)
		}
		if strings.Contains(u, testToken) {
			tb.t.Errorf("the token is in a URL: %s", u)
		}
	}
	for _, p := range tb.problems {
		tb.t.Errorf("the page had a problem: %s", p)
	}
}

func (tb *tab) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// open loads the console with the token in the tab's session (as the
// login keeps it) and goes to a page.
func (tb *tab) open(hash string) {
	tb.t.Helper()
	tb.run("keep the token", chromedp.Navigate(base+"/healthz"),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`sessionStorage.setItem("sluice.token", %q)`, testToken)),
		chromedp.Navigate(base+"/"+hash))
}

// go_ follows a hash route, as a click on a link does.
func (tb *tab) go_(hash string) {
	tb.t.Helper()
	tb.run("go to "+hash, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q`, hash)))
}

// until waits for a JavaScript condition to hold on the page.
func (tb *tab) until(what, js string) {
	tb.t.Helper()
	tb.run("wait for "+what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(time.Minute*time.Duration(patience()))))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return eval[string](tb, fmt.Sprintf(`document.querySelector(%q).innerText`, sel))
}

// screenshot keeps a picture of the page in build/screenshots/NAME.png.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(testutil.Root(tb.t), "build", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	small, err := docsSize(png)
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "small"), 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "small", name+".png"), small, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// docsMax is the largest screenshot the README shows (make screenshots
// copies build/screenshots/small/ to docs/console/): the top of the page,
// at most this size, compressed as well as Go's encoder does.
var docsMax = image.Rect(0, 0, 1280, 800)

func docsSize(full []byte) ([]byte, error) {
	img, err := pngpkg.Decode(bytes.NewReader(full))
	if err != nil {
		return nil, err
	}
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok {
		return full, nil
	}
	var buf bytes.Buffer
	enc := pngpkg.Encoder{CompressionLevel: pngpkg.BestCompression}
	if err := enc.Encode(&buf, sub.SubImage(img.Bounds().Intersect(docsMax))); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// eval evaluates JavaScript on the page.
func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// patience is SLUICE_TEST_PATIENCE (testutil.Eventually's factor), at
// least 1.
func patience() int {
	var n int
	fmt.Sscan(os.Getenv("SLUICE_TEST_PATIENCE"), &n)
	return max(n, 1)
}

var setupOnce sync.Once

// setup deploys what the tests show, once: wfguest (workflow tasks),
// goguest (logs), the workflows shop and kid.
func setup(t *testing.T) {
	t.Helper()
	setupOnce.Do(func() {
		ctx := context.Background()
		for name, guest := range map[string]string{"wfguest": "wfguest", "gg": "goguest"} {
			if _, err := cli.Deploy(ctx, name, testutil.Wasm(t, guest), url.Values{"env": {"SECRET=hunter2"}}); err != nil {
				t.Fatalf("deploy %s: %v", name, err)
			}
		}
		// kid first: shop runs it, and a workflow names only what exists
		for _, w := range []struct{ name, src string }{{"kid", kidWorkflow}, {"shop", shopWorkflow}} {
			if _, _, err := cli.CreateWorkflow(ctx, w.name, []byte(w.src)); err != nil {
				t.Fatalf("create workflow %s: %v", w.name, err)
			}
		}
	})
}

const kidWorkflow = `
apiVersion: sluice/v1
kind: Workflow
name: kid
tasks:
  k1: { run: wfguest, inputs: { op: add, n: 5 } }
`

const shopWorkflow = `
apiVersion: sluice/v1
kind: Workflow
name: shop
tasks:
  price: { run: wfguest, inputs: { op: add, n: 1 }, retry: { max: 2 } }
  pick:
    run: if
    requires: [price]
    inputs:
      if: ${ tasks.price.output.n > 1 }
      then: { run: wfguest, inputs: { op: double, n: 2 } }
      else: 3
  each:
    run: foreach
    requires: [price]
    inputs: { foreach: [1, 2], do: { run: wfguest, inputs: { op: add, n: "${ item }" } } }
  child: { run: workflow, requires: [price], inputs: { workflow: kid } }
  shaky: { run: wfguest, inputs: { op: flaky, fails: 1 }, retry: { max: 2, backoff: 10ms } }
  hold: { run: wait, requires: [pick, each, child, shaky], inputs: { signal: go } }
`

// TestLoginGuardsTheConsole: against a daemon with a token, the console
// shows the login, and the API refuses it without the token (401); a
// wrong token is refused; the right one shows the functions, and log out
// forgets it.
func TestLoginGuardsTheConsole(t *testing.T) {
	setup(t)
	tb := newTab(t)
	tb.run("load the console", chromedp.Navigate(base+"/#/functions"))
	tb.until("the login", `!!document.querySelector("form#login")`)
	tb.mu.Lock()
	refused := tb.statuses[base+"/v1/functions"]
	csp := tb.csp[base+"/#/functions"] + tb.csp[base+"/"]
	tb.mu.Unlock()
	if len(refused) == 0 || refused[0] != 401 {
		t.Fatalf("GET /v1/functions without the token answered %v, want 401", refused)
	}
	if csp != console.CSP {
		t.Fatalf("the console's Content-Security-Policy is %q, want %q", csp, console.CSP)
	}
	tb.screenshot("login")
	tb.run("log in with a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token"), chromedp.Click(chromedp.CSS(`form#login button`)))
	tb.until("the refusal", `document.querySelector("#login-note").textContent.includes("Refused")`)
	kept := eval[string](tb, `sessionStorage.getItem("sluice.token") || ""`)
	if kept != "" {
		t.Fatalf("a refused token is kept: %q", kept)
	}
	tb.run("log in", chromedp.SetValue(chromedp.CSS("#token"), testToken), chromedp.Click(chromedp.CSS(`form#login button`)))
	tb.until("the functions", `[...document.querySelectorAll("td a")].some(a => a.textContent === "wfguest")`)
	kept = eval[string](tb, `sessionStorage.getItem("sluice.token") || ""`)
	if kept != testToken {
		t.Fatalf("the session keeps %q, want the token", kept)
	}
	tb.screenshot("functions")
	tb.run("log out", chromedp.Click(chromedp.CSS("#logout")))
	tb.until("the login again", `!!document.querySelector("form#login") && !sessionStorage.getItem("sluice.token")`)
}

// TestInvocationPageFollowsARun: the page of a running invocation shows
// every task it has (the child workflow's nested), and updates without a
// reload when the invocation finishes.
func TestInvocationPageFollowsARun(t *testing.T) {
	setup(t)
	ctx := context.Background()
	inv, err := cli.InvokeWorkflow(ctx, "shop", []byte(`{}`), client.InvokeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var running *engine.Invocation
	testutil.Eventually(t, 30*time.Second, "the invocation to wait for its signal", func() bool {
		running, err = cli.Invocation(ctx, inv.ID)
		return err == nil && running.Tasks["hold"] != nil && running.Tasks["hold"].Waiting == "go"
	})
	tb := newTab(t)
	tb.open("#/invocations/" + inv.ID)
	tb.until("the running invocation", `document.querySelector("#inv-status") && document.querySelector("#inv-status").textContent.includes("running")`)
	want := []string{}
	for id := range running.Tasks {
		want = append(want, inv.ID+"/"+id)
	}
	kid := engine.ChildID(inv.ID, "child", running.Tasks["child"].Attempts)
	want = append(want, kid+"/k1")
	for _, key := range want {
		tb.until("the row of "+key, fmt.Sprintf(`!!document.querySelector('.gantt-row[data-task=%q]')`, key))
	}
	if len(want) < 9 {
		t.Fatalf("the invocation has only %v", want)
	}
	// a click in the page: the timeline is redrawn while it runs, so a
	// node found by the protocol may be gone by the time it is clicked
	tb.run("open the task price", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('.gantt-row[data-task=%q]').click()`, inv.ID+"/price")))
	tb.until("price's output", `document.querySelector(".task-detail") && document.querySelector(".task-detail").textContent.includes('"n": 2')`)
	tb.screenshot("invocation-running")
	if _, err := cli.SignalInvocation(ctx, inv.ID, "go", []byte(`"ok"`), client.SignalOptions{}); err != nil {
		t.Fatal(err)
	}
	tb.until("the invocation to show it succeeded", `document.querySelector("#inv-status").textContent.includes("succeeded")`)
	// shaky failed once, then succeeded: two attempts on its row
	tb.until("shaky's two attempts", fmt.Sprintf(`(() => { const r = document.querySelector('.gantt-row[data-task=%q]');
		return r.querySelectorAll(".gantt-bar").length === 2 && !!r.querySelector(".attempt-failed") && !!r.querySelector(".attempt-succeeded") })()`, inv.ID+"/shaky"))
	tb.until("hold's row to show it succeeded", fmt.Sprintf(`document.querySelector('.gantt-row[data-task=%q]').dataset.status === "succeeded"`, inv.ID+"/hold"))
	tb.screenshot("invocation")
}

// TestFunctionPageStreamsLogs: a function's page shows its config with
// env values masked, and its logs as they are written.
func TestFunctionPageStreamsLogs(t *testing.T) {
	setup(t)
	tb := newTab(t)
	tb.open("#/functions/gg")
	tb.until("the logs", `!!document.querySelector("#logs")`)
	if page := tb.text("main"); strings.Contains(page, "hunter2") || !strings.Contains(page, "SECRET") {
		t.Fatalf("the env is not shown masked:\n%s", page)
	}
	if page := tb.text("main"); !strings.Contains(page, "Versions") || !strings.Contains(page, "v1 (current)") {
		t.Fatalf("the page lists no versions:\n%s", page)
	}
	if _, err := cli.Invoke(context.Background(), "gg", []byte("log")); err != nil {
		t.Fatal(err)
	}
	tb.until("the guest's log line", `document.querySelector("#logs").textContent.includes("a warning from the guest")`)
	tb.run("invoke from the page", chromedp.SetValue(chromedp.CSS("#invoke-input"), "echo"), chromedp.Click(chromedp.CSS("#invoke button")))
	tb.until("the call's output", `document.querySelector("#invoke-output").textContent.includes("v1")`)
	tb.screenshot("function")
}

// TestWorkflowPageDrawsTheFlowchart: the workflow's page shows its
// definition laid out by dot, every task a box, linked to its function.
func TestWorkflowPageDrawsTheFlowchart(t *testing.T) {
	setup(t)
	tb := newTab(t)
	tb.open("#/workflows/shop")
	tb.until("the flowchart", `!!document.querySelector("#flowchart svg")`)
	for _, task := range []string{"price", "pick", "pick/then", "each", "each/do", "child", "shaky", "hold"} {
		tb.until("the box of "+task, fmt.Sprintf(`!!document.getElementById(%q)`, "task:"+task))
	}
	href := eval[string](tb, `document.getElementById("task:price").querySelector("a").getAttribute("href")`)
	if href != "#/functions/wfguest" {
		t.Fatalf("price links to %q", href)
	}
	tb.until("the revisions", `[...document.querySelectorAll("td code")].some(c => c.textContent.endsWith(" (current)"))`)
	tb.screenshot("workflow")
}

// TestEveryPageLoads: each list page loads under the CSP without an
// error (the tab's check), and is kept as a screenshot.
func TestEveryPageLoads(t *testing.T) {
	setup(t)
	tb := newTab(t)
	tb.open("#/workflows")
	for _, p := range []struct{ hash, name, ready string }{
		{"#/workflows", "workflows", `[...document.querySelectorAll("td a")].some(a => a.textContent === "shop")`},
		{"#/invocations", "invocations", `!!document.querySelector("#filters")`},
		{"#/invocations?status=failed", "invocations-failed", `!!document.querySelector("#filter-status") && document.querySelector("#filter-status").value === "failed"`},
		{"#/topology", "topology", `document.querySelector("h1").textContent === "Topology" && document.querySelectorAll(".page > *").length > 1`},
		{"#/dead-letters", "dead-letters", `document.querySelector("h1").textContent === "Dead letters" && document.querySelectorAll(".page > *").length > 1`},
	} {
		tb.go_(p.hash)
		tb.until(p.name, p.ready)
		tb.screenshot(p.name)
	}
	if errs := eval[int](tb, `document.querySelectorAll("div.error").length`); errs != 0 {
		t.Fatalf("the last page shows an error: %s", tb.text("main"))
	}
}

// TestFunctionPageShowsLiveFigures: a function's page shows its figures
// (calls/s, errors/s, p50, p99, in flight) moving from the figures'
// stream after calls, errors counted apart; the Functions list shows its
// calls/s and errors/s too.
func TestFunctionPageShowsLiveFigures(t *testing.T) {
	ctx := context.Background()
	if _, err := cli.Deploy(ctx, "figs", testutil.Wasm(t, "goguest"), nil); err != nil {
		t.Fatal(err)
	}
	tb := newTab(t)
	tb.open("#/functions/figs")
	tb.until("the figures", `!!document.querySelector("#fig-calls") && document.querySelector("#figures h2").textContent.includes("at ")`)
	if calls := tb.text("#fig-calls"); calls != "0" {
		t.Fatalf("calls/s before any call: %q", calls)
	}
	for range 5 {
		if _, err := cli.Invoke(ctx, "figs", []byte("echo")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Invoke(ctx, "figs", []byte("error")); err == nil {
		t.Fatal("the failing call succeeded")
	}
	tb.until("the figures to move", `document.querySelector("#fig-calls").textContent !== "0" && document.querySelector("#fig-errors").textContent !== "0"`)
	// 6 calls and 1 error in the last minute
	if calls, errs := tb.text("#fig-calls"), tb.text("#fig-errors"); calls != "0.10" || errs != "0.017" {
		t.Errorf("calls/s %q, errors/s %q: want 0.10 and 0.017 (6 calls, 1 failed, in a minute)", calls, errs)
	}
	if p50, p99 := tb.text("#fig-p50"), tb.text("#fig-p99"); !strings.HasSuffix(p50, " ms") || !strings.HasSuffix(p99, " ms") {
		t.Errorf("p50 %q, p99 %q: want latencies in ms", p50, p99)
	}
	tb.screenshot("function-figures")
	tb.go_("#/functions")
	tb.until("the list's rates", `[...document.querySelectorAll("tr")].some((r) => r.textContent.startsWith("figs") && r.textContent.includes("0.017"))`)
}
