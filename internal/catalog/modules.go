package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/broker"
)

// ChunkSize is the payload of one module chunk: half of NATS's default
// 1 MB max_payload, leaving room for the header and for servers with a
// smaller limit.
const ChunkSize = 512 << 10

// MaxModuleSize bounds a module's size, as the host does
// (host.MaxModuleSize): Go guests are 2-4 MB, one importing net/http,
// go/types, html/template and crypto/tls 20 MB. Compiling a module holds
// about 8 bytes of heap per byte of it; 32 MiB keeps that near 250 MB.
const MaxModuleSize = 32 << 20

// chunk header: magic, index, total chunks, total size.
const (
	chunkMagic  = "SLM1"
	chunkHeader = 4 + 4 + 4 + 8
)

// ModuleChannel is the channel holding a module's chunks.
func ModuleChannel(sha string) string { return "sluice.mod." + sha }

type moduleRef struct {
	ModuleRef
	sha string
}

// putModule stores module bytes unless a deploy already stored the same
// bytes.
func (c *Catalog) putModule(ctx context.Context, wasm []byte) (moduleRef, error) {
	if len(wasm) > MaxModuleSize {
		return moduleRef{}, fmt.Errorf("%w: module of %d bytes is over the limit of %d MiB", ErrInvalid, len(wasm), MaxModuleSize>>20)
	}
	sum := sha256.Sum256(wasm)
	sha := hex.EncodeToString(sum[:])
	c.mu.RLock()
	ref, stored := c.state.Modules[sha]
	c.mu.RUnlock()
	if stored {
		c.cacheModule(sha, wasm)
		return moduleRef{ModuleRef: ref, sha: sha}, nil
	}
	total := (len(wasm) + ChunkSize - 1) / ChunkSize
	if total == 0 {
		total = 1
	}
	channel := ModuleChannel(sha)
	acks := make(chan error, total)
	for i := 0; i < total; i++ {
		lo, hi := i*ChunkSize, min((i+1)*ChunkSize, len(wasm))
		msg := make([]byte, chunkHeader+hi-lo)
		copy(msg, chunkMagic)
		binary.BigEndian.PutUint32(msg[4:], uint32(i))
		binary.BigEndian.PutUint32(msg[8:], uint32(total))
		binary.BigEndian.PutUint64(msg[12:], uint64(len(wasm)))
		copy(msg[chunkHeader:], wasm[lo:hi])
		if err := c.conn.PublishAsync(channel, msg, func(err error) { acks <- err }); err != nil {
			// not connected: fall back to a synchronous publish, which waits
			if err := c.conn.Publish(ctx, channel, msg); err != nil {
				return moduleRef{}, fmt.Errorf("store module chunk %d/%d: %w", i+1, total, err)
			}
			acks <- nil
		}
	}
	for i := 0; i < total; i++ {
		select {
		case err := <-acks:
			if err != nil {
				return moduleRef{}, fmt.Errorf("store module: %w", err)
			}
		case <-ctx.Done():
			return moduleRef{}, fmt.Errorf("store module: %w", ctx.Err())
		}
	}
	c.cacheModule(sha, wasm)
	return moduleRef{ModuleRef: ModuleRef{Size: len(wasm), Chunks: total}, sha: sha}, nil
}

func (c *Catalog) modulePath(sha string) string {
	return filepath.Join(c.opts.Dir, sha+".wasm")
}

// cacheModule keeps module bytes on local disk; a failure only costs a
// fetch later.
func (c *Catalog) cacheModule(sha string, wasm []byte) {
	if c.opts.Dir == "" {
		return
	}
	path := c.modulePath(sha)
	if _, err := os.Stat(path); err == nil {
		return
	}
	if err := os.MkdirAll(c.opts.Dir, 0o755); err != nil {
		c.log.Warn("cannot cache module", "err", err)
		return
	}
	tmp, err := os.CreateTemp(c.opts.Dir, sha+".*.tmp")
	if err != nil {
		c.log.Warn("cannot cache module", "err", err)
		return
	}
	_, err = tmp.Write(wasm)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		c.log.Warn("cannot cache module", "err", err)
	}
}

