package natslog

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// Earlier versions stored each blob in a channel of its own,
// BlobStream(name), as chunks of ChunkSize bytes, each a message with a
// header: "SLM1", the chunk's index and the number of chunks (uint32,
// big-endian), the value's size (uint64). They are read, never written:
// Get looks there for a name the index does not hold that is a module's
// (legacyName): earlier versions stored nothing else.
const (
	legacyMagic  = "SLM1"
	legacyHeader = 4 + 4 + 4 + 8
)

// legacyName tells whether a blob's name is one an earlier version may
// have stored in a channel of its own: those blobs were modules, named by
// their SHA-256 in lower-case hex. Another name not in the index (a
// workflow value's) is known missing at once.
func legacyName(name string) bool { return eventlog.IsContentHash(name) }

// legacyGet reads a blob's channel up to its last message (see Log.Last:
// a missing blob costs emptyWait, then notFoundWait looking again) and
// returns the last whole value in it, its size checked against every
// chunk's header.
func (b *blobs) legacyGet(ctx context.Context, name string) ([]byte, error) {
	stream := BlobStream(name)
	last, err := b.l.Last(ctx, stream)
	if err == nil && last == 0 { // empty, or slow once: look longer
		last, err = b.l.last(ctx, stream, notFoundWait)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", name, err)
	}
	if last == 0 {
		return nil, fmt.Errorf("blob %s: %w", name, eventlog.ErrNotFound)
	}
	var (
		mu   sync.Mutex
		a    = assembler{name: name}
		done = make(chan struct{})
	)
	sub, err := b.l.c.Subscribe(stream, broker.SubOptions{Start: broker.StartAll, MaxInflight: getWindow}, func(m *broker.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if a.reached {
			return
		}
		a.add(m.Sequence, m.Data)
		if m.Sequence >= last {
			a.reached = true
			close(done)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", name, notConnected(err))
	}
	defer sub.Close()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("fetch blob %s: read %d chunks: %w", name, a.read, ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	return a.result()
}

// assembler puts a blob's chunks together, in the channel's order. A
// chunk of another size, or one it already has, starts a new value (the
// blob was stored again); the last whole value wins.
type assembler struct {
	name    string
	read    int
	reached bool

	cur    *value
	whole  []byte
	damage error
}

type value struct {
	total, got int
	size       uint64
	have       []bool
	buf        []byte
}

func (a *assembler) add(seq uint64, d []byte) {
	a.read++
	if len(d) < legacyHeader || string(d[:4]) != legacyMagic {
		a.damage = fmt.Errorf("blob %s: %w: message %d is not a chunk", a.name, ErrBlobDamaged, seq)
		return
	}
	idx, total, size := int(binary.BigEndian.Uint32(d[4:])), int(binary.BigEndian.Uint32(d[8:])), binary.BigEndian.Uint64(d[12:])
	body := d[legacyHeader:]
	if size > maxBlobSize || total != chunks(int(size)) || idx >= total || len(body) != min(ChunkSize, int(size)-idx*ChunkSize) {
		a.damage = fmt.Errorf("blob %s: %w: chunk %d/%d of %d bytes in message %d does not fit a value of %d bytes", a.name, ErrBlobDamaged, idx+1, total, len(body), seq, size)
		return
	}
	if v := a.cur; v == nil || v.size != size || v.have[idx] {
		a.cur = &value{total: total, size: size, have: make([]bool, total), buf: make([]byte, size)}
	}
	v := a.cur
	copy(v.buf[idx*ChunkSize:], body)
	v.have[idx] = true
	v.got++
	if v.got == v.total {
		a.whole, a.cur = v.buf, nil
	}
}

func (a *assembler) result() ([]byte, error) {
	switch {
	case a.whole != nil:
		return a.whole, nil
	case a.damage != nil:
		return nil, a.damage
	case a.cur != nil:
		return nil, fmt.Errorf("blob %s: %w: %d of its %d chunks are stored (put it again)", a.name, ErrBlobDamaged, a.cur.got, a.cur.total)
	}
	return nil, fmt.Errorf("blob %s: %w", a.name, eventlog.ErrNotFound)
}
