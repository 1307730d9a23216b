package natslog

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// A blob is stored in its own channel, BlobStream(name), as chunks of
// ChunkSize bytes, each a message with a header: "SLM1", the chunk's
// index and the number of chunks (uint32, big-endian), the value's size
// (uint64). This is the format the catalog wrote its modules in before
// the event-log contract, so existing stores read the same.
const (
	// ChunkSize is the payload of one chunk: half of NATS's default 1 MB
	// max_payload, leaving room for the header and for servers with a
	// smaller limit.
	ChunkSize = 512 << 10
	// maxBlobSize bounds what a chunk's header can make Get allocate:
	// sluice's blobs are modules of at most 32 MiB (the catalog's limit).
	maxBlobSize = 256 << 20

	chunkMagic  = "SLM1"
	chunkHeader = 4 + 4 + 4 + 8
)

// BlobStream is the channel holding a blob's chunks.
func BlobStream(name string) string { return "sluice.mod." + name }

type blobs struct{ l *Log }

func (b blobs) check(name string) (string, error) {
	if err := checkName("blob", name); err != nil {
		return "", err
	}
	stream := BlobStream(name)
	return stream, checkName("blob", stream)
}

func chunks(size int) int { return max(1, (size+ChunkSize-1)/ChunkSize) }

// Put implements eventlog.Blobs: it appends the value's chunks to its
// channel (a value stored again is appended again; Get reads the last
// whole one).
func (b blobs) Put(ctx context.Context, name string, data []byte) error {
	stream, err := b.check(name)
	if err != nil {
		return err
	}
	if len(data) > maxBlobSize {
		return fmt.Errorf("store blob %s: %w: %d bytes, over the limit of %d MiB", name, eventlog.ErrTooLarge, len(data), maxBlobSize>>20)
	}
	total := chunks(len(data))
	acks := make(chan error, total)
	for i := 0; i < total; i++ {
		lo, hi := i*ChunkSize, min((i+1)*ChunkSize, len(data))
		msg := make([]byte, chunkHeader+hi-lo)
		copy(msg, chunkMagic)
		binary.BigEndian.PutUint32(msg[4:], uint32(i))
		binary.BigEndian.PutUint32(msg[8:], uint32(total))
		binary.BigEndian.PutUint64(msg[12:], uint64(len(data)))
		copy(msg[chunkHeader:], data[lo:hi])
		if err := b.l.c.PublishAsync(stream, msg, func(err error) { acks <- err }); err != nil {
			// not connected: fall back to a synchronous publish, which waits
			if err := b.l.c.Publish(ctx, stream, msg); err != nil {
				return fmt.Errorf("store blob %s: chunk %d/%d: %w", name, i+1, total, err)
			}
			acks <- nil
		}
	}
	for i := 0; i < total; i++ {
		select {
		case err := <-acks:
			if err != nil {
				return fmt.Errorf("store blob %s: %w", name, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("store blob %s: %w", name, ctx.Err())
		}
	}
	return nil
}

// Get implements eventlog.Blobs: it reads the channel up to its last
// message (see Log.Last: a missing blob costs emptyWait, then
// notFoundWait looking again) and returns the
// last whole value in it, its size checked against every chunk's header.
func (b blobs) Get(ctx context.Context, name string) ([]byte, error) {
	stream, err := b.check(name)
	if err != nil {
		return nil, err
	}
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
	sub, err := b.l.c.Subscribe(stream, broker.SubOptions{Start: broker.StartAll}, func(m *broker.Msg) {
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
		return nil, fmt.Errorf("fetch blob %s: %w", name, err)
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

// Delete implements eventlog.Blobs: NATS Streaming cannot delete a
// channel, so it is eventlog.ErrUnsupported and the value stays.
func (b blobs) Delete(_ context.Context, name string) error {
	if _, err := b.check(name); err != nil {
		return err
	}
	return fmt.Errorf("delete blob %s: %w: NATS Streaming channels stay", name, eventlog.ErrUnsupported)
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
	if len(d) < chunkHeader || string(d[:4]) != chunkMagic {
		a.damage = fmt.Errorf("blob %s: %w: message %d is not a chunk", a.name, ErrBlobDamaged, seq)
		return
	}
	idx, total, size := int(binary.BigEndian.Uint32(d[4:])), int(binary.BigEndian.Uint32(d[8:])), binary.BigEndian.Uint64(d[12:])
	body := d[chunkHeader:]
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
