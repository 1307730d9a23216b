package wasmbin

import (
	"errors"
	"fmt"
	"math"
)

// Limits bound what a module may declare. Check enforces them in one pass
// over the binary that allocates in proportion to what it has already
// checked, never to what a count declares, before anything whose cost
// grows with what a module declares: Instrument, wazero's decoder (which
// allocates every vector by its declared length, all of a function's
// locals included, before reading it) and wazero's compiler (whose time
// grows faster than linearly with nesting depth and branch tables).
//
// A zero field means no limit. DefaultLimits gives the values sluice uses
// and why.
type Limits struct {
	// Types bounds the function types (members of rec groups included).
	Types uint32
	// Params and Results bound the parameters and results of one type.
	Params, Results uint32
	// Imports, Functions, Globals, Exports, Tables bound the module's
	// imports, defined functions, globals (imported and defined), exports
	// and tables (imported and defined).
	Imports, Functions, Globals, Exports, Tables uint32
	// TableSize bounds the initial size of one table, in elements.
	TableSize uint32
	// ElemSegments and Elements bound the element segments and the
	// elements of all of them together.
	ElemSegments, Elements uint32
	// DataSegments bounds the data segments.
	DataSegments uint32
	// CustomSections bounds the custom sections.
	CustomSections uint32
	// BodySize bounds the bytes of one function body, its local
	// declarations included.
	BodySize uint32
	// Locals bounds the locals of one function, its parameters included.
	Locals uint32
	// TotalLocals bounds the locals of all functions together.
	TotalLocals uint64
	// NestingWork bounds, in one function, the sum over every block, if,
	// try and loop of its nesting depth, a loop counting LoopWeight times:
	// what wazero's compile time grows with, roughly as its square.
	NestingWork uint64
	// BranchWork bounds, in one function, the sum over every br_table of
	// its targets times the function's locals: each target is an edge that
	// carries every local into its block.
	BranchWork uint64
}

