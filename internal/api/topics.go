package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/internal/httperr"
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

func (s *Server) publish(w http.ResponseWriter, r *http.Request, b *Backend) {
	topic, err := topicName(r, true)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	data, err := readBody(r, maxPublish, "message", "payload_too_large", "message over NATS's 1 MiB max payload")
	if err != nil {
		httperr.Write(w, err)
		return
	}
	if err := b.Conn.Publish(r.Context(), topic, data); err != nil {
		httperr.Write(w, fmt.Errorf("publish to %s: %w", topic, err))
		return
	}
	httperr.WriteJSON(w, http.StatusCreated, map[string]any{"topic": topic, "bytes": len(data)})
}

// tail streams a topic's messages: new ones, or all stored with
// from_start=true; it ends after count messages or when timeout passes.
func (s *Server) tail(w http.ResponseWriter, r *http.Request, b *Backend) {
	topic, err := topicName(r, false)
	if err != nil {
		httperr.Write(w, err)
		return
	}
	q := r.URL.Query()
	count := 0
	if v := q.Get("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 0 {
			httperr.Write(w, fmt.Errorf("%w: count %q: want a number", catalog.ErrInvalid, v))
			return
		}
	}
	ctx := r.Context()
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			httperr.Write(w, fmt.Errorf("%w: timeout %q: want a duration like 10s", catalog.ErrInvalid, v))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	start := broker.StartNew
	if q.Get("from_start") == "true" {
		start = broker.StartAll
	}
	msgs := make(chan TopicMessage, 256)
	sub, err := b.Conn.Subscribe(topic, broker.SubOptions{Start: start}, func(m *broker.Msg) {
		select {
		case msgs <- TopicMessage{Sequence: m.Sequence, Time: time.Unix(0, m.Timestamp).UTC(), Redelivered: m.Redelivered, Data: m.Data}:
		case <-ctx.Done():
		}
	})
	if err != nil {
		httperr.Write(w, fmt.Errorf("tail %s: %w", topic, err))
		return
	}
	defer sub.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
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
