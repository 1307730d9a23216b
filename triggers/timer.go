package triggers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/schedule"
)

// TimerTrigger is a timer trigger as this daemon runs it.
type TimerTrigger struct {
	Name string
	// Target is what each tick runs.
	Target    fn.Target
	Schedule  string
	RespTopic string
	Group     string
}

// How a tick fires once with several daemons, without a leader:
//
//  1. every daemon running the trigger publishes a claim {tick T} to the
//     trigger's channel sluice.ticks.GROUP when T comes;
//  2. every daemon follows that channel and folds it: for each T, the
//     first claim in the channel's order wins, the same one for everyone;
//  3. the claims are also consumed by a durable queue group, like any
//     message-queue trigger: the daemon that receives the winning claim
//     calls the function, the others' claims are acked without a call.
//
// So a tick runs once while every daemon is healthy, and at least once if
// the daemon running it dies (its claim is redelivered to another). A tick
// whose claims are all older than claimWindow (every daemon was down) is
// skipped, like cron on a machine that was off. Claims carry no trace
// context: each firing's call is the first span of a new trace, and its
// result goes to RespTopic with that trace's traceparent.
const (
	claimWindow = 10 * time.Minute
	// followerWait bounds how long a claim waits for the follower to
	// reach it before it is left for redelivery.
	followerWait = 10 * time.Second
	// tickRetries and tickAckWait: a failed tick is retried like a
	// message, a few times, a little apart.
	tickRetries = 3
	tickAckWait = 5 * time.Second
)

// TickChannel is the channel of a timer trigger's claims.
func TickChannel(group string) string { return "sluice.ticks." + group }

// TickInput is what a timer trigger's function receives.
type TickInput struct {
	Trigger string `json:"trigger"`
	Time    string `json:"time"`
}

type claim struct {
	Tick   time.Time `json:"tick"`
	Daemon string    `json:"daemon"`
}

// Timers runs this daemon's timer triggers.
type Timers struct {
	conn   eventlog.Log
	queue  *Queue
	daemon string
	log    *slog.Logger

	mu      sync.Mutex
	running map[string]*timerRun
	closed  bool
}

// NewTimers returns a runner of timer triggers; the calls go through
// queue.
func NewTimers(conn eventlog.Log, queue *Queue, daemon string, log *slog.Logger) *Timers {
	return &Timers{conn: conn, queue: queue, daemon: daemon, log: log, running: map[string]*timerRun{}}
}

type timerRun struct {
	t     TimerTrigger
	sched schedule.Schedule
	quit  chan struct{}
	done  chan struct{}
	sub   eventlog.Subscription

	mu      sync.Mutex
	first   map[int64]uint64 // tick (unix ns) -> sequence of its first claim
	applied uint64           // last sequence folded
	moved   chan struct{}    // closed and replaced when applied moves
}

// Start runs a timer trigger on this daemon.
func (ts *Timers) Start(t TimerTrigger) error {
	sched, err := schedule.Parse(t.Schedule)
	if err != nil {
		return fmt.Errorf("trigger %q: %w", t.Name, err)
	}
	ts.mu.Lock()
	if ts.closed {
		ts.mu.Unlock()
		return fmt.Errorf("shutting down")
	}
	if _, ok := ts.running[t.Name]; ok {
		ts.mu.Unlock()
		return nil
	}
	r := &timerRun{t: t, sched: sched, quit: make(chan struct{}), done: make(chan struct{}),
		first: map[int64]uint64{}, moved: make(chan struct{})}
	ts.running[t.Name] = r
	ts.mu.Unlock()

	channel := TickChannel(t.Group)
	r.sub, err = ts.conn.Subscribe(channel, eventlog.SubOptions{Start: eventlog.Since(time.Now().Add(-claimWindow - time.Minute))}, r.fold)
	if err == nil {
		err = ts.queue.Start(QueueTrigger{
			Name: t.Name, Target: t.Target, Topic: channel, RespTopic: t.RespTopic,
			MaxRetries: tickRetries, MaxInflight: 4, AckWait: tickAckWait, Group: t.Group, input: r.input,
		})
	}
	if err != nil {
		if r.sub != nil {
			r.sub.Close()
		}
		ts.mu.Lock()
		delete(ts.running, t.Name)
		ts.mu.Unlock()
		return fmt.Errorf("trigger %q: %w", t.Name, err)
	}
	go ts.tick(r)
	ts.log.Info("timer trigger running", "trigger", t.Name, "schedule", t.Schedule, "target", t.Target.String())
	return nil
}

