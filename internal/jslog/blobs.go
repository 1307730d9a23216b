package jslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/eventlog"
)

// blobChunkSize is the size of the chunks a value is stored in: half of
// NATS's default 1 MB max_payload (less on a server that allows less),
// as on NATS Streaming. The Object Store's default, 128 KiB, made four
// times the messages, each with its own store overhead.
const blobChunkSize = 512 << 10

// blobs is the Object Store bucket sluice-modules (named when it held
// modules only; large workflow values share it): values are chunked
// (blobChunkSize each; 128 KiB for values stored by earlier versions, read
// the same) into its stream, so a value larger than the server's max
// payload fits, and they have the streams' replicas. An object is its
// chunks under a subject of their own and a metadata message under one
// for its name: Get finds the name by that subject's last message (a
// missing one is known at once), and Delete purges the chunks' subject,
// whose blocks the server then removes. With 10,000 values of 1 MiB, a
// restart and the first Get take seconds and little memory, and deleting
// them gives the disk back (see eventlog/README.md, BenchmarkBlobStore).
type blobs struct {
	l   *Log
	obs jetstream.ObjectStore
}

// Put stores a value under a name, replacing what was there.
func (b *blobs) Put(ctx context.Context, name string, data []byte) error {
	if !eventlog.ValidName(name) {
		return fmt.Errorf("put blob %q: %w", name, eventlog.ErrInvalidName)
	}
	chunk := uint32(min(blobChunkSize, b.l.maxPayload-headerReserve))
	err := b.l.retry(ctx, func(ctx context.Context) error {
		_, err := b.obs.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}}, bytes.NewReader(data))
		return err
	})
	if err != nil {
		return fmt.Errorf("put blob %s (%d bytes): %w", name, len(data), err)
	}
	return nil
}

// Get returns a value; a name with no value is ErrNotFound.
func (b *blobs) Get(ctx context.Context, name string) ([]byte, error) {
	if !eventlog.ValidName(name) {
		return nil, fmt.Errorf("get blob %q: %w", name, eventlog.ErrInvalidName)
	}
	var data []byte
	err := b.l.retry(ctx, func(ctx context.Context) error {
		var err error
		data, err = b.obs.GetBytes(ctx, name)
		return err
	})
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("get blob %s: %w", name, eventlog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", name, err)
	}
	return data, nil
}

// Delete removes a value; a name with no value is not an error.
func (b *blobs) Delete(ctx context.Context, name string) error {
	if !eventlog.ValidName(name) {
		return fmt.Errorf("delete blob %q: %w", name, eventlog.ErrInvalidName)
	}
	err := b.l.retry(ctx, func(ctx context.Context) error {
		err := b.obs.Delete(ctx, name)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", name, err)
	}
	return nil
}
