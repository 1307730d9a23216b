package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/errcode"
	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/catalog"
)

// maxPublish is the largest message the API publishes: NATS's default
// max_payload.
const maxPublish = 1 << 20

// TopicMessage is a message as GET /v1/topics/{topic}/tail streams it, one
// JSON object per line; Data is base64 in JSON.
type TopicMessage struct {
	Sequence    uint64    `json:"sequence"`
	Time        time.Time `json:"time"`
	Redelivered bool      `json:"redelivered,omitempty"`
	Data        []byte    `json:"data"`
}

func topicName(r *http.Request, write bool) (string, error) {
	topic := r.PathValue("topic")
	err := catalog.ValidateTopic("topic", topic)
	if err != nil && !write && strings.HasPrefix(topic, "sluice.") {
		// reading sluice's own channels is allowed: sluice topic tail
		// sluice.catalog shows the event log
		err = catalog.ValidateTopic("topic", strings.TrimPrefix(topic, "sluice."))
	}
	return topic, err
}

// Published is the answer of POST /v1/topics/{topic}/publish.
type Published struct {
	Topic string `json:"topic"`
	// Sequence is where the message was stored in the topic (see
	// publishSeq); 0 if it could not be read back.
	Sequence uint64 `json:"sequence,omitempty"`
	Bytes    int    `json:"bytes"`
}

// seqWait bounds reading a published message back to learn its sequence:
// it arrives within milliseconds of its ack.
const seqWait = 5 * time.Second

func (s *Server) publish(w http.ResponseWriter, r *http.Request, b *Backend) {
	topic, err := topicName(r, true)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	data, err := readBody(r, maxPublish, "message", errcode.PayloadTooLarge, "message over NATS's 1 MiB max payload")
	if err != nil {
		errcode.Write(w, err)
		return
	}
	seq, err := publishSeq(r.Context(), b.Log, topic, data)
	if err != nil {
		errcode.Write(w, fmt.Errorf("publish to %s: %w", topic, err))
		return
	}
	if seq == 0 {
		s.log.WarnContext(r.Context(), "message published, but its sequence could not be read back", "topic", topic)
	}
	errcode.WriteJSON(w, http.StatusCreated, Published{Topic: topic, Sequence: seq, Bytes: len(data)})
}

// publishSeq publishes data to a topic and returns the sequence it was
// stored at. Where the broker's publish ack does not carry it (NATS
// Streaming's does not: Publish returns 0), it reads the message back: the first message with the same bytes stored after a
// subscription made before publishing. That is exact unless another
// client publishes the same bytes to the topic at the same moment (then
// it is the sequence of one of those copies). 0 means it was not read
// back within seqWait (the connection was lost and restored meanwhile);
// the message is stored all the same.
func publishSeq(ctx context.Context, conn eventlog.Log, topic string, data []byte) (uint64, error) {
	if conn.Features().Sequences {
		// the broker's acknowledgement carries it (JetStream): no reading
		// back, which on JetStream is a consumer made and removed per
		// publish (a burst of them ran into the server's consumer limit)
		return conn.Publish(ctx, topic, eventlog.Message{Data: data})
	}
	found := make(chan uint64, 1)
	sub, err := conn.Subscribe(topic, eventlog.SubOptions{Start: eventlog.New, MaxInflight: readInflight}, func(m *eventlog.Msg) {
		if bytes.Equal(m.Data, data) {
			select {
			case found <- m.Sequence:
			default:
			}
		}
	})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	seq, err := conn.Publish(ctx, topic, eventlog.Message{Data: data})
	if err != nil || seq != 0 {
		return seq, err
	}
	wait := time.NewTimer(seqWait)
	defer wait.Stop()
	select {
	case seq := <-found:
		return seq, nil
	case <-wait.C:
		return 0, nil
	case <-ctx.Done():
		return 0, nil
	}
}

// readInflight bounds the messages a reading subscription is sent ahead
// of its client: messages are up to 1 MiB, and a client may read slowly.
const readInflight = 16

