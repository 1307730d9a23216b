package engine

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// When an event fails to be stored (the connection to the broker was
// lost, an acknowledgement timed out), the owner's state of that
// invocation may be ahead of the log, and events stored after the lost
// one would leave a hole. The invocation is marked stale: it is not
// driven, and results of its calls are dropped, until resync has rebuilt
// it from the log, which is the truth. Work whose record was lost is then
// done again: at least once, as after a crash.

// The pause between attempts to read the log back doubles from
// resyncRetry to resyncRetryMax.
const (
	resyncRetry    = 200 * time.Millisecond
	resyncRetryMax = 5 * time.Second
)

// markStale marks an invocation stale and tells whether it was not
// already; it runs on the client's goroutine and must not take e.mu.
func (e *Engine) markStale(id string) bool {
	e.ackMu.Lock()
	was := e.stale[id]
	e.stale[id] = true
	e.ackMu.Unlock()
	select {
	case e.staleWake <- struct{}{}:
	default:
	}
	return !was
}

func (e *Engine) isStale(id string) bool {
	e.ackMu.Lock()
	defer e.ackMu.Unlock()
	return e.stale[id]
}

// resyncLoop rebuilds stale invocations once the log can be read.
func (e *Engine) resyncLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-e.stop; cancel() }()
	wait := resyncRetry
	for {
		select {
		case <-e.stop:
			return
		case <-e.staleWake:
		}
		for {
			e.ackMu.Lock()
			var ids []string
			for id := range e.stale {
				ids = append(ids, id)
			}
			e.ackMu.Unlock()
			if len(ids) == 0 {
				break
			}
			failed, n := error(nil), 0
			for _, id := range ids {
				if e.o.Log.WaitUp(ctx) != nil {
					return // stopping
				}
				if err := e.resync(id); err != nil {
					e.log.Debug("rebuilding an invocation from the log failed", "invocation", id, "err", err)
					failed, n = err, n+1
				}
			}
			if failed == nil {
				wait = resyncRetry
				continue
			}
			if wait >= resyncRetryMax {
				e.log.Warn("rebuilding invocations from the log failed; retrying", "invocations", n, "err", failed)
			}
			select {
			case <-e.stop:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, resyncRetryMax)
		}
	}
}

// resync replaces an invocation's state with the fold of its events read
// back from the log, then drives it again.
func (e *Engine) resync(id string) error {
	if !e.o.Log.Connected() {
		return eventlog.ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	evs, upTo, err := e.readEvents(ctx, id, true, true)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.guard(id)
	if e.closed {
		return nil
	}
	e.ackMu.Lock()
	delete(e.stale, id)
	e.ackMu.Unlock()
	fresh := newState(0, 0)
	for _, ev := range evs {
		_ = fresh.apply(ev)
	}
	// Events the live subscription delivered after the read's marker were
	// applied to the state being replaced: apply them to the new one.
	for _, ev := range e.staleBuf[id] {
		if ev.Seq > upTo {
			_ = fresh.apply(ev)
		}
	}
	delete(e.staleBuf, id)
	inv := fresh.invs[id]
	ended := e.keepRuns(id, inv)
	if inv == nil {
		// Its InvocationCreated never made it: the invocation does not
		// exist (Invoke told its caller so).
		delete(e.st.invs, id)
		e.notify(id)
		e.log.Warn("an invocation whose creation was not stored is dropped", "invocation", id)
		return nil
	}
	e.st.replace(inv)
	e.reap()
	e.log.Info("invocation rebuilt from the log", "invocation", id, "events", len(evs), "status", inv.status)
	if e.log.Enabled(ctx, slog.LevelDebug) {
		var trace []string
		for _, ev := range evs {
			if ev.Invocation != id {
				continue
			}
			trace = append(trace, fmt.Sprintf("%d:%s:%s:%s:%d", ev.Seq, ev.Type, ev.Task, ev.Node, ev.Attempt))
		}
		e.log.Debug("rebuilt from", "invocation", id, "events", strings.Join(trace, " "))
	}
	// in task order: the events written do not depend on map order
	for _, task := range slices.Sorted(maps.Keys(ended)) {
		r := ended[task]
		e.called(id, task, r, r.out, r.err, r.timedOut)
	}
	e.reconcile(inv)
	e.notify(id) // waiters look again: finished, or running on
	return nil
}

// keepRuns keeps the function calls of a rebuilt invocation whose attempt
// the log says is running (inv is the rebuilt state, nil if the invocation
// does not exist) and cancels the others, which run again; it stops every
// timer (reconcile sets those the log asks for). It returns the tasks
// whose kept call has already ended, to be recorded (again).
func (e *Engine) keepRuns(id string, inv *invState) (ended map[string]*run) {
	if inv == nil || inv.owner != e.o.Node {
		// gone, or taken over while this node was cut off
		e.stopLocal(id)
		return nil
	}
	e.trimLocal(id, func(task string, r *run) bool {
		t := inv.tasks[task]
		if t == nil || t.status != TaskRunning || t.attempts != r.attempt {
			return false
		}
		if r.ended {
			if ended == nil {
				ended = map[string]*run{}
			}
			ended[task] = r
		}
		return true
	})
	return ended
}
