// Package jsonquote writes JSON strings without encoding/json's
// reflection, for the hot paths that write JSON by hand: an engine event's
// text value, a batch of function log records.
package jsonquote

import (
	"unicode/utf8"
	"unsafe"
)

// AppendString appends s to dst as a JSON string, byte for byte as
// encoding/json writes it with SetEscapeHTML(false): '"', '\' and the
// control characters escaped (\b \f \n \r \t, the others as \u00XX),
// U+2028 and U+2029 escaped (JavaScript reads them as line ends), and
// each byte of invalid UTF-8 replaced by \ufffd.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Append is AppendString for bytes, which it reads without copying them:
// b must not change during the call.
func Append(dst, b []byte) []byte {
	return AppendString(dst, unsafe.String(unsafe.SliceData(b), len(b)))
}

// Len is the length of Append's text for b, exact for UTF-8, without
// writing it. (Invalid UTF-8 is written longer: each of its bytes takes
// 6, as \ufffd.)
func Len(b []byte) int {
	n := len(b) + 2
	for i, c := range b {
		switch {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
			n++
		case c < 0x20:
			n += 5
		case c == 0xe2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xa8:
			n += 3 // U+2028 or U+2029, 3 bytes written as 6
		}
	}
	return n
}
