package console

import (
	"bytes"
	"encoding/xml"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-graphviz"

	"github.com/sluicehq/sluice/engine"
)

func get(t *testing.T, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w
}

// TestServesTheConsole: / is the page, the assets have their types, every
// answer has the security headers, an ETag answers 304, and nothing else
// is served.
func TestServesTheConsole(t *testing.T) {
	for _, tc := range []struct {
		path, typ string
		status    int
	}{
		{"/", "text/html; charset=utf-8", 200},
		{"/assets/app.js", "text/javascript; charset=utf-8", 200},
		{"/assets/pages/invocation.js", "text/javascript; charset=utf-8", 200},
		{"/assets/app.css", "text/css; charset=utf-8", 200},
		{"/assets/index.html", "text/plain; charset=utf-8", 404},
		{"/assets/nothing.js", "text/plain; charset=utf-8", 404},
		{"/assets/../console.go", "text/plain; charset=utf-8", 404},
	} {
		w := get(t, tc.path)
		h := w.Header()
		if w.Code != tc.status || h.Get("Content-Type") != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.path, w.Code, h.Get("Content-Type"), tc.status, tc.typ)
		}
		if h.Get("Content-Security-Policy") != CSP || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers %v", tc.path, h)
		}
		if tc.status != 200 {
			continue
		}
		etag := h.Get("ETag")
		if etag == "" || h.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: ETag %q, Cache-Control %q", tc.path, etag, h.Get("Cache-Control"))
		}
		if again := get(t, tc.path, "If-None-Match", etag); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("%s with its ETag: %d, %d bytes, want 304 and none", tc.path, again.Code, again.Body.Len())
		}
	}
	for _, p := range []string{"/", "/assets/app.js", "/assets/x", "/healthz"} {
		if want := p != "/healthz"; Public(p) != want {
			t.Errorf("Public(%q) = %v", p, !want)
		}
	}
}

