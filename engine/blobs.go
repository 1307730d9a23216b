package engine

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// Values over MaxData as stored are kept apart, in the log's blob store
// (eventlog.Blobs), once per invocation tree, under a name made of the
// tree's root and the value's sha256 (blobName); events carry their
// reference ({"blob": sha256, "size": N}). The blob is stored before the
// event that refers to it is written, so a replay never meets a reference
// to nothing; the engine holds the reference, and the bytes are fetched
// where they are needed: a function task's input (on the call's
// goroutine), an expression that reads the value (in the evaluation
// worker), the output or input asked of the API (Invocation.ReadOutput).
// See engine/README.md, "Values of any size".

const (
	// DefaultMaxValue is the largest value a workflow carries (an
	// invocation's input, a task's input or output, an expression's
	// result) when Options.MaxValue is 0: room for a photo, a small
	// video or a document, 10× a function's default max input, and
	// small enough that a handful in flight fit a small daemon's memory.
	DefaultMaxValue = 64 << 20
	// blobRetryFirst and blobRetryMax pace the retries of a blob Put or
	// Get that failed because the broker is unreachable: as the other
	// broker operations wait for the connection to come back, from
	// 100 ms doubling to 5 s, until the engine stops or the call is
	// canceled.
	blobRetryFirst = 100 * time.Millisecond
	blobRetryMax   = 5 * time.Second
	// blobTimeout bounds one Put or Get of a value: 64 MiB at a few
	// hundred MB/s is well under it, a broker that stopped answering is
	// not.
	blobTimeout = time.Minute
	// valueCacheBytes bounds the values a daemon keeps after storing or
	// reading them (valueCache): one value of DefaultMaxValue, or many
	// smaller ones, so that a value passed from task to task is read
	// from the broker once, if at all (a 1 MiB value through three tasks
	// on NATS Streaming: see bench/results/large.txt), without holding
	// the values of every invocation in memory.
	valueCacheBytes = 64 << 20
)

// ErrValueMissing: a value stored apart that an event refers to is not in
// the log's blob store (deleted by hand, or the store lost it). The task
// that needs it fails with the value's name.
var ErrValueMissing = errors.New("a workflow value stored in the broker's blob store is missing")

// MaxValue is the largest value a workflow carries (Options.MaxValue):
// the largest input Invoke takes.
func (e *Engine) MaxValue() int { return e.o.MaxValue }

// errTooLarge says a value is over the engine's limit, naming the setting.
func (e *Engine) errTooLarge(what string, n int) error { return tooLarge(what, n, e.MaxValue()) }

// spill returns the value as an event may carry it: itself if it fits
// (MaxData as stored), else a reference to it stored in the log's blob
// store under the tree of root, stored there first (unless the tree
// already refers to it: a value passed on, or made again, is stored
// once). what names the value for errors. A broker that cannot be
// reached is waited for (see retry).
func (e *Engine) spill(ctx context.Context, root string, d datum, what string) (datum, error) {
	if d.ref != nil || d.storedSize() <= MaxData {
		return d, nil
	}
	if len(d.b) > e.MaxValue() {
		return datum{}, e.errTooLarge(what, len(d.b))
	}
	sum := sha256.Sum256(d.b)
	ref := &blobRef{sha: hex.EncodeToString(sum[:]), size: len(d.b), root: root}
	ref.name = blobName(root, ref.sha)
	e.mu.Lock()
	have := e.st.hasBlob(root, ref.name)
	e.mu.Unlock()
	if !have {
		err := e.retry(ctx, func(ctx context.Context) error { return e.o.Log.Blobs().Put(ctx, ref.name, d.b) })
		if err != nil {
			return datum{}, fmt.Errorf("storing the %s (%d bytes) in the broker's blob store: %w", what, len(d.b), err)
		}
	}
	e.values.add(ref.name, d.b)
	return datum{data: d.data, form: d.form, ref: ref}, nil
}

