// Package redrive lists the dead letters on an error topic and publishes
// their payloads back to their source topic (redrives them), recording
// each redrive on the broker so that a letter is never redriven twice by
// accident, by one daemon or by several at once.
//
// # The record
//
// The redrives of an error topic are recorded in a stream of their own,
// RecordStream(topic), as claims and dones. A redrive of a letter
//
//  1. reads the records and refuses a letter already redriven (unless
//     forced) or being redriven now;
//  2. appends a claim (its id, the request's id, the target topic);
//  3. reads the records again: of claims made at once, the first the
//     broker stored wins (fold), on every daemon alike; the others are
//     skipped;
//  4. publishes the payload, with the claim's id as the message's
//     de-duplication id (JetStream) and a Sluice-Redriven-From header;
//  5. appends a done.
//
// A redrive stopped between 2 and 5 (a crash, the broker out of reach)
// leaves its claim pending. Until the claim's lease passes the letter is
// refused as being redriven; after it, the next redrive takes the claim
// over: it looks for the payload on the target topic past where the topic
// stood when the claim was made (from the claim's time if that could not
// be read), by the claim's id where the broker keeps headers (JetStream),
// by its bytes on NATS Streaming, and records it done if it is there, or
// publishes it (with the first claim's id again: JetStream drops it if
// the first publish was stored within its de-duplication window) and
// records it done. So a crash neither loses a redrive nor publishes it
// twice, with one exception on NATS Streaming: a publish that its daemon
// gave up on (after PublishTimeout) and that the server stores only after
// the lease passed and a takeover looked is published twice.
package redrive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/logctx"
)

// Limits and times of redrives.
const (
	// PublishTimeout bounds the publication of one payload and the
	// records around it: a broker that takes longer is out of reach, and
	// the claim is left for a later redrive to complete.
	PublishTimeout = 10 * time.Second
	// DefaultLease is how long a pending claim holds its letter: three
	// times PublishTimeout, so that a redrive that is merely slow finishes
	// (or gives up) well before another may take its claim over.
	DefaultLease = 3 * PublishTimeout
	// MaxBatch bounds the letters one request redrives: each costs a
	// claim, a publish and a done, and reading back the claims holds them
	// in memory. --all redrives the rest in further requests.
	MaxBatch = 1000
	// MaxScan bounds the messages a takeover reads on the target topic
	// looking for the pending claim's publication; a busier topic is
	// refused, with --force as the way out.
	MaxScan = 100_000
)

// RedrivenHeader is the header the redriven message carries (where the
// broker keeps headers: JetStream): ERROR_TOPIC:SEQUENCE of its letter.
const RedrivenHeader = "Sluice-Redriven-From"

// Request is what to redrive.
type Request struct {
	// Topic is the error topic.
	Topic string
	// Seqs are the letters' sequences on it; All takes every letter not
	// yet redriven instead (up to MaxBatch; Result.More says if more are
	// left).
	Seqs []uint64
	All  bool
	// To, if set, is where the payloads go instead of their source topic.
	To string
	// Force redrives letters already redriven once more.
	Force bool
	// By names who asks (the API request's id), for the record.
	By string
}

// Result is what a redrive did, letter by letter.
type Result struct {
	Redriven []Redriven `json:"redriven"`
	Skipped  []Skipped  `json:"skipped"`
	Failed   []Failed   `json:"failed"`
	// More: All found more letters to redrive than MaxBatch.
	More bool `json:"more,omitempty"`
}

// Redriven is a letter published back.
type Redriven struct {
	Sequence uint64 `json:"sequence"`
	To       string `json:"to"`
	// Published is the payload's sequence on To where the broker says it
	// (JetStream).
	Published uint64 `json:"published,omitempty"`
	// Completed: the letter's earlier redrive had stopped half-way (its
	// claim pending past its lease); this one completed it. Found: that
	// redrive had published the payload, which was not published again.
	Completed bool   `json:"completed,omitempty"`
	Found     bool   `json:"found,omitempty"`
	Note      string `json:"note,omitempty"`
}

// Skipped is a letter not redriven because it was redriven already, or is
// being redriven now.
type Skipped struct {
	Sequence uint64 `json:"sequence"`
	Reason   string `json:"reason"`
	// By and At are who redrove it (the request id) and when.
	By string    `json:"by,omitempty"`
	At time.Time `json:"at,omitzero"`
}

