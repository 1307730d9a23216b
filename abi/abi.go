// Package abi is the host's side of the sluice guest ABI, version 1: the
// names and signatures a guest exports and imports, how a module's kind is
// detected, and how call metadata reaches a guest. The contract itself is
// written in README.md next to this file.
package abi

import (
	"fmt"
	"sort"
	"strings"
)

// Kind is the kind of a function module.
type Kind string

// The kinds of module, and Auto to ask for detection.
const (
	// Auto asks Detect to decide from the module's exports.
	Auto Kind = "auto"
	// WASI is a WASI preview-1 command: input on stdin, output on stdout,
	// a fresh instance per call.
	WASI Kind = "wasi"
	// Reactor is a module that implements the sluice reactor ABI: pooled
	// instances, input and output through linear memory.
	Reactor Kind = "reactor"
	// Extism is an Extism plugin: it imports from ExtismModule, and one
	// of its exports is called per call on pooled instances.
	Extism Kind = "extism"
)

// ParseKind parses a --abi value.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(strings.TrimSpace(s))); k {
	case "", Auto:
		return Auto, nil
	case WASI, Reactor, Extism:
		return k, nil
	}
	return "", fmt.Errorf("unknown ABI %q: use auto, wasi, reactor or extism", s)
}

// Export and import names of ABI version 1.
const (
	ExportMemory     = "memory"
	ExportAlloc      = "sluice_alloc"
	ExportHandle     = "sluice_handle"
	ExportFree       = "sluice_free"
	ExportInitialize = "_initialize"
	ExportStart      = "_start"

	// HostModule is the import module of the host functions.
	HostModule = "sluice"
	// WASIModule is the only other import module a guest may use.
	WASIModule = "wasi_snapshot_preview1"

	ImportOutput  = "output"
	ImportFail    = "fail"
	ImportLog     = "log"
	ImportMetaGet = "meta_get"

	// ImportErrorCode (1.2) sets the code of the call's failure, beside
	// its message: a code of the guest's own (card_declined) that a
	// workflow's retry filters and catch see.
	ImportErrorCode = "error_code"
)

// MaxErrorCode is the longest error code a guest may give: a code is a
// name a workflow lists (retry: {on: [...]}), not a message.
const MaxErrorCode = 64

