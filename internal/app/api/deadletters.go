package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/redrive"
)

// Reading dead letters.
const (
	// DefaultDeadLetters is the page GET /v1/topics/{topic}/dead-letters
	// returns without limit: a screenful.
	DefaultDeadLetters = 50
	// MaxDeadLetters bounds a page: each letter is read whole (a payload
	// of up to 1 MiB) before its preview is cut.
	MaxDeadLetters = 1000
	// PreviewBytes is how much of a payload a dead letter's listing shows:
	// enough to recognise a message, little enough for a page of a
	// thousand.
	PreviewBytes = 256
	// maxRedriveBody bounds a redrive request: MaxBatch sequences as JSON.
	maxRedriveBody = 64 << 10
)

// DeadLetterView is a dead letter as GET /v1/topics/{topic}/dead-letters
// lists it.
type DeadLetterView struct {
	// Sequence and Time are the letter's own on the error topic.
	Sequence uint64    `json:"sequence"`
	Time     time.Time `json:"time"`
	Error    string    `json:"error,omitempty"`
	Code     string    `json:"code,omitempty"`
	Function string    `json:"function,omitempty"`
	Workflow string    `json:"workflow,omitempty"`
	Trigger  string    `json:"trigger,omitempty"`
	// SourceTopic and SourceSequence are where the message was.
	SourceTopic    string    `json:"source_topic,omitempty"`
	SourceSequence uint64    `json:"source_sequence,omitempty"`
	Redeliveries   uint32    `json:"redeliveries"`
	FailedAt       time.Time `json:"failed_at,omitzero"`
	Traceparent    string    `json:"traceparent,omitempty"`
	// PayloadBytes is the payload's size; its first PreviewBytes are in
	// PayloadText if they are UTF-8, else in PayloadBase64.
	PayloadBytes     int    `json:"payload_bytes"`
	PayloadText      string `json:"payload_text,omitempty"`
	PayloadBase64    string `json:"payload_base64,omitempty"`
	PayloadTruncated bool   `json:"payload_truncated,omitempty"`
	// Problem says why the message is not a dead letter.
	Problem string `json:"problem,omitempty"`
	// Redrive is the letter's redrive state; absent if it was never
	// redriven.
	Redrive *redrive.State `json:"redrive,omitempty"`
}

// DeadLetterPage is the answer of GET /v1/topics/{topic}/dead-letters.
type DeadLetterPage struct {
	Topic   string           `json:"topic"`
	Letters []DeadLetterView `json:"letters"`
	// Next is the after of the next page; 0 at the end.
	Next uint64 `json:"next,omitempty"`
}

func deadLetterView(d redrive.DeadLetter, st *redrive.State) DeadLetterView {
	v := DeadLetterView{
		Sequence: d.Sequence, Time: d.Time, Error: d.Error, Code: d.Code, Function: d.Function, Workflow: d.Workflow,
		Trigger: d.Trigger, SourceTopic: d.Topic, SourceSequence: d.DeadLetter.Sequence, Redeliveries: d.Redeliveries,
		FailedAt: d.DeadLetter.Time, Traceparent: d.Traceparent, PayloadBytes: len(d.Payload), Problem: d.Problem, Redrive: st,
	}
	p := d.Payload
	if len(p) > PreviewBytes {
		p, v.PayloadTruncated = p[:PreviewBytes], true
		for n := 0; n < utf8.UTFMax && len(p) > 0 && !utf8.Valid(p); n++ {
			p = p[:len(p)-1] // a rune cut at the end
		}
		if !utf8.Valid(p) {
			p = d.Payload[:PreviewBytes]
		}
	}
	if utf8.Valid(p) {
		v.PayloadText = string(p)
	} else {
		v.PayloadBase64 = base64.StdEncoding.EncodeToString(p)
	}
	return v
}

