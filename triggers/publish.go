package triggers

import (
	"context"
	"sync"

	"github.com/sluicehq/sluice/eventlog"
)

// A queue trigger's results and dead letters are published one at a time
// per trigger, not by every worker at once. The broker clients serialize
// publications on their connection's locks (stan.go's and nats.go's,
// jslog's ordered futures): with --max-inflight workers publishing at
// once, those locks convoyed, and on two cores a burst spent more time
// handing them from goroutine to goroutine than publishing (the mutex
// profile of BenchmarkMQ, 256 in flight: 11 s of waiting in a 3.5 s run).
// A worker with a result queues it and publishes the queue itself if no
// other worker is publishing; otherwise it goes back to calling the
// function at once, and the worker publishing takes its result along
// before it stops (flat combining). Uncontended, a result is published by
// the worker that made it, with no hand-off; contended, one worker
// publishes everything queued, in a row, on uncontended locks.
//
// Acks are unchanged: each message is acked from its publication's
// callback, once the server has stored it (at least once), and the acks
// themselves are sent without waiting for the server on both brokers
// (stan.go's Ack and nats.go's jetstream Msg.Ack publish and return).

// pub is a publication waiting its turn: the message it settles and what
// to publish.
type pub struct {
	ctx   context.Context
	m     *eventlog.Msg
	topic string
	out   eventlog.Message
	what  string
}

// pubQueue holds a trigger's publications until a worker publishes them.
type pubQueue struct {
	mu    sync.Mutex // guards q and spare
	q     []pub
	spare []pub // the last batch published, emptied: the next queue
	// publishing is held by the worker publishing the queue.
	publishing sync.Mutex
}

// put queues a publication, then publishes the queue unless another
// worker is doing so: that worker takes this one along, since it looks
// at the queue again after it stops publishing.
func (r *queueRun) put(p pub) {
	pq := &r.pubs
	pq.mu.Lock()
	pq.q = append(pq.q, p)
	pq.mu.Unlock()
	for pq.pending() {
		if !pq.publishing.TryLock() {
			return // the worker publishing sees it: it looks again after Unlock
		}
		for batch := pq.take(); len(batch) > 0; batch = pq.take() {
			for i := range batch {
				r.publish(&batch[i])
			}
			pq.done(batch)
		}
		pq.publishing.Unlock()
	}
}

// pending tells whether publications are queued.
func (pq *pubQueue) pending() bool {
	pq.mu.Lock()
	defer pq.mu.Unlock()
	return len(pq.q) > 0
}

// take returns the queued publications; the queue starts afresh.
func (pq *pubQueue) take() []pub {
	pq.mu.Lock()
	defer pq.mu.Unlock()
	batch := pq.q
	pq.q, pq.spare = pq.spare[:0], nil
	return batch
}

// done gives back a published batch's slice, emptied, for a next queue.
func (pq *pubQueue) done(batch []pub) {
	clear(batch)
	pq.mu.Lock()
	if pq.spare == nil {
		pq.spare = batch[:0]
	}
	pq.mu.Unlock()
}