// Failed is a letter that could not be redriven.
type Failed struct {
	Sequence uint64 `json:"sequence"`
	Error    string `json:"error"`
}

// Redriver redrives the dead letters of error topics.
type Redriver struct {
	Log eventlog.Log
	// Lease is how long a claim holds its letter while pending
	// (DefaultLease if 0). It is recorded with each claim, so daemons with
	// different leases still agree.
	Lease time.Duration
}

func (r *Redriver) lease() time.Duration {
	if r.Lease > 0 {
		return r.Lease
	}
	return DefaultLease
}

// candidate is a letter to claim.
type candidate struct {
	letter DeadLetter
	to     string
	id     string
}

// Redrive redrives the letters of a request. Its error is for the request
// as a whole (the broker out of reach); what happened to each letter is in
// the Result. If nothing was redriven and every letter asked for by
// sequence was skipped, the error wraps ErrAlreadyRedriven.
func (r *Redriver) Redrive(ctx context.Context, q Request) (Result, error) {
	res := Result{Redriven: []Redriven{}, Skipped: []Skipped{}, Failed: []Failed{}}
	if q.All == (len(q.Seqs) > 0) {
		return res, fmt.Errorf("%w: give the sequences of the letters to redrive, or all", ErrInvalid)
	}
	if q.All && q.Force {
		return res, fmt.Errorf("%w: all with force would redrive every letter again, each time it is asked: give the sequences of the letters to redrive again", ErrInvalid)
	}
	states, err := States(ctx, r.Log, q.Topic)
	if err != nil {
		return res, fmt.Errorf("read the redrives of %s: %w", q.Topic, err)
	}
	letters, more, err := r.pick(ctx, q, states, &res)
	if err != nil {
		return res, err
	}
	res.More = more
	var cands []candidate
	for _, d := range letters {
		if d.Problem != "" {
			res.Failed = append(res.Failed, Failed{Sequence: d.Sequence, Error: d.Problem})
			continue
		}
		if s, skip := skipped(states[d.Sequence], d.Sequence, q.Force, time.Now()); skip {
			res.Skipped = append(res.Skipped, s)
			continue
		}
		to := cmpOr(q.To, d.DeadLetter.Topic)
		cands = append(cands, candidate{letter: d, to: to, id: nuid.Next()})
	}
	if len(cands) > 0 {
		if err := r.redrive(ctx, q, cands, &res); err != nil {
			return res, err
		}
	}
	if len(q.Seqs) > 0 && len(res.Redriven) == 0 && len(res.Failed) == 0 && len(res.Skipped) > 0 {
		var says []string
		for _, s := range res.Skipped {
			says = append(says, fmt.Sprintf("%d %s", s.Sequence, s.Reason))
		}
		return res, fmt.Errorf("%w: dead letter %s", ErrAlreadyRedriven, strings.Join(says, "; "))
	}
	return res, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// pick reads the letters a request names: those at its sequences, or
// the first MaxBatch not yet redriven (more: there are others).
func (r *Redriver) pick(ctx context.Context, q Request, states map[uint64]*State, res *Result) (letters []DeadLetter, more bool, err error) {
	if q.All {
		last, err := r.Log.Last(ctx, q.Topic)
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", q.Topic, err)
		}
		err = readRange(ctx, r.Log, q.Topic, eventlog.First, last, func(m *eventlog.Msg) bool {
			if st := states[m.Sequence]; st != nil && st.Claim != nil && (st.Done || !st.Claim.expired(time.Now())) {
				return true // redriven, or being redriven: --all leaves it
			}
			if len(letters) == MaxBatch {
				more = true
				return false
			}
			letters = append(letters, parseLetter(m))
			return true
		})
		return letters, more, err
	}
	seqs := slices.Clone(q.Seqs)
	slices.Sort(seqs)
	for _, seq := range slices.Compact(seqs) {
		d, found, err := readLetter(ctx, r.Log, q.Topic, seq)
		if err != nil {
			return nil, false, fmt.Errorf("read %s at %d: %w", q.Topic, seq, err)
		}
		if !found {
			res.Failed = append(res.Failed, Failed{Sequence: seq, Error: fmt.Sprintf("%s holds no message at sequence %d (sluice topic dead-letters %s lists them)", q.Topic, seq, q.Topic)})
			continue
		}
		letters = append(letters, d)
	}
	return letters, false, nil
}

