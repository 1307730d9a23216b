package engine

import "context"

// inflight counts the events of one invocation this node has handed to
// the log and whose outcome (stored, or lost) is not known yet, under
// ackMu. Its state runs ahead of the log by those: a reader of the log
// waits for them to settle first (settled), to see what the state shows.
type inflight struct {
	sent, settled uint64
	// wake is closed at the next settlement, for those waiting (nil when
	// nobody waits).
	wake chan struct{}
}

// sending counts an event of invocation id about to be handed to the log;
// its outcome goes to sent.
func (e *Engine) sending(id string) *inflight {
	e.ackMu.Lock()
	defer e.ackMu.Unlock()
	f := e.inflight[id]
	if f == nil {
		f = &inflight{}
		e.inflight[id] = f
	}
	f.sent++
	return f
}

// sent settles an event counted by sending; an invocation with nothing in
// flight leaves the map.
func (e *Engine) sent(id string, f *inflight) {
	e.ackMu.Lock()
	defer e.ackMu.Unlock()
	f.settled++
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
	if f.settled == f.sent && e.inflight[id] == f {
		delete(e.inflight, id)
	}
}

// settled waits until every event of invocation id handed to the log so
// far is settled (an error is ctx's).
func (e *Engine) settled(ctx context.Context, id string) error {
	e.ackMu.Lock()
	f := e.inflight[id]
	if f == nil {
		e.ackMu.Unlock()
		return nil
	}
	upTo := f.sent
	for f.settled < upTo {
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake := f.wake
		e.ackMu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
		e.ackMu.Lock()
	}
	e.ackMu.Unlock()
	return nil
}