// Defaults, after the limits the WebAssembly JS API lets every browser
// impose (https://webassembly.github.io/spec/js-api/#limits), lowered where
// a count that large would cost the host more than the largest real guest
// does. Measured on a 2-core VM with wazero v1.12: a Go guest importing
// net/http, go/types, html/template and crypto/tls is 20 MB with 11,407
// functions, at most 20 locals, 48,911 locals in all, bodies of at most
// 62 KB nested at most 1,076 deep; C guests nest at most 31 deep. Go nests
// one block per call site of a function: a generated Go function making
// 5,000 calls nests 5,003 deep in a 225 KB body.
const (
	// MaxTypes is a tenth of the JS API's million: wazero holds about 120
	// bytes per type (40 times its encoding); real guests declare hundreds.
	MaxTypes = 100_000
	// MaxParams and MaxResults are the JS API's.
	MaxParams  = 1000
	MaxResults = 1000
	// MaxImports is the JS API's. sluice provides a few dozen host
	// functions; more imports can only fail at instantiation.
	MaxImports = 100_000
	// MaxFunctions is a tenth of the JS API's million: wazero spends about
	// 20 µs compiling even an empty function (100,000 empty functions:
	// 2 s), and the largest Go guests define about 11,000.
	MaxFunctions = 100_000
	// MaxGlobals is a tenth of the JS API's million: every instance holds
	// each global (32 bytes), so a million would cost 32 MB per instance.
	MaxGlobals = 100_000
	// MaxExports is the JS API's.
	MaxExports = 100_000
	// MaxTables is a thousandth of the JS API's 100,000: every instance
	// allocates each table; guests use one (function references a few).
	MaxTables = 100
	// MaxTableSize is the JS API's 10 million elements (80 MB per
	// instance); a function's memory limit bounds its tables further.
	MaxTableSize = 10_000_000
	// MaxElemSegments is a hundredth of the JS API's 10 million.
	MaxElemSegments = 100_000
	// MaxElements bounds the elements of all segments: wazero holds about
	// 50 bytes per element (up to 50 times its encoding). A million is 50
	// MB, and 80 times what the largest Go guest's table needs.
	MaxElements = 1_000_000
	// MaxDataSegments is the JS API's.
	MaxDataSegments = 100_000
	// MaxCustomSections bounds the custom sections (the JS API has no
	// limit): each costs the rewriter a record. Toolchains emit a dozen at
	// most (names, producers, DWARF).
	MaxCustomSections = 10_000
	// MaxBodySize is the JS API's 7,654,321 bytes: wazero compiles plain
	// code at about 0.7 µs per byte, 5 s for the largest body.
	MaxBodySize = 7_654_321
	// MaxLocals is the JS API's 50,000 per function, parameters included.
	MaxLocals = 50_000
	// MaxTotalLocals bounds the locals of all functions (wazero keeps a
	// byte per local, and compiles each): 80 times the largest Go guest's.
	// Without it, 100,000 functions of 50,000 locals (a few bytes each)
	// would hold 5 GB.
	MaxTotalLocals = 4_000_000
	// LoopWeight is how much more a loop counts than a block in
	// NestingWork: wazero compiled 4,000 nested (instrumented) loops in
	// 2.1 s and 4,000 nested blocks in 77 ms, 27 times faster.
	LoopWeight = 32
	// MaxNestingWork bounds one function's NestingWork to 2^27: 16,383
	// nested blocks (1.3 s to compile) or 2,895 nested loops (0.8 s).
	// 20,000 nested loops, 60 KB, took 44 s. Go's generated 5,000-call
	// function weighs 12.5 million, a tenth of the limit.
	MaxNestingWork = 1 << 27
	// MaxBranchWork bounds one function's BranchWork to 2^25: a br_table
	// of 100,000 targets in a function of 1,000 locals (10^8) took 6.5 s
	// to compile, 10,000 targets and 10,000 locals 1.5 s; at the limit,
	// 33,000 targets and 1,000 locals 0.6 s. Go's 5,000-call function
	// weighs 85,000.
	MaxBranchWork = 1 << 25
)

// DefaultLimits returns the limits sluice applies to every module.
func DefaultLimits() Limits {
	return Limits{
		Types: MaxTypes, Params: MaxParams, Results: MaxResults,
		Imports: MaxImports, Functions: MaxFunctions, Globals: MaxGlobals, Exports: MaxExports,
		Tables: MaxTables, TableSize: MaxTableSize, ElemSegments: MaxElemSegments, Elements: MaxElements,
		DataSegments: MaxDataSegments, CustomSections: MaxCustomSections,
		BodySize: MaxBodySize, Locals: MaxLocals, TotalLocals: MaxTotalLocals,
		NestingWork: MaxNestingWork, BranchWork: MaxBranchWork,
	}
}

// ErrLimit is wrapped by the *LimitError Check returns for a module over
// one of its Limits.
var ErrLimit = errors.New("wasmbin: module over a limit")

// LimitError says which limit a module broke, and where.
type LimitError struct {
	// What names the limit in a message: "functions", "locals of one
	// function", ...
	What string
	// Got is the module's count (for a count found too large while
	// reading, what it declares) and Limit the limit.
	Got, Limit uint64
	// Function is the index of the function concerned (imports
	// included), or -1.
	Function int64
	// Detail, if set, says more (the nesting depth reached, ...).
	Detail string
}

// Error implements error.
func (e *LimitError) Error() string {
	where := ""
	if e.Function >= 0 {
		where = fmt.Sprintf("function %d: ", e.Function)
	}
	msg := fmt.Sprintf("%s%d %s, over the limit of %d", where, e.Got, e.What, e.Limit)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrLimit) hold.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// Stats are what Check counted in a module.