// skipped tells whether a letter in a state is not to be redriven now,
// and why.
func skipped(st *State, seq uint64, force bool, now time.Time) (Skipped, bool) {
	switch {
	case st == nil || st.Claim == nil:
		return Skipped{}, false
	case st.Done && !force:
		return Skipped{Sequence: seq, By: st.Claim.By, At: st.DoneAt,
			Reason: fmt.Sprintf("was redriven to %s at %s by request %s; --force redrives it again", st.Claim.To, st.DoneAt.Format(time.RFC3339), st.Claim.By)}, true
	case !st.Done && !st.Claim.expired(now):
		return Skipped{Sequence: seq, By: st.Claim.By, At: st.Claim.At,
			Reason: fmt.Sprintf("is being redriven to %s since %s by request %s; if that redrive stopped, the next one after %s completes it",
				st.Claim.To, st.Claim.At.Format(time.RFC3339), st.Claim.By, st.Claim.At.Add(st.Claim.lease).Format(time.RFC3339))}, true
	}
	return Skipped{}, false
}

// redrive claims the candidates, then publishes those whose claims won.
func (r *Redriver) redrive(ctx context.Context, q Request, cands []candidate, res *Result) error {
	stream := RecordStream(q.Topic)
	lease := r.lease()
	claimed := time.Now()
	// where each target stands before the claims: a payload published
	// for a claim is after it (find reads from there: a time asked of
	// NATS Streaming is turned into a delta and can start late)
	after := map[string]*uint64{}
	for _, c := range cands {
		if _, ok := after[c.to]; !ok {
			after[c.to] = nil // unknown on error: find looks by time
			if last, err := r.Log.Last(ctx, c.to); err == nil {
				after[c.to] = &last // 0 too: the target is empty
			}
		}
	}
	if err := r.appendRecords(ctx, stream, cands, func(c candidate) record {
		return record{Op: opClaim, Seq: c.letter.Sequence, ID: c.id, By: q.By, To: c.to, Force: q.Force, LeaseMS: lease.Milliseconds(), After: after[c.to]}
	}); err != nil {
		return fmt.Errorf("record the claims of the redrive of %s: %w (a letter whose claim was stored is refused as being redriven until %s passes, then completed by the next redrive)", q.Topic, err, lease)
	}
	states, err := States(ctx, r.Log, q.Topic)
	if err != nil {
		return fmt.Errorf("read back the claims of the redrive of %s: %w (the letters stay claimed: the next redrive after %s completes them)", q.Topic, err, lease)
	}
	var done []candidate
	var dones []record
	for _, c := range cands {
		seq := c.letter.Sequence
		st := states[seq]
		if st == nil || st.Claim == nil || st.Claim.ID != c.id {
			s := Skipped{Sequence: seq, Reason: "was claimed by another redrive at the same moment"}
			if st != nil && st.Claim != nil {
				s.By, s.At = st.Claim.By, st.Claim.At
				s.Reason = fmt.Sprintf("was claimed at the same moment by request %s, which redrives it", st.Claim.By)
			}
			res.Skipped = append(res.Skipped, s)
			continue
		}
		if time.Since(claimed) > lease-PublishTimeout {
			// too late to publish within the lease: a takeover could
			// look for it before it is stored
			res.Failed = append(res.Failed, Failed{Sequence: seq, Error: fmt.Sprintf("not published: claiming took longer than its lease allows (%s); the next redrive after %s completes it", lease, st.Claim.At.Add(lease).Format(time.RFC3339))})
			continue
		}
		rd, err := r.publish(ctx, q.Topic, c, st.Claim)
		if err != nil {
			res.Failed = append(res.Failed, Failed{Sequence: seq, Error: fmt.Sprintf("%v; its claim stays pending: the next redrive after %s looks whether it was published and completes it",
				err, st.Claim.At.Add(lease).Format(time.RFC3339))})
			continue
		}
		done = append(done, c)
		dones = append(dones, record{Op: opDone, Seq: seq, ID: c.id, Published: rd.Published, Found: rd.Found})
		res.Redriven = append(res.Redriven, rd)
	}
	if len(done) == 0 {
		return nil
	}
	i := 0
	err = r.appendRecords(ctx, stream, done, func(candidate) record { i++; return dones[i-1] })
	if err != nil {
		for i := range res.Redriven {
			res.Redriven[i].Note = fmt.Sprintf("published, but the record of it could not be written (%v): until it is, a redrive after %s finds it published and records it", err, lease)
		}
	}
	return nil
}

