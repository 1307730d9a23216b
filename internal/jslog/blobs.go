package jslog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/eventlog"
)

// blobs is the Object Store bucket sluice-modules (named when it held
// modules only; large workflow values share it): values are chunked (128
// KiB each) into its stream, so a value larger than the server's max
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
	err := b.l.retry(ctx, func(ctx context.Context) error {
		_, err := b.obs.PutBytes(ctx, name, data)
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