// load returns a value with its bytes: itself if it has them, else them
// fetched from the log's blob store (checked against their hash). A
// broker that cannot be reached is waited for (see retry); a blob that is
// not there is ErrValueMissing.
func (e *Engine) load(ctx context.Context, d datum) (datum, error) {
	if d.ref == nil {
		return d, nil
	}
	if b, ok := e.values.get(d.ref.name); ok {
		return d.loaded(b), nil
	}
	var b []byte
	err := e.retry(ctx, func(ctx context.Context) (err error) {
		b, err = e.o.Log.Blobs().Get(ctx, d.ref.name)
		return err
	})
	switch {
	case errors.Is(err, eventlog.ErrNotFound):
		return datum{}, fmt.Errorf("%w: %s (%d bytes, sha256 %s); the invocation cannot go on without it", ErrValueMissing, d.ref.name, d.ref.size, d.ref.sha)
	case err != nil:
		return datum{}, fmt.Errorf("reading the value %s (%d bytes) from the broker's blob store: %w", d.ref.name, d.ref.size, err)
	}
	if sum := sha256.Sum256(b); len(b) != d.ref.size || hex.EncodeToString(sum[:]) != d.ref.sha {
		return datum{}, fmt.Errorf("%w: %s holds %d bytes that are not the value's (%d bytes, sha256 %s)", ErrValueMissing, d.ref.name, len(b), d.ref.size, d.ref.sha)
	}
	e.values.add(d.ref.name, b)
	return d.loaded(b), nil
}

// valueCache keeps the values last stored or read, by blob name, up to a
// total size (least recently used first out). Its bytes are shared with
// their readers, who never change them.
type valueCache struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List // of *cached, most recent first
	items map[string]*list.Element
}

type cached struct {
	name string
	b    []byte
}

func newValueCache(max int) *valueCache {
	return &valueCache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *valueCache) get(name string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.items[name]
	if el == nil {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cached).b, true
}

func (c *valueCache) add(name string, b []byte) {
	if len(b) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.items[name]; el != nil {
		c.order.MoveToFront(el)
		return
	}
	c.items[name] = c.order.PushFront(&cached{name: name, b: b})
	c.size += len(b)
	for c.size > c.max {
		c.drop(c.order.Back())
	}
}

// remove forgets a value (deleted from the store).
func (c *valueCache) remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.items[name]; el != nil {
		c.drop(el)
	}
}

func (c *valueCache) drop(el *list.Element) {
	v := c.order.Remove(el).(*cached)
	delete(c.items, v.name)
	c.size -= len(v.b)
}

// retry runs a blob operation until it succeeds or fails for a reason
// that waiting does not cure (not there, refused, too large), waiting
// between attempts while the broker cannot be reached, until ctx is done
// or the engine stops.
func (e *Engine) retry(ctx context.Context, op func(context.Context) error) error {
	wait := blobRetryFirst
	for {
		octx, cancel := context.WithTimeout(ctx, blobTimeout)
		err := op(octx)
		cancel()
		if err == nil || !transient(err) {
			return err
		}
		e.log.Warn("a workflow value could not be stored or read; trying again", "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-e.stop:
			t.Stop()
			return fmt.Errorf("%w (gave up: the engine stopped)", err)
		case <-t.C:
		}
		wait = min(2*wait, blobRetryMax)
	}
}

// transient tells whether a blob operation may succeed if tried again.
func transient(err error) bool {
	for _, perm := range []error{eventlog.ErrNotFound, eventlog.ErrTooLarge, eventlog.ErrInvalidName, eventlog.ErrUnsupported, eventlog.ErrClosed} {
		if errors.Is(err, perm) {
			return false
		}
	}
	return true
}

// snap is inv.snapshot, able to read the values stored apart.
func (e *Engine) snap(inv *invState, withTasks bool) *Invocation {
	s := inv.snapshot(withTasks)
	s.load = e.load
	return s
}
