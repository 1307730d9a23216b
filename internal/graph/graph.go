// Package graph builds the system's graph from the catalog's state: what
// feeds what, from HTTP routes, topics and timers through triggers to
// functions and workflows, on to the topics their results and errors go
// to, and from workflows to the functions and child workflows their
// tasks run. It is pure: it reads the state it is given, parses workflow
// definitions, and does no I/O; the HTTP API gives it the catalog and the
// broker's topic list, and writes what it returns as JSON, Graphviz dot
// or Mermaid (dot.go, mermaid.go).
//
// What it cannot know it says rather than guesses. A workflow task whose
// target is an expression (a dynamic task's spec, a workflow task's
// workflow: ${ ... }) is an edge to a node of kind "dynamic" naming those
// tasks. A function that publishes to a topic from its code is not an
// edge: nothing in a module says where it publishes before it runs; such
// a topic appears as a node without edges, from the broker's topic list.
package graph

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/triggers"
)

// Kind is a node's kind.
type Kind string

// Node kinds.
const (
	KindRoute    Kind = "route"
	KindTopic    Kind = "topic"
	KindTimer    Kind = "timer"
	KindTrigger  Kind = "trigger"
	KindFunction Kind = "function"
	KindWorkflow Kind = "workflow"
	// KindDynamic is what a workflow's tasks run when it is known only as
	// they run: one node per workflow, naming the tasks.
	KindDynamic Kind = "dynamic"
)

// EdgeKind says how one node feeds another.
type EdgeKind string

// Edge kinds.
const (
	// EdgeFeeds: a route, a topic or a timer feeds a trigger.
	EdgeFeeds EdgeKind = "feeds"
	// EdgeInvokes: a trigger calls a function or starts a workflow.
	EdgeInvokes EdgeKind = "invokes"
	// EdgeResponse: a function's or workflow's results, called by the
	// edge's trigger, go to a topic.
	EdgeResponse EdgeKind = "response"
	// EdgeError: its failures (dead letters) go to a topic.
	EdgeError EdgeKind = "error"
	// EdgeRuns: a workflow's tasks call a function.
	EdgeRuns EdgeKind = "runs"
	// EdgeStarts: a workflow's tasks start a child workflow.
	EdgeStarts EdgeKind = "starts"
	// EdgeDynamic: a workflow's tasks run what is known only as they run.
	EdgeDynamic EdgeKind = "dynamic"
)

// Graph is the system's graph. Nodes are sorted by ID, edges by From,
// To, Kind and Trigger: the same state gives the same bytes.
type Graph struct {
	Nodes []*Node `json:"nodes"`
	Edges []*Edge `json:"edges"`
	// Warnings say what the graph lacks: the broker's topics when it
	// could not be asked.
	Warnings []string `json:"warnings,omitempty"`
}

// Node is a node of the graph. ID is stable across calls and daemons:
// "route:METHOD PATH" (METHOD "*" for any), "topic:NAME", "timer:TRIGGER",
// "trigger:NAME", "function:NAME", "workflow:NAME", "dynamic:WORKFLOW".
// The field of the node's kind holds what a console shows of it.
type Node struct {
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// Missing: a trigger or a workflow names it, and it is not deployed
	// or created now (deleted with --force).
	Missing  bool          `json:"missing,omitempty"`
	Function *FunctionInfo `json:"function,omitempty"`
	Workflow *WorkflowInfo `json:"workflow,omitempty"`
	Trigger  *TriggerInfo  `json:"trigger,omitempty"`
	Route    *RouteInfo    `json:"route,omitempty"`
	Timer    *TimerInfo    `json:"timer,omitempty"`
	Topic    *TopicInfo    `json:"topic,omitempty"`
	Dynamic  *DynamicInfo  `json:"dynamic,omitempty"`
}

// FunctionInfo describes a function node.
type FunctionInfo struct {
	Version int    `json:"version"`
	ABI     string `json:"abi"`
}

// WorkflowInfo describes a workflow node.
type WorkflowInfo struct {
	Version  int    `json:"version"`
	Revision string `json:"revision"`
	// Error says why its definition could not be read again (its edges
	// to what it runs are then unknown).
	Error string `json:"error,omitempty"`
}