type fetch struct {
	done chan struct{}
	wasm []byte
	err  error
}

// Module returns a function's module bytes: from the local cache, or
// fetched from NATS Streaming (once, however many callers ask), checked
// against their sha256.
func (c *Catalog) Module(ctx context.Context, f *Function) ([]byte, error) {
	if c.opts.Dir != "" {
		if b, err := os.ReadFile(c.modulePath(f.Module)); err == nil {
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == f.Module {
				return b, nil
			}
			c.log.Warn("cached module is corrupt; fetching it again", "module", f.Module)
			os.Remove(c.modulePath(f.Module))
		}
	}
	c.fetchMu.Lock()
	fe, ok := c.fetches[f.Module]
	if !ok {
		fe = &fetch{done: make(chan struct{})}
		c.fetches[f.Module] = fe
		go func() {
			fe.wasm, fe.err = c.download(context.Background(), f)
			if fe.err == nil {
				c.cacheModule(f.Module, fe.wasm)
			}
			c.fetchMu.Lock()
			delete(c.fetches, f.Module)
			c.fetchMu.Unlock()
			close(fe.done)
		}()
	}
	c.fetchMu.Unlock()
	select {
	case <-fe.done:
		return fe.wasm, fe.err
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch module of %q: %w", f.Name, ctx.Err())
	}
}

// downloadTimeout bounds fetching one module: replaying a few MB from NATS
// Streaming takes milliseconds, so this only trips when chunks are missing.
const downloadTimeout = 30 * time.Second

func (c *Catalog) download(ctx context.Context, f *Function) ([]byte, error) {
	if f.Size > MaxModuleSize {
		// only a forged event names one: the API refuses such a deploy
		return nil, fmt.Errorf("%w: module %s of %q is %d bytes, over the limit of %d MiB: not fetched", ErrInvalid, f.Module, f.Name, f.Size, MaxModuleSize>>20)
	}
	ctx, cancel := context.WithTimeout(ctx, downloadTimeout)
	defer cancel()
	var (
		mu     sync.Mutex
		buf    []byte
		have   = map[uint32]bool{}
		done   = make(chan struct{})
		badErr error
	)
	finish := func(err error) {
		if badErr == nil && err != nil {
			badErr = err
		}
		select {
		case <-done:
		default:
			close(done)
		}
	}
	sub, err := c.conn.Subscribe(ModuleChannel(f.Module), broker.SubOptions{Start: broker.StartAll}, func(m *broker.Msg) {
		mu.Lock()
		defer mu.Unlock()
		d := m.Data
		if len(d) < chunkHeader || string(d[:4]) != chunkMagic {
			finish(fmt.Errorf("module %s: message %d is not a module chunk", f.Module, m.Sequence))
			return
		}
		idx, total, size := binary.BigEndian.Uint32(d[4:]), binary.BigEndian.Uint32(d[8:]), binary.BigEndian.Uint64(d[12:])
		if int(total) != f.Chunks || int(size) != f.Size || idx >= total {
			finish(fmt.Errorf("module %s: chunk %d/%d of size %d does not match the catalog (%d chunks, %d bytes)", f.Module, idx, total, size, f.Chunks, f.Size))
			return
		}
		if buf == nil {
			buf = make([]byte, size)
		}
		if have[idx] {
			return // a retried upload stored it twice
		}
		lo := int(idx) * ChunkSize
		if lo+len(d)-chunkHeader > len(buf) {
			finish(fmt.Errorf("module %s: chunk %d overflows the module", f.Module, idx))
			return
		}
		copy(buf[lo:], d[chunkHeader:])
		have[idx] = true
		if len(have) == int(total) {
			finish(nil)
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		got := len(have)
		mu.Unlock()
		return nil, fmt.Errorf("fetch module %s of %q from NATS Streaming: got %d of %d chunks: %w", f.Module, f.Name, got, f.Chunks, ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if badErr != nil {
		return nil, badErr
	}
	if sum := sha256.Sum256(buf); hex.EncodeToString(sum[:]) != f.Module {
		return nil, errors.New("module " + f.Module + ": fetched bytes do not match their sha256")
	}
	return buf, nil
}