// tail streams a topic's messages: new ones, all stored with
// from_start=true, or the last N stored with tail=N (then new ones); it
// ends after count messages or when timeout passes. sluice.catalog's env
// values are masked.
func (s *Server) tail(w http.ResponseWriter, r *http.Request, b *Backend) {
	topic, err := topicName(r, false)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	q := r.URL.Query()
	count := 0
	if v := q.Get("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 0 {
			errcode.Write(w, fmt.Errorf("%w: count %q: want a number", catalog.ErrInvalid, v))
			return
		}
	}
	last, err := tailParam(r, 0)
	if err != nil {
		errcode.Write(w, err)
		return
	}
	fromStart, err := boolParam(r, "from_start")
	if err != nil {
		errcode.Write(w, err)
		return
	}
	if fromStart && last > 0 {
		errcode.Write(w, fmt.Errorf("%w: give from_start or tail, not both", catalog.ErrInvalid))
		return
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errcode.Write(w, fmt.Errorf("%w: timeout %q: want a duration like 10s", catalog.ErrInvalid, v))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	start := eventlog.New
	if fromStart {
		start = eventlog.First
	}
	var lastSub eventlog.Subscription
	lastSeq := make(chan uint64, 1)
	if last > 0 {
		// where the last N start: after the sequence of the last message
		// (which comes when one is published, if the topic is empty)
		lastSub, err = b.Log.Subscribe(topic, eventlog.SubOptions{Start: eventlog.Last, MaxInflight: 1}, func(m *eventlog.Msg) {
			select {
			case lastSeq <- m.Sequence:
			default:
			}
		})
		if err != nil {
			errcode.Write(w, fmt.Errorf("tail %s: %w", topic, err))
			return
		}
		defer lastSub.Close()
	}
	msgs := make(chan TopicMessage, readInflight/4)
	subscribe := func(start eventlog.Start) (eventlog.Subscription, error) {
		return b.Log.Subscribe(topic, eventlog.SubOptions{Start: start, MaxInflight: readInflight}, func(m *eventlog.Msg) {
			data := m.Data
			if topic == catalog.Channel {
				data = maskCatalogEvent(data)
			}
			select {
			case msgs <- TopicMessage{Sequence: m.Sequence, Time: m.Time.UTC(), Redelivered: m.Redelivered(), Data: data}:
			case <-ctx.Done():
			}
		})
	}
	var sub eventlog.Subscription
	if last == 0 {
		if sub, err = subscribe(start); err != nil {
			errcode.Write(w, fmt.Errorf("tail %s: %w", topic, err))
			return
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	if last > 0 {
		select {
		case seq := <-lastSeq:
			lastSub.Close()
			from, err := tailStart(ctx, b.Log, topic, seq, last)
			if err != nil {
				if ctx.Err() == nil {
					_ = json.NewEncoder(w).Encode(errcode.Body{Error: fmt.Sprintf("tail %s: %v", topic, err), Code: errcode.Unavailable})
				}
				return
			}
			start = eventlog.At(from)
		case <-ctx.Done():
			return
		}
		if sub, err = subscribe(start); err != nil {
			_ = json.NewEncoder(w).Encode(errcode.Body{Error: fmt.Sprintf("tail %s: %v", topic, err), Code: errcode.Unavailable})
			return
		}
	}
	defer sub.Close()
	enc := json.NewEncoder(w)
	for n := 0; count == 0 || n < count; n++ {
		select {
		case m := <-msgs:
			if enc.Encode(m) != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		case <-ctx.Done():
			return
		}
	}
}

// tailStart returns the sequence of the first of the last n messages of a
// topic, up to sequence last (which is stored), or of its first message
// if it holds fewer. A topic's sequences may have gaps (eventlog), so it
// counts the messages back from last in windows of sequences, the first n
// wide and each further one 4 times wider, rather than computing
// last-n+1.
func tailStart(ctx context.Context, conn eventlog.Log, topic string, last uint64, n int) (uint64, error) {
	var seqs []uint64 // of the messages counted, oldest first
	hi := last + 1    // the window is [lo, hi)
	for w := uint64(n); ; w *= 4 {
		lo := uint64(1)
		if hi > w {
			lo = hi - w
		}
		got, err := windowSeqs(ctx, conn, topic, lo, hi)
		if err != nil {
			return 0, err
		}
		seqs = append(got, seqs...)
		if len(seqs) >= n {
			return seqs[len(seqs)-n], nil
		}
		if lo == 1 {
			return 1, nil
		}
		hi = lo
	}
}

// windowSeqs returns the sequences of a topic's messages in [lo, hi),
// where a message at hi or later is stored.
func windowSeqs(ctx context.Context, conn eventlog.Log, topic string, lo, hi uint64) ([]uint64, error) {
	var (
		mu   sync.Mutex
		seqs []uint64
		done = make(chan struct{})
	)
	sub, err := conn.Subscribe(topic, eventlog.SubOptions{Start: eventlog.At(lo), MaxInflight: readInflight}, func(m *eventlog.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if m.Sequence < hi {
			seqs = append(seqs, m.Sequence)
		}
		if m.Sequence >= hi-1 {
			select {
			case <-done:
			default:
				close(done)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	return seqs, nil
}

// maskCatalogEvent masks the env values of a catalog event (a
// FunctionDeployed event carries them): what the API shows of the
// catalog channel shows no secret. Other events are left as they are.
func maskCatalogEvent(data []byte) []byte {
	var ev catalog.Event
	if json.Unmarshal(data, &ev) != nil || ev.Function == nil || len(ev.Function.Config.Env) == 0 {
		return data
	}
	ev.Function.Config.Env = maskEnv(ev.Function.Config.Env)
	masked, err := json.Marshal(ev)
	if err != nil {
		return []byte(`{"error": "a catalog event that cannot be shown masked"}`)
	}
	return masked
}
