package wasmbin

import "bytes"

// writer assembles the output module.
type writer struct {
	m          *module
	opts       Options
	mems       []memory // defined memories, clamped
	memChanged bool
	// tables are the defined tables, clamped
	tables        []table
	tablesChanged bool
	flag          uint32 // index of the interrupt flag global (if opts.Interrupt); the counter follows
	code          codeRewriter
	snap          snapshotPlan // with opts.Snapshot
	data          *dataPlan    // with opts.CoalesceData, if the segments merge

	out           []byte
	memoryPending bool // a memory section has to be created
	globalPending bool // the global section still has to be written
	exportPending bool // the export section still has to be written
	// emptyTail is the output offset of the run of empty custom sections
	// (a name, no content) that ends the output so far, or -1.
	emptyTail int
}

// debugPrefix starts the names of DWARF custom sections.
var debugPrefix = []byte(".debug_")

// write produces the output module: every section copied as is unless it
// has to change, new global and export sections created where missing.
func (w *writer) write() ([]byte, error) {
	m := w.m
	w.out = make([]byte, 0, w.capacity())
	w.out = append(w.out, m.in[:8]...)
	w.memoryPending = w.opts.Interrupt && !m.importedMemory && m.memoryCount == 0
	w.globalPending = w.opts.Interrupt
	w.exportPending = w.opts.Interrupt || m.hasStart || len(w.snap.globals) > 0
	w.emptyTail = -1
	for _, s := range m.sections {
		if s.id != secCustom {
			w.flushBefore(sectionRank[s.id])
		}
		at := len(w.out)
		empty, err := w.section(s)
		if err != nil {
			return nil, err
		}
		switch {
		case len(w.out) == at: // dropped
		case empty:
			if w.emptyTail < 0 {
				w.emptyTail = at
			}
		default:
			w.emptyTail = -1
		}
	}
	w.flushBefore(len(sectionRank) + 1)
	if w.emptyTail >= 0 && w.emptyTail < len(w.out) {
		// Dropping a section (start, DWARF) can leave empty custom sections
		// at the end of the module, which wazero v1.12 fails to read (its
		// zero-byte read at the end of input returns EOF). They carry nothing
		// but a name, so drop them too.
		w.out = w.out[:w.emptyTail]
	}
	return w.out, nil
}

// capacity estimates the output size so that the buffer rarely grows:
// the checks and flushes add a few dozen bytes per function, loop, call
// and return (about 14% of the code of a Go guest).
func (w *writer) capacity() int {
	n := len(w.m.in) + 64
	if s, ok := w.m.sectionByID(secCode); ok && w.opts.Interrupt {
		n += (s.end - s.payload) / 4
	}
	if w.data != nil {
		n += w.data.size()
	}
	return n
}

// flushBefore writes the new memory, global and export sections if the
// module had none and the next section comes after them.
func (w *writer) flushBefore(rank int) {
	if w.memoryPending && rank > sectionRank[secMemory] {
		w.writeEmptyMemory()
		w.emptyTail = -1
	}
	if w.globalPending && rank > sectionRank[secGlobal] {
		w.writeGlobals(section{}, false)
		w.emptyTail = -1
	}
	if w.exportPending && rank > sectionRank[secExport] {
		w.writeExports(section{}, false)
		w.emptyTail = -1
	}
}

// section writes section s, changed or not (or nothing if it is dropped).
// empty reports a custom section with a name and no content.
func (w *writer) section(s section) (empty bool, err error) {
	m := w.m
	switch s.id {
	case secCustom:
		name, r, err := m.customName(s)
		if err != nil {
			return false, err
		}
		if w.opts.Interrupt && bytes.HasPrefix(name, debugPrefix) {
			return false, nil
		}
		// wazero reads the name section its own way; see write.
		empty = r == s.end && string(name) != "name"
	case secTable:
		if w.tablesChanged {
			w.writeTables()
			return false, nil
		}
	case secMemory:
		if w.memoryPending { // a memory section that declares no memory
			w.writeEmptyMemory()
			return false, nil
		}
		if w.memChanged {
			w.writeMemories()
			return false, nil
		}
	case secGlobal:
		if w.globalPending {
			w.writeGlobals(s, true)
			return false, nil
		}
	case secExport:
		if w.exportPending {
			w.writeExports(s, true)
			return false, nil
		}
	case secStart:
		return false, nil // exported as StartExport instead
	case secDataCount:
		if w.data != nil {
			w.writeDataCount()
			return false, nil
		}
	case secData:
		if w.data != nil {
			w.writeData()
			return false, nil
		}
	case secCode:
		if w.opts.Interrupt {
			w.out, err = w.code.rewriteSection(w.out, m.in, s, m.importedFuncs)
			return false, err
		}
	}
	w.out = append(w.out, m.in[s.start:s.end]...)
	return empty, nil
}