// TriggerInfo describes a trigger node: its kind ("http", "queue",
// "cron") and options.
type TriggerInfo struct {
	Kind   string             `json:"kind"`
	Target string             `json:"target"`
	HTTP   *catalog.HTTPSpec  `json:"http,omitempty"`
	Queue  *catalog.QueueSpec `json:"queue,omitempty"`
	Cron   *catalog.CronSpec  `json:"cron,omitempty"`
	Group  string             `json:"group,omitempty"`
}

// RouteInfo describes an HTTP route node.
type RouteInfo struct {
	// Method is "" for any method.
	Method string `json:"method,omitempty"`
	// Path is the route's path as clients call it (under /fn).
	Path string `json:"path"`
}

// TimerInfo describes a timer node.
type TimerInfo struct {
	Schedule string `json:"schedule"`
}

// TopicInfo describes a topic node. Messages and Last are the broker's,
// when it was asked and holds the topic.
type TopicInfo struct {
	// Stored: the broker holds the topic (it has had messages).
	Stored   bool   `json:"stored"`
	Messages uint64 `json:"messages,omitempty"`
	Last     uint64 `json:"last_sequence,omitempty"`
}

// DynamicInfo describes a dynamic node: the workflow's tasks whose
// target is an expression.
type DynamicInfo struct {
	Workflow string   `json:"workflow"`
	Tasks    []string `json:"tasks"`
}

// Edge says that From feeds To. Trigger names the trigger of a response
// or error edge (a function called by two triggers may answer on two
// topics).
type Edge struct {
	From    string   `json:"from"`
	To      string   `json:"to"`
	Kind    EdgeKind `json:"kind"`
	Trigger string   `json:"trigger,omitempty"`
}

// Input is the state the graph is built from.
type Input struct {
	Functions []*catalog.Function
	Triggers  []*catalog.Trigger
	Workflows []*catalog.Workflow
	// Topics are the broker's (eventlog.TopicLister); nil if it was not
	// asked.
	Topics []eventlog.TopicInfo
}

// ID returns a node's ID.
func ID(kind Kind, name string) string { return string(kind) + ":" + name }

// RouteID returns the ID of an HTTP route's node.
func RouteID(method, path string) string {
	if method == "" {
		method = "*"
	}
	return ID(KindRoute, method+" "+triggers.HTTPPrefix+path)
}

// builder holds the graph being built.
type builder struct {
	nodes map[string]*Node
	edges map[Edge]bool
}

// Build builds the graph of a state.
func Build(in Input) *Graph {
	b := &builder{nodes: map[string]*Node{}, edges: map[Edge]bool{}}
	fns := make(map[string]*catalog.Function, len(in.Functions))
	for _, f := range in.Functions {
		fns[f.Name] = f
		b.nodes[ID(KindFunction, f.Name)] = &Node{ID: ID(KindFunction, f.Name), Kind: KindFunction, Name: f.Name,
			Function: &FunctionInfo{Version: f.Version, ABI: f.Config.ABI}}
	}
	wfs := make(map[string]*catalog.Workflow, len(in.Workflows))
	for _, w := range in.Workflows {
		wfs[w.Name] = w
		b.nodes[ID(KindWorkflow, w.Name)] = &Node{ID: ID(KindWorkflow, w.Name), Kind: KindWorkflow, Name: w.Name,
			Workflow: &WorkflowInfo{Version: w.Version, Revision: w.Revision}}
	}
	for _, t := range in.Triggers {
		b.trigger(t)
	}
	known := engine.Known{
		Function: func(name string) bool { return fns[name] != nil },
		Workflow: func(name string) bool { return wfs[name] != nil },
	}
	for _, w := range in.Workflows {
		b.workflow(w, known)
	}
	for _, t := range in.Topics {
		n := b.node(KindTopic, t.Name)
		n.Topic.Stored, n.Topic.Messages, n.Topic.Last = true, t.Messages, t.Last
	}
	g := &Graph{Nodes: slices.Collect(maps.Values(b.nodes)), Edges: make([]*Edge, 0, len(b.edges))}
	for e := range b.edges {
		g.Edges = append(g.Edges, &e)
	}
	slices.SortFunc(g.Nodes, func(a, b *Node) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(g.Edges, func(a, b *Edge) int {
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		if c := strings.Compare(a.To, b.To); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Trigger, b.Trigger)
	})
	return g
}

