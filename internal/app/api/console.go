package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/internal/app/console"
	"github.com/sluicehq/sluice/internal/catalog"
)

// The routes the console needs beyond the CLI's: the console itself at /
// (public: its files hold no data), a workflow's flowchart, and an
// invocation's changes as server-sent events.
func (s *Server) consoleRoutes() {
	h := console.Handler()
	s.mux.Handle("GET /{$}", h)
	s.mux.Handle("GET "+console.AssetsPrefix, h)
	s.handle("GET /v1/workflows/{name}/flowchart", s.flowchart)
	s.handle("GET /v1/invocations/{id}/stream", s.streamInvocation)
}

// flowchart answers a workflow's current definition drawn as a flowchart:
// SVG (console.FlowchartSVG), or with format=dot its DOT for Graphviz.
func (s *Server) flowchart(w http.ResponseWriter, r *http.Request, b *Backend) {
	wf, ok := b.Catalog.Workflow(r.PathValue("name"))
	if !ok {
		errcode.Write(w, fmt.Errorf("%w: no workflow %q", catalog.ErrNotFound, r.PathValue("name")))
		return
	}
	def, err := engine.ParseDefinition(wf.Name, []byte(wf.Source), engine.Known{})
	if err != nil {
		errcode.Write(w, errcode.New(errcode.InvalidWorkflow, strings.TrimPrefix(err.Error(), "invalid: ")))
		return
	}
	if f := r.URL.Query().Get("format"); f != "" && f != "svg" {
		if f != "dot" {
			errcode.Write(w, fmt.Errorf("%w: format=%q: want svg or dot", catalog.ErrInvalid, f))
			return
		}
		dot, err := console.FlowchartDOT(def.Shape())
		if err != nil {
			errcode.Write(w, errcode.New(errcode.PayloadTooLarge, err.Error()))
			return
		}
		w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(dot)
		return
	}
	svg, err := console.FlowchartSVG(wf.Revision, def.Shape())
	writeDrawing(w, r, svg, err, wf.Revision[:16])
}

// writeDrawing answers an SVG drawing of the console (a flowchart, the
// topology) with the console's headers and its tag, 304 to a client that
// has that one; or the error drawing it, 413 for one over its limit.
func writeDrawing(w http.ResponseWriter, r *http.Request, svg []byte, err error, tag string) {
	if err != nil {
		code := errcode.Internal
		if errors.Is(err, console.ErrTooLarge) {
			code = errcode.PayloadTooLarge
		}
		errcode.Write(w, errcode.New(code, err.Error()))
		return
	}
	console.SetHeaders(w.Header())
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("ETag", `"`+tag+`"`)
	w.Header().Set("Cache-Control", "no-cache")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(svg)
}

// Limits of an invocation's stream.
const (
	// streamInterval is the least time between two snapshots a stream
	// sends: a workflow whose tasks end by the thousand a second costs a
	// watcher at most this many snapshots, not one per event.
	streamInterval = 200 * time.Millisecond
	// streamHeartbeat is how often an idle stream sends a comment: it
	// keeps proxies from closing it, and finds a client that has gone
	// (the write fails) while nothing changes.
	streamHeartbeat = 15 * time.Second
	// maxStreamChildren bounds the child invocations a stream's snapshot
	// carries, at every depth: a foreach over a child workflow may start
	// thousands; the console shows the first ones and says how many more.
	maxStreamChildren = 100
)

// InvocationTree is what an invocation's stream sends: the invocation
// and the child invocations its tasks started, at any depth, by id, up to
// maxStreamChildren (More tells that there were more).
type InvocationTree struct {
	Invocation *engine.Invocation            `json:"invocation"`
	Children   map[string]*engine.Invocation `json:"children,omitempty"`
	More       bool                          `json:"more,omitempty"`
}

// streamInvocation sends an invocation, with its children, as
// server-sent events: an "invocation" event (data: an InvocationTree) at
// once and after each change, at most one per streamInterval, then an
// "end" event once it and its children have finished, and the stream
// ends. Nothing runs for it between changes; a client that does not read
// is dropped after Limits.WriteTimeout (each write waits that long), and
// Drain ends the stream.
func (s *Server) streamInvocation(w http.ResponseWriter, r *http.Request, b *Backend) {
	e := engineOf(w, b)
	if e == nil {
		return
	}
	id := r.PathValue("id")
	if _, err := e.Get(id); err != nil {
		errcode.Write(w, engineError(err))
		return
	}
	changed, stop := e.Watch(id)
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // a proxy in front must not hold the events back
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	ctx, cancel := s.streamContext(r)
	defer cancel()
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	var last []byte
	for {
		tree, done, err := invocationTree(e, id)
		if err != nil {
			fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(errcode.Body{Error: err.Error(), Code: errcode.NotFound}))
			return
		}
		data := mustJSON(tree)
		if string(data) != string(last) {
			if _, err := fmt.Fprintf(w, "event: invocation\ndata: %s\n\n", data); err != nil {
				return
			}
			last = data
		}
		if done {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			if flusher != nil {
				flusher.Flush()
			}
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": still here\n\n"); err != nil {
				return
			}
			continue
		}
		select { // let a burst of changes settle into one snapshot
		case <-ctx.Done():
			return
		case <-time.After(streamInterval):
		}
	}
}

// invocationTree snapshots an invocation and its children; done tells
// that none of them runs.
func invocationTree(e *engine.Engine, id string) (*InvocationTree, bool, error) {
	root, err := e.Get(id)
	if err != nil {
		return nil, false, err
	}
	tree := &InvocationTree{Invocation: root}
	done := root.Status != engine.StatusRunning
	queue := []*engine.Invocation{root}
	for len(queue) > 0 {
		inv := queue[0]
		queue = queue[1:]
		for task, t := range inv.Tasks {
			if !engine.StartsChild(t.Run) || t.Attempts == 0 {
				continue
			}
			cid := engine.ChildID(inv.ID, task, t.Attempts)
			if len(tree.Children) == maxStreamChildren {
				tree.More = true
				break
			}
			child, err := e.Get(cid)
			if err != nil {
				continue // not created yet, or no longer kept
			}
			if tree.Children == nil {
				tree.Children = map[string]*engine.Invocation{}
			}
			tree.Children[cid] = child
			done = done && child.Status != engine.StatusRunning
			queue = append(queue, child)
		}
	}
	return tree, done, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}