// writeSection appends a section header for a payload of size bytes.
func (w *writer) writeSection(id byte, size int) {
	w.out = append(w.out, id)
	w.out = appendU32(w.out, uint32(size))
}

// writeGlobals writes the global section with the interrupt flag and the
// countdown appended (to the existing section s if exists).
func (w *writer) writeGlobals(s section, exists bool) {
	w.globalPending = false
	var count uint32
	var rest []byte
	if exists {
		count = w.m.definedGlobals
		rest = w.m.in[w.m.globalCountEnd:s.end]
	}
	size := sizeU32(count+2) + len(rest) + len(flagGlobal) + len(counterGlobal)
	w.writeSection(secGlobal, size)
	w.out = appendU32(w.out, count+2)
	w.out = append(w.out, rest...)
	w.out = append(w.out, flagGlobal...)
	w.out = append(w.out, counterGlobal...)
}

// writeEmptyMemory writes a memory section declaring one empty memory (in
// place of the module's memory section, if it has one declaring none).
func (w *writer) writeEmptyMemory() {
	w.memoryPending = false
	w.writeSection(secMemory, 1+len(emptyMemory))
	w.out = append(w.out, 1)
	w.out = append(w.out, emptyMemory...)
}

// export is an entry Instrument adds to the export section.
type export struct {
	name  string
	kind  byte
	index uint32
}

// writeExports writes the export section with the interrupt flag, the
// start function and the globals of a snapshot appended (to the existing
// section s if exists).
func (w *writer) writeExports(s section, exists bool) {
	w.exportPending = false
	added := make([]export, 0, 3+len(w.snap.globals))
	if w.opts.Interrupt {
		added = append(added, export{InterruptExport, kindGlobal, w.flag}, export{CountdownExport, kindGlobal, w.flag + 1})
	}
	if w.m.hasStart {
		added = append(added, export{StartExport, kindFunc, w.m.startFunc})
	}
	for _, g := range w.snap.globals {
		added = append(added, export{g.Export, kindGlobal, g.Index})
	}
	n := len(added)
	var count uint32
	var rest []byte
	if exists {
		count = w.m.exportCount
		rest = w.m.in[w.m.exportCountEnd:s.end]
	}
	count += uint32(n)
	size := sizeU32(count) + len(rest)
	for _, e := range added[:n] {
		size += sizeU32(uint32(len(e.name))) + len(e.name) + 1 + sizeU32(e.index)
	}
	w.writeSection(secExport, size)
	w.out = appendU32(w.out, count)
	w.out = append(w.out, rest...)
	for _, e := range added[:n] {
		w.out = appendU32(w.out, uint32(len(e.name)))
		w.out = append(w.out, e.name...)
		w.out = append(w.out, e.kind)
		w.out = appendU32(w.out, e.index)
	}
}

// writeTables writes the table section with the clamped limits, each
// entry otherwise copied as it is.
func (w *writer) writeTables() {
	in := w.m.in
	size := sizeU32(uint32(len(w.tables)))
	for _, t := range w.tables {
		size += (t.limAt - t.at) + limitsSize(t.limits) + (t.end - t.limEnd)
	}
	w.writeSection(secTable, size)
	w.out = appendU32(w.out, uint32(len(w.tables)))
	for _, t := range w.tables {
		w.out = append(w.out, in[t.at:t.limAt]...)
		w.out = appendLimits(w.out, t.limits)
		w.out = append(w.out, in[t.limEnd:t.end]...)
	}
}

// limitsSize is the encoded size of 32-bit limits l.
func limitsSize(l limits) int {
	n := 1 + sizeU32(uint32(l.min))
	if l.hasMax {
		n += sizeU32(uint32(l.max))
	}
	return n
}

// appendLimits appends 32-bit limits l.
func appendLimits(out []byte, l limits) []byte {
	out = append(out, l.flags)
	out = appendU32(out, uint32(l.min))
	if l.hasMax {
		out = appendU32(out, uint32(l.max))
	}
	return out
}

// writeMemories writes the memory section with the clamped limits.
func (w *writer) writeMemories() {
	size := sizeU32(w.m.memoryCount)
	for _, mem := range w.mems {
		size += 1 + sizeU32(uint32(mem.min))
		if mem.hasMax {
			size += sizeU32(uint32(mem.max))
		}
	}
	w.writeSection(secMemory, size)
	w.out = appendU32(w.out, w.m.memoryCount)
	for _, mem := range w.mems {
		w.out = append(w.out, mem.flags)
		w.out = appendU32(w.out, uint32(mem.min))
		if mem.hasMax {
			w.out = appendU32(w.out, uint32(mem.max))
		}
	}
}
