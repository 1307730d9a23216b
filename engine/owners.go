package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// Ownership across daemons.
//
// Each invocation has one owner, the only node that writes its events. Each
// engine publishes a heartbeat to NodesChannel every NodeTimeout/5; a node
// not heard from for NodeTimeout (or that said it is leaving) is dead, and
// its running invocations are taken over: every live node computes the same
// rendezvous hash of the invocation's root (so a parent and its child
// workflows move together) over the live nodes it knows, and the winner
// writes OwnerChanged{From: dead, Owner: itself}. OwnerChanged applies only
// if From is still the owner, so when two nodes disagree about who is alive
// the first OwnerChanged in the log wins and the other changes nothing. The
// new owner reconciles the invocation: tasks that were running run again
// (at least once). A former owner that was only cut off finds its later
// events ignored by every fold (they are not the owner's), stops, and
// rebuilds the invocation from the log. A node counts another's silence
// only while it hears its own heartbeats back, and has for a whole
// timeout: when the log takes no heartbeats for a while (a lost
// connection, a JetStream stream electing a new leader), every node is
// silent to every other, and none is dead for it.

// NodesChannel carries the engines' heartbeats; only the last seconds
// matter, so the store may age them out (NATS Streaming's embedded server
// keeps an hour).
const NodesChannel = "sluice.wf.nodes"

// DefaultNodeTimeout is how long a node may stay silent before its
// invocations are taken over: long enough for a GC pause or a slow
// reconnect, short enough that a crash costs seconds, not minutes.
const DefaultNodeTimeout = 10 * time.Second

type heartbeat struct {
	Node    string    `json:"node"`
	Time    time.Time `json:"time"`
	Leaving bool      `json:"leaving,omitempty"`
}

type nodeSeen struct {
	last    time.Time
	leaving bool
}

// startOwnership follows the heartbeats and starts beating.
func (e *Engine) startOwnership() error {
	sub, err := e.o.Log.Subscribe(NodesChannel, eventlog.SubOptions{Start: eventlog.Since(time.Now().Add(-3 * e.o.NodeTimeout))}, func(m *eventlog.Msg) {
		var hb heartbeat
		if json.Unmarshal(m.Data, &hb) != nil || hb.Node == "" {
			return
		}
		at := m.Time
		e.mu.Lock()
		if hb.Node == e.o.Node {
			e.heardSelf()
		}
		s := e.nodes[hb.Node]
		if at.After(s.last) {
			s.last = at
		}
		s.leaving = hb.Leaving
		e.nodes[hb.Node] = s
		e.mu.Unlock()
	})
	if err != nil {
		return err
	}
	e.nodesSub = sub
	go e.beat()
	return nil
}

func (e *Engine) beat() {
	every := e.o.NodeTimeout / 5
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		e.sendHeartbeat(false)
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		e.takeover()
	}
}

func (e *Engine) sendHeartbeat(leaving bool) {
	if e.silent.Load() {
		return
	}
	data, _ := json.Marshal(&heartbeat{Node: e.o.Node, Time: e.now(), Leaving: leaving})
	if leaving {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = e.o.Log.Publish(ctx, NodesChannel, eventlog.Message{Data: data})
		return
	}
	_ = e.o.Log.PublishAsync(NodesChannel, eventlog.Message{Data: data}, func(uint64, error) {})
}

// takeover claims the running invocations of dead nodes that fall to this
// node.
func (e *Engine) takeover() {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("looking for invocations to take over failed with an internal error; the engine carries on", "panic", fmt.Sprint(r))
		}
	}()
	if e.closed || !e.o.Log.Connected() {
		return
	}
	now := e.now()
	// While this node was cut off from NATS Streaming (the leader of a
	// cluster died, the server restarted) it heard nobody: a node is dead
	// only once silent for a whole timeout this node listened through.
	if up := e.o.Log.UpSince(); up.IsZero() || time.Since(up) < e.o.NodeTimeout {
		return
	}
	// Nor while its own heartbeats do not come back, or since they came
	// back for less than a timeout, connected or not: the log took no
	// heartbeats then (on JetStream, the stream's leader died and another
	// is being elected, for some seconds), so the others' silence says
	// nothing of them, and a takeover would re-run their calls in flight.
	if !e.hearing(now) {
		return
	}
	alive := []string{e.o.Node}
	dead := map[string]bool{}
	for node, s := range e.nodes {
		if node == e.o.Node {
			continue
		}
		if !s.leaving && now.Sub(s.last) < e.o.NodeTimeout {
			alive = append(alive, node)
		} else {
			dead[node] = true
		}
	}
	// An owner never heard from at all is dead once this node has listened
	// for a whole timeout.
	listened := now.Sub(e.started) >= e.o.NodeTimeout
	sort.Strings(alive)
	for _, inv := range e.st.invs {
		if inv.status != StatusRunning || inv.owner == e.o.Node {
			continue
		}
		_, known := e.nodes[inv.owner]
		if !dead[inv.owner] && (known || !listened) {
			continue
		}
		if at, ok := e.claimed[inv.id]; ok && now.Sub(at) < e.o.NodeTimeout {
			continue
		}
		if pick(e.rootOf(inv), alive) != e.o.Node {
			continue
		}
		e.claimed[inv.id] = now
		ev := &Event{Type: eventOwnerChanged, Invocation: inv.id, Node: e.o.Node, Time: now, From: inv.owner, Owner: e.o.Node}
		data, _ := json.Marshal(ev)
		id, from := inv.id, inv.owner
		if err := e.o.Log.PublishAsync(e.stream(id), eventlog.Message{Data: data}, func(_ uint64, err error) {
			if err != nil {
				e.log.Warn("claiming an invocation failed", "invocation", id, "from", from, "err", err)
			}
		}); err != nil {
			e.log.Warn("claiming an invocation failed", "invocation", id, "from", from, "err", err)
		}
	}
}

// heardSelf notes that this node's own heartbeat came back: a gap of
// more than hearingGap since the last starts a new run of hearing.
// Under e.mu.
func (e *Engine) heardSelf() {
	now := e.now()
	if e.selfHeard.IsZero() || now.Sub(e.selfHeard) > e.hearingGap() {
		e.hearingSince = now
	}
	e.selfHeard = now
}

// hearing tells whether this node hears its own heartbeats now, and has
// for a whole timeout. Under e.mu.
func (e *Engine) hearing(now time.Time) bool {
	return !e.selfHeard.IsZero() && now.Sub(e.selfHeard) <= e.hearingGap() && now.Sub(e.hearingSince) >= e.o.NodeTimeout
}

// hearingGap is how long this node's own heartbeats may stay away before
// it counts as deaf: two and a half beats (one is sent every
// NodeTimeout/5), so that one late or lost beat is not a gap.
func (e *Engine) hearingGap() time.Duration { return e.o.NodeTimeout / 2 }

// rootOf is the id of the invocation at the top of inv's parents.
func (e *Engine) rootOf(inv *invState) string {
	for i := 0; inv.parent != "" && i < maxDepth+1; i++ {
		pid, _, _ := strings.Cut(inv.parent, "/")
		p := e.st.invs[pid]
		if p == nil {
			return pid
		}
		inv = p
	}
	return inv.id
}

// pick chooses a node for a key by rendezvous hashing: every node that
// knows the same live nodes picks the same one, and when a node dies only
// its keys move.
func pick(key string, nodes []string) string {
	var best string
	var bestScore uint64
	for _, n := range nodes {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(n))
		if s := h.Sum64(); best == "" || s > bestScore {
			best, bestScore = n, s
		}
	}
	return best
}
