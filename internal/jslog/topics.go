package jslog

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/eventlog"
)

var _ eventlog.TopicLister = (*Log)(nil)

// Topics lists the users' topics: the subjects of the topics' JetStream
// stream, with their message counts, from one stream info request (the
// client pages through the subjects), and each topic's last sequence from
// a request per topic. sluice's own streams live in other JetStream
// streams (see the layout) and are not listed.
func (l *Log) Topics(ctx context.Context) ([]eventlog.TopicInfo, error) {
	var out []eventlog.TopicInfo
	err := l.retry(ctx, func(ctx context.Context) error {
		out = out[:0]
		s, err := l.js.Stream(ctx, kindTopic.stream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(kindTopic.subjects()))
		if err != nil {
			return err
		}
		for subj, n := range info.State.Subjects {
			t := eventlog.TopicInfo{Name: streamOf(subj), Messages: n}
			m, err := s.GetLastMsgForSubject(ctx, subj)
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				// purged since the info was read
			case err != nil:
				return err
			default:
				t.Last = m.Sequence
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