// deadLetters lists the dead letters of an error topic, oldest first, a
// page of limit after the sequence after, each with its redrive state.
func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request, b *Backend) {
	topic, err := topicName(r, true)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	q := r.URL.Query()
	limit := DefaultDeadLetters
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxDeadLetters {
			errcode.Write(w, fmt.Errorf("%w: limit=%q: want a number from 1 to %d", catalog.ErrInvalid, v, MaxDeadLetters))
			return
		}
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			errcode.Write(w, fmt.Errorf("%w: after=%q: want the sequence of the last letter seen (a page's next)", catalog.ErrInvalid, v))
			return
		}
	}
	letters, next, err := redrive.ReadLetters(r.Context(), b.Log, topic, after, limit)
	if err != nil {
		errcode.Write(w, fmt.Errorf("read the dead letters of %s: %w", topic, err))
		return
	}
	states, err := redrive.States(r.Context(), b.Log, topic)
	if err != nil {
		errcode.Write(w, fmt.Errorf("read the redrives of %s: %w", topic, err))
		return
	}
	page := DeadLetterPage{Topic: topic, Letters: make([]DeadLetterView, 0, len(letters)), Next: next}
	for _, d := range letters {
		page.Letters = append(page.Letters, deadLetterView(d, states[d.Sequence]))
	}
	errcode.WriteJSON(w, http.StatusOK, page)
}

// RedriveRequest is the body of POST /v1/topics/{topic}/redrive.
type RedriveRequest struct {
	// Sequences are the letters' sequences on the error topic; All takes
	// every letter not yet redriven instead (redrive.MaxBatch at a time).
	Sequences []uint64 `json:"sequences,omitempty"`
	All       bool     `json:"all,omitempty"`
	// To, if set, is where the payloads go instead of their source topic.
	To string `json:"to,omitempty"`
	// Force redrives letters already redriven once more.
	Force bool `json:"force,omitempty"`
}

// redriveLetters publishes dead letters back to their source topic,
// recorded so that none is redriven twice by accident (package redrive).
func (s *Server) redriveLetters(w http.ResponseWriter, r *http.Request, b *Backend) {
	topic, err := topicName(r, true)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	body, err := readBody(r, maxRedriveBody, "redrive request", errcode.PayloadTooLarge,
		fmt.Sprintf("redrive request over %d bytes: give at most %d sequences, or all", maxRedriveBody, redrive.MaxBatch))
	if err != nil {
		errcode.Write(w, err)
		return
	}
	var req RedriveRequest
	if err := json.Unmarshal(body, &req); err != nil {
		errcode.Write(w, fmt.Errorf("%w: redrive request: %v (want {\"sequences\": [N, ...]} or {\"all\": true})", catalog.ErrInvalid, err))
		return
	}
	if len(req.Sequences) > redrive.MaxBatch {
		errcode.Write(w, fmt.Errorf("%w: %d sequences: at most %d a request", catalog.ErrInvalid, len(req.Sequences), redrive.MaxBatch))
		return
	}
	if req.To != "" {
		if err := catalog.ValidateTopic("to", req.To); err != nil {
			errcode.Write(w, err)
			return
		}
	}
	by := w.Header().Get(RequestIDHeader)
	rd := redrive.Redriver{Log: b.Log}
	res, err := rd.Redrive(r.Context(), redrive.Request{Topic: topic, Seqs: req.Sequences, All: req.All, To: req.To, Force: req.Force, By: by})
	seqs := func(n int, seq func(int) uint64) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = seq(i)
		}
		return out
	}
	s.log.InfoContext(r.Context(), "dead letters redriven", "error_topic", topic, "to", req.To, "force", req.Force, "all", req.All,
		"redriven", seqs(len(res.Redriven), func(i int) uint64 { return res.Redriven[i].Sequence }),
		"skipped", seqs(len(res.Skipped), func(i int) uint64 { return res.Skipped[i].Sequence }),
		"failed", seqs(len(res.Failed), func(i int) uint64 { return res.Failed[i].Sequence }), "err", err)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	errcode.WriteJSON(w, http.StatusOK, res)
}