// appendRecords publishes a record per candidate and waits for them all.
func (r *Redriver) appendRecords(ctx context.Context, stream string, cands []candidate, rec func(candidate) record) error {
	ctx, cancel := context.WithTimeout(ctx, PublishTimeout)
	defer cancel()
	acks := make(chan error, len(cands))
	for _, c := range cands {
		data, _ := json.Marshal(rec(c))
		if err := r.Log.PublishAsync(stream, eventlog.Message{Data: data}, func(_ uint64, err error) { acks <- err }); err != nil {
			acks <- err
		}
	}
	var errs []error
	for range cands {
		select {
		case err := <-acks:
			if err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// publish publishes a claimed letter's payload; for a claim that took over
// a pending one, only if the pending one's publication is not found.
func (r *Redriver) publish(ctx context.Context, errTopic string, c candidate, claim *Claim) (Redriven, error) {
	ctx, cancel := context.WithTimeout(ctx, PublishTimeout)
	defer cancel()
	seq := c.letter.Sequence
	rd := Redriven{Sequence: seq, To: c.to}
	id := c.id
	if claim.takes != nil {
		rd.Completed = true
		id = claim.takes.ID
		found, pubSeq, err := r.find(ctx, claim.takes, c.letter.Payload)
		if err != nil {
			return rd, err
		}
		if found {
			rd.Found, rd.Published = true, pubSeq
			return rd, nil
		}
	}
	h := map[string]string{RedrivenHeader: errTopic + ":" + strconv.FormatUint(seq, 10)}
	if c.letter.Traceparent != "" {
		// the redriven call continues the trace of the calls that failed
		h[logctx.TraceparentHeader] = c.letter.Traceparent
	}
	pub, err := r.Log.Publish(ctx, c.to, eventlog.Message{Data: c.letter.Payload, ID: id, Header: h})
	if err != nil {
		return rd, fmt.Errorf("publish to %s: %w", c.to, err)
	}
	rd.Published = pub
	return rd, nil
}

// find looks on a pending claim's target topic, after where it stood when
// the claim was made (or from the claim's time, for a claim that does not
// say), for its publication: by its id where the broker keeps ids, else by
// the payload's bytes.
func (r *Redriver) find(ctx context.Context, pending *Claim, payload []byte) (found bool, seq uint64, err error) {
	last, err := r.Log.Last(ctx, pending.To)
	if err != nil {
		return false, 0, fmt.Errorf("look for the earlier redrive's message on %s: %w", pending.To, err)
	}
	if last == 0 {
		return false, 0, nil
	}
	var from eventlog.Start
	if pending.from > 0 {
		if pending.from > last {
			return false, 0, nil
		}
		from = eventlog.At(pending.from)
	} else {
		// a subscription from a time after the last message would wait
		// for the next one: look at the last message's time first
		var lastAt time.Time
		if err := readRange(ctx, r.Log, pending.To, eventlog.At(last), last, func(m *eventlog.Msg) bool { lastAt = m.Time; return false }); err != nil {
			return false, 0, fmt.Errorf("look for the earlier redrive's message on %s: %w", pending.To, err)
		}
		if lastAt.Before(pending.At) {
			return false, 0, nil
		}
		from = eventlog.Since(pending.At)
	}
	// by bytes, only a message stored after the claim: its payload is
	// published once the claim is stored, and the letter's own source
	// message, with the same bytes, was stored before (were the target's
	// last sequence read as 0 when it was not empty: NATS Streaming's
	// Last tells "empty" by a wait)
	byID := r.Log.Features().Headers
	n := 0
	err = readRange(ctx, r.Log, pending.To, from, last, func(m *eventlog.Msg) bool {
		n++
		if byID && m.ID == pending.ID || !byID && !m.Time.Before(pending.At) && bytes.Equal(m.Data, payload) {
			found, seq = true, m.Sequence
			return false
		}
		return n < MaxScan
	})
	if err != nil {
		return false, 0, fmt.Errorf("look for the earlier redrive's message on %s: %w", pending.To, err)
	}
	if !found && n >= MaxScan {
		return false, 0, fmt.Errorf("looked through %d messages of %s since the earlier redrive's claim without finding whether it was published (the limit); check the topic and redrive with --force if it was not", MaxScan, pending.To)
	}
	if !r.Log.Features().Sequences {
		seq = 0
	}
	return found, seq, nil
}
