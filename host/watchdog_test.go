package host

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/testutil"
)

// TestWatchdogLingersThenParks checks the watchdog's rest: a new host's
// parks, a call wakes it and it stays awake for watchLinger ticks after
// the call, then parks again; and a call on a host whose watchdog is
// parked is still stopped at its deadline.
func TestWatchdogLingersThenParks(t *testing.T) {
	h, _ := newHost(t)
	parked := func() bool { return h.watch.parked.Load() }
	testutil.Eventually(t, 10*time.Second, "a new host's watchdog to park", parked)

	f := load(t, h, "spin", Spec{Limits: Limits{Timeout: 50 * time.Millisecond}})
	mustInvoke(t, f, "ok") // the first call, and whatever it starts in the background
	testutil.Eventually(t, 10*time.Second, "the watchdog to park after the first call", parked)

	called := time.Now()
	mustInvoke(t, f, "ok")
	if parked() {
		t.Fatal("the watchdog is parked right after a call armed an instance")
	}
	testutil.Eventually(t, 10*time.Second, "the watchdog to park after the call", parked)
	// a timer never fires early: the watchdog cannot have parked before
	// its linger's ticks (all but the one running when the call woke it)
	if d, least := time.Since(called), (watchLinger-1)*watchTick; d < least {
		t.Fatalf("the watchdog parked %v after a call, before its linger of %d ticks (%v)", d, watchLinger, least)
	}

	done := make(chan error, 1)
	go func() {
		_, err := f.Invoke(context.Background(), Call{Input: []byte("forever")})
		done <- err
	}()
	select {
	case err := <-done:
		wantCallError(t, err, ErrTimeout, "timed out after 50ms")
	case <-time.After(10 * time.Second):
		t.Fatal("a call on a host whose watchdog was parked ran past its deadline for 10 s")
	}
}
