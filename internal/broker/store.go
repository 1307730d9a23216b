package broker

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// What the embedded server's file store does with damage, measured on
// v0.25.6 (docs/RATIONALE.md has the table): a damaged server, client or
// subscription file, or a bad file header, fails the start with an error;
// a damaged index is rebuilt from its data file; a damaged message is an
// error when read. Messages that two servers wrote into one store at once
// are out of order in their data file: recovery rebuilds the index from
// them, and the first subscription that starts at a time then panics on
// the server's own goroutine (GetSequenceFromTimestamp), which no recover
// of ours can catch. The data dir lock keeps two daemons out of one
// store; checkOrder catches what got in anyway (on NFS, say, where a
// lock may not reach other machines).

// maxDamageReports bounds what a damaged store can make the daemon keep:
// one report per channel, and no more than this many.
const maxDamageReports = 64

// damageLog collects what the server reports about damage to its store.
type damageLog struct {
	dir    string
	notify func(*StoreError)

	mu        sync.Mutex
	seen      map[string]bool // channel (or file) already reported
	reports   []*StoreError
	repaired  []string // channels whose index the server rebuilt at start
	isStarted bool
}

var (
	// "Error with index file "DIR/CH/msgs.1.idx": ... Truncating and
	// recovering from data file"
	rebuiltIndex = regexp.MustCompile(`^Error with index file "([^"]+)": (.*)$`)
	// "Error looking up message CH:SEQ (...)"
	badMessage = regexp.MustCompile(`^Error looking up message (\S+):(\d+) \((.*)\)$`)
	// "Corrupted record in file "...": ...", "Unexpected EOF for file "...""
	badFile = regexp.MustCompile(`^(?:Corrupted record in file|Unexpected EOF for file) "([^"]+)"(.*)$`)
)

// report takes one error line of the server's log.
func (d *damageLog) report(line string) {
	if d == nil || d.dir == "" {
		return
	}
	line = strings.TrimPrefix(line, "STREAM: ")
	var se *StoreError
	if m := rebuiltIndex.FindStringSubmatch(line); m != nil {
		se = &StoreError{Dir: d.dir, File: m[1], Channel: channelOf(d.dir, m[1]), Err: errors.New(strings.TrimSuffix(m[2], ". Truncating and recovering from data file")), Repaired: true}
		d.mu.Lock()
		if !d.isStarted && se.Channel != "" && !slices.Contains(d.repaired, se.Channel) {
			d.repaired = append(d.repaired, se.Channel)
		}
		d.mu.Unlock()
	} else if m := badMessage.FindStringSubmatch(line); m != nil {
		se = &StoreError{Dir: d.dir, Channel: m[1], Err: fmt.Errorf("message %s cannot be read: %s", m[2], m[3])}
	} else if m := badFile.FindStringSubmatch(line); m != nil {
		se = &StoreError{Dir: d.dir, File: m[1], Channel: channelOf(d.dir, m[1]), Err: errors.New(line)}
	} else {
		return
	}
	key := se.Channel
	if key == "" {
		key = se.File
	}
	d.mu.Lock()
	if d.seen[key] || len(d.reports) >= maxDamageReports {
		d.mu.Unlock()
		return
	}
	d.seen[key] = true
	d.reports = append(d.reports, se)
	d.mu.Unlock()
	if d.notify != nil {
		d.notify(se)
	}
}

// started marks the end of the server's start: indexes rebuilt later are
// not checked.
func (d *damageLog) started() {
	d.mu.Lock()
	d.isStarted = true
	d.mu.Unlock()
}

func (d *damageLog) rebuilt() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.repaired)
}

func (d *damageLog) all() []*StoreError {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.reports)
}

// channelOf returns the channel a store file belongs to: the directory
// under the store's, "" for the server's own files.
func channelOf(dir, file string) string {
	if !filepath.IsAbs(file) {
		file = filepath.Join(dir, file)
	}
	rel, err := filepath.Rel(dir, file)
	if err != nil || strings.HasPrefix(rel, "..") {
		return ""
	}
	ch, _, found := strings.Cut(filepath.ToSlash(rel), "/")
	if !found {
		return ""
	}
	return ch
}