// TestAssetsStayHome: the console's files name no other origin (it works
// offline, and the CSP would refuse it anyway), hold no inline script,
// style or handler (the CSP refuses them), and every module they import
// is embedded.
func TestAssetsStayHome(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	inline := regexp.MustCompile(`(?i)<script>|<style|\son[a-z]+=|style=|javascript:|innerHTML|eval\(|new Function`)
	imports := regexp.MustCompile(`(?m)^import .* from "(\.[^"]+)";`)
	n := 0
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, _ := assets.ReadFile(p)
		src := string(b)
		if m := external.FindString(src); m != "" {
			t.Errorf("%s names another origin or loads a resource: %q", p, m)
		}
		if m := inline.FindString(src); m != "" {
			t.Errorf("%s has what the CSP refuses or the console must not do: %q", p, m)
		}
		for _, m := range imports.FindAllStringSubmatch(src, -1) {
			dir := p[:strings.LastIndex(p, "/")]
			target := resolve(dir, m[1])
			if _, err := fs.Stat(assets, target); err != nil {
				t.Errorf("%s imports %s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil || n < 8 {
		t.Fatalf("walked %d assets: %v", n, err)
	}
}

func resolve(dir, rel string) string {
	parts := strings.Split(dir, "/")
	for _, seg := range strings.Split(rel, "/") {
		switch seg {
		case ".":
		case "..":
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, seg)
		}
	}
	return strings.Join(parts, "/")
}

// TestFlowchart: a definition's flowchart has a box per task and branch,
// linked to its function or child workflow, and renders as SVG.
func TestFlowchart(t *testing.T) {
	def, err := engine.ParseDefinition("", []byte(`
apiVersion: sluice/v1
kind: Workflow
name: flow
tasks:
  a: { run: f }
  b:
    run: if
    requires: [a]
    inputs: { if: "${ true }", then: { run: workflow, inputs: { workflow: other } } }
  c: { run: f, requires: [a], catch: { run: noop } }
`), engine.Known{})
	if err != nil {
		t.Fatal(err)
	}
	dot, err := FlowchartDOT(def.Shape())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"task:a"`, `"task:b/then"`, `URL="#/workflows/other"`, `URL="#/functions/f"`, `"task:c" -> "task:c/catch"`} {
		if !strings.Contains(string(dot), want) {
			t.Errorf("the DOT has no %s:\n%s", want, dot)
		}
	}
	svg, err := FlowchartSVG("", def.Shape())
	if err != nil || !strings.Contains(string(svg), `<svg`) || !strings.Contains(string(svg), `id="task:b/then"`) {
		t.Fatalf("SVG %v:\n%.400s", err, svg)
	}
	big := &engine.Shape{Workflow: "big"}
	for range MaxLayoutNodes + 1 {
		big.Tasks = append(big.Tasks, &engine.ShapeTask{ID: "t", Run: "f"})
	}
	if _, err := FlowchartDOT(big); err == nil || !strings.Contains(err.Error(), "over the 400 a flowchart shows") {
		t.Fatalf("a flowchart of %d tasks: %v", len(big.Tasks), err)
	}
}

// FuzzFlowchartNames: whatever the names, the DOT is one graph with
// exactly the nodes it should have (no name ends its string or adds a
// statement), and the SVG is well-formed XML with exactly its boxes.
func FuzzFlowchartNames(f *testing.F) {
	for _, s := range []string{"a", `x"; evil -> pwn; "`, `back\`, "line\nbreak", `\N\G\L`, "}", "", "ünï ∂", "a\x00b", `"]; node [label="x`} {
		f.Add(s, s+"2")
	}
	f.Fuzz(func(t *testing.T, wf, task string) {
		s := &engine.Shape{Workflow: wf, Tasks: []*engine.ShapeTask{
			{ID: task, Run: task},
			{ID: task + "/x", Run: "workflow", Builtin: true, Workflow: wf, Requires: []string{task}},
		}}
		dot, err := FlowchartDOT(s)
		if err != nil {
			t.Fatal(err)
		}
		svg, err := FlowchartSVG("", s)
		if err != nil {
			t.Fatal(err)
		}
		if n := svgNodes(t, svg); n != 4 {
			t.Fatalf("the SVG has %d boxes, want 4:\n%s", n, svg)
		}
		g, err := graphviz.ParseBytes(dot)
		if err != nil {
			t.Fatalf("the DOT does not parse: %v\n%s", err, dot)
		}
		defer g.Close()
		n, err := g.NodeNum()
		if err != nil || n != 4 { // input, output and the two tasks
			t.Fatalf("%d nodes (%v), want 4:\n%s", n, err, dot)
		}
	})
}

// svgNodes checks that an SVG is well-formed XML and counts its boxes.
func svgNodes(t *testing.T, svg []byte) int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("the SVG is not XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "g" {
			for _, a := range se.Attr {
				if a.Name.Local == "class" && a.Value == "node" {
					n++
				}
			}
		}
	}
}

// BenchmarkFlowchartSVG lays out and renders a flowchart of 40 tasks in
// a chain, each an if with two branches (122 boxes), uncached: what the
// first look at a workflow's page costs the daemon.
func BenchmarkFlowchartSVG(b *testing.B) {
	s := &engine.Shape{Workflow: "bench"}
	for i := range 40 {
		t := &engine.ShapeTask{ID: "t" + strconv.Itoa(i), Run: "if", Builtin: true, Branches: []*engine.ShapeBranch{
			{Key: "then", Task: &engine.ShapeTask{ID: "t" + strconv.Itoa(i) + "/then", Run: "f"}},
			{Key: "else", Task: &engine.ShapeTask{ID: "t" + strconv.Itoa(i) + "/else", Run: "g"}},
		}}
		if i > 0 {
			t.Requires = []string{"t" + strconv.Itoa(i-1)}
		}
		s.Tasks = append(s.Tasks, t)
	}
	for b.Loop() {
		if _, err := FlowchartSVG("", s); err != nil {
			b.Fatal(err)
		}
	}
}
