package natslog

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/stan.go"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// Blobs are kept in two channels, whatever their number:
//
//   - BlobDataChannel holds every value's chunks: ChunkSize bytes of the
//     value each, behind a header naming the blob and the Put that wrote
//     it (see chunk below);
//   - BlobIndexChannel holds one small record per Put that completed: the
//     blob's name, the sequence of its first chunk in BlobDataChannel,
//     its number of chunks, its size and its SHA-256.
//
// Put publishes the chunks, learns the first one's sequence from a
// subscription opened before them, waits for every chunk's ack, then
// publishes the index record and waits for its ack: a value is in the
// index only once all of it is stored, so a Put cut short (a kill -9
// between the chunks and the record) leaves chunks that nothing names,
// never half a value. Every Log reads the index into memory (a record is
// about 200 bytes) by tailing BlobIndexChannel; Get finds the record
// there, or, if not, asks the index's last sequence and reads up to it
// before it says a name is missing (a value Put by another daemon just
// now), then reads exactly the value's chunks from its first sequence.
//
// Channels of one blob each ("sluice.mod.NAME", BlobStream) are how
// earlier versions stored modules; a store they wrote is read the same
// (see legacyGet).
const (
	// BlobDataChannel holds the chunks of every blob.
	BlobDataChannel = "sluice.blobs.data"
	// BlobIndexChannel holds the index of the blobs in BlobDataChannel.
	BlobIndexChannel = "sluice.blobs.index"

	// ChunkSize is the payload of one chunk: half of NATS's default 1 MB
	// max_payload, leaving room for the header and for servers with a
	// smaller limit.
	ChunkSize = 512 << 10
	// maxBlobSize bounds what a header or an index record can make Get
	// allocate: four times the engine's default limit on a value (64 MiB).
	maxBlobSize = 256 << 20
	// getWindow is how many chunks a Get lets the server send ahead of
	// its handler (4 MiB): enough to keep the link busy, and far below
	// the NATS client's 64 MB of pending messages, over which it drops
	// messages.
	getWindow = 8
	// stallWait is how long a Get waits for chunks that do not come
	// before it asks where BlobDataChannel ends: if it has read past it,
	// chunks are missing (the store was damaged) and waiting longer is
	// useless. Chunks come within milliseconds; a loaded machine may
	// pause a second or two.
	stallWait   = 5 * time.Second
	chunkMagic  = "SLB1"
	putIDSize   = 16
	chunkHeader = 4 + putIDSize + 4 + 4 + 8 + 1 // + the name
)

// indexRecord is a message of BlobIndexChannel (JSON): a blob, or a mark.
type indexRecord struct {
	Blob *blobEntry `json:"blob,omitempty"`
	// Mark is written by a Log that starts reading the index, which has
	// read all of it that matters once it reads its own mark.
	Mark string `json:"mark,omitempty"`
}

