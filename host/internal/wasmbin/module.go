package wasmbin

import (
	"bytes"
	"fmt"
	"math"
)

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionRank gives each non-custom section id its position in the order
// the binary format requires (tag sits between memory and global). Custom
// sections (rank 0) may appear anywhere.
var sectionRank = [...]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secTag: 6, secGlobal: 7, secExport: 8, secStart: 9, secElement: 10,
	secDataCount: 11, secCode: 12, secData: 13,
}

// wasmMagic and wasmVersion1 open every core module.
var (
	wasmMagic    = []byte{0x00, 0x61, 0x73, 0x6D}
	wasmVersion1 = []byte{0x01, 0x00, 0x00, 0x00}
)

// maxPages32 is the largest page count a 32-bit memory can declare.
const maxPages32 = 65536

// section locates one section of the input.
type section struct {
	id      byte
	start   int // offset of the id byte
	payload int // offset of the first payload byte
	end     int // offset just past the payload
}

// name names the section for error messages.
func (s section) name() string { return sectionName(s.id) }

// memory is a memory defined in the memory section.
type memory struct {
	limits
	at int // offset of its flags byte, for errors
}

// module is what Instrument learns about its input before writing anything.
type module struct {
	in       []byte
	sections []section
	// byID holds, for each non-custom section id, its index in sections + 1
	// (0: absent).
	byID [14]int

	importedFuncs   uint32
	importedGlobals uint32
	importedMemory  bool
	// importedTables and importedMutableGlobals count what a snapshot
	// cannot copy (see planSnapshot).
	importedTables         uint32
	importedMutableGlobals uint32

	definedGlobals uint32
	globalCountEnd int // offset just past the global section's count

	exportCount    uint32
	exportCountEnd int // offset just past the export section's count

	hasStart  bool
	startFunc uint32

	memoryCount uint32
	memories    []memory

	tables []table
}

// table is a table defined in the table section.
type table struct {
	limits
	at     int // offset of the entry
	limAt  int // offset of its limits
	limEnd int // offset just past its limits
	end    int // offset just past the entry
}

// sectionByID returns the section with that id, if present.
func (m *module) sectionByID(id byte) (section, bool) {
	i := m.byID[id]
	if i == 0 {
		return section{}, false
	}
	return m.sections[i-1], true
}