// tick publishes this daemon's claim of each tick.
func (ts *Timers) tick(r *timerRun) {
	defer close(r.done)
	channel := TickChannel(r.t.Group)
	now := time.Now()
	for {
		next := r.sched.Next(now)
		if next.IsZero() {
			ts.log.Warn("timer trigger's schedule never fires", "trigger", r.t.Name, "schedule", r.t.Schedule)
			<-r.quit
			return
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-r.quit:
			timer.Stop()
			return
		case <-timer.C:
		}
		data, _ := json.Marshal(claim{Tick: next.UTC(), Daemon: ts.daemon})
		ctx, cancel := context.WithTimeout(context.Background(), claimWindow/2)
		if _, err := ts.conn.Publish(ctx, channel, eventlog.Message{Data: data}); err != nil {
			ts.log.Warn("cannot publish a timer tick", "trigger", r.t.Name, "tick", next, "err", err)
		}
		cancel()
		now = next
	}
}

// fold applies one claim: the first claim of a tick wins.
func (r *timerRun) fold(m *eventlog.Msg) {
	var c claim
	err := json.Unmarshal(m.Data, &c)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		if _, ok := r.first[c.Tick.UnixNano()]; !ok {
			r.first[c.Tick.UnixNano()] = m.Sequence
		}
	}
	if m.Sequence > r.applied {
		r.applied = m.Sequence
	}
	if len(r.first) > 4096 {
		horizon := time.Now().Add(-2 * claimWindow).UnixNano()
		for tick := range r.first {
			if tick < horizon {
				delete(r.first, tick)
			}
		}
	}
	close(r.moved)
	r.moved = make(chan struct{})
}

// input decides whether a claim delivered by the queue group is the one
// to run.
func (r *timerRun) input(m *eventlog.Msg) ([]byte, bool, error) {
	var c claim
	if err := json.Unmarshal(m.Data, &c); err != nil {
		return nil, false, nil // not a claim: ack and forget
	}
	if time.Since(c.Tick) > claimWindow {
		return nil, false, nil // every daemon missed it
	}
	deadline := time.NewTimer(followerWait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		applied, moved := r.applied, r.moved
		winner, known := r.first[c.Tick.UnixNano()]
		r.mu.Unlock()
		if applied >= m.Sequence {
			if !known || winner != m.Sequence {
				return nil, false, nil // another claim of the same tick won
			}
			in, _ := json.Marshal(TickInput{Trigger: r.t.Name, Time: c.Tick.UTC().Format(time.RFC3339)})
			return in, true, nil
		}
		select {
		case <-moved:
		case <-deadline.C:
			return nil, false, fmt.Errorf("timer trigger %q: claims not followed up to sequence %d yet", r.t.Name, m.Sequence)
		}
	}
}

// Stop stops a timer trigger on this daemon; with forget (deleted) its
// queue group is removed too.
func (ts *Timers) Stop(ctx context.Context, name string, forget bool) {
	ts.mu.Lock()
	r := ts.running[name]
	delete(ts.running, name)
	ts.mu.Unlock()
	if r == nil {
		return
	}
	close(r.quit)
	<-r.done
	ts.queue.Stop(ctx, name, forget)
	r.sub.Close()
}

// Close stops every timer trigger of this daemon. The queue is closed by
// its owner.
func (ts *Timers) Close() {
	ts.mu.Lock()
	ts.closed = true
	runs := ts.running
	ts.running = map[string]*timerRun{}
	ts.mu.Unlock()
	for _, r := range runs {
		close(r.quit)
		<-r.done
		r.sub.Close()
	}
}
