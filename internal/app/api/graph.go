package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/app/console"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/graph"
)

// topicsWait bounds asking the broker for its topics: a broker that does
// not answer within it leaves the graph without the topics only its
// functions publish to (and says so), rather than holding the request.
const topicsWait = 10 * time.Second

// Graph formats of GET /v1/graph?format=.
const (
	GraphJSON    = "json"
	GraphDot     = "dot"
	GraphMermaid = "mermaid"
	// GraphSVG is the graph drawn (console.TopologySVG), as the console
	// shows it; 413 over console.MaxTopologyNodes.
	GraphSVG = "svg"
)

// graphOf handles GET /v1/graph: the system's graph (package graph) as
// JSON, with format=dot or format=mermaid as text to draw, or with
// format=svg drawn (its ETag the hash of what the drawing shows).
func (s *Server) graphOf(w http.ResponseWriter, r *http.Request, b *Backend) {
	format := r.URL.Query().Get("format")
	switch format {
	case "", GraphJSON, GraphDot, GraphMermaid, GraphSVG:
	default:
		errcode.Write(w, fmt.Errorf("%w: format %q: want json, dot or mermaid, or svg for the drawing", catalog.ErrInvalid, format))
		return
	}
	in := graph.Input{Functions: b.Catalog.Functions(), Triggers: b.Catalog.Triggers(), Workflows: b.Catalog.Workflows()}
	warning := "the broker's topics are not shown (only those triggers name): this broker cannot list them"
	if tl, ok := b.Log.(eventlog.TopicLister); ok {
		warning = ""
		ctx, cancel := context.WithTimeout(r.Context(), topicsWait)
		topics, err := tl.Topics(ctx)
		cancel()
		if err != nil {
			warning = fmt.Sprintf("the broker's topics are not shown (only those triggers name): %v", err)
			if !errors.Is(err, eventlog.ErrUnsupported) {
				s.log.WarnContext(r.Context(), "graph without the broker's topics", "err", err)
			}
		}
		in.Topics = topics
	}
	g := graph.Build(in)
	if warning != "" {
		g.Warnings = append(g.Warnings, warning)
	}
	switch format {
	case GraphDot:
		w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
		_ = graph.WriteDot(w, g)
	case GraphMermaid:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = graph.WriteMermaid(w, g)
	case GraphSVG:
		top, err := console.TopologySVG(g)
		var svg []byte
		var tag string
		if err == nil {
			svg, tag = top.SVG, top.Hash
		}
		writeDrawing(w, r, svg, err, tag)
	default:
		errcode.WriteJSON(w, http.StatusOK, g)
	}
}

// listTopics handles GET /v1/topics: the users' topics the broker holds,
// with their message counts and last sequences (eventlog.TopicLister).
func (s *Server) listTopics(w http.ResponseWriter, r *http.Request, b *Backend) {
	tl, ok := b.Log.(eventlog.TopicLister)
	if !ok {
		errcode.Write(w, fmt.Errorf("list topics: %w", eventlog.ErrUnsupported))
		return
	}
	topics, err := tl.Topics(r.Context())
	if err != nil {
		errcode.Write(w, err)
		return
	}
	if topics == nil {
		topics = []eventlog.TopicInfo{}
	}
	errcode.WriteJSON(w, http.StatusOK, topics)
}