type Stats struct {
	Types, Imports, ImportedFuncs, Functions, Globals, Exports uint32
	// Tables counts imported and defined tables; TableElements sums the
	// initial sizes of the defined ones.
	Tables        uint32
	TableElements uint64
	// MemoryPages is the initial size of the defined memories.
	MemoryPages                          uint64
	ElemSegments, Elements, DataSegments uint32
	CustomSections                       uint32
	// CodeBytes and DataBytes are the sizes of the function bodies and of
	// the data segments' contents.
	CodeBytes, DataBytes uint64
	// MaxBodySize, MaxLocals and MaxDepth are the largest body, locals
	// (parameters included) and nesting depth of one function; TotalLocals
	// sums the locals of all.
	MaxBodySize, MaxLocals, MaxDepth uint32
	TotalLocals                      uint64
	// MaxNestingWork and MaxBranchWork are the largest of one function
	// (see Limits).
	MaxNestingWork, MaxBranchWork uint64
}

// Check reads module binary wasm and returns what it declares, or an
// error: a *LimitError (wrapping ErrLimit) for a module over a limit, or
// an error wrapping ErrMalformed or ErrUnsupported for a module it cannot
// read to the end. It reads every section, every name and every
// instruction, so that whatever reads the module next meets only counts
// and lengths it has checked. It never panics.
func Check(wasm []byte, lim Limits) (Stats, error) {
	c := &checker{in: wasm, lim: lim}
	err := c.run()
	return c.st, err
}

type checker struct {
	in  []byte
	lim Limits
	st  Stats
	// typeParams holds the parameter count of each type, funcTypes the
	// type of each defined function: locals of a function include its
	// parameters.
	typeParams []uint32
	funcTypes  []uint32
	codeSeen   bool
}

// over returns a *LimitError if got exceeds limit (0: no limit).
func over(what string, got uint64, limit uint64, fn int64) error {
	if limit != 0 && got > limit {
		return &LimitError{What: what, Got: got, Limit: limit, Function: fn}
	}
	return nil
}

func (c *checker) run() error {
	if err := walkSections(c.in, c.section); err != nil {
		return err
	}
	if !c.codeSeen && len(c.funcTypes) > 0 {
		return malformedf("code section", len(c.in), "missing: the function section declares %d functions", len(c.funcTypes))
	}
	return nil
}

func (c *checker) section(s section) error {
	r := newParser(c.in, s)
	switch s.id {
	case secCustom:
		c.st.CustomSections++
		if err := over("custom sections", uint64(c.st.CustomSections), uint64(c.lim.CustomSections), -1); err != nil {
			return err
		}
		name := r.name("custom section name")
		if r.err == nil && string(name) == "name" {
			c.names(r)
		}
		return r.err // the rest of a custom section is opaque
	case secType:
		c.types(r)
	case secImport:
		c.imports(r)
	case secFunction:
		c.functions(r)
	case secTable:
		c.tables(r)
	case secMemory:
		n := c.count(r, "memories", 0)
		for i := uint32(0); i < n && r.err == nil; i++ {
			l := r.limits("memory limits")
			c.st.MemoryPages += l.min
		}
	case secGlobal:
		n := c.count(r, "globals", 0)
		if r.err == nil {
			if err := over("globals", uint64(c.st.Globals)+uint64(n), uint64(c.lim.Globals), -1); err != nil {
				return err
			}
		}
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.valType("global type")
			r.byte1("global mutability")
			r.constExpr("global initializer")
		}
		c.st.Globals += n
	case secExport:
		c.st.Exports = c.count(r, "exports", c.lim.Exports)
		for i := uint32(0); i < c.st.Exports && r.err == nil; i++ {
			r.name("export name")
			r.byte1("export kind")
			r.u32("export index")
		}
	case secStart:
		r.u32("start function index")
	case secElement:
		c.elements(r)
	case secDataCount:
		r.u32("data count")
	case secCode:
		c.codeSeen = true
		return c.code(r, s)
	case secData:
		c.data(r)
	case secTag:
		n := c.count(r, "tags", 0)
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.byte1("tag attribute")
			r.u32("tag type index")
		}
	}
	return r.done()
}

