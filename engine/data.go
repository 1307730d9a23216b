package engine

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/jsonquote"
)

// A stored value is bytes and a kind (see engine/README.md, "Values"):
//
//   - data: exact bytes from outside (an invocation's input, a function's
//     output, what passes them on). A function given a data value receives
//     those bytes, whatever they hold; expressions see the JSON value they
//     are if they are one JSON document, else a string if they are UTF-8
//     text, else a []byte (a bytes value). No bytes at all are the empty
//     string.
//   - json: a value an expression or a built-in made, as JSON text (what
//     events stored before data values existed, which keep meaning what
//     they meant). A function given one receives a string's bytes, and
//     anything else as JSON.
type datum struct {
	// b is the bytes of a data value, or the JSON text of a json value
	// (nil: none, read as null).
	b    []byte
	data bool
	// form is a data value's form (formOf), found once when it is made:
	// snapshots and expressions ask for it again and again.
	form string
	// ref, if set, says the value is stored apart, in the log's blob
	// store (it is over MaxData as stored): b is nil, and whoever needs
	// the bytes fetches them (Engine.load).
	ref *blobRef
}

// blobRef is a value stored in the log's blob store: what an event
// carries of it ({"blob": sha256, "size": N}), and the name it is stored
// under.
type blobRef struct {
	// sha is the hex sha256 of the bytes; size their count.
	sha  string
	size int
	// root is the invocation tree's root, name the blob's name
	// (blobName(root, sha)), set when the value is stored or its event
	// applied.
	root, name string
}

// blobName names the blob of a value of the invocation tree whose root is
// root: per tree, so that forgetting the root deletes its values without
// counting references across invocations or daemons (see engine/README.md).
func blobName(root, sha string) string { return "v-" + root + "-" + sha }

// size is the value's size in bytes, stored apart or not.
func (d datum) size() int {
	if d.ref != nil {
		return d.ref.size
	}
	return len(d.b)
}

// loaded is a value stored apart given its bytes (checked by the caller).
func (d datum) loaded(b []byte) datum {
	return datum{b: b, data: d.data, form: d.form}
}

func dataValue(b []byte) datum {
	if b == nil {
		b = []byte{}
	}
	return datum{b: b, data: true, form: formOf(b)}
}

func jsonValue(raw json.RawMessage) datum { return datum{b: raw} }

// jsonNull is the json value null: the output of a sleep, of a branch
// that ran nothing.
var jsonNull = jsonValue(json.RawMessage("null"))

// none tells whether the value is absent (an event that carried none).
func (d datum) none() bool { return !d.data && len(d.b) == 0 && d.ref == nil }

// input is what a function receives of a value: a data value's exact
// bytes; of a json value, a string's bytes, anything else as JSON (null:
// no bytes).
func (d datum) input() []byte {
	if d.data {
		return d.b
	}
	return functionInput(d.b)
}

// view decodes the value for expressions (see datum).
func (d datum) view() any {
	switch {
	case d.ref != nil:
		return nil // stored apart: read through view.fetch
	case !d.data:
		return fromJSON(d.b)
	case d.form == "":
		if x, ok := decodeJSON(d.b); ok {
			return x
		}
	case d.form == FormBase64:
		return d.b
	}
	return string(d.b)
}

// Forms of a data value's bytes, as the API shows them beside the value's
// JSON (Invocation.InputForm, OutputForm).
const (
	// FormText: UTF-8 text that is not one JSON document; the value's JSON
	// is the string of it.
	FormText = "text"
	// FormBase64: bytes that are not UTF-8; the value's JSON is their
	// standard base64 (with padding).
	FormBase64 = "base64"
	// FormBlob: a value over MaxData, stored apart: its JSON is
	// {"blob": "<sha256 hex>", "size": N}, and GET
	// /v1/invocations/{id}/output (/input) answers its bytes.
	FormBlob = "blob"
)

// appendRef appends a reference's JSON as the API shows it.
func appendRef(dst []byte, r *blobRef) []byte {
	return fmt.Appendf(dst, `{"blob":"%s","size":%d}`, r.sha, r.size)
}

// formOf classifies the bytes of a data value: "" for one JSON document
// (which its JSON is), FormText or FormBase64.
func formOf(b []byte) string {
	switch {
	case !utf8.Valid(b):
		return FormBase64
	case len(b) > 0 && isJSONDoc(b):
		return ""
	}
	return FormText
}

