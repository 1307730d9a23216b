package wasmbin

import "sort"

// # Data segments
//
// With Options.CoalesceData, Instrument merges the module's data segments
// into as few as it can. wazero evaluates each segment's offset and copies
// its bytes at every instantiation, and the cost is per segment: Go's
// linker writes one segment per run of non-zero bytes (31,774 for a small
// Go reactor), which made their application most of a Go instance's
// instantiation. Segments are merged when nothing can tell: every one is
// active, in memory 0, which the module defines (so instantiation zeroes
// it), at a constant i32 offset below 2^31; no two overlap; and no
// instruction names a segment (memory.init, data.drop: their indices
// would shift). Consecutive segments separated by at most MaxDataGap
// bytes become one, the gap filled with zeros (the bytes a fresh memory
// holds there; at most as many zeros in all as the segments hold bytes);
// the DataCount section, if any, gets the new count. A
// merged segment spans from its first segment's start to its last one's
// end, so it is out of bounds exactly when one of the segments it merges
// was: instantiation fails as it would have. Otherwise the data section is
// copied as it is.

// MaxDataGap is the longest run of zero bytes between two data segments
// that Options.CoalesceData fills to merge them. wazero spends about as
// long on a segment (evaluating its offset expression, which allocates,
// then a call to copy) as on copying a few hundred bytes; and Go's data
// segments are split by runs of 16 to 32 zero bytes (merging across gaps
// of up to 1 KiB leaves 2 segments of a Go reactor's 31,774, its 775 KB
// of data grown to 1.35 MB).
const MaxDataGap = 1 << 10

// dataSegment is an active data segment at a constant offset.
type dataSegment struct {
	offset uint32
	init   []byte // its bytes, a view of the input
}

// dataPlan is the merged data section: its segments, in order, and their
// count in the input.
type dataPlan struct {
	segments []dataSegment
	before   int
}

// planData reads the data section of m and merges its segments, or
// returns nil when it cannot or need not (see the package documentation).
// A data section Instrument cannot read is left to the runtime to refuse.
func planData(m *module) *dataPlan {
	s, ok := m.sectionByID(secData)
	if !ok || m.importedMemory || m.memoryCount == 0 {
		return nil
	}
	segs, ok := activeSegments(m.in, s)
	if !ok || len(segs) < 2 {
		return nil
	}
	if code, ok := m.sectionByID(secCode); ok {
		reason, err := scanCode(m.in, code, m.importedFuncs, segmentOp)
		if err != nil || reason != "" {
			return nil
		}
	}
	if dc, ok := m.sectionByID(secDataCount); ok {
		if n, _, ok := readU32(m.in[:dc.end], dc.payload); !ok || int(n) != len(segs) {
			return nil // wrong: the runtime refuses the module
		}
	}
	before := len(segs)
	sort.SliceStable(segs, func(a, b int) bool { return segs[a].offset < segs[b].offset })
	end := uint64(0)
	for _, sg := range segs {
		if uint64(sg.offset) < end {
			return nil // overlapping: the order of writes matters
		}
		end = uint64(sg.offset) + uint64(len(sg.init))
	}
	// the zeros filled in are at most as many as the data's bytes, so
	// that a module of many tiny segments MaxDataGap apart does not make
	// Instrument write a thousand times its size
	fillBudget := uint64(0)
	for _, sg := range segs {
		fillBudget += uint64(len(sg.init))
	}
	var merged []dataSegment
	for k := 0; k < len(segs); {
		group := segs[k]
		last := k
		groupEnd := uint64(group.offset) + uint64(len(group.init))
		for last+1 < len(segs) {
			gap := uint64(segs[last+1].offset) - groupEnd
			if gap > MaxDataGap || gap > fillBudget {
				break
			}
			fillBudget -= gap
			last++
			groupEnd = uint64(segs[last].offset) + uint64(len(segs[last].init))
		}
		if last > k {
			buf := make([]byte, groupEnd-uint64(group.offset))
			for _, sg := range segs[k : last+1] {
				copy(buf[sg.offset-group.offset:], sg.init)
			}
			group.init = buf
		}
		merged = append(merged, group)
		k = last + 1
	}
	if len(merged) == before {
		return nil
	}
	return &dataPlan{segments: merged, before: before}
}

// activeSegments reads data section s: its segments, if every one is
// active in memory 0 at an i32.const offset in [0, 2^31).
func activeSegments(in []byte, s section) ([]dataSegment, bool) {
	b := in[:s.end]
	n, p, ok := readU32(b, s.payload)
	if !ok || uint64(n) > uint64(s.end-p) {
		return nil, false
	}
	segs := make([]dataSegment, 0, n)
	for k := uint32(0); k < n; k++ {
		var flag uint32
		if flag, p, ok = readU32(b, p); !ok {
			return nil, false
		}
		switch flag {
		case 0:
		case 2:
			var mem uint32
			if mem, p, ok = readU32(b, p); !ok || mem != 0 {
				return nil, false
			}
		default:
			return nil, false // passive, or unknown
		}
		if p >= len(b) || b[p] != opI32Const {
			return nil, false
		}
		var off int64
		if off, p, ok = readS33(b, p+1); !ok || off < 0 || off >= 1<<31 {
			return nil, false
		}
		if p >= len(b) || b[p] != opEnd {
			return nil, false
		}
		var size uint32
		if size, p, ok = readU32(b, p+1); !ok || uint64(size) > uint64(len(b)-p) {
			return nil, false
		}
		segs = append(segs, dataSegment{offset: uint32(off), init: b[p : p+int(size)]})
		p += int(size)
	}
	if p != s.end {
		return nil, false
	}
	return segs, true
}

// segmentOp names the instruction op (its immediates at b[p:]) if it
// refers to a data segment by index.
func segmentOp(b []byte, p int, op byte) string {
	if op != 0xFC {
		return ""
	}
	switch sub, _, _ := readU32(b, p); sub {
	case 8:
		return "memory.init"
	case 9:
		return "data.drop"
	}
	return ""
}

// size is the encoded size of the merged data section's payload.
func (d *dataPlan) size() int {
	n := sizeU32(uint32(len(d.segments)))
	for _, sg := range d.segments {
		n += 1 + 1 + sizeS32(int32(sg.offset)) + 1 + sizeU32(uint32(len(sg.init))) + len(sg.init)
	}
	return n
}

// sizeS32 is the encoded size of v as a signed LEB128 number.
func sizeS32(v int32) int { return len(appendS32(make([]byte, 0, 5), v)) }

// writeData writes the merged data section.
func (w *writer) writeData() {
	d := w.data
	w.writeSection(secData, d.size())
	w.out = appendU32(w.out, uint32(len(d.segments)))
	for _, sg := range d.segments {
		w.out = append(w.out, 0, opI32Const)
		w.out = appendS32(w.out, int32(sg.offset))
		w.out = append(w.out, opEnd)
		w.out = appendU32(w.out, uint32(len(sg.init)))
		w.out = append(w.out, sg.init...)
	}
}

// writeDataCount writes the DataCount section with the merged count.
func (w *writer) writeDataCount() {
	n := uint32(len(w.data.segments))
	w.writeSection(secDataCount, sizeU32(n))
	w.out = appendU32(w.out, n)
}