var (
	// "unable to recover message store for [CH](file: "CH/msgs.1.dat"): ..."
	recoverChannel = regexp.MustCompile(`unable to recover (message|subscription) store for \[([^\]]+)\](?:\(file: "([^"]+)"\))?: (.*)$`)
	// "unable to recover server file "server.dat": ...", "... client file ..."
	recoverServer = regexp.MustCompile(`unable to recover (server|client) file "([^"]+)": (.*)$`)
)

// storeError classifies an error of the server's start: a *StoreError if
// it is about the file store, else nil.
func storeError(dir string, err error) *StoreError {
	if dir == "" {
		return nil
	}
	msg := err.Error()
	if m := recoverChannel.FindStringSubmatch(msg); m != nil {
		se := &StoreError{Dir: dir, Channel: m[2], Err: errors.New(m[4])}
		switch {
		case m[3] != "":
			se.File = filepath.Join(dir, m[3])
		case m[1] == "subscription":
			se.File = filepath.Join(dir, m[2], "subs.dat")
		}
		return se
	}
	if m := recoverServer.FindStringSubmatch(msg); m != nil {
		file := m[2]
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		return &StoreError{Dir: dir, File: file, Err: errors.New(m[3])}
	}
	if strings.Contains(msg, "the server failed while starting") || strings.Contains(msg, "corrupted") {
		return &StoreError{Dir: dir, Err: err}
	}
	return nil
}

// missingIndexes returns the channels with a data file and no index: the
// server rebuilds the index from the data file without a word.
func missingIndexes(dir string) []string {
	if dir == "" {
		return nil
	}
	dats, _ := filepath.Glob(filepath.Join(dir, "*", "msgs.*.dat"))
	var out []string
	for _, dat := range dats {
		if _, err := os.Stat(strings.TrimSuffix(dat, ".dat") + ".idx"); errors.Is(err, os.ErrNotExist) {
			if ch := filepath.Base(filepath.Dir(dat)); !slices.Contains(out, ch) {
				out = append(out, ch)
			}
		}
	}
	return out
}

// Layout of the file store's index files (stores/filestore.go): a 4-byte
// file version, then one 32-byte record per message, in the order of the
// data file, starting with the message's sequence (little-endian).
const (
	fileVersionSize = 4
	indexRecordSize = 32
)

// checkOrder reads the index files of the channels (every channel if
// none is named) and returns a *StoreError for the first whose message
// sequences do not increase. It stops at a record it cannot read: the
// server deals with those. Reading the indexes costs what the server's
// own recovery costs, which reads them all too.
func checkOrder(dir string, channels ...string) error {
	if dir == "" {
		return nil
	}
	if len(channels) == 0 {
		subs, _ := filepath.Glob(filepath.Join(dir, "*", "subs.dat"))
		for _, s := range subs {
			channels = append(channels, filepath.Base(filepath.Dir(s)))
		}
	}
	for _, ch := range channels {
		idxs, _ := filepath.Glob(filepath.Join(dir, ch, "msgs.*.idx"))
		slices.SortFunc(idxs, func(a, b string) int { return sliceNumber(a) - sliceNumber(b) })
		var last uint64
		for _, idx := range idxs {
			seq, prev, err := increasing(idx, last)
			if err != nil {
				return &StoreError{Dir: dir, Channel: ch, File: strings.TrimSuffix(idx, ".idx") + ".dat",
					Err: fmt.Errorf("message %d follows message %d: two servers wrote into this store at once", seq, prev)}
			}
			last = seq
		}
	}
	return nil
}

// errOutOfOrder: an index's sequences do not increase.
var errOutOfOrder = errors.New("out of order")

// increasing reads an index file's sequences, which must all be above
// last; it returns the last one read, or the one out of order and the
// one before it with errOutOfOrder.
func increasing(idx string, last uint64) (seq, prev uint64, err error) {
	f, err := os.Open(idx)
	if err != nil {
		return last, 0, nil
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	if _, err := r.Discard(fileVersionSize); err != nil {
		return last, 0, nil
	}
	var rec [indexRecordSize]byte
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return last, 0, nil
		}
		seq := binary.LittleEndian.Uint64(rec[:8])
		if seq == 0 {
			return last, 0, nil // zeroed space the server rewinds over
		}
		if seq <= last {
			return seq, last, errOutOfOrder
		}
		last = seq
	}
}

func sliceNumber(path string) int {
	base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".idx"), ".dat")
	n, _ := strconv.Atoi(strings.TrimPrefix(base, "msgs."))
	return n
}