// ValidErrorCode tells whether s may be an error code: a lowercase
// letter, then up to 63 of a-z, 0-9, '_', '.', '-' (card_declined,
// http.503): safe in a URL, a log line and a YAML list unquoted.
func ValidErrorCode(s string) bool {
	if len(s) == 0 || len(s) > MaxErrorCode || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Status values returned by sluice_handle.
const (
	StatusOK     = 0
	StatusFailed = 1
)

// Level is the level of a log record written with sluice.log.
type Level int32

// Log levels.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// String returns the level's name.
func (l Level) String() string {
	switch {
	case l <= LevelDebug:
		return "debug"
	case l == LevelInfo:
		return "info"
	case l == LevelWarn:
		return "warn"
	}
	return "error"
}

// ValueType is a WebAssembly value type as the ABI uses it (wazero's
// api.ValueType values).
type ValueType = byte

// Value types that appear in the ABI's signatures.
const (
	I32 ValueType = 0x7f
	I64 ValueType = 0x7e
	F32 ValueType = 0x7d
	F64 ValueType = 0x7c
)

// Signature is a function type.
type Signature struct {
	Params  []ValueType
	Results []ValueType
}

func (s Signature) equal(o Signature) bool {
	return string(s.Params) == string(o.Params) && string(s.Results) == string(o.Results)
}

// String formats the signature as in the ABI spec: "(i32, i32) -> i32".
func (s Signature) String() string {
	name := func(ts []ValueType) string {
		parts := make([]string, len(ts))
		for i, t := range ts {
			switch t {
			case I32:
				parts[i] = "i32"
			case I64:
				parts[i] = "i64"
			case F32:
				parts[i] = "f32"
			case F64:
				parts[i] = "f64"
			default:
				parts[i] = fmt.Sprintf("0x%x", t)
			}
		}
		return strings.Join(parts, ", ")
	}
	out := "(" + name(s.Params) + ")"
	if len(s.Results) > 0 {
		out += " -> " + name(s.Results)
	}
	return out
}

func sig(params []ValueType, results ...ValueType) Signature {
	return Signature{Params: params, Results: results}
}

var (
	exportSigs = map[string]Signature{
		ExportAlloc:      sig([]ValueType{I32}, I32),
		ExportHandle:     sig([]ValueType{I32, I32}, I32),
		ExportFree:       sig([]ValueType{I32, I32}),
		ExportInitialize: sig(nil),
		ExportStart:      sig(nil),
	}
	hostSigs = map[string]Signature{
		ImportOutput:  sig([]ValueType{I32, I32}),
		ImportFail:    sig([]ValueType{I32, I32}),
		ImportLog:     sig([]ValueType{I32, I32, I32}),
		ImportMetaGet: sig([]ValueType{I32, I32, I32, I32}, I32),
		// 1.1
		ImportHTTPStatus: sig([]ValueType{I32}),
		ImportHTTPHeader: sig([]ValueType{I32, I32, I32, I32}),
		// 1.2
		ImportErrorCode: sig([]ValueType{I32, I32}),
	}
)

// HostSignature returns the signature of a host import of module "sluice".
func HostSignature(name string) (Signature, bool) {
	s, ok := hostSigs[name]
	return s, ok
}

// HostImports lists the names of the host functions, sorted.
func HostImports() []string {
	names := make([]string, 0, len(hostSigs))
	for n := range hostSigs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Import is a function a module imports.
type Import struct {
	Module, Name string
	Signature    Signature
}

// Module describes what Detect needs to know of a compiled module.
type Module struct {
	// Exports maps exported function names to their signatures.
	Exports map[string]Signature
	// ExportsMemory tells whether the module exports a memory named "memory".
	ExportsMemory bool
	// Imports lists the imported functions.
	Imports []Import
}

// Detect decides the module's kind (want may be Auto) and checks that the
// module keeps to the ABI: the right exports with the right signatures, and
// imports only from the host module and WASI. The error says what to change.
func Detect(m Module, want Kind) (Kind, error) {
	if want == Extism || (want == Auto || want == "") && isExtism(m) {
		return Extism, checkExtism(m)
	}
	if err := checkImports(m.Imports); err != nil {
		return "", err
	}
	_, hasHandle := m.Exports[ExportHandle]
	_, hasStart := m.Exports[ExportStart]
	kind := want
	if kind == Auto || kind == "" {
		switch {
		case hasHandle:
			kind = Reactor
		case hasStart:
			kind = WASI
		default:
			return "", fmt.Errorf("%w: export %s (a WASI command, e.g. GOOS=wasip1 go build) or %s and %s (the sluice reactor ABI, see abi/README.md)",
				ErrNoABI, ExportStart, ExportHandle, ExportAlloc)
		}
	}
	switch kind {
	case Reactor:
		return Reactor, checkReactor(m)
	case WASI:
		if !hasStart {
			return "", fmt.Errorf("%w: --abi wasi needs an exported %s function (a WASI command)", ErrNoABI, ExportStart)
		}
		return WASI, checkSig(m, ExportStart)
	}
	return "", fmt.Errorf("unknown ABI %q", kind)
}

func checkReactor(m Module) error {
	for _, name := range []string{ExportHandle, ExportAlloc} {
		if _, ok := m.Exports[name]; !ok {
			return fmt.Errorf("%w: a reactor must export %s %s", ErrNoABI, name, exportSigs[name])
		}
	}
	if !m.ExportsMemory {
		return fmt.Errorf("%w: a reactor must export its linear memory as %q", ErrNoABI, ExportMemory)
	}
	for _, name := range []string{ExportHandle, ExportAlloc, ExportFree, ExportInitialize} {
		if err := checkSig(m, name); err != nil {
			return err
		}
	}
	return nil
}

func checkSig(m Module, name string) error {
	got, ok := m.Exports[name]
	if !ok {
		return nil
	}
	if want := exportSigs[name]; !got.equal(want) {
		return fmt.Errorf("%w: export %s has type %s, want %s", ErrSignature, name, got, want)
	}
	return nil
}

func checkImports(imports []Import) error {
	for _, imp := range imports {
		switch imp.Module {
		case WASIModule:
			// wazero provides all of WASI preview 1 and checks signatures
			// when it links the module.
		case HostModule:
			want, ok := hostSigs[imp.Name]
			if !ok {
				return fmt.Errorf("%w: %s.%s is not a sluice host function (there are: %s)",
					ErrImport, imp.Module, imp.Name, strings.Join(HostImports(), ", "))
			}
			if !imp.Signature.equal(want) {
				return fmt.Errorf("%w: %s.%s has type %s, want %s", ErrSignature, imp.Module, imp.Name, imp.Signature, want)
			}
		case ExtismModule, ExtismUserModule:
			return fmt.Errorf("%w: the module imports %s.%s, an Extism plugin's import: deploy it with --abi extism (or auto)", ErrImport, imp.Module, imp.Name)
		default:
			return fmt.Errorf("%w: the module imports %s.%s; a guest may import only from %q and %q",
				ErrImport, imp.Module, imp.Name, WASIModule, HostModule)
		}
	}
	return nil
}

// EnvName is the environment variable under which a WASI guest sees the
// metadata key: "http.method" becomes "SLUICE_HTTP_METHOD".
func EnvName(key string) string {
	var b strings.Builder
	b.Grow(len("SLUICE_") + len(key))
	b.WriteString("SLUICE_")
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Metadata keys set by sluice (see README.md).
const (
	MetaFunction   = "function"
	MetaVersion    = "version"
	MetaInvocation = "invocation"
	MetaTrigger    = "trigger"
	MetaHTTPMethod = "http.method"
	MetaHTTPPath   = "http.path"
	MetaHTTPQuery  = "http.query"
	// Set by HTTP triggers with the route the request took: the
	// trigger's route pattern (/users/{id}/files/*), the path as it was
	// sent (with its %-escapes, where http.path is decoded), what the
	// route's * matched (decoded, no leading slash; only on prefix
	// routes), and each path parameter's value, decoded once, under
	// MetaHTTPParamPrefix + its name (http.param.id).
	MetaHTTPRoute       = "http.route"
	MetaHTTPRawPath     = "http.path.raw"
	MetaHTTPRest        = "http.path.rest"
	MetaHTTPParamPrefix = "http.param."
	// Set by message-queue triggers.
	MetaTopic        = "topic"
	MetaSequence     = "sequence"
	MetaRedelivered  = "redelivered"
	MetaRedeliveries = "redeliveries"
	// The call's W3C trace context (its own span, a child of the
	// caller's), set on every call, and the caller's tracestate, set
	// when it sent one.
	MetaTraceparent = "traceparent"
	MetaTracestate  = "tracestate"
	// Set on the calls of workflow tasks.
	MetaWorkflow           = "workflow"
	MetaWorkflowInvocation = "workflow.invocation"
	MetaWorkflowTask       = "workflow.task"
	MetaWorkflowAttempt    = "workflow.attempt"
)