// parseModule checks the header, splits in into sections and decodes the
// sections Instrument needs to know about (imports, memories, globals,
// exports, start).
func parseModule(in []byte) (*module, error) {
	m := &module{in: in, sections: make([]section, 0, 16)}
	if err := m.splitSections(); err != nil {
		return nil, err
	}
	for _, parse := range []struct {
		id byte
		fn func(section) error
	}{
		{secImport, m.parseImports},
		{secTable, m.parseTables},
		{secMemory, m.parseMemories},
		{secGlobal, m.parseGlobals},
		{secExport, m.parseExports},
		{secStart, m.parseStart},
	} {
		if s, ok := m.sectionByID(parse.id); ok {
			if err := parse.fn(s); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// splitSections records every section's bounds.
func (m *module) splitSections() error {
	return walkSections(m.in, func(s section) error {
		if s.id != secCustom {
			m.byID[s.id] = len(m.sections) + 1
		}
		m.sections = append(m.sections, s)
		return nil
	})
}

// walkSections checks a module's header, then hands visit each section's
// bounds in order, checking that known sections appear at most once and in
// order: what every reader of a module does first.
func walkSections(in []byte, visit func(section) error) error {
	if len(in) < 8 {
		return malformedf("header", 0, "module is %d bytes, shorter than the 8-byte header", len(in))
	}
	if !bytes.Equal(in[:4], wasmMagic) {
		return malformedf("header", 0, "bad magic number % x (want 00 61 73 6d)", in[:4])
	}
	if !bytes.Equal(in[4:8], wasmVersion1) {
		if in[6] != 0 { // a layer field other than 0: a component, not a core module
			return unsupportedf("header", 4, "component-model binaries are not supported (version % x)", in[4:8])
		}
		return malformedf("header", 4, "unknown binary version % x (want 01 00 00 00)", in[4:8])
	}
	lastRank := 0
	for p := 8; p < len(in); {
		start := p
		id := in[p]
		size, q, ok := readU32(in, p+1)
		if !ok {
			return malformedf(sectionName(id), start, "invalid or truncated section size")
		}
		if uint64(size) > uint64(len(in)-q) {
			return malformedf(sectionName(id), start, "section size %d runs past the end of the module (%d bytes left)", size, len(in)-q)
		}
		if int(id) >= len(sectionRank) {
			return malformedf("module", start, "unknown section id %d", id)
		}
		s := section{id: id, start: start, payload: q, end: q + int(size)}
		if id != secCustom {
			rank := sectionRank[id]
			if rank <= lastRank {
				return malformedf(s.name(), start, "section out of order or repeated")
			}
			lastRank = rank
		}
		if err := visit(s); err != nil {
			return err
		}
		p = s.end
	}
	return nil
}

// Import and export descriptor kinds.
const (
	kindFunc   = 0x00
	kindTable  = 0x01
	kindMemory = 0x02
	kindGlobal = 0x03
	kindTag    = 0x04
)

// parseImports counts imported functions and globals and notes an imported
// memory; it refuses memory64.
func (m *module) parseImports(s section) error {
	r := newParser(m.in, s)
	n := r.u32("import count")
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name("import module name")
		r.name("import field name")
		at := r.p
		switch kind := r.byte1("import kind"); kind {
		case kindFunc:
			r.u32("imported function type index")
			m.importedFuncs++
		case kindTable:
			r.valType("imported table element type")
			r.limits("imported table limits")
			m.importedTables++
		case kindMemory:
			l := r.limits("imported memory limits")
			if l.is64 && r.err == nil {
				r.failUnsupported(at, "import %d: memory64 is not supported", i)
			}
			m.importedMemory = true
		case kindGlobal:
			r.valType("imported global type")
			if r.byte1("imported global mutability") != 0 {
				m.importedMutableGlobals++
			}
			m.importedGlobals++
		case kindTag:
			r.byte1("imported tag attribute")
			r.u32("imported tag type index")
		default:
			if r.err == nil {
				r.p = at
				r.fail("import %d: unknown import kind %#02x", i, kind)
			}
		}
	}
	return r.done()
}

// parseMemories decodes the limits of every defined memory.
func (m *module) parseMemories(s section) error {
	r := newParser(m.in, s)
	n := r.u32("memory count")
	m.memoryCount = n
	for i := uint32(0); i < n && r.err == nil; i++ {
		at := r.p
		l := r.limits("memory limits")
		if l.is64 && r.err == nil {
			r.failUnsupported(at, "memory %d: memory64 is not supported", i)
		}
		m.memories = append(m.memories, memory{limits: l, at: at})
	}
	return r.done()
}

// parseTables decodes the limits of every defined table and where they
// are; it refuses 64-bit tables.
func (m *module) parseTables(s section) error {
	r := newParser(m.in, s)
	n := r.u32("table count")
	if r.err == nil && uint64(n) > uint64(len(r.b)-r.p) {
		r.fail("%d tables declared in %d bytes", n, len(r.b)-r.p)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		t := table{at: r.p}
		withInit := r.p+1 < len(r.b) && r.b[r.p] == 0x40 && r.b[r.p+1] == 0x00
		if withInit {
			r.p += 2
		}
		r.valType("table element type")
		t.limAt = r.p
		t.limits = r.limits("table limits")
		t.limEnd = r.p
		if t.is64 && r.err == nil {
			r.failUnsupported(t.limAt, "table %d: 64-bit tables are not supported", i)
		}
		if withInit {
			r.constExpr("table initializer")
		}
		t.end = r.p
		m.tables = append(m.tables, t)
	}
	return r.done()
}

// parseGlobals reads the number of defined globals. The globals themselves
// are kept as they are: the new globals are appended after them.
func (m *module) parseGlobals(s section) error {
	r := newParser(m.in, s)
	m.definedGlobals = r.u32("global count")
	m.globalCountEnd = r.p
	if r.err != nil {
		return r.err
	}
	if uint64(m.importedGlobals)+uint64(m.definedGlobals) >= math.MaxUint32-2 {
		return malformedf(s.name(), s.payload, "too many globals (%d imported, %d defined)", m.importedGlobals, m.definedGlobals)
	}
	return nil
}

// parseExports reads the export count and refuses a module that already
// uses one of the names Instrument exports.
func (m *module) parseExports(s section) error {
	r := newParser(m.in, s)
	m.exportCount = r.u32("export count")
	m.exportCountEnd = r.p
	for i := uint32(0); i < m.exportCount && r.err == nil; i++ {
		at := r.p
		name := r.name("export name")
		r.byte1("export kind")
		r.u32("export index")
		if r.err != nil {
			break
		}
		if string(name) == InterruptExport || string(name) == CountdownExport || string(name) == StartExport || bytes.HasPrefix(name, []byte(GlobalExportPrefix)) {
			return fmt.Errorf("%w: %s: offset %#x: the module already exports %q", ErrReservedExport, s.name(), at, name)
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	if m.exportCount > math.MaxUint32-2 {
		return malformedf(s.name(), s.payload, "too many exports (%d)", m.exportCount)
	}
	return nil
}

// parseStart reads the start function index.
func (m *module) parseStart(s section) error {
	r := newParser(m.in, s)
	m.startFunc = r.u32("start function index")
	m.hasStart = true
	return r.done()
}

// customName returns the name of custom section s and the offset of its
// content.
func (m *module) customName(s section) ([]byte, int, error) {
	r := newParser(m.in, s)
	name := r.name("custom section name")
	return name, r.p, r.err
}