// count reads a vector's length and checks it against the bytes left in
// the section (every item takes at least one) and against limit.
func (c *checker) count(r *parser, what string, limit uint32) uint32 {
	at := r.p
	n := r.u32(what + " count")
	if r.err != nil {
		return 0
	}
	if err := over(what, uint64(n), uint64(limit), -1); err != nil {
		r.err = err
		return 0
	}
	if left := len(r.b) - r.p; uint64(n) > uint64(left) {
		r.p = at
		r.fail("%d %s declared in %d bytes", n, what, left)
		return 0
	}
	return n
}

func (c *checker) types(r *parser) {
	n := c.count(r, "types", 0)
	for i := uint32(0); i < n && r.err == nil; i++ {
		if r.p < len(r.b) && r.b[r.p] == typeRecGroup {
			r.p++
			members := c.count(r, "rec group members", 0)
			for j := uint32(0); j < members && r.err == nil; j++ {
				c.funcType(r)
			}
			continue
		}
		c.funcType(r)
	}
}

func (c *checker) funcType(r *parser) {
	if r.err != nil {
		return
	}
	if err := over("types", uint64(len(c.typeParams))+1, uint64(c.lim.Types), -1); err != nil {
		r.err = err
		return
	}
	if b := r.byte1("type form"); r.err == nil && b != typeFunc {
		r.p--
		r.fail("type form %#02x is not a function type (0x60)", b)
		return
	}
	params := c.count(r, "parameters of one type", c.lim.Params)
	for i := uint32(0); i < params && r.err == nil; i++ {
		r.valType("parameter type")
	}
	results := c.count(r, "results of one type", c.lim.Results)
	for i := uint32(0); i < results && r.err == nil; i++ {
		r.valType("result type")
	}
	c.typeParams = append(c.typeParams, params)
	c.st.Types = uint32(len(c.typeParams))
}

func (c *checker) imports(r *parser) {
	n := c.count(r, "imports", c.lim.Imports)
	c.st.Imports = n
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name("import module name")
		r.name("import field name")
		at := r.p
		switch kind := r.byte1("import kind"); kind {
		case kindFunc:
			r.u32("imported function type index")
			c.st.ImportedFuncs++
		case kindTable:
			r.valType("imported table element type")
			r.limits("imported table limits")
			c.addTables(r, 1)
		case kindMemory:
			r.limits("imported memory limits")
		case kindGlobal:
			r.valType("imported global type")
			r.byte1("imported global mutability")
			c.st.Globals++
			if err := over("globals", uint64(c.st.Globals), uint64(c.lim.Globals), -1); err != nil && r.err == nil {
				r.err = err
			}
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
}

func (c *checker) addTables(r *parser, n uint32) {
	c.st.Tables += n
	if err := over("tables", uint64(c.st.Tables), uint64(c.lim.Tables), -1); err != nil && r.err == nil {
		r.err = err
	}
}

func (c *checker) functions(r *parser) {
	n := c.count(r, "functions", c.lim.Functions)
	c.st.Functions = n
	if r.err != nil {
		return
	}
	c.funcTypes = make([]uint32, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		c.funcTypes = append(c.funcTypes, r.u32("function type index"))
	}
}

func (c *checker) tables(r *parser) {
	n := c.count(r, "tables", 0)
	c.addTables(r, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		withInit := r.p+1 < len(r.b) && r.b[r.p] == 0x40 && r.b[r.p+1] == 0x00
		if withInit {
			r.p += 2
		}
		r.valType("table element type")
		l := r.limits("table limits")
		if r.err != nil {
			return
		}
		if err := over("elements in one table at start", l.min, uint64(c.lim.TableSize), -1); err != nil {
			r.err = err
			return
		}
		c.st.TableElements += l.min
		if withInit {
			r.constExpr("table initializer")
		}
	}
}

func (c *checker) elements(r *parser) {
	n := c.count(r, "element segments", c.lim.ElemSegments)
	c.st.ElemSegments = n
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32("element segment flags")
		if r.err != nil {
			return
		}
		if flags > 7 {
			r.fail("element segment %d: unknown flags %d", i, flags)
			return
		}
		// Bit 0: passive or declarative (no offset); with it clear, bit 1
		// says a table index precedes the offset. Bit 1 also says an
		// element kind or type precedes the vector, bit 2 that the vector
		// holds expressions rather than function indices.
		if flags&1 == 0 {
			if flags&2 != 0 {
				r.u32("element segment table index")
			}
			r.constExpr("element segment offset")
		}
		exprs := flags&4 != 0
		if flags&3 != 0 {
			if exprs {
				r.valType("element segment type")
			} else {
				r.byte1("element segment kind")
			}
		}
		elems := c.count(r, "elements of one segment", 0)
		if r.err == nil {
			c.st.Elements += elems
			if err := over("elements in all segments", uint64(c.st.Elements), uint64(c.lim.Elements), -1); err != nil {
				r.err = err
				return
			}
		}
		for j := uint32(0); j < elems && r.err == nil; j++ {
			if exprs {
				r.constExpr("element expression")
			} else {
				r.u32("element function index")
			}
		}
	}
}

