//go:build !wasip1

package sluice

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCall(t *testing.T) {
	Handle(func(in []byte) ([]byte, error) {
		switch string(in) {
		case "panic":
			panic("boom")
		case "error":
			return nil, errors.New("bad input")
		case "meta":
			v, _ := Meta("trigger")
			return []byte(v), nil
		}
		return bytes.ToUpper(in), nil
	})
	tests := []struct {
		in, out, err string
		meta         map[string]string
	}{
		{in: "abc", out: "ABC"},
		{in: "error", err: "bad input"},
		{in: "panic", err: "panic: boom"},
		{in: "meta", out: "orders", meta: map[string]string{"trigger": "orders"}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			out, err := Call([]byte(tc.in), tc.meta)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Call(%q) error = %v, want %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || string(out) != tc.out {
				t.Fatalf("Call(%q) = %q, %v; want %q", tc.in, out, err, tc.out)
			}
		})
	}
}

func TestRedelivered(t *testing.T) {
	Handle(func([]byte) ([]byte, error) {
		if Redelivered() {
			return []byte("again"), nil
		}
		return []byte("first"), nil
	})
	for meta, want := range map[string]string{"true": "again", "false": "first", "": "first"} {
		out, err := Call(nil, map[string]string{"redelivered": meta})
		if err != nil || string(out) != want {
			t.Errorf("redelivered=%q: got %q, %v; want %q", meta, out, err, want)
		}
	}
}

func TestNoHandler(t *testing.T) {
	Handle(nil)
	if _, err := Call([]byte("x"), nil); err == nil || !strings.Contains(err.Error(), "sluice.Handle") {
		t.Fatalf("Call without handler: %v", err)
	}
}