// jsonView is the value as JSON, with its form: what the API shows, and
// what a value becomes inside a list or a map (the outputs of a foreach,
// of several last tasks): a JSON document as it is, text as a string,
// bytes as their base64 string.
func (d datum) jsonView() (json.RawMessage, string) {
	if d.ref != nil {
		return appendRef(nil, d.ref), FormBlob
	}
	if !d.data {
		if len(d.b) == 0 {
			return json.RawMessage("null"), ""
		}
		return d.b, ""
	}
	switch d.form {
	case "":
		return d.b, ""
	case FormText:
		return jsonquote.Append(nil, d.b), d.form
	default:
		s, _ := json.Marshal(d.b) // base64
		return s, d.form
	}
}

// put records the value in an event: as InputData (OutputData) if it is
// data, as Input (Output) if it is JSON.
func (d datum) put(ev *Event, output bool) {
	switch {
	case d.ref != nil && output:
		ev.OutputData = d.refData()
	case d.ref != nil:
		ev.InputData = d.refData()
	case d.data && output:
		ev.OutputData = &Data{Bytes: d.b, form: d.form, formKnown: true}
	case d.data:
		ev.InputData = &Data{Bytes: d.b, form: d.form, formKnown: true}
	case output:
		ev.Output = json.RawMessage(d.b)
	default:
		ev.Input = json.RawMessage(d.b)
	}
}

// refData is the event's record of a value stored apart.
func (d datum) refData() *Data {
	return &Data{Blob: d.ref.sha, Size: d.ref.size, Root: d.ref.root, JSON: !d.data, Form: d.form}
}

// evInput and evOutput read a value back from an event.
func evInput(ev *Event) datum {
	if ev.InputData != nil {
		return ev.InputData.datum()
	}
	return jsonValue(ev.Input)
}

func evOutput(ev *Event) datum {
	if ev.OutputData != nil {
		return ev.OutputData.datum()
	}
	return jsonValue(ev.Output)
}

// datum is the data value the event holds: its form found once (an
// event the engine writes knows it already).
func (d *Data) datum() datum {
	if d.Blob != "" {
		return datum{data: !d.JSON, form: d.Form, ref: &blobRef{sha: d.Blob, size: d.Size, root: d.Root}}
	}
	if !d.formKnown {
		return dataValue(d.Bytes)
	}
	b := d.Bytes
	if b == nil {
		b = []byte{}
	}
	return datum{b: b, data: true, form: d.form}
}

// storedSize is how many bytes the value takes in an event: what MaxData
// bounds. Text is counted as it is escaped, bytes as their base64.
func (d datum) storedSize() int {
	if d.ref != nil {
		return len(`{"blob":"","size":,"form":"base64"}`) + len(d.ref.sha) + 20
	}
	if !d.data {
		return len(d.b)
	}
	if d.form == FormBase64 {
		return base64.StdEncoding.EncodedLen(len(d.b)) + len(`{"base64":""}`)
	}
	if len(d.b) <= MaxData/6-2 {
		return len(d.b) + 2 // escaped at most 6 times: under MaxData anyway
	}
	return jsonquote.Len(d.b) // counted, not written: the value may be megabytes
}

// checkStored refuses a value an event cannot hold; what names the value
// for the message ("output", "input").
func (d datum) checkStored(what string) error {
	if n := d.storedSize(); n > MaxData {
		how := ""
		if d.data && n != len(d.b) {
			how = fmt.Sprintf(" (%d bytes as stored: text is escaped, bytes that are not UTF-8 are stored as base64)", n)
		}
		return fmt.Errorf("%s of %d bytes%s is over the %d KiB a workflow event holds", what, len(d.b), how, MaxData>>10)
	}
	return nil
}

// Data is a data value's exact bytes in an event. It is stored as a JSON
// string when the bytes are UTF-8 text (readable in wf events), else as
// {"base64": "..."}; a value over MaxData as stored is kept in the log's
// blob store and the event holds its reference, {"blob": "<sha256 hex>",
// "size": N} with its form ("form": "text" or "base64"; none for a JSON
// document) or, for a value an expression made, "json": true. Other
// objects are reserved for later encodings: a daemon that does not know
// one refuses the event's value rather than misread it.
type Data struct {
	Bytes []byte
	// Blob is the sha256 (hex) of a value stored apart, Size its bytes,
	// Root the invocation tree it is stored under (its name is
	// blobName(Root, Blob)), Form its form, JSON whether it is a json
	// value (not data).
	Blob string
	Size int
	Root string
	Form string
	JSON bool
	// form is the bytes' form, when the engine made the Data from a value
	// that knew it.
	form      string
	formKnown bool
}

