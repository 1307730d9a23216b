package abi

import (
	"errors"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	reactorExports := map[string]Signature{
		ExportHandle: sig([]ValueType{I32, I32}, I32),
		ExportAlloc:  sig([]ValueType{I32}, I32),
	}
	with := func(base map[string]Signature, name string, s Signature) map[string]Signature {
		out := map[string]Signature{}
		for k, v := range base {
			out[k] = v
		}
		out[name] = s
		return out
	}
	command := map[string]Signature{ExportStart: sig(nil)}
	tests := []struct {
		name    string
		mod     Module
		want    Kind
		ask     Kind
		wantErr error
		msg     string // substring of the error
	}{
		{name: "reactor", mod: Module{Exports: reactorExports, ExportsMemory: true}, want: Reactor},
		{name: "command", mod: Module{Exports: command}, want: WASI},
		{name: "both is a reactor", mod: Module{Exports: with(reactorExports, ExportStart, sig(nil)), ExportsMemory: true}, want: Reactor},
		{name: "both, asked wasi", ask: WASI, mod: Module{Exports: with(reactorExports, ExportStart, sig(nil)), ExportsMemory: true}, want: WASI},
		{name: "neither", mod: Module{Exports: map[string]Signature{"add": sig(nil)}}, wantErr: ErrNoABI, msg: "export _start"},
		{name: "asked reactor, is command", ask: Reactor, mod: Module{Exports: command}, wantErr: ErrNoABI, msg: "must export sluice_handle"},
		{name: "asked wasi, is reactor", ask: WASI, mod: Module{Exports: reactorExports, ExportsMemory: true}, wantErr: ErrNoABI, msg: "needs an exported _start"},
		{name: "reactor without alloc", mod: Module{Exports: map[string]Signature{ExportHandle: sig([]ValueType{I32, I32}, I32)}, ExportsMemory: true}, wantErr: ErrNoABI, msg: "sluice_alloc (i32) -> i32"},
		{name: "reactor without memory", mod: Module{Exports: reactorExports}, wantErr: ErrNoABI, msg: `"memory"`},
		{name: "handle with wrong type", mod: Module{Exports: with(reactorExports, ExportHandle, sig([]ValueType{I32}, I32)), ExportsMemory: true}, wantErr: ErrSignature, msg: "sluice_handle has type (i32) -> i32, want (i32, i32) -> i32"},
		{name: "free with wrong type", mod: Module{Exports: with(reactorExports, ExportFree, sig([]ValueType{I32})), ExportsMemory: true}, wantErr: ErrSignature, msg: "sluice_free"},
		{name: "start with params", mod: Module{Exports: map[string]Signature{ExportStart: sig([]ValueType{I32})}}, wantErr: ErrSignature, msg: "_start"},
		{name: "env import", mod: Module{Exports: command, Imports: []Import{{Module: "env", Name: "abort"}}}, wantErr: ErrImport, msg: "env.abort"},
		{name: "unknown host import", mod: Module{Exports: command, Imports: []Import{{Module: HostModule, Name: "publish"}}}, wantErr: ErrImport, msg: "error_code, fail, http_header, http_status, log, meta_get, output"},
		{name: "host import wrong type", mod: Module{Exports: command, Imports: []Import{{Module: HostModule, Name: ImportLog, Signature: sig([]ValueType{I32, I32})}}}, wantErr: ErrSignature, msg: "sluice.log has type (i32, i32), want (i32, i32, i32)"},
		{name: "good imports", mod: Module{Exports: command, Imports: []Import{
			{Module: WASIModule, Name: "fd_write"},
			{Module: HostModule, Name: ImportMetaGet, Signature: sig([]ValueType{I32, I32, I32, I32}, I32)},
		}}, want: WASI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ask := tc.ask
			if ask == "" {
				ask = Auto
			}
			got, err := Detect(tc.mod, ask)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Detect error = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("error %q does not say %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if got != tc.want {
				t.Fatalf("Detect = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"": Auto, "auto": Auto, "WASI": WASI, " reactor ": Reactor} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKind("wasix"); err == nil || !strings.Contains(err.Error(), "auto, wasi, reactor or extism") {
		t.Errorf("ParseKind(wasix) error = %v", err)
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"http.method":  "SLUICE_HTTP_METHOD",
		"redelivered":  "SLUICE_REDELIVERED",
		"a-b.c9":       "SLUICE_A_B_C9",
		"ünicode":      "SLUICE___NICODE",
		"":             "SLUICE_",
		"Mixed.Case":   "SLUICE_MIXED_CASE",
		"invocation":   "SLUICE_INVOCATION",
		"with space!":  "SLUICE_WITH_SPACE_",
		"trigger.name": "SLUICE_TRIGGER_NAME",
	} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLevelString(t *testing.T) {
	for l, want := range map[Level]string{-1: "debug", 0: "debug", 1: "info", 2: "warn", 3: "error", 9: "error"} {
		if got := l.String(); got != want {
			t.Errorf("Level(%d) = %q, want %q", l, got, want)
		}
	}
}
