package host

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The watchdog stops calls that overrun their timeout or whose context
// ends. A call arms its instance with a deadline and its context, and
// disarms it when the guest returns; one goroutine per host looks at the
// armed instances every watchTick and interrupts those due. A call costs
// two uncontended locks of its instance, where a timer of its own and a
// context.AfterFunc cost a lock of the runtime's timer heap to arm and to
// stop, and an allocation and a lock of the context per call: the
// largest part of what sluice added to a warm call. The price is
// precision: a call is stopped up to watchTick after its deadline or its
// context's end, where the timer stopped it at once.
//
// The goroutine parks once no instance has been armed for watchLinger
// ticks, and the first call to arm one wakes it, so an idle host does not
// tick. It lingers because the wake-up costs the call that makes it: a
// goroutine woken on a 2-core VM (another thread woken through the kernel)
// added about 85 ns a call to warm calls of the Go guest in the paired
// benchmark, whose sluice calls come in blocks a millisecond apart. While
// one is armed,
// each tick looks at every instance the host has, idle ones included
// (a lock each): tens of microseconds a millisecond with thousands of
// instances, the price of keeping arm and disarm off a lock every call
// shares.

// watchTick is how often the watchdog looks at the armed instances: the
// most a call overruns its timeout or a canceled context by.
const watchTick = time.Millisecond

// watchLinger is how many ticks in a row the watchdog finds nothing armed
// before it parks: calls that come more often than every 100 ms do not
// wake it, and an idle host ticks for 100 ms after its last call.
const watchLinger = 100

// Watch states of an instance (instance.watchState). Why a call was
// stopped is in instance.timedOut and instance.canceled.
const (
	watchIdle  = iota // not in a call
	watchArmed        // in a call, watched
	watchFired        // in a call the watchdog stopped
)

type watchdog struct {
	mu    sync.Mutex
	insts map[*instance]struct{} // every instance that can run a call
	// parked is set while the goroutine waits on wake for an armed
	// instance.
	parked atomic.Bool
	wake   chan struct{} // capacity 1
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the goroutine returns
	fire   []*instance   // the goroutine's: instances to interrupt
}

func newWatchdog() *watchdog {
	w := &watchdog{insts: map[*instance]struct{}{}, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// add and remove register an instance from its making to its closing.
func (w *watchdog) add(i *instance) {
	w.mu.Lock()
	w.insts[i] = struct{}{}
	w.mu.Unlock()
}

func (w *watchdog) remove(i *instance) {
	w.mu.Lock()
	delete(w.insts, i)
	w.mu.Unlock()
}

// close stops the goroutine once no instance is armed: a call still
// running when its host closes is still stopped at its deadline. It does
// not wait for that.
func (w *watchdog) close() {
	close(w.stop)
	w.unpark()
}

// unpark wakes the goroutine if it is parked.
func (w *watchdog) unpark() {
	if w.parked.Load() && w.parked.CompareAndSwap(true, false) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *watchdog) run() {
	defer close(w.done)
	t := time.NewTimer(watchTick)
	defer t.Stop()
	idle := watchLinger // scans in a row that found nothing armed: a new host parks at once
	for {
		switch {
		case w.scan():
			idle = 0
		case w.closing():
			return
		default:
			if idle++; idle >= watchLinger {
				w.park()
				idle = 0
				continue // look at once: a call armed an instance, or the host is closing
			}
		}
		t.Reset(watchTick)
		select {
		case <-t.C:
		case <-w.stop:
			// a closing host: look once more, then as before, until
			// nothing is armed
			<-t.C
		}
	}
}

// park waits until a call arms an instance or the host closes.
func (w *watchdog) park() {
	// An arm that comes after the last scan either sees parked and wakes
	// us, or is seen by the scan that follows the store (both are
	// sequentially consistent atomics).
	w.parked.Store(true)
	defer w.parked.Store(false)
	if w.scan() {
		return
	}
	select {
	case <-w.wake:
	case <-w.stop:
	}
}

// closing tells whether the host is closing.
func (w *watchdog) closing() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// scan interrupts the armed instances that are due and tells whether any
// instance is armed.
func (w *watchdog) scan() (armed bool) {
	now := clock()
	w.mu.Lock()
	for i := range w.insts {
		i.watchMu.Lock()
		if i.watchState == watchArmed {
			armed = true
			if i.due(now) {
				i.watchState = watchFired
				w.fire = append(w.fire, i)
			}
		}
		i.watchMu.Unlock()
	}
	w.mu.Unlock()
	for k, i := range w.fire {
		i.interrupt()
		w.fire[k] = nil
	}
	w.fire = w.fire[:0]
	return armed
}

// due tells whether an armed call is to be stopped now, and records why
// (under watchMu).
func (i *instance) due(now time.Duration) bool {
	switch {
	case now > i.deadline:
		i.timedOut.Store(true)
	case i.watchCtx != nil && i.watchCtx.Err() != nil:
		i.canceled.Store(true)
	default:
		return false
	}
	return true
}

// arm puts the instance's call under watch: stopped after timeout, or
// when ctx ends.
func (i *instance) arm(ctx context.Context, timeout time.Duration) {
	// the first guest call of a call starts when the call did (a reading
	// of the clock fewer: on some machines it costs more than a lock)
	now := i.callStart
	if now == 0 {
		now = clock()
	}
	i.callStart = 0
	deadline := now + timeout // a timeout is at most MaxTimeout
	i.watchMu.Lock()
	i.watchState = watchArmed
	i.deadline = deadline
	if ctx.Done() != nil {
		i.watchCtx = ctx
	}
	i.watchMu.Unlock()
	i.fn.host.watch.unpark()
}

// disarm ends the watch of the instance's call and tells whether the
// watchdog stopped it (then timedOut or canceled says why).
func (i *instance) disarm() (fired bool) {
	i.watchMu.Lock()
	fired = i.watchState != watchArmed
	i.watchState, i.watchCtx = watchIdle, nil
	i.watchMu.Unlock()
	return fired
}