func (c *checker) data(r *parser) {
	n := c.count(r, "data segments", c.lim.DataSegments)
	c.st.DataSegments = n
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32("data segment flags")
		switch {
		case r.err != nil:
			return
		case flags == 0:
			r.constExpr("data segment offset")
		case flags == 1:
		case flags == 2:
			r.u32("data segment memory index")
			r.constExpr("data segment offset")
		default:
			r.fail("data segment %d: unknown flags %d", i, flags)
			return
		}
		c.st.DataBytes += uint64(len(r.name("data segment contents")))
	}
}

// names checks the "name" custom section: wazero decodes its module,
// function and local names, allocating each map by its declared count.
func (c *checker) names(r *parser) {
	for r.p < len(r.b) && r.err == nil {
		id := r.byte1("name subsection id")
		size := r.u32("name subsection size")
		if r.err != nil {
			return
		}
		if uint64(size) > uint64(len(r.b)-r.p) {
			r.fail("name subsection of %d bytes runs past the end of the section", size)
			return
		}
		end := r.p + int(size)
		sub := &parser{b: r.b[:end], p: r.p, where: "name section"}
		switch id {
		case 0:
			sub.name("module name")
		case 1:
			n := c.count(sub, "function names", 0)
			for i := uint32(0); i < n && sub.err == nil; i++ {
				sub.u32("function index")
				sub.name("function name")
			}
		case 2:
			n := c.count(sub, "functions with local names", 0)
			for i := uint32(0); i < n && sub.err == nil; i++ {
				sub.u32("function index")
				locals := c.count(sub, "local names", 0)
				for j := uint32(0); j < locals && sub.err == nil; j++ {
					sub.u32("local index")
					sub.name("local name")
				}
			}
		default:
			sub.p = end // other subsections are not decoded
		}
		if sub.err == nil && id <= 2 && sub.p != end {
			sub.fail("%d unexpected bytes at the end of name subsection %d", end-sub.p, id)
		}
		if sub.err != nil {
			r.err = sub.err
			return
		}
		r.p = end
	}
}

