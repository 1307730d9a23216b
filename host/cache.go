package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
)

// The compilation cache on disk is wazero's: one file per compiled module,
// which wazero reads back trusting most of it. Only the machine code is
// covered by a checksum; the header's counts and lengths are not, nor are
// the offsets of the functions in the machine code. A damaged count makes
// wazero allocate what it says (a count of 2^32 functions: 32 GB, and the
// process ends at every start), a damaged offset makes it jump into the
// wrong code. So the host never lets wazero read an entry it has not
// checked: when a compilation writes an entry, the host records which
// entry it is and a CRC-32C of all of it in a seal of its own; before a
// compilation that may read an entry, it checks the entry against its
// seal, and removes an entry that does not match (it is compiled again).
// Entries no seal covers (left by a crash, or damaged before they were
// sealed) are removed when the host starts.
//
// Seals are named after the bytes given to wazero, so the host finds an
// entry without knowing how wazero names it (a hash that includes the
// CPU's features). A compilation that may write an entry (its module has
// no seal) runs alone, so that the one new file is its entry; one whose
// entry is sealed runs alongside others.

// cacheGuard keeps the seals of a compilation cache directory.
type cacheGuard struct {
	dir   string // wazero's entries
	seals string // the host's seals
	log   *slog.Logger
	// learn is held by a compilation that may write an entry.
	learn chan struct{}
}

// castagnoli is the CRC-32C table (hardware-accelerated on amd64 and arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// newCacheGuard opens the compilation cache in root, removing entries no
// seal covers.
func newCacheGuard(root string, log *slog.Logger) (*cacheGuard, wazero.CompilationCache, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, nil, err
	}
	cache, err := wazero.NewCompilationCacheWithDir(abs)
	if err != nil {
		return nil, nil, err
	}
	g := &cacheGuard{dir: filepath.Join(abs, wazeroCacheDir()), seals: filepath.Join(abs, "sluice-seals"), log: log, learn: make(chan struct{}, 1)}
	if st, err := os.Stat(g.dir); err != nil || !st.IsDir() {
		cache.Close(context.Background())
		return nil, nil, fmt.Errorf("wazero's cache directory %s is not where expected (wazero changed how it names it?)", g.dir)
	}
	if err := os.MkdirAll(g.seals, 0o700); err != nil {
		cache.Close(context.Background())
		return nil, nil, err
	}
	g.removeUnsealed()
	return g, cache, nil
}

// wazeroCacheDir is the directory wazero keeps its entries in under a
// cache dir: named after its version as wazero finds it (in the build
// info), the architecture and the OS.
func wazeroCacheDir() string {
	version := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if strings.Contains(dep.Path, "github.com/tetratelabs/wazero") {
				version = dep.Version
			}
		}
		if version == "" || version == "(devel)" {
			version = info.Main.Version
		}
	}
	if version == "" || version == "(devel)" {
		version = "dev"
	}
	return "wazero-" + version + "-" + runtime.GOARCH + "-" + runtime.GOOS
}

// seal records a cache entry: its file name, size and CRC-32C.
type seal struct {
	entry string
	size  int64
	crc   uint32
}

const sealHeader = "sluice cache seal 1"

// sealName names the seal of the entry for bin compiled by kind.
func sealName(bin []byte, kind string) string {
	sum := sha256.Sum256(bin)
	return hex.EncodeToString(sum[:]) + "-" + kind
}

func (g *cacheGuard) readSeal(name string) (seal, bool) {
	b, err := os.ReadFile(filepath.Join(g.seals, name))
	if err != nil {
		return seal{}, false
	}
	f := strings.Fields(string(b))
	if len(f) != 7 || strings.Join(f[:4], " ") != sealHeader || !isEntryName(f[4]) {
		return seal{}, false
	}
	size, err1 := strconv.ParseInt(f[5], 10, 64)
	crc, err2 := strconv.ParseUint(f[6], 16, 32)
	if err1 != nil || err2 != nil {
		return seal{}, false
	}
	return seal{entry: f[4], size: size, crc: uint32(crc)}, true
}