// MarshalJSON encodes the bytes as a string if they are UTF-8, else in
// base64.
func (d Data) MarshalJSON() ([]byte, error) {
	if d.Blob != "" {
		return json.Marshal(struct {
			Blob string `json:"blob"`
			Size int    `json:"size"`
			Root string `json:"root,omitempty"`
			Form string `json:"form,omitempty"`
			JSON bool   `json:"json,omitempty"`
		}{d.Blob, d.Size, d.Root, d.Form, d.JSON})
	}
	if utf8.Valid(d.Bytes) {
		return jsonquote.Append(make([]byte, 0, jsonquote.Len(d.Bytes)), d.Bytes), nil
	}
	return json.Marshal(struct {
		Base64 []byte `json:"base64"`
	}{d.Bytes})
}

// errDataForm: an event's data value in an encoding this daemon does not
// know.
var errDataForm = errors.New(`a data value is a JSON string or {"base64": "..."}`)

// UnmarshalJSON decodes either encoding; anything else is an error (a
// forged event, a newer daemon's encoding).
func (d *Data) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, " \t\r\n")
	if len(b) > 0 && b[0] == '"' {
		if out, ok := unquote(b); ok {
			d.Bytes = out
			return nil
		}
		var s string // what unquote leaves to encoding/json: invalid UTF-8, bad escapes
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		d.Bytes = []byte(s)
		return nil
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(b, &o); err != nil {
		return errDataForm
	}
	if _, ok := o["blob"]; ok {
		return d.unmarshalRef(b, o)
	}
	raw, ok := o["base64"]
	if !ok || len(o) != 1 {
		return fmt.Errorf("%w, not an object with %s", errDataForm, strings.Join(sortedKeys(o), ", "))
	}
	var bs []byte // encoding/json decodes standard base64
	if err := json.Unmarshal(raw, &bs); err != nil {
		return fmt.Errorf("data value: %w", err)
	}
	if bs == nil {
		bs = []byte{}
	}
	d.Bytes = bs
	return nil
}

// BlobName is the name in the log's blob store of a value stored apart
// that an event of invocation holds ("" for a value held in the event):
// what a tool copying events (a migration) copies with them.
func (d *Data) BlobName(invocation string) string {
	if d == nil || d.Blob == "" {
		return ""
	}
	if d.Root != "" {
		return blobName(d.Root, d.Blob)
	}
	return blobName(invocation, d.Blob)
}