// code checks the function bodies: their number, size, locals, and what
// compiling them costs.
func (c *checker) code(r *parser, s section) error {
	n := r.u32("function count")
	if r.err != nil {
		return r.err
	}
	if n != uint32(len(c.funcTypes)) {
		return malformedf(s.name(), s.payload, "%d function bodies for %d functions declared", n, len(c.funcTypes))
	}
	for i := uint32(0); i < n; i++ {
		fn := int64(c.st.ImportedFuncs) + int64(i)
		where := fmt.Sprintf("%s: function %d", s.name(), fn)
		size, q, ok := readU32(r.b, r.p)
		if !ok {
			return malformedf(where, r.p, "invalid or truncated body size")
		}
		if err := over("bytes of body", uint64(size), uint64(c.lim.BodySize), fn); err != nil {
			return err
		}
		if uint64(size) > uint64(len(r.b)-q) {
			return malformedf(where, r.p, "body size %d runs past the end of the section", size)
		}
		end := q + int(size)
		if err := c.body(r.b[:end], q, fn, c.funcTypes[i]); err != nil {
			return err
		}
		c.st.CodeBytes += uint64(size)
		c.st.MaxBodySize = max(c.st.MaxBodySize, size)
		r.p = end
	}
	return r.done()
}

func (c *checker) body(b []byte, p int, fn int64, typ uint32) error {
	decls, p, ok := readU32(b, p)
	if !ok {
		return malformedf("code section", p, "function %d: invalid or truncated local declaration count", fn)
	}
	if uint64(decls) > uint64(len(b)-p) {
		return malformedf("code section", p, "function %d: %d local declarations in %d bytes", fn, decls, len(b)-p)
	}
	locals := uint64(0)
	if uint64(typ) < uint64(len(c.typeParams)) {
		locals = uint64(c.typeParams[typ])
	}
	for i := uint32(0); i < decls; i++ {
		var n uint32
		if n, p, ok = readU32(b, p); !ok {
			return malformedf("code section", p, "function %d: invalid or truncated local count", fn)
		}
		locals += uint64(n)
		if err := over("locals (parameters included)", locals, uint64(c.lim.Locals), fn); err != nil {
			return err
		}
		if p, ok = skipValType(b, p); !ok {
			return malformedf("code section", p, "function %d: invalid or truncated local type", fn)
		}
	}
	c.st.TotalLocals += locals
	c.st.MaxLocals = max(c.st.MaxLocals, uint32(locals))
	if err := over("locals in all functions", c.st.TotalLocals, c.lim.TotalLocals, -1); err != nil {
		return err
	}
	// depth is -1 after the end that closes the body.
	depth, maxDepth := int64(0), int64(0)
	var nesting, branches uint64
	for p < len(b) {
		at := p
		op := b[p]
		next, err := skipInstr(b, p+1, op)
		if err != "" {
			kind := ErrMalformed
			if opKinds[op] == immPrefixFB {
				kind = ErrUnsupported
			}
			return codeErr(kind, uint64(fn), at, "%s", err)
		}
		p = next
		switch op {
		case 0x02, 0x04, 0x06, 0x1F: // block, if, try, try_table
			depth++
			nesting += uint64(depth)
		case 0x03: // loop
			depth++
			nesting += LoopWeight * uint64(depth)
		case opEnd, 0x18: // end, delegate
			depth--
		case 0x0E: // br_table
			targets, _, _ := readU32(b, at+1)
			branches += (uint64(targets) + 1) * locals
		default:
			continue
		}
		maxDepth = max(maxDepth, depth)
		if err := over("nesting work", nesting, c.lim.NestingWork, fn); err != nil {
			err.(*LimitError).Detail = fmt.Sprintf("the sum of the depths of its blocks, a loop counting %d times; it nests %d deep at offset %#x: split the function", LoopWeight, depth, at)
			return err
		}
		if err := over("branch work", branches, c.lim.BranchWork, fn); err != nil {
			err.(*LimitError).Detail = fmt.Sprintf("the targets of its br_tables times its %d locals, at offset %#x: split the function or use fewer locals", locals, at)
			return err
		}
	}
	c.st.MaxDepth = max(c.st.MaxDepth, uint32(min(maxDepth, math.MaxUint32)))
	c.st.MaxNestingWork = max(c.st.MaxNestingWork, nesting)
	c.st.MaxBranchWork = max(c.st.MaxBranchWork, branches)
	return nil
}
