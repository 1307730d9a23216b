package natslog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/sluicehq/sluice/eventlog"
)

var _ eventlog.TopicLister = (*Log)(nil)

// channelsPage is how many channel names one request to the server's
// channel list returns: the server's own default limit.
const channelsPage = 1024

// SetChannelsz gives the Log the NATS Streaming server's monitoring
// handler of /streaming/channelsz (broker.Embedded.Channelsz), which
// Topics asks. NATS Streaming's client protocol has no request that lists
// channels, so a Log without it (connected to an external server, whose
// monitoring port sluice is not told) cannot list topics. Call it before
// Topics is used.
func (l *Log) SetChannelsz(h http.Handler) { l.channelsz = h }

// Topics lists the users' topics: the server's channels that are not
// sluice's own (eventlog.OwnStream), each with its message count and last
// sequence. It reads the names a page at a time, then each topic's counts
// (one call per topic, in the process).
func (l *Log) Topics(ctx context.Context) ([]eventlog.TopicInfo, error) {
	if l.channelsz == nil {
		return nil, fmt.Errorf("list topics: %w: NATS Streaming's client protocol cannot list channels, and sluice reads the list from its embedded server only: with --nats, read it from the server's monitoring port (/streaming/channelsz)", eventlog.ErrUnsupported)
	}
	var names []string
	for offset := 0; ; offset += channelsPage {
		var page struct {
			Total int      `json:"total"`
			Names []string `json:"names"`
		}
		q := url.Values{"limit": {strconv.Itoa(channelsPage)}, "offset": {strconv.Itoa(offset)}}
		if err := l.monitor(ctx, q, &page); err != nil {
			return nil, err
		}
		for _, n := range page.Names {
			if !eventlog.OwnStream(n) {
				names = append(names, n)
			}
		}
		if len(page.Names) < channelsPage || offset+len(page.Names) >= page.Total {
			break
		}
	}
	out := make([]eventlog.TopicInfo, 0, len(names))
	for _, n := range names {
		var c struct {
			Msgs    uint64 `json:"msgs"`
			LastSeq uint64 `json:"last_seq"`
		}
		err := l.monitor(ctx, url.Values{"channel": {n}}, &c)
		if errors.Is(err, errNoChannel) {
			continue // gone since the list was read
		}
		if err != nil {
			return nil, err
		}
		out = append(out, eventlog.TopicInfo{Name: n, Messages: c.Msgs, Last: c.LastSeq})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// errNoChannel: the server has no channel by the name asked.
var errNoChannel = errors.New("no such channel")

// monitor asks the server's channel list with query q and decodes its
// JSON answer into v.
func (l *Log) monitor(ctx context.Context, q url.Values, v any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/streaming/channelsz?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	l.channelsz.ServeHTTP(w, r)
	switch {
	case w.status == http.StatusNotFound && q.Has("channel"):
		return errNoChannel
	case w.status != http.StatusOK:
		return fmt.Errorf("list topics: the NATS Streaming server answered %d: %s", w.status, bytes.TrimSpace(w.body.Bytes()))
	}
	if err := json.Unmarshal(w.body.Bytes(), v); err != nil {
		return fmt.Errorf("list topics: the NATS Streaming server's channel list: %w", err)
	}
	return nil
}

// recorder is the http.ResponseWriter of an in-process call to the
// server's monitoring handler.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }
