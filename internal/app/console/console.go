// Package console is the web console the daemon serves at / (README.md,
// "Console"): plain HTML, CSS and JavaScript modules, embedded in the
// binary, that read everything through the HTTP API with the same bearer
// token as the CLI. The assets hold no data, so they are served without
// the token; every answer carries a strict Content-Security-Policy, and
// nothing is loaded from anywhere else (the console works offline).
//
// It also draws the flowcharts the console shows (layout.go, svg.go):
// laid out in Go when a page asks, as SVG, or written as DOT.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed assets
var assets embed.FS

// CSP is the Content-Security-Policy of every console answer: scripts,
// styles and connections only from the daemon itself, images from it or
// data: URLs, no inline script or style, no form posts, no framing. The
// console's code is all in its own files (no inline handlers), so nothing
// needs to be relaxed.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// AssetsPrefix is the path under which the console's files are served;
// the page itself is at /, and its pages are hash routes (/#/functions),
// which never reach the server.
const AssetsPrefix = "/assets/"

// Public reports whether a path is the console's: served without the
// token, since it holds no data.
func Public(p string) bool { return p == "/" || strings.HasPrefix(p, AssetsPrefix) }

// asset is an embedded file with what its answer needs.
type asset struct {
	body []byte
	typ  string
	etag string
}

var (
	loadOnce sync.Once
	files    map[string]*asset // by path under assets/
)

// load reads the embedded files once, on the first request: a daemon that
// nobody browses never hashes them.
func load() map[string]*asset {
	loadOnce.Do(func() {
		files = map[string]*asset{}
		_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := assets.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			typ := mime.TypeByExtension(path.Ext(p))
			switch path.Ext(p) { // the system's mime table may lack them
			case ".js":
				typ = "text/javascript; charset=utf-8"
			case ".css":
				typ = "text/css; charset=utf-8"
			case ".html":
				typ = "text/html; charset=utf-8"
			case ".svg":
				typ = "image/svg+xml"
			}
			files[strings.TrimPrefix(p, "assets/")] = &asset{body: b, typ: typ, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
			return nil
		})
	})
	return files
}

// SetHeaders sets the security headers of a console answer, and of any
// answer the console shows as it is (an SVG layout).
func SetHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// Handler serves the console: index.html at /, the files under
// AssetsPrefix, each with an ETag of its content and Cache-Control
// no-cache, so that a browser revalidates (a 304 of a few bytes) and a
// new binary's files are seen at once. GET and HEAD only.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			name = strings.TrimPrefix(r.URL.Path, AssetsPrefix)
		}
		a := load()[name]
		SetHeaders(w.Header())
		if a == nil || name == "index.html" && r.URL.Path != "/" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("no such console file: " + r.URL.Path + "\n"))
			return
		}
		w.Header().Set("ETag", a.etag)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", a.typ)
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(a.body)
		}
	})
}
