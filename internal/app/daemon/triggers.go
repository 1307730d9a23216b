package daemon

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/fn"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/triggers"
)

// triggerSet runs the catalog's triggers on this daemon. Changes are
// applied one at a time, in catalog order, on a goroutine of their own:
// stopping a trigger waits for its messages in flight, which must not hold
// up the catalog's follower.
type triggerSet struct {
	http   *triggers.HTTP
	queue  *triggers.Queue
	timers *triggers.Timers
	log    *slog.Logger

	mu      sync.Mutex
	pending []change
	wake    chan struct{}
	done    chan struct{}
	closed  bool
}

type change struct {
	t       *catalog.Trigger
	deleted bool
}

func newTriggerSet(http *triggers.HTTP, queue *triggers.Queue, timers *triggers.Timers, log *slog.Logger) *triggerSet {
	s := &triggerSet{http: http, queue: queue, timers: timers, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.loop()
	return s
}

// onChange is the catalog watcher.
func (s *triggerSet) onChange(ch catalog.Change) {
	if ch.Trigger == nil {
		return
	}
	s.add(change{t: ch.Trigger, deleted: ch.Event.Type == catalog.EventTriggerDeleted})
}

func (s *triggerSet) add(c change) {
	if c.t.HTTP != nil { // routes change at once: the API answers right after
		if c.deleted {
			s.http.Remove(c.t.Name)
		} else {
			// the catalog refuses what a route table would: this is for a
			// route the catalog of another sluice version let through
			if err := s.http.Set(triggers.HTTPRoute{Trigger: c.t.Name, Target: target(c.t), Path: c.t.HTTP.Path, Method: c.t.HTTP.Method, Request: c.t.HTTP.Request}); err != nil {
				s.log.Error("skipping an HTTP trigger: its route cannot be served", "trigger", c.t.Name, "err", err)
			}
		}
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.pending = append(s.pending, c)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *triggerSet) loop() {
	defer close(s.done)
	for {
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		closed := s.closed
		s.mu.Unlock()
		for _, c := range batch {
			s.apply(c)
		}
		if closed {
			return
		}
		<-s.wake
	}
}

func (s *triggerSet) apply(c change) {
	t := c.t
	if c.deleted {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Queue != nil {
			s.queue.Stop(ctx, t.Name, true)
		} else if t.Cron != nil {
			s.timers.Stop(ctx, t.Name, true)
		}
		return
	}
	var err error
	switch {
	case t.Queue != nil:
		q := t.Queue
		err = s.queue.Start(triggers.QueueTrigger{
			Name: t.Name, Target: target(t), Topic: q.Topic, RespTopic: q.RespTopic, ErrorTopic: q.ErrorTopic,
			MaxRetries: q.MaxRetries, MaxInflight: q.MaxInflight, AckWait: time.Duration(q.AckWait), Group: t.Group,
		})
	case t.Cron != nil:
		err = s.timers.Start(triggers.TimerTrigger{
			Name: t.Name, Target: target(t), Schedule: t.Cron.Schedule, RespTopic: t.Cron.RespTopic, Group: t.Group,
		})
	}
	if err != nil {
		s.log.Error("cannot run trigger", "trigger", t.Name, "err", err)
	}
}

// close stops applying changes and stops every trigger: timers first,
// then the queue triggers finish their messages in flight (until ctx ends).
func (s *triggerSet) close(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.done
	s.timers.Close()
	s.queue.Close(ctx)
}

// target is what a trigger runs: its function, or its workflow.
func target(t *catalog.Trigger) fn.Target {
	if t.Workflow != "" {
		return fn.Workflow(t.Workflow)
	}
	return fn.Function(t.Function)
}
