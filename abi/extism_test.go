package abi

import (
	"errors"
	"strings"
	"testing"
)

func TestDetectExtism(t *testing.T) {
	entry := sig(nil, I32)
	plugin := func(imports ...Import) Module {
		return Module{Exports: map[string]Signature{"greet": entry, ExportInitialize: sig(nil)}, ExportsMemory: true, Imports: imports}
	}
	kernel := func(name string) Import {
		s, _ := ExtismSignature(name)
		return Import{Module: ExtismModule, Name: name, Signature: s}
	}
	tests := []struct {
		name    string
		mod     Module
		ask     Kind
		want    Kind
		wantErr error
		msg     string
	}{
		{name: "auto detects a plugin", mod: plugin(kernel("input_length"), kernel("output_set"), Import{Module: WASIModule, Name: "fd_write"}), ask: Auto, want: Extism},
		{name: "asked extism", mod: plugin(kernel("alloc")), ask: Extism, want: Extism},
		{name: "asked extism without imports", mod: plugin(), ask: Extism, want: Extism},
		{name: "an unimplemented kernel function is named", mod: plugin(kernel("alloc"), Import{Module: ExtismModule, Name: "stream_send"}, Import{Module: ExtismModule, Name: "config_keys"}),
			ask: Auto, wantErr: ErrImport, msg: "sluice does not implement: stream_send, config_keys"},
		{name: "host functions of the application", mod: plugin(Import{Module: ExtismUserModule, Name: "kv_read"}), ask: Auto, wantErr: ErrImport, msg: "extism:host/user: kv_read"},
		{name: "kernel function of the wrong type", mod: plugin(Import{Module: ExtismModule, Name: "alloc", Signature: sig([]ValueType{I32}, I32)}), ask: Auto, wantErr: ErrSignature, msg: "want (i64) -> i64"},
		{name: "another module", mod: plugin(kernel("alloc"), Import{Module: "env", Name: "abort"}), ask: Auto, wantErr: ErrImport, msg: "env.abort"},
		{name: "asked reactor, is a plugin", mod: plugin(kernel("alloc")), ask: Reactor, wantErr: ErrImport, msg: "--abi extism"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Detect(tc.mod, tc.ask)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("Detect error = %v, want %v containing %q", err, tc.wantErr, tc.msg)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Detect = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestExtismExport(t *testing.T) {
	entry := sig(nil, I32)
	exports := func(names ...string) Module {
		m := Module{Exports: map[string]Signature{ExportInitialize: sig(nil), "alloc_like": sig([]ValueType{I64}, I64), "__new": entry}}
		for _, n := range names {
			m.Exports[n] = entry
		}
		return m
	}
	tests := []struct {
		name, want, got, msg string
		mod                  Module
	}{
		{name: "the only one", mod: exports("greet"), got: "greet"},
		{name: "handle among several", mod: exports("greet", "handle", "count"), got: "handle"},
		{name: "chosen", mod: exports("greet", "count"), want: "count", got: "count"},
		{name: "several without handle", mod: exports("greet", "count"), msg: "choose one with --export (one of: count, greet)"},
		{name: "none", mod: exports(), msg: "exports no function of type () -> i32"},
		{name: "chosen is missing", mod: exports("greet"), want: "nope", msg: `exports no function "nope" (its entry points: greet)`},
		{name: "chosen has the wrong type", mod: exports("greet"), want: "alloc_like", msg: "alloc_like has type (i64) -> i64, want () -> i32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExtismExport(tc.mod, tc.want)
			if tc.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("ExtismExport error = %v, want one containing %q", err, tc.msg)
				}
				return
			}
			if err != nil || got != tc.got {
				t.Fatalf("ExtismExport = %q, %v; want %q", got, err, tc.got)
			}
		})
	}
}