func (g *cacheGuard) writeSeal(name string, s seal) error {
	tmp, err := os.CreateTemp(g.seals, name+".*.tmp")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(tmp, "%s %s %d %08x\n", sealHeader, s.entry, s.size, s.crc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(g.seals, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// isEntryName tells whether a file name is a wazero cache entry's: the
// hex of a sha256.
func isEntryName(name string) bool {
	if len(name) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// check reads a sealed entry and tells whether it is what was sealed.
func (g *cacheGuard) check(s seal) (bool, error) {
	f, err := os.Open(filepath.Join(g.dir, s.entry))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return false, err
	}
	return n == s.size && h.Sum32() == s.crc, nil
}

// sealEntry seals the entry file name.
func (g *cacheGuard) sealEntry(sealName, entry string) error {
	f, err := os.Open(filepath.Join(g.dir, entry))
	if err != nil {
		return err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	return g.writeSeal(sealName, seal{entry: entry, size: n, crc: h.Sum32()})
}

// entries lists the entry files.
func (g *cacheGuard) entries() (map[string]bool, error) {
	des, err := os.ReadDir(g.dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(des))
	for _, de := range des {
		if isEntryName(de.Name()) {
			out[de.Name()] = true
		}
	}
	return out, nil
}

// removeUnsealed removes the entries no seal covers and the seals whose
// entry is gone.
func (g *cacheGuard) removeUnsealed() {
	entries, err := g.entries()
	if err != nil {
		g.log.Warn("cannot list the compilation cache", "dir", g.dir, "err", err)
		return
	}
	seals, err := os.ReadDir(g.seals)
	if err != nil {
		g.log.Warn("cannot list the compilation cache's seals", "dir", g.seals, "err", err)
		return
	}
	sealed := map[string]bool{}
	for _, de := range seals {
		if strings.HasSuffix(de.Name(), ".tmp") {
			os.Remove(filepath.Join(g.seals, de.Name()))
			continue
		}
		s, ok := g.readSeal(de.Name())
		if !ok || !entries[s.entry] {
			os.Remove(filepath.Join(g.seals, de.Name()))
			continue
		}
		sealed[s.entry] = true
	}
	removed := 0
	for name := range entries {
		if !sealed[name] {
			if os.Remove(filepath.Join(g.dir, name)) == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		g.log.Info("removed compilation cache entries that no seal covers; their modules compile again", "entries", removed)
	}
}

// drop removes an entry and its seal.
func (g *cacheGuard) drop(sealName string, s seal) {
	os.Remove(filepath.Join(g.dir, s.entry))
	os.Remove(filepath.Join(g.seals, sealName))
}

// isCacheReadErr tells whether a compilation failed reading a cache
// entry (wazero says so only in its message).
func isCacheReadErr(err error) bool {
	return err != nil && strings.Contains(err.Error(), "compilationcache:")
}

// compile compiles bin on r (kind names the runtime), letting wazero read
// a cache entry only after checking it against its seal, and sealing the
// entry a compilation writes.
func (g *cacheGuard) compile(ctx context.Context, r wazero.Runtime, bin []byte, kind string) (wazero.CompiledModule, error) {
	name := sealName(bin, kind)
	if s, ok := g.readSeal(name); ok {
		good, err := g.check(s)
		if err != nil {
			return nil, fmt.Errorf("checking compilation cache entry %s: %w", s.entry, err)
		}
		if good {
			cm, err := r.CompileModule(ctx, bin)
			if !isCacheReadErr(err) {
				return cm, err
			}
		}
		g.log.Warn("compilation cache entry is damaged; compiling its module again", "entry", s.entry)
		g.drop(name, s)
	}
	select {
	case g.learn <- struct{}{}:
		defer func() { <-g.learn }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	before, err := g.entries()
	if err != nil {
		return nil, err
	}
	cm, err := r.CompileModule(ctx, bin)
	if isCacheReadErr(err) {
		// an entry appeared since the host started, unsealed, and is
		// damaged: remove what no seal covers and compile once more
		g.log.Warn("compilation cache entry is damaged; compiling its module again", "err", err)
		g.removeUnsealed()
		if before, err = g.entries(); err != nil {
			return nil, err
		}
		cm, err = r.CompileModule(ctx, bin)
	}
	if err != nil {
		return nil, err
	}
	after, err := g.entries()
	if err != nil {
		return cm, nil // it compiled; the entry stays unsealed and goes at the next start
	}
	var added []string
	for e := range after {
		if !before[e] {
			added = append(added, e)
		}
	}
	if len(added) == 1 {
		if err := g.sealEntry(name, added[0]); err != nil {
			g.log.Warn("cannot seal a compilation cache entry; it will be compiled again after a restart", "entry", added[0], "err", err)
		}
	}
	return cm, nil
}
