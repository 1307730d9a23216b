package abi

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Extism plugins (see README.md, "Extism plugins"): a module that imports
// from Extism's kernel module runs unmodified. Its input, output, memory
// blocks, config, vars, logs and HTTP requests go through the functions
// of ExtismModule, which the host implements itself; its entry point is
// one of its exports, () -> i32, chosen at deploy.
const (
	// ExtismModule is the import module of Extism's host environment.
	ExtismModule = "extism:host/env"
	// ExtismUserModule is where Extism plugins import the functions their
	// host application defines: sluice defines none.
	ExtismUserModule = "extism:host/user"
	// ExtismDefaultExport is the export run when a plugin exports several
	// functions and none was chosen (--export).
	ExtismDefaultExport = "handle"
)

// extismSigs are the Extism kernel functions sluice implements, with
// their types: offsets and lengths are i64, bytes and statuses i32.
var extismSigs = map[string]Signature{
	"input_length":     sig(nil, I64),
	"input_load_u8":    sig([]ValueType{I64}, I32),
	"input_load_u64":   sig([]ValueType{I64}, I64),
	"input_offset":     sig(nil, I64),
	"output_set":       sig([]ValueType{I64, I64}),
	"error_set":        sig([]ValueType{I64}),
	"error_get":        sig(nil, I64),
	"config_get":       sig([]ValueType{I64}, I64),
	"var_get":          sig([]ValueType{I64}, I64),
	"var_set":          sig([]ValueType{I64, I64}),
	"log_trace":        sig([]ValueType{I64}),
	"log_debug":        sig([]ValueType{I64}),
	"log_info":         sig([]ValueType{I64}),
	"log_warn":         sig([]ValueType{I64}),
	"log_error":        sig([]ValueType{I64}),
	"get_log_level":    sig(nil, I32),
	"http_request":     sig([]ValueType{I64, I64}, I64),
	"http_status_code": sig(nil, I32),
	"http_headers":     sig(nil, I64),
	"alloc":            sig([]ValueType{I64}, I64),
	"free":             sig([]ValueType{I64}),
	"length":           sig([]ValueType{I64}, I64),
	"length_unsafe":    sig([]ValueType{I64}, I64),
	"load_u8":          sig([]ValueType{I64}, I32),
	"load_u64":         sig([]ValueType{I64}, I64),
	"store_u8":         sig([]ValueType{I64, I32}),
	"store_u64":        sig([]ValueType{I64, I64}),
}

// extismEntrySig is the type of a plugin's entry point: no parameters, a
// status (0 is success).
var extismEntrySig = sig(nil, I32)

// ExtismSignature returns the signature of an Extism kernel function
// sluice implements.
func ExtismSignature(name string) (Signature, bool) {
	s, ok := extismSigs[name]
	return s, ok
}

// ExtismImports lists the Extism kernel functions sluice implements,
// sorted.
func ExtismImports() []string {
	return slices.Sorted(maps.Keys(extismSigs))
}

// isExtism tells whether a module imports from Extism's kernel.
func isExtism(m Module) bool {
	for _, imp := range m.Imports {
		if imp.Module == ExtismModule || imp.Module == ExtismUserModule {
			return true
		}
	}
	return false
}

// checkExtism checks an Extism plugin's imports: every kernel function it
// imports must be one sluice implements, with its type. The error names
// every one that is not.
func checkExtism(m Module) error {
	var missing, user []string
	for _, imp := range m.Imports {
		switch imp.Module {
		case WASIModule:
		case ExtismModule:
			want, ok := extismSigs[imp.Name]
			if !ok {
				missing = append(missing, imp.Name)
				continue
			}
			if !imp.Signature.equal(want) {
				return fmt.Errorf("%w: %s.%s has type %s, want %s", ErrSignature, imp.Module, imp.Name, imp.Signature, want)
			}
		case ExtismUserModule:
			user = append(user, imp.Name)
		default:
			return fmt.Errorf("%w: the Extism plugin imports %s.%s; a plugin may import only from %q and %q",
				ErrImport, imp.Module, imp.Name, ExtismModule, WASIModule)
		}
	}
	if len(user) > 0 {
		return fmt.Errorf("%w: the Extism plugin imports host functions of its host application (%s: %s); sluice runs plugins that use only Extism's own kernel functions",
			ErrImport, ExtismUserModule, strings.Join(user, ", "))
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the Extism plugin imports kernel functions sluice does not implement: %s (sluice implements: %s)",
			ErrImport, strings.Join(missing, ", "), strings.Join(ExtismImports(), ", "))
	}
	return nil
}

// runtimeExports are exports of a toolchain's runtime, never a plugin's
// entry point.
var runtimeExports = map[string]bool{
	ExportInitialize: true, ExportStart: true, "__wasm_call_ctors": true,
	"malloc": true, "free": true, "realloc": true, "calloc": true,
	"__new": true, "__pin": true, "__unpin": true, "__collect": true, "abort": true,
}

// ExtismExport chooses an Extism plugin's entry point: want if given
// (it must be an exported function () -> i32), else the only exported
// function () -> i32 that is not a runtime's (_initialize, _start, ...),
// else ExtismDefaultExport if there are several and it is one of them.
// The error lists the candidates.
func ExtismExport(m Module, want string) (string, error) {
	var cands []string
	for name, s := range m.Exports {
		if s.equal(extismEntrySig) && !runtimeExports[name] {
			cands = append(cands, name)
		}
	}
	sort.Strings(cands)
	if want != "" {
		s, ok := m.Exports[want]
		switch {
		case !ok:
			return "", fmt.Errorf("%w: --export %s: the plugin exports no function %q (its entry points: %s)", ErrNoABI, want, want, listOrNone(cands))
		case !s.equal(extismEntrySig):
			return "", fmt.Errorf("%w: --export %s has type %s, want %s (an Extism plugin function)", ErrSignature, want, s, extismEntrySig)
		}
		return want, nil
	}
	switch {
	case len(cands) == 1:
		return cands[0], nil
	case len(cands) == 0:
		return "", fmt.Errorf("%w: the Extism plugin exports no function of type %s to call", ErrNoABI, extismEntrySig)
	}
	for _, c := range cands {
		if c == ExtismDefaultExport {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: the Extism plugin exports several functions and none is %q: choose one with --export (one of: %s)",
		ErrNoABI, ExtismDefaultExport, strings.Join(cands, ", "))
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