// unmarshalRef decodes the reference of a value stored apart.
func (d *Data) unmarshalRef(b []byte, o map[string]json.RawMessage) error {
	for k := range o {
		if k != "blob" && k != "size" && k != "root" && k != "form" && k != "json" {
			return fmt.Errorf("%w, or a reference {\"blob\", \"size\"}: not an object with %s", errDataForm, strings.Join(sortedKeys(o), ", "))
		}
	}
	var r struct {
		Blob string `json:"blob"`
		Size int    `json:"size"`
		Root string `json:"root"`
		Form string `json:"form"`
		JSON bool   `json:"json"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("data value reference: %w", err)
	}
	if !eventlog.IsContentHash(r.Blob) || r.Size < 0 || (r.Form != "" && r.Form != FormText && r.Form != FormBase64) || (r.JSON && r.Form != "") ||
		(r.Root != "" && !validInvocationID(r.Root)) {
		return fmt.Errorf("data value reference %s: want a sha256 in hex, a size, an invocation id as root and a form text or base64", b)
	}
	*d = Data{Blob: r.Blob, Size: r.Size, Root: r.Root, Form: r.Form, JSON: r.JSON}
	return nil
}

// unquote decodes a JSON string (quotes included) that encoding/json has
// checked is one, into new bytes. ok is false for what it leaves to
// encoding/json: bytes that are not UTF-8, and \u escapes of surrogates
// (which encoding/json pairs, or replaces).
func unquote(q []byte) (out []byte, ok bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return nil, false
	}
	b := q[1 : len(q)-1]
	if !utf8.Valid(b) {
		return nil, false
	}
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return append([]byte{}, b...), true
	}
	out = make([]byte, 0, len(b))
	for i >= 0 {
		out = append(out, b[:i]...)
		if i+1 >= len(b) {
			return nil, false
		}
		n := 2
		switch c := b[i+1]; c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(b) {
				return nil, false
			}
			r, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
			if err != nil || r >= 0xd800 && r < 0xe000 {
				return nil, false
			}
			out = utf8.AppendRune(out, rune(r))
			n = 6
		default:
			return nil, false
		}
		b = b[i+n:]
		i = bytes.IndexByte(b, '\\')
	}
	return append(out, b...), true
}

// dataView is what expressions see of a data value's bytes.
func dataView(b []byte) any { return dataValue(b).view() }

// isJSONDoc tells whether UTF-8 bytes are one JSON document that
// expressions read as a value (nested at most MaxDepth levels).
func isJSONDoc(b []byte) bool {
	return jsonDepthOK(b, MaxDepth) && json.Valid(b)
}

// decodeJSON decodes one JSON document for expressions, numbers kept
// exactly (numbers); ok is false for bytes that are not one document
// nested at most MaxDepth levels.
func decodeJSON(b []byte) (any, bool) {
	if !jsonDepthOK(b, MaxDepth) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if dec.Decode(&x) != nil {
		return nil, false
	}
	for _, c := range b[dec.InputOffset():] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return nil, false
		}
	}
	return numbers(x), true
}

// numbers gives the numbers of a decoded JSON value the types expressions
// compute with: an integer that fits int64 is an int; a number whose
// text is a float64's (as Go writes it, up to zeros and notation) is a
// float64, or an int if it is whole and at most 2^53 (2.0 and 1e3 are
// ints, so that item % 2 works on them); any other (12345678901234567890,
// 0.10000000000000000000001) stays a json.Number, its JSON text, which
// compares and re-encodes exactly. Whole float64s (from a decoder without
// UseNumber) become ints as well.
//
// It writes only what it changes: a value already converted may be read
// by evaluations meanwhile (a loop's prev is the previous output's decoded
// value), and is left as it is.
func numbers(x any) any {
	switch v := x.(type) {
	case json.Number:
		return number(v)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= 1<<53 {
			return int(v)
		}
	case map[string]any:
		for k, el := range v {
			if y, ok := converted(el); ok {
				v[k] = y
			}
		}
	case []any:
		for i, el := range v {
			if y, ok := converted(el); ok {
				v[i] = y
			}
		}
	}
	return x
}

// converted is numbers(x) and whether it is a new value.
func converted(x any) (any, bool) {
	switch v := x.(type) {
	case json.Number:
		y := number(v)
		_, same := y.(json.Number)
		return y, !same
	case float64:
		y := numbers(v)
		_, isInt := y.(int)
		return y, isInt
	case map[string]any, []any:
		numbers(x)
	}
	return x, false
}

// number reads one JSON number (see numbers).
func number(n json.Number) any {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return int(i)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return n
	}
	// A decimal of at most 15 significant digits is what the float64
	// nearest it writes (DBL_DIG), in the normal range: no need to check.
	// Zero, and what is or underflows to a denormal, are checked.
	if significant(s) > 15 || math.Abs(f) < 0x1p-1022 {
		if !sameNumber(s, strconv.FormatFloat(f, 'e', -1, 64)) {
			return n
		}
	}
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return int(f)
	}
	return f
}

// significant counts the significant digits of a JSON number's text.
func significant(s string) int {
	first, last, n := -1, -1, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 'e' || c == 'E' {
			break
		}
		if c < '0' || c > '9' {
			continue
		}
		if c != '0' {
			if first < 0 {
				first = n
			}
			last = n
		}
		n++
	}
	if first < 0 {
		return 0
	}
	return last - first + 1
}

// sameNumber tells whether two JSON numbers' texts write the same decimal
// number (1.50 and 1.5e0 do), without computing with them: an exponent of
// a billion must not make a billion digits.
func sameNumber(a, b string) bool {
	na, da, ea, oka := decimal(a)
	nb, db, eb, okb := decimal(b)
	if !oka || !okb {
		return false
	}
	if da == "" || db == "" {
		return da == db // zero, whatever its sign
	}
	return na == nb && da == db && ea == eb
}

// decimal splits a JSON number into its sign, its significant digits and
// the power of ten of the last one ("" digits: zero).
func decimal(s string) (neg bool, digits string, exp int, ok bool) {
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	mant, e, hasExp := strings.Cut(strings.ToLower(s), "e")
	if hasExp {
		n, err := strconv.Atoi(strings.TrimPrefix(e, "+"))
		if err != nil || n > 1<<30 || n < -1<<30 {
			return false, "", 0, false
		}
		exp = n
	}
	whole, frac, _ := strings.Cut(mant, ".")
	digits = whole + frac
	exp -= len(frac)
	digits = strings.TrimLeft(digits, "0")
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	return neg, trimmed, exp, true
}

// errBytesInText: a bytes value interpolated into a string.
func errBytesInText(n int) error {
	return fmt.Errorf("the value is %d bytes that are not UTF-8 text: write base64(...) to put them in a string", n)
}

// errNumberText explains expr's error for arithmetic on a number kept as
// its text.
const errNumberText = "a json.Number is a JSON number kept exactly as its text, having more digits than a float64 holds: " +
	"expressions compare it, pass it on and write it out exactly, but do no arithmetic on it; " +
	"float(x) rounds it to a float64, or do the arithmetic in a function"
