package natslog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/broker"
)

// openStore starts an embedded server with a file store in dir (a
// memory store for "") and connects to it.
func openStore(t *testing.T, dir string) *Log {
	t.Helper()
	srv, err := broker.StartEmbedded(broker.EmbeddedOptions{Dir: dir, Listen: "127.0.0.1:0", ClusterID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Connect(ctx, broker.Options{URL: srv.URL(), ClusterID: "test", Name: "natslog-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// channels lists the channels of a file store.
func channels(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "nats"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// read returns the messages of a stream, up to its last.
func read(t *testing.T, l *Log, stream string) [][]byte {
	t.Helper()
	ctx := context.Background()
	last, err := l.Last(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *eventlog.Msg, 100)
	sub, err := l.Subscribe(stream, eventlog.SubOptions{Start: eventlog.First}, func(m *eventlog.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var msgs [][]byte
	for m := range got {
		msgs = append(msgs, m.Data)
		if m.Sequence >= last {
			return msgs
		}
	}
	return nil
}

// TestBlobLayout: every value goes to the two blob channels, as chunks
// naming their blob and an index record locating them; no channel per
// value, and a missing name makes none.
func TestBlobLayout(t *testing.T) {
	dir := t.TempDir()
	l := openStore(t, dir)
	ctx := context.Background()
	data := bytes.Repeat([]byte("m"), ChunkSize+10)
	for _, name := range []string{"abc", "def"} {
		if err := l.Blobs().Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Blobs().Put(ctx, "abc", data); err != nil { // the same bytes again: not stored again
		t.Fatal(err)
	}
	if _, err := l.Blobs().Get(ctx, "missing"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("Get of a missing name: %v, want ErrNotFound", err)
	}
	chunks := read(t, l, BlobDataChannel)
	if len(chunks) != 4 {
		t.Fatalf("%d chunks in %s, want 2 for each of the 2 values (the same bytes stored again are not stored twice)", len(chunks), BlobDataChannel)
	}
	for i, d := range chunks {
		c, ok := parseChunk(d)
		if want := []string{"abc", "def"}[i/2]; !ok || string(d[:4]) != "SLB1" || c.name != want || c.index != i%2 || c.total != 2 || c.size != len(data) {
			t.Fatalf("chunk %d: %+v (parsed %t), want chunk %d/2 of %s, %d bytes", i, c, ok, i%2, want, len(data))
		}
	}
	sum := sha256.Sum256(data)
	var recs []indexRecord
	for _, d := range read(t, l, BlobIndexChannel) {
		var r indexRecord
		if err := json.Unmarshal(d, &r); err != nil {
			t.Fatalf("index record %q: %v", d, err)
		}
		if r.Mark == "" { // a Log's mark says only where it started reading
			recs = append(recs, r)
		}
	}
	if len(recs) != 2 {
		t.Fatalf("index %+v: want a record per value", recs)
	}
	for i, r := range recs {
		if e := r.Blob; e == nil || e.Name != []string{"abc", "def"}[i] || e.First != uint64(2*i+1) || e.Chunks != 2 || e.Size != len(data) || e.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("index record %d: %+v, want its first chunk at %d, 2 chunks, %d bytes and their SHA-256", i+1, r.Blob, 2*i+1, len(data))
		}
	}
	other := bytes.Repeat([]byte("n"), len(data)) // the same size, other bytes: stored
	if err := l.Blobs().Put(ctx, "abc", other); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Blobs().Get(ctx, "abc"); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("Get of a value replaced by one of its size: %d bytes (the new ones: %t), %v", len(got), bytes.Equal(got, other), err)
	}
	got := channels(t, dir)
	if slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "sluice.mod.") }) || !slices.Contains(got, BlobDataChannel) || !slices.Contains(got, BlobIndexChannel) {
		t.Fatalf("channels %v: want %s and %s, none per value", got, BlobDataChannel, BlobIndexChannel)
	}
}

// legacyChunk is a chunk as earlier versions stored it in a blob's own
// channel.
func legacyChunk(idx, total uint32, size uint64, body []byte) string {
	h := make([]byte, 20, 20+len(body))
	copy(h, "SLM1")
	binary.BigEndian.PutUint32(h[4:], idx)
	binary.BigEndian.PutUint32(h[8:], total)
	binary.BigEndian.PutUint64(h[12:], size)
	return string(append(h, body...))
}

// moduleName is the name an earlier version gave a module: its SHA-256
// in hex (here of a case's name).
func moduleName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestBlobLegacyStore: on a store written by an earlier version (modules
// in channels of their own, named by their SHA-256), the modules are
// found, before anything is put (without writing) and after, damaged ones
// are ErrBlobDamaged, new values go to the new layout, and a missing name
// that is not a module's is known missing at once.
func TestBlobLegacyStore(t *testing.T) {
	dir := t.TempDir()
	l := openStore(t, dir)
	ctx := context.Background()
	module := bytes.Repeat([]byte("w"), ChunkSize+1)
	cases := []struct {
		name string
		msgs []string
		want []byte // nil for ErrBlobDamaged
	}{
		{"module", []string{legacyChunk(0, 2, ChunkSize+1, module[:ChunkSize]), legacyChunk(1, 2, ChunkSize+1, module[ChunkSize:])}, module},
		{"not-a-chunk", []string{"hello"}, nil},
		{"a-chunk-missing", []string{legacyChunk(0, 2, ChunkSize+1, make([]byte, ChunkSize))}, nil},
		{"a-header-that-lies", []string{legacyChunk(0, 1, 1<<40, []byte("x"))}, nil},
		{"retried-after-a-lost-chunk", []string{
			legacyChunk(0, 2, ChunkSize+1, make([]byte, ChunkSize)),
			legacyChunk(0, 2, ChunkSize+1, make([]byte, ChunkSize)), legacyChunk(1, 2, ChunkSize+1, []byte("z")),
		}, append(make([]byte, ChunkSize), 'z')},
	}
	for _, c := range cases {
		publish(t, l, BlobStream(moduleName(c.name)), c.msgs...)
	}
	// Reading writes nothing (a store being migrated is only read).
	if got, err := l.Blobs().Get(ctx, moduleName("module")); err != nil || !bytes.Equal(got, module) {
		t.Fatalf("Get of a module of an earlier version, nothing put yet: %d bytes, %v", len(got), err)
	}
	if last, err := l.Last(ctx, BlobIndexChannel); err != nil || last != 0 {
		t.Fatalf("the blob index after reading: last %d, %v; want nothing written", last, err)
	}
	if err := l.Blobs().Put(ctx, "new", []byte("new value")); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := l.Blobs().Get(ctx, moduleName(c.name))
			if c.want == nil {
				if !errors.Is(err, ErrBlobDamaged) {
					t.Fatalf("Get: %d bytes, %v; want ErrBlobDamaged", len(got), err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, c.want) {
				t.Fatalf("Get: %d bytes, %v; want the %d stored whole", len(got), err, len(c.want))
			}
		})
	}
	if got, err := l.Blobs().Get(ctx, "new"); err != nil || string(got) != "new value" {
		t.Fatalf("Get of a value stored in the new layout on an old store: %q, %v", got, err)
	}
	if _, err := l.Blobs().Get(ctx, "v-missing"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("Get of a missing name on an old store: %v, want ErrNotFound", err)
	}
	if slices.Contains(channels(t, dir), BlobStream("v-missing")) {
		t.Fatal("Get of a missing name that is not a module's made a channel of the old layout")
	}
}

// TestBlobPutCutShort: chunks whose index record was never written (a
// Put killed between the two) are no value: the name is missing, and a
// Put of it afterwards stores it whole, the old chunks skipped though
// they come first.
func TestBlobPutCutShort(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	if err := l.Blobs().Put(ctx, "before", []byte("a value")); err != nil { // the index exists, as before any Put's chunks
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("v"), 2*ChunkSize+5)
	var id [putIDSize]byte
	id[0] = 1
	for i := range 2 { // two of the three chunks, and no index record
		c := chunk{put: id, index: i, total: 3, size: len(data), name: "v"}
		publish(t, l, BlobDataChannel, string(appendChunk(nil, c, data[i*ChunkSize:(i+1)*ChunkSize])))
	}
	if _, err := l.Blobs().Get(ctx, "v"); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("Get of a value whose Put was cut short: %v, want ErrNotFound", err)
	}
	other := bytes.Repeat([]byte("o"), 2*ChunkSize+5)
	if err := l.Blobs().Put(ctx, "v", other); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Blobs().Get(ctx, "v"); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("Get after a whole Put: %d bytes (equal %t), %v", len(got), bytes.Equal(got, other), err)
	}
}

// TestBlobDamagedIndex: a value whose bytes are not those its index
// record describes is ErrBlobDamaged, not a wrong value.
func TestBlobDamagedIndex(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	if err := l.Blobs().Put(ctx, "v", []byte("value")); err != nil {
		t.Fatal(err)
	}
	recs := read(t, l, BlobIndexChannel)
	var r indexRecord
	if err := json.Unmarshal(recs[len(recs)-1], &r); err != nil || r.Blob == nil {
		t.Fatalf("index record %q: %v", recs[len(recs)-1], err)
	}
	r.Blob.Name, r.Blob.SHA256 = "w", strings.Repeat("0", 64)
	rec, _ := json.Marshal(r)
	publish(t, l, BlobIndexChannel, string(rec))
	if got, err := l.Blobs().Get(ctx, "w"); !errors.Is(err, ErrBlobDamaged) {
		t.Fatalf("Get of a value that does not match its checksum: %q, %v; want ErrBlobDamaged", got, err)
	}
	// A record that cannot be read may have named any value: a name not
	// found is not said missing, but the others are still read.
	publish(t, l, BlobIndexChannel, "not a record")
	if got, err := l.Blobs().Get(ctx, "x"); !errors.Is(err, ErrBlobDamaged) {
		t.Fatalf("Get of a name not found in an index with a damaged record: %q, %v; want ErrBlobDamaged", got, err)
	}
	if got, err := l.Blobs().Get(ctx, "v"); err != nil || string(got) != "value" {
		t.Fatalf("Get of a value in an index with a damaged record: %q, %v", got, err)
	}
}

// TestBlobChannelsLoses: an operator told that a blob channel is damaged
// learns what moving it aside loses (broker.Loses knows the channels by
// these names).
func TestBlobChannelsLoses(t *testing.T) {
	for _, ch := range []string{BlobDataChannel, BlobIndexChannel} {
		if got := broker.Loses(ch); !strings.Contains(got, "every module and") {
			t.Errorf("Loses(%q) = %q, want it to say that every module and large value is lost", ch, got)
		}
	}
}
