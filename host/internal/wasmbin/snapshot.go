package wasmbin

import (
	"fmt"
	"strconv"
)

// # Snapshots
//
// With Options.Snapshot, Instrument also prepares the module for instances
// made from a snapshot: an instance initialised once, whose state later
// instances copy instead of running the initialisation again. Its state is
// its linear memory, which the host reads and writes through the memory
// export, and its mutable globals, which wasm hides unless exported: every
// mutable global the module defines is exported under GlobalExportPrefix
// followed by its index (Result.Globals). Tables are not copied: a module
// whose code can change a table (table.set, table.grow, table.fill,
// table.copy, table.init, elem.drop) or that imports a table, a memory or
// a mutable global (state that lives outside the instance), or that drops
// a passive data segment (data.drop: a later memory.init would differ), is
// reported as not snapshottable (Result.NoSnapshot) rather than refused:
// it runs as before, initialised for each instance.

// GlobalExportPrefix starts the export names of the mutable globals that
// Options.Snapshot exports: "__sluice_global_12" is global 12.
const GlobalExportPrefix = "__sluice_global_"

// Global is a mutable global exported for snapshots.
type Global struct {
	// Export is the name it is exported under.
	Export string
	// Index is its index in the module's global index space.
	Index uint32
	// Type is its value type: 0x7F i32, 0x7E i64, 0x7D f32, 0x7C f64.
	Type byte
}

// snapshotPlan is what Options.Snapshot adds: the globals to export, or
// why the module cannot be snapshotted.
type snapshotPlan struct {
	globals   []Global
	refusal   string
	goRuntime bool
}

// goBuildID names the custom section the Go toolchain writes in every
// module it links.
const goBuildID = "go:buildid"

// Value types a snapshot copies through api.Global: the numeric ones.
const (
	valI64 = 0x7E
	valF32 = 0x7D
	valF64 = 0x7C
)

// planSnapshot reads what a snapshot needs to know of m: its mutable
// globals and whether its code can change what a snapshot does not copy.
func planSnapshot(m *module) (snapshotPlan, error) {
	var plan snapshotPlan
	for _, s := range m.sections {
		if s.id != secCustom {
			continue
		}
		if name, _, err := m.customName(s); err == nil && string(name) == goBuildID {
			plan.goRuntime = true
		}
	}
	switch {
	case m.importedMemory:
		plan.refusal = "it imports its memory"
	case m.importedTables > 0:
		plan.refusal = "it imports a table"
	case m.importedMutableGlobals > 0:
		plan.refusal = "it imports a mutable global"
	}
	if s, ok := m.sectionByID(secGlobal); ok {
		globals, reason, err := mutableGlobals(m.in, s, m.importedGlobals)
		if err != nil {
			return plan, err
		}
		plan.globals = globals
		if plan.refusal == "" {
			plan.refusal = reason
		}
	}
	if s, ok := m.sectionByID(secCode); ok {
		reason, err := scanCode(m.in, s, m.importedFuncs, stateOp)
		if err != nil {
			return plan, err
		}
		if plan.refusal == "" {
			plan.refusal = reason
		}
	}
	if plan.refusal != "" {
		plan.globals = nil
	}
	return plan, nil
}

// mutableGlobals lists the mutable globals of global section s (the
// first defined global has index imported), or says why one cannot be
// copied.
func mutableGlobals(in []byte, s section, imported uint32) ([]Global, string, error) {
	r := newParser(in, s)
	n := r.u32("global count")
	if r.err == nil && uint64(n) > uint64(len(r.b)-r.p) {
		r.fail("%d globals declared in %d bytes", n, len(r.b)-r.p)
	}
	var globals []Global
	reason := ""
	for i := uint32(0); i < n && r.err == nil; i++ {
		t := byte(0)
		if r.p < len(r.b) {
			t = r.b[r.p]
		}
		r.valType("global type")
		mut := r.byte1("global mutability")
		r.constExpr("global initializer")
		if r.err != nil || mut == 0 {
			continue
		}
		idx := imported + i
		switch t {
		case valI32, valI64, valF32, valF64:
			globals = append(globals, Global{Export: GlobalExportPrefix + strconv.FormatUint(uint64(idx), 10), Index: idx, Type: t})
		default:
			if reason == "" {
				reason = fmt.Sprintf("global %d is a mutable %s", idx, valTypeName(t))
			}
		}
	}
	if err := r.done(); err != nil {
		return nil, "", err
	}
	return globals, reason, nil
}

func valTypeName(t byte) string {
	switch t {
	case 0x7B:
		return "v128"
	case 0x70, 0x6F, 0x63, 0x64:
		return "reference"
	}
	return fmt.Sprintf("value of type %#02x", t)
}

// scanCode looks through the bodies of code section s for an instruction
// that match names (given the instruction's opcode and the offset of its
// immediates), and says which and where: "function 12 uses table.grow".
func scanCode(in []byte, s section, firstFunc uint32, match func(b []byte, p int, op byte) string) (string, error) {
	b := in[:s.end]
	count, p, ok := readU32(b, s.payload)
	if !ok {
		return "", malformedf(s.name(), s.payload, "invalid or truncated function count")
	}
	for i := uint32(0); i < count; i++ {
		fn := uint64(firstFunc) + uint64(i)
		size, q, ok := readU32(b, p)
		if !ok {
			return "", malformedf(fmt.Sprintf("%s: function %d", s.name(), fn), p, "invalid or truncated body size")
		}
		if uint64(size) > uint64(s.end-q) {
			return "", malformedf(fmt.Sprintf("%s: function %d", s.name(), fn), p, "body size %d runs past the end of the section", size)
		}
		end := q + int(size)
		_, _, q, err := readLocals(b[:end], q)
		if err != nil {
			return "", fmt.Errorf("%w: code section: function %d: %v", ErrMalformed, fn, err)
		}
		for q < end {
			at := q
			op := b[q]
			q++
			if name := match(b[:end], q, op); name != "" {
				return fmt.Sprintf("function %d uses %s", fn, name), nil
			}
			var msg string
			if q, msg = skipInstr(b[:end], q, op); msg != "" {
				return "", codeErr(ErrMalformed, fn, at, "%s", msg)
			}
		}
		p = end
	}
	if p != s.end {
		return "", malformedf(s.name(), p, "%d unexpected bytes after the last function body", s.end-p)
	}
	return "", nil
}

// stateOp names the instruction op (its immediates at b[p:]) if it
// changes what a snapshot does not copy: a table, or the passive data
// segments.
func stateOp(b []byte, p int, op byte) string {
	switch op {
	case 0x26:
		return "table.set"
	case 0xFC:
		sub, _, ok := readU32(b, p)
		if !ok {
			return ""
		}
		switch sub {
		case 9:
			return "data.drop"
		case 12:
			return "table.init"
		case 13:
			return "elem.drop"
		case 14:
			return "table.copy"
		case 15:
			return "table.grow"
		case 17:
			return "table.fill"
		}
	}
	return ""
}