// blobEntry locates a value's chunks in BlobDataChannel.
type blobEntry struct {
	Name string `json:"name"`
	// Put is the id in the header of the value's chunks (hex): chunks of
	// other Puts, interleaved with them, are skipped.
	Put string `json:"put"`
	// First is the sequence of chunk 0; the others follow it, in order.
	First  uint64 `json:"first"`
	Chunks int    `json:"chunks"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// BlobStream is the channel in which earlier versions stored a blob.
func BlobStream(name string) string { return "sluice.mod." + name }

func chunks(size int) int { return max(1, (size+ChunkSize-1)/ChunkSize) }

// blobs is a Log's blob store: the index as far as it has read it.
type blobs struct {
	l *Log

	readyMu sync.Mutex // one ready at a time
	tailMu  sync.Mutex // one startTail at a time

	mu      sync.Mutex
	isReady bool
	mark    string // the mark ready waits for
	marked  bool
	tail    *broker.Sub
	indexed uint64        // the last index sequence handled
	moved   chan struct{} // closed and replaced when read grows
	entries map[string]blobEntry
	damaged error // a record the tail could not read
}

func newBlobs(l *Log) *blobs {
	return &blobs{l: l, moved: make(chan struct{}), entries: map[string]blobEntry{}}
}

func (b *blobs) check(name string) error {
	if err := checkName("blob", name); err != nil {
		return err
	}
	return checkName("blob", BlobStream(name))
}

// Put implements eventlog.Blobs. A value already in the index with the
// same bytes (names are content hashes) is not stored again. A Put
// interrupted by a lost connection is done again, whole: what the first
// attempt stored stays unindexed.
func (b *blobs) Put(ctx context.Context, name string, data []byte) error {
	if err := b.check(name); err != nil {
		return err
	}
	if len(data) > maxBlobSize {
		return fmt.Errorf("store blob %s: %w: %d bytes, over the limit of %d MiB", name, eventlog.ErrTooLarge, len(data), maxBlobSize>>20)
	}
	if err := b.ready(ctx); err != nil {
		return fmt.Errorf("store blob %s: %w", name, err)
	}
	// The checksum is computed while the chunks are sent, but for a name
	// that may hold these bytes already.
	sum := make(chan string, 1)
	b.mu.Lock()
	e, ok := b.entries[name]
	b.mu.Unlock()
	if ok && e.Size == len(data) {
		c := checksum(data)
		if e.SHA256 == c {
			return nil
		}
		sum <- c
	} else {
		go func() { sum <- checksum(data) }()
	}
	for {
		err := b.put(ctx, name, data, sum)
		if !errors.Is(err, errRetry) {
			return err
		}
		if err := b.l.c.WaitUp(ctx); err != nil {
			return fmt.Errorf("store blob %s: %w", name, err)
		}
	}
}

// errRetry: the connection was lost during a Put, which is done again.
var errRetry = errors.New("connection lost: store again")

func checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// put stores a value once; sum gives its checksum (and is given it back,
// for an attempt after this one).
func (b *blobs) put(ctx context.Context, name string, data []byte, sum chan string) error {
	if err := b.l.c.WaitUp(ctx); err != nil {
		return fmt.Errorf("store blob %s: %w", name, err)
	}
	up := b.l.c.UpSince()
	var id [putIDSize]byte
	rand.Read(id[:])
	// A subscription made before the chunks are published sees every
	// message stored after it: chunk 0 among them, with its sequence.
	// With one message in flight and chunk 0 never acked, the server
	// sends it the messages of other Puts before chunk 0, if any, then
	// chunk 0, and nothing after it.
	first := make(chan uint64, 1)
	sub, err := b.l.c.Subscribe(BlobDataChannel, broker.SubOptions{Start: broker.StartNew, MaxInflight: 1, ManualAck: true, AckWait: time.Minute}, func(m *broker.Msg) {
		if c, ok := parseChunk(m.Data); !ok || c.index != 0 || c.put != id {
			m.Ack() // lost: sent again, and skipped again
			return
		}
		select {
		case first <- m.Sequence:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("store blob %s: %w", name, notConnected(err))
	}
	defer sub.Close()
	total := chunks(len(data))
	acks := make(chan error, total)
	for i := range total {
		lo, hi := i*ChunkSize, min((i+1)*ChunkSize, len(data))
		msg := appendChunk(make([]byte, 0, chunkHeader+len(name)+hi-lo), chunk{put: id, index: i, total: total, size: len(data), name: name}, data[lo:hi])
		if err := b.l.c.PublishAsync(BlobDataChannel, msg, func(err error) { acks <- err }); err != nil {
			if errors.Is(err, broker.ErrNotConnected) {
				return errRetry
			}
			return fmt.Errorf("store blob %s: chunk %d/%d: %w", name, i+1, total, err)
		}
	}
	for range total {
		select {
		case err := <-acks:
			if errors.Is(err, broker.ErrNotConnected) {
				return errRetry
			}
			if err != nil {
				return fmt.Errorf("store blob %s: %w", name, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("store blob %s: %w", name, ctx.Err())
		}
	}
	var seq uint64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for seq == 0 {
		select {
		case seq = <-first:
		case <-tick.C:
			// A subscription resumed after a lost connection starts at
			// new messages again, and may have missed chunk 0.
			if !b.l.c.UpSince().Equal(up) {
				return errRetry
			}
		case <-ctx.Done():
			return fmt.Errorf("store blob %s: the sequence of its first chunk: %w", name, ctx.Err())
		}
	}
	go sub.Close() // while the record is published
	var hash string
	select {
	case hash = <-sum:
		sum <- hash
	case <-ctx.Done():
		return fmt.Errorf("store blob %s: its checksum: %w", name, ctx.Err())
	}
	e := blobEntry{Name: name, Put: hex.EncodeToString(id[:]), First: seq, Chunks: total, Size: len(data), SHA256: hash}
	rec, _ := json.Marshal(indexRecord{Blob: &e})
	if err := b.l.c.Publish(ctx, BlobIndexChannel, rec); err != nil {
		return fmt.Errorf("store blob %s: index it: %w", name, err)
	}
	b.mu.Lock()
	b.entries[name] = e
	b.mu.Unlock()
	return nil
}

// Get implements eventlog.Blobs.
func (b *blobs) Get(ctx context.Context, name string) ([]byte, error) {
	if err := b.check(name); err != nil {
		return nil, err
	}
	if err := b.startTail(); err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", name, err)
	}
	e, ok, err := b.lookup(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", name, err)
	}
	if !ok {
		if legacyName(name) {
			return b.legacyGet(ctx, name)
		}
		return nil, fmt.Errorf("blob %s: %w", name, eventlog.ErrNotFound)
	}
	return b.read(ctx, e)
}

// lookup finds a name in the index, reading it up to its end as the
// server knows it now, unless the name is among what was read and is a
// content hash. A value put again under another name, on another
// connection, replaces the one read before: the index's newest record
// for the name is the one to read, and the tail may not have it yet
// (the tail reads the index asynchronously). A content hash names the
// same bytes whatever record says it, so an entry already read is as
// good as the newest, and most Gets (modules, workflow values) cost no
// round trip for it.
func (b *blobs) lookup(ctx context.Context, name string) (blobEntry, bool, error) {
	b.mu.Lock()
	e, ok := b.entries[name]
	b.mu.Unlock()
	if ok && eventlog.IsContentHash(name) {
		return e, true, nil
	}
	if err := b.catchUp(ctx); err != nil {
		return blobEntry{}, false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok = b.entries[name]
	if !ok && b.damaged != nil { // the name may be in what could not be read
		return e, false, b.damaged
	}
	return e, ok, nil
}

// read reads a value's chunks from its first sequence, skipping those of
// other Puts, and checks it against its index record.
func (b *blobs) read(ctx context.Context, e blobEntry) ([]byte, error) {
	if e.Size < 0 || e.Size > maxBlobSize || e.Chunks != chunks(e.Size) {
		return nil, fmt.Errorf("blob %s: %w: its index record says %d bytes in %d chunks", e.Name, ErrBlobDamaged, e.Size, e.Chunks)
	}
	var (
		mu      sync.Mutex
		buf     = make([]byte, e.Size)
		have    = make([]bool, e.Chunks)
		got     int
		highest uint64
		done    = make(chan struct{})
		// The chunks are checksummed as they come: in order, as one Put
		// published them.
		h      = sha256.New()
		hashed int
	)
	// Chunks of other Puts come between this value's only when several
	// were stored at once: a window of the value's size sends nothing
	// past its end, else.
	window := min(getWindow, e.Chunks)
	sub, err := b.l.c.Subscribe(BlobDataChannel, broker.SubOptions{Start: broker.StartAt(e.First), MaxInflight: window}, func(m *broker.Msg) {
		mu.Lock()
		defer mu.Unlock()
		highest = max(highest, m.Sequence)
		c, ok := parseChunk(m.Data)
		if !ok || got == e.Chunks || hex.EncodeToString(c.put[:]) != e.Put || c.index >= e.Chunks || have[c.index] {
			return
		}
		if c.total != e.Chunks || c.size != e.Size || len(c.body) != min(ChunkSize, e.Size-c.index*ChunkSize) {
			return // not this value's: checked whole below
		}
		copy(buf[c.index*ChunkSize:], c.body)
		have[c.index] = true
		for hashed < e.Chunks && have[hashed] {
			h.Write(buf[hashed*ChunkSize : min((hashed+1)*ChunkSize, e.Size)])
			hashed++
		}
		if got++; got == e.Chunks {
			close(done)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", e.Name, notConnected(err))
	}
	defer sub.Close()
	stall := time.NewTicker(stallWait)
	defer stall.Stop()
	var seen uint64
	for {
		select {
		case <-done:
			// Closing waits for the server's answer, behind whatever it
			// still sends: the value is whole, nothing more is needed.
			go sub.Close()
			mu.Lock()
			sum := h.Sum(nil)
			mu.Unlock()
			if hex.EncodeToString(sum) != e.SHA256 {
				return nil, fmt.Errorf("blob %s: %w: its %d bytes do not have the SHA-256 its index record says", e.Name, ErrBlobDamaged, e.Size)
			}
			return buf, nil
		case <-stall.C:
			mu.Lock()
			h, n := highest, got
			mu.Unlock()
			if h != seen {
				seen = h
				continue
			}
			last, err := b.l.Last(ctx, BlobDataChannel)
			if err == nil && h >= last {
				return nil, fmt.Errorf("blob %s: %w: %d of its %d chunks are in %s from sequence %d (put it again)", e.Name, ErrBlobDamaged, n, e.Chunks, BlobDataChannel, e.First)
			}
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			return nil, fmt.Errorf("fetch blob %s: read %d of its %d chunks: %w", e.Name, got, e.Chunks, ctx.Err())
		}
	}
}

// Delete implements eventlog.Blobs: NATS Streaming cannot delete a
// message nor a channel, so it is eventlog.ErrUnsupported and the value
// stays.
func (b *blobs) Delete(_ context.Context, name string) error {
	if err := b.check(name); err != nil {
		return err
	}
	return fmt.Errorf("delete blob %s: %w: NATS Streaming keeps every message of its channels", name, eventlog.ErrUnsupported)
}

// ready prepares a Put: it starts reading the index, reads it up to a
// record of its own (a mark: an empty index is known without waiting for
// messages that do not come). Get writes nothing (a store being
// migrated is only read).
func (b *blobs) ready(ctx context.Context) error {
	b.readyMu.Lock()
	defer b.readyMu.Unlock()
	b.mu.Lock()
	ready := b.isReady
	b.mu.Unlock()
	if ready {
		return nil
	}
	if err := b.startTail(); err != nil {
		return err
	}
	var id [putIDSize]byte
	rand.Read(id[:])
	mark := hex.EncodeToString(id[:])
	b.mu.Lock()
	b.mark, b.marked = mark, false
	b.mu.Unlock()
	rec, _ := json.Marshal(indexRecord{Mark: mark})
	if err := b.l.c.Publish(ctx, BlobIndexChannel, rec); err != nil {
		return fmt.Errorf("read the blob index: %w", err)
	}
	if err := b.until(ctx, func() bool { return b.marked }); err != nil {
		return fmt.Errorf("read the blob index up to a record just written: %w", err)
	}
	b.mu.Lock()
	b.isReady = true
	b.mu.Unlock()
	return nil
}

// startTail starts reading the index into memory, if it has not yet.
func (b *blobs) startTail() error {
	b.tailMu.Lock()
	defer b.tailMu.Unlock()
	b.mu.Lock()
	started := b.tail != nil
	b.mu.Unlock()
	if started {
		return nil
	}
	tail, err := b.l.c.Subscribe(BlobIndexChannel, broker.SubOptions{Start: broker.StartAll}, b.handleIndex)
	if err != nil {
		return fmt.Errorf("read the blob index: %w", notConnected(err))
	}
	b.mu.Lock()
	b.tail = tail
	b.mu.Unlock()
	return nil
}

// until waits until cond, called with b.mu held, holds after a record of
// the index was read.
func (b *blobs) until(ctx context.Context, cond func() bool) error {
	for {
		b.mu.Lock()
		ok, moved := cond(), b.moved
		b.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// catchUp waits until the tail has read the index up to its last
// message as the server knows it now.
func (b *blobs) catchUp(ctx context.Context) error {
	last, err := b.l.Last(ctx, BlobIndexChannel)
	if err != nil {
		return fmt.Errorf("read the blob index: %w", err)
	}
	if err := b.until(ctx, func() bool { return b.indexed >= last }); err != nil {
		return fmt.Errorf("read the blob index up to its record %d: %w", last, err)
	}
	return nil
}

func (b *blobs) handleIndex(m *broker.Msg) {
	var rec indexRecord
	err := json.Unmarshal(m.Data, &rec)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err != nil:
		b.damaged = fmt.Errorf("%w: record %d of %s is not a blob's: %w", ErrBlobDamaged, m.Sequence, BlobIndexChannel, err)
	case rec.Blob != nil:
		b.entries[rec.Blob.Name] = *rec.Blob
	case rec.Mark != "" && rec.Mark == b.mark:
		b.marked = true
	}
	b.indexed = max(b.indexed, m.Sequence)
	close(b.moved)
	b.moved = make(chan struct{})
}

// notConnected marks a subscription the server did not answer as
// eventlog.ErrNotConnected.
func notConnected(err error) error {
	if errors.Is(err, stan.ErrSubReqTimeout) || errors.Is(err, broker.ErrNotConnected) {
		return fmt.Errorf("%w: %w", eventlog.ErrNotConnected, err)
	}
	return err
}

// chunk is a message of BlobDataChannel: "SLB1", the Put's id, the
// chunk's index and the number of chunks (uint32, big-endian), the
// value's size (uint64), the name's length (one byte) and the name, then
// the chunk's bytes.
type chunk struct {
	put          [putIDSize]byte
	index, total int
	size         int
	name         string
	body         []byte
}

func appendChunk(dst []byte, c chunk, body []byte) []byte {
	dst = append(dst, chunkMagic...)
	dst = append(dst, c.put[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.index))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.total))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.size))
	dst = append(dst, byte(len(c.name)))
	dst = append(dst, c.name...)
	return append(dst, body...)
}

func parseChunk(d []byte) (chunk, bool) {
	if len(d) < chunkHeader || !bytes.Equal(d[:4], []byte(chunkMagic)) {
		return chunk{}, false
	}
	var c chunk
	copy(c.put[:], d[4:])
	p := d[4+putIDSize:]
	c.index, c.total = int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:]))
	size := binary.BigEndian.Uint64(p[8:])
	n := int(p[16])
	if size > maxBlobSize || len(p) < 17+n {
		return chunk{}, false
	}
	c.size, c.name, c.body = int(size), string(p[17:17+n]), p[17+n:]
	return c, true
}
