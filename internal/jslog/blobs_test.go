package jslog

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestBlobChunks: a value is stored in chunks of blobChunkSize (a fourth
// of the messages of the Object Store's default), and one stored in the
// default's 128 KiB chunks, as earlier versions did, reads the same.
func TestBlobChunks(t *testing.T) {
	l, _ := newLog(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := make([]byte, 2*blobChunkSize+1)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := l.Blobs().Put(ctx, "new", data); err != nil {
		t.Fatal(err)
	}
	info, err := l.blobs.obs.GetInfo(ctx, "new")
	if err != nil || info.Chunks != 3 {
		t.Fatalf("a value of 2 chunks and a byte: %+v, %v; want 3 chunks", info, err)
	}
	if _, err := l.blobs.obs.PutBytes(ctx, "old", data); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"new", "old"} {
		if got, err := l.Blobs().Get(ctx, name); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get %s: %d bytes (equal %t), %v", name, len(got), bytes.Equal(got, data), err)
		}
	}
}
