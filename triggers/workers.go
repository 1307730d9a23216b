package triggers

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// A queue trigger's calls run on workers that are started as they are
// needed, not --max-inflight of them at once. With a worker parked for
// every message the server may have in flight, each delivery woke a
// parked goroutine, usually on another thread: on two cores that hand-off
// cost a NATS Streaming pipeline on its memory store a quarter of its
// throughput next to a consumer that calls the function on the delivery
// goroutine (BenchmarkMQ).
//
// A trigger starts with one worker. While its workers keep up, a message
// waits in the queue only behind short calls, and a busy worker takes the
// next one without parking, so a burst costs no wake-ups. When messages
// wait while no worker has taken one for stuckAfter (every worker is in a
// long call), the workers are doubled, up to one per waiting message and
// --max-inflight in all, and again after each stuckAfter that they stay
// stuck: slow calls still run --max-inflight at a time, after a few
// stuckAfters. A worker whose call was short ends if there are more
// workers than one plus those in a long call: the extra workers a pause
// started (a garbage collection, a first call compiling the module) go
// away once calls are short again, and those that long calls need stay.

// stuckAfter is how long the queue may wait with no worker taking a
// message before more workers are started, and the length of a call
// that keeps an extra worker.
const stuckAfter = time.Millisecond

// pool is the bookkeeping of a trigger's workers.
type pool struct {
	started atomic.Int32 // workers running
	idle    atomic.Int32 // workers waiting for a message
	// took is when a worker last took a message (UnixNano).
	took atomic.Int64
	// armed: a look for stuck workers is scheduled.
	armed atomic.Bool
	// calls has a slot per worker (under queueRun.mu).
	calls []*callSlot
}

// callSlot is when a worker's call began (UnixNano), 0 between calls.
type callSlot struct{ began atomic.Int64 }

// startWorker starts one worker unless the trigger is quitting (its
// workers are being waited for) or has all it may have.
func (r *queueRun) startWorker() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &r.workers
	if r.quitting || int(w.started.Load()) >= max(r.t.MaxInflight, 1) {
		return false
	}
	s := &callSlot{}
	w.calls = append(w.calls, s)
	w.started.Add(1)
	r.wg.Add(1)
	go r.worker(s)
	return true
}

// queued puts a delivered message in the queue, and starts workers if
// those there are stuck, or schedules a look: a worker that was idle
// when the message came may take an earlier one and get stuck in it.
func (r *queueRun) queued(m *eventlog.Msg) bool {
	select {
	case r.work <- m:
	case <-r.quit:
		return false
	}
	r.unstick()
	return true
}

// unstick doubles the workers (up to one per waiting message) if no
// worker has taken a message for stuckAfter, and looks again after
// stuckAfter while messages wait.
func (r *queueRun) unstick() {
	w := &r.workers
	if len(r.work) == 0 || int(w.started.Load()) >= max(r.t.MaxInflight, 1) {
		return
	}
	if took := w.took.Load(); time.Since(time.Unix(0, took)) >= stuckAfter && w.idle.Load() == 0 &&
		w.took.CompareAndSwap(took, time.Now().UnixNano()) { // the next doubling waits stuckAfter more
		for n := min(len(r.work), int(w.started.Load())); n > 0; n-- {
			if !r.startWorker() {
				break
			}
		}
	}
	if len(r.work) > 0 && w.armed.CompareAndSwap(false, true) {
		time.AfterFunc(stuckAfter, func() {
			w.armed.Store(false)
			select {
			case <-r.quit:
			default:
				r.unstick()
			}
		})
	}
}

func (r *queueRun) worker(s *callSlot) {
	defer r.wg.Done()
	w := &r.workers
	for {
		w.idle.Add(1)
		select {
		case m := <-r.work:
			w.idle.Add(-1)
			began := time.Now()
			w.took.Store(began.UnixNano())
			s.began.Store(began.UnixNano())
			r.stats.inflight.Add(1)
			r.process(m)
			r.stats.inflight.Add(-1)
			s.began.Store(0)
			if w.started.Load() > 1 && time.Since(began) < stuckAfter && r.retire(s) {
				return
			}
		case <-r.quit:
			w.idle.Add(-1)
			return
		}
	}
}

// retire ends the worker of slot s, after a short call, if there are
// more workers than one plus those in a long call.
func (r *queueRun) retire(s *callSlot) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &r.workers
	now, long := time.Now().UnixNano(), 0
	for _, c := range w.calls {
		if b := c.began.Load(); b != 0 && now-b >= int64(stuckAfter) {
			long++
		}
	}
	if len(w.calls) <= 1+long {
		return false
	}
	w.calls = slices.DeleteFunc(w.calls, func(c *callSlot) bool { return c == s })
	w.started.Add(-1)
	return true
}

// stopWorkers tells the workers to quit and waits for them; none is
// started from then on.
func (r *queueRun) stopWorkers() {
	r.mu.Lock()
	r.quitting = true
	r.mu.Unlock()
	close(r.quit)
	r.wg.Wait()
}