// node returns the node of a name, adding it (as missing, for a function
// or a workflow) if there is none.
func (b *builder) node(kind Kind, name string) *Node {
	id := ID(kind, name)
	if n := b.nodes[id]; n != nil {
		return n
	}
	n := &Node{ID: id, Kind: kind, Name: name}
	switch kind {
	case KindFunction, KindWorkflow:
		n.Missing = true
	case KindTopic:
		n.Topic = &TopicInfo{}
	}
	b.nodes[id] = n
	return n
}

func (b *builder) edge(from, to *Node, kind EdgeKind, trigger string) {
	b.edges[Edge{From: from.ID, To: to.ID, Kind: kind, Trigger: trigger}] = true
}

// trigger adds a trigger, what feeds it, what it invokes and where the
// results go.
func (b *builder) trigger(t *catalog.Trigger) {
	tn := &Node{ID: ID(KindTrigger, t.Name), Kind: KindTrigger, Name: t.Name,
		Trigger: &TriggerInfo{Kind: t.Kind(), HTTP: t.HTTP, Queue: t.Queue, Cron: t.Cron, Group: t.Group}}
	b.nodes[tn.ID] = tn
	var target *Node
	if t.Workflow != "" {
		target = b.node(KindWorkflow, t.Workflow)
		tn.Trigger.Target = target.ID
	} else {
		target = b.node(KindFunction, t.Function)
		tn.Trigger.Target = target.ID
	}
	b.edge(tn, target, EdgeInvokes, "")
	var resp, errs string
	switch {
	case t.HTTP != nil:
		id := RouteID(t.HTTP.Method, t.HTTP.Path)
		rn := b.nodes[id]
		if rn == nil {
			rn = &Node{ID: id, Kind: KindRoute, Name: strings.TrimPrefix(id, string(KindRoute)+":"),
				Route: &RouteInfo{Method: t.HTTP.Method, Path: triggers.HTTPPrefix + t.HTTP.Path}}
			b.nodes[id] = rn
		}
		b.edge(rn, tn, EdgeFeeds, "")
	case t.Queue != nil:
		b.edge(b.node(KindTopic, t.Queue.Topic), tn, EdgeFeeds, "")
		resp, errs = t.Queue.RespTopic, t.Queue.ErrorTopic
	case t.Cron != nil:
		id := ID(KindTimer, t.Name)
		timer := &Node{ID: id, Kind: KindTimer, Name: t.Name, Timer: &TimerInfo{Schedule: t.Cron.Schedule}}
		b.nodes[id] = timer
		b.edge(timer, tn, EdgeFeeds, "")
		resp = t.Cron.RespTopic
	}
	if resp != "" {
		b.edge(target, b.node(KindTopic, resp), EdgeResponse, t.Name)
	}
	if errs != "" {
		b.edge(target, b.node(KindTopic, errs), EdgeError, t.Name)
	}
}

// workflow adds the edges from a workflow to what its tasks run, read
// from its current definition. A definition that names what has since
// been deleted (with --force) is read again without being told what
// exists; what it names is then a missing node.
func (b *builder) workflow(w *catalog.Workflow, known engine.Known) {
	wn := b.nodes[ID(KindWorkflow, w.Name)]
	def, err := engine.ParseDefinition(w.Name, []byte(w.Source), known)
	if err != nil {
		def, err = engine.ParseDefinition(w.Name, []byte(w.Source), engine.Known{})
	}
	if err != nil {
		wn.Workflow.Error = fmt.Sprintf("the definition cannot be read: %v", err)
		return
	}
	// a name in run: may be both (as the run resolves it: a deployed
	// function wins); one in workflow: is a workflow's only
	fns, children := def.Uses()
	isFn := make(map[string]bool, len(fns))
	for _, f := range fns {
		isFn[f] = true
		if known.Function(f) || !known.Workflow(f) {
			b.edge(wn, b.node(KindFunction, f), EdgeRuns, "")
		}
	}
	for _, c := range children {
		if !isFn[c] || !known.Function(c) && known.Workflow(c) {
			b.edge(wn, b.node(KindWorkflow, c), EdgeStarts, "")
		}
	}
	if tasks := def.Dynamic(); len(tasks) > 0 {
		id := ID(KindDynamic, w.Name)
		dn := &Node{ID: id, Kind: KindDynamic, Name: w.Name, Dynamic: &DynamicInfo{Workflow: w.Name, Tasks: tasks}}
		b.nodes[id] = dn
		b.edge(wn, dn, EdgeDynamic, "")
	}
}
