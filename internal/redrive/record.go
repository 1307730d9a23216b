package redrive

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sluicehq/sluice/eventlog"
)

// RecordPrefix begins the name of the stream that records the redrives
// of an error topic: sluice.redrive.ERROR_TOPIC, one stream per error
// topic, kept for good on both brokers (JetStream keeps it in SLUICE_SYS).
const RecordPrefix = "sluice.redrive."

// RecordStream names the stream that records the redrives of an error
// topic.
func RecordStream(errorTopic string) string { return RecordPrefix + errorTopic }

// Record ops.
const (
	// opClaim claims a dead letter for a redrive, before its payload is
	// published.
	opClaim = "claim"
	// opDone says the claim's payload is published (or was found
	// published, for a claim that took over a pending one).
	opDone = "done"
)

// record is one message of a record stream.
type record struct {
	Op string `json:"op"`
	// Seq is the dead letter's sequence on its error topic.
	Seq uint64 `json:"seq"`
	// ID identifies the claim (a done names the claim it completes).
	ID string `json:"id"`
	// By is the id of the API request that claimed (the daemon's log
	// lines about it carry it as request_id).
	By string `json:"by,omitempty"`
	// To is the topic the payload goes to.
	To    string `json:"to,omitempty"`
	Force bool   `json:"force,omitempty"`
	// LeaseMS is how long the claim holds the letter while it is pending:
	// after it, another redrive may take the claim over.
	LeaseMS int64 `json:"lease_ms,omitempty"`
	// After is To's last sequence when the claim was made (0: To was
	// empty): its payload, if published, is after it. Absent: unknown
	// (To could not be read), then looked for by the claim's time. A
	// pointer, as an empty To is known as well as any other place: on NATS
	// Streaming a search by time starts late (the time is sent as a delta
	// from the client's clock, which the server applies when the request
	// reaches it), and would miss a payload stored just after the claim.
	// Earlier records leave it out when it is 0, and so are read as
	// unknown.
	After *uint64 `json:"after,omitempty"`
	// Published is the payload's sequence on To where the broker says it
	// (JetStream), else 0.
	Published uint64 `json:"published,omitempty"`
	// Found: the done completes a claim taken over, whose payload was
	// found already published (so it was not published again).
	Found bool `json:"found,omitempty"`
}

// Claim is a claim of a dead letter for a redrive, as the record stream
// holds it.
type Claim struct {
	ID string `json:"id"`
	By string `json:"by"`
	To string `json:"to"`
	// At is when the broker stored the claim.
	At    time.Time `json:"at"`
	Force bool      `json:"force,omitempty"`
	lease time.Duration
	// from is the first sequence of To its payload can be at
	// (record.After + 1); 0 when unknown.
	from uint64
	// takes is the pending claim this one took over.
	takes *Claim
}

// expired tells whether a pending claim may be taken over by a claim
// stored at t.
func (c *Claim) expired(t time.Time) bool { return t.Sub(c.At) >= c.lease }

// State is where a dead letter is in its redrives.
type State struct {
	// Claim is the claim in force; nil if the letter was never redriven.
	Claim *Claim `json:"claim,omitempty"`
	// Done: Claim's payload is published. Not done with a claim: pending
	// (being published, or its redrive stopped between the claim and the
	// publish, or the publish and the done).
	Done bool `json:"done"`
	// DoneAt is when the done was stored.
	DoneAt time.Time `json:"done_at,omitzero"`
	// Published is the payload's sequence on Claim.To where the broker
	// says it.
	Published uint64 `json:"published,omitempty"`
	// Times counts the letter's completed redrives (more than 1 only with
	// force).
	Times int `json:"times"`
}

// fold applies the records of a stream, in its order, to the states of
// the letters. It is pure: the broker's times of the records are its only
// clock, so every daemon folding the same stream agrees on every state,
// and in particular on which of two claims made at once won.
//
// A claim wins when the letter has no claim in force, or its claim is
// done and the new claim is forced, or its claim is pending and was stored
// at least its lease before the new one (which then takes it over: it
// completes the old claim's redrive, rather than starting another). A
// done counts only for the claim in force.
func fold(states map[uint64]*State, r record, at time.Time) {
	st := states[r.Seq]
	if st == nil {
		st = &State{}
		states[r.Seq] = st
	}
	switch r.Op {
	case opClaim:
		c := &Claim{ID: r.ID, By: r.By, To: r.To, At: at, Force: r.Force, lease: time.Duration(r.LeaseMS) * time.Millisecond}
		if r.After != nil {
			c.from = *r.After + 1
		}
		switch {
		case st.Claim == nil, st.Done && r.Force:
		case !st.Done && st.Claim.expired(at):
			c.takes = st.Claim
			if st.Claim.takes != nil { // a takeover that stopped too: complete the first
				c.takes = st.Claim.takes
			}
		default:
			return
		}
		st.Claim, st.Done, st.DoneAt, st.Published = c, false, time.Time{}, 0
	case opDone:
		if st.Claim != nil && st.Claim.ID == r.ID && !st.Done {
			st.Done, st.DoneAt, st.Published = true, at, r.Published
			st.Times++
		}
	}
}

// States reads the record stream of an error topic and returns the
// state of every letter it records.
func States(ctx context.Context, l eventlog.Log, errorTopic string) (map[uint64]*State, error) {
	stream := RecordStream(errorTopic)
	last, err := l.Last(ctx, stream)
	if err != nil {
		return nil, err
	}
	states := map[uint64]*State{}
	err = readRange(ctx, l, stream, eventlog.First, last, func(m *eventlog.Msg) bool {
		var r record
		if json.Unmarshal(m.Data, &r) == nil && r.Seq > 0 && r.ID != "" {
			fold(states, r, m.Time)
		}
		return true
	})
	return states, err
}
