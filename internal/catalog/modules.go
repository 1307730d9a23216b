package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ChunkSize is the size of the pieces a module's Chunks counts (an
// event's field, checked when it is applied): modules were stored in
// chunks of this size before the event log had blobs, and NATS
// Streaming's blobs still are.
const ChunkSize = 512 << 10

// MaxModuleSize bounds a module's size, as the host does
// (host.MaxModuleSize): Go guests are 2-4 MB, one importing net/http,
// go/types, html/template and crypto/tls 20 MB. Compiling a module holds
// about 8 bytes of heap per byte of it; 32 MiB keeps that near 250 MB.
const MaxModuleSize = 32 << 20

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
	if err := c.conn.Blobs().Put(ctx, sha, wasm); err != nil {
		return moduleRef{}, fmt.Errorf("store module: %w", err)
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
// fetched from the event log's blobs (once, however many callers ask), checked
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

// downloadTimeout bounds fetching one module: reading a few MB from the
// broker takes milliseconds, so this only trips when it is out of reach.
const downloadTimeout = 30 * time.Second

func (c *Catalog) download(ctx context.Context, f *Function) ([]byte, error) {
	if f.Size > MaxModuleSize {
		// only a forged event names one: the API refuses such a deploy
		return nil, fmt.Errorf("%w: module %s of %q is %d bytes, over the limit of %d MiB: not fetched", ErrInvalid, f.Module, f.Name, f.Size, MaxModuleSize>>20)
	}
	ctx, cancel := context.WithTimeout(ctx, downloadTimeout)
	defer cancel()
	buf, err := c.conn.Blobs().Get(ctx, f.Module)
	if err != nil {
		return nil, fmt.Errorf("fetch module %s of %q: %w", f.Module, f.Name, err)
	}
	if len(buf) != f.Size {
		return nil, fmt.Errorf("module %s of %q: fetched %d bytes, the catalog says %d", f.Module, f.Name, len(buf), f.Size)
	}
	if sum := sha256.Sum256(buf); hex.EncodeToString(sum[:]) != f.Module {
		return nil, errors.New("module " + f.Module + ": fetched bytes do not match their sha256")
	}
	return buf, nil
}
