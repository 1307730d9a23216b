package host

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// Linear memories are recycled. A cold call makes an instance, whose
// linear memory wazero allocates, and closes it after one call: a Go
// allocation of at least 64 KiB per call, zeroed, taken under the Go
// heap's lock, and swept by the garbage collector later (on small
// modules, the largest part of a cold start after the guest's own work).
// The host keeps the memories of closed instances, up to maxPooledMemory
// bytes in all, and gives them to the next instances that ask for the
// same capacity, zeroing only what the previous instance could have
// written: a recycled memory costs its clearing and nothing else.

// maxPooledMemory bounds the bytes of linear memory the host keeps for
// later instances, and maxPooledBuffer one memory: a Go reactor's 2.5 MiB
// fits, a memory grown to hundreds of MiB is given back to Go.
const (
	maxPooledMemory = 64 << 20
	maxPooledBuffer = 8 << 20
)

// memPool holds the linear memories of closed instances, by capacity.
type memPool struct {
	mu    sync.Mutex
	free  map[int][]*pooledMemory
	bytes int
	// gets counts the memories asked for; seen is its value at the
	// janitor's last look (dropIdle)
	gets, seen uint64
}

// pooledMemory is a linear memory's backing array. Its bytes from dirty
// on are zero.
type pooledMemory struct {
	buf   []byte
	dirty int
}

// get returns a kept memory of that capacity, or nil.
func (p *memPool) get(capacity int) *pooledMemory {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets++
	list := p.free[capacity]
	if len(list) == 0 {
		return nil
	}
	m := list[len(list)-1]
	list[len(list)-1] = nil
	p.free[capacity] = list[:len(list)-1]
	p.bytes -= capacity
	return m
}

// put keeps a memory if there is room.
func (p *memPool) put(m *pooledMemory) {
	c := cap(m.buf)
	if c == 0 || c > maxPooledBuffer { // nothing to keep, or too much
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bytes+c > maxPooledMemory {
		return
	}
	if p.free == nil {
		p.free = map[int][]*pooledMemory{}
	}
	p.free[c] = append(p.free[c], m)
	p.bytes += c
}

// drop gives every kept memory back to Go (a closed host).
func (p *memPool) drop() {
	p.mu.Lock()
	p.free, p.bytes = nil, 0
	p.mu.Unlock()
}

// dropIdle gives the kept memories back to Go if no instance was made
// since the last look, and tells how many bytes it gave back: the
// janitor's, so that a host that stopped making instances does not keep
// their memories.
func (p *memPool) dropIdle() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gets != p.seen {
		p.seen = p.gets
		return 0
	}
	n := p.bytes
	p.free, p.bytes = nil, 0
	return int64(n)
}

// memAllocator is a wazero memory allocator that takes memories from a
// pool and gives them back when the instance is closed. size, if larger
// than what wazero asks for, is the capacity to reserve at once (a
// snapshot's memory size: an instance made from it grows to it before
// anything else, which with wazero's own allocator copies the whole
// memory).
type memAllocator struct {
	pool *memPool
	size uint64
}

// Allocate implements experimental.MemoryAllocator.
func (a memAllocator) Allocate(capacity, limit uint64) experimental.LinearMemory {
	c := int(min(max(capacity, a.size), limit))
	m := a.pool.get(c)
	if m == nil {
		m = &pooledMemory{buf: make([]byte, 0, c)}
	}
	m.buf = m.buf[:0]
	return &linearMemory{m: m, pool: a.pool, cap: c}
}

// linearMemory is a memory from memAllocator: grown in place up to its
// capacity, then as wazero's own (append), and given back to the pool when
// freed if it was not grown past its capacity.
type linearMemory struct {
	m    *pooledMemory
	pool *memPool
	cap  int // the capacity it was allocated with
}

// Reallocate implements experimental.LinearMemory.
func (l *linearMemory) Reallocate(size uint64) []byte {
	m := l.m
	// what an earlier instance wrote in the part this one now gains
	if end := min(int(min(size, uint64(cap(m.buf)))), m.dirty); end > len(m.buf) {
		clear(m.buf[len(m.buf):end])
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
	} else {
		m.buf = append(m.buf[:cap(m.buf)], make([]byte, int(size)-cap(m.buf))...)
		m.dirty = 0 // a new array, zero past its length
	}
	return m.buf
}

// Free implements experimental.LinearMemory.
func (l *linearMemory) Free() {
	m := l.m
	if m == nil {
		return
	}
	l.m = nil
	m.dirty = max(m.dirty, len(m.buf))
	if cap(m.buf) == l.cap {
		l.pool.put(m)
	}
}
