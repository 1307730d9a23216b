package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/eventlog"
	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
	"github.com/sluicehq/sluice/internal/app/daemon"
	"github.com/sluicehq/sluice/internal/broker"
	"github.com/sluicehq/sluice/internal/jslog"
	"github.com/sluicehq/sluice/internal/natslog"
)

// Defaults of MQ.
const (
	// DefaultMessages is the burst MQ measures throughput with.
	DefaultMessages = 10000
	// DefaultInflight is a queue trigger's default --max-inflight.
	DefaultInflight = 16
	// DefaultLatencyMessages are sent one at a time for the latency
	// percentiles: a p99 from 500 samples has five above it.
	DefaultLatencyMessages = 500
)

// MQOptions configure MQ.
type MQOptions struct {
	// Client is the daemon's API; NATSURL reaches its broker, where
	// messages are published and results read the way any other
	// application does, and ClusterID is NATS Streaming's cluster id.
	Client    *client.Client
	NATSURL   string
	ClusterID string
	// Broker is the daemon's broker, nats-streaming or jetstream; "" asks
	// the daemon (its /readyz says).
	Broker string
	// Function is the deployed function the trigger calls.
	Function string
	// Inflight is the trigger's --max-inflight (DefaultInflight if 0).
	Inflight int
	// Messages is the burst size (DefaultMessages if 0); Latency the
	// number of messages sent one at a time (DefaultLatencyMessages if 0).
	Messages, Latency int
	// Payload is each message (DefaultInput if nil).
	Payload []byte
	// Progress, if set, is told how far the run is.
	Progress Progress
}

// MQResult is what MQ measured.
type MQResult struct {
	// Trigger and the topics it used.
	Trigger, Topic, RespTopic string
	// Broker is the broker the messages went through.
	Broker string
	// Messages in the burst, the time from its first publication to its
	// last result, and their ratio.
	Messages   int
	Elapsed    time.Duration
	MsgsPerSec float64
	// Latency is publish to result, one message at a time.
	Latency Summary
	Samples []time.Duration
	// Redelivered counts results beyond one per message: messages the
	// server delivered again (at least once), e.g. while the function was
	// still being compiled.
	Redelivered int64
}

// MQ measures a message-queue trigger end to end: a temporary trigger
// on fresh topics calls the function once per message and publishes its
// output to a response topic. Throughput is a burst of Messages published
// at once, from the first publication to the last result received;
// latency is publish (acknowledged by the broker) to result received,
// for Latency messages sent one at a time, since in a burst it would
// only measure the queue. The trigger is deleted afterwards; the topics'
// messages stay in the store.
func MQ(ctx context.Context, o MQOptions) (res *MQResult, err error) {
	if o.Inflight <= 0 {
		o.Inflight = DefaultInflight
	}
	if o.Messages <= 0 {
		o.Messages = DefaultMessages
	}
	if o.Latency <= 0 {
		o.Latency = DefaultLatencyMessages
	}
	if o.Payload == nil {
		o.Payload = DefaultInput
	}
	progress := o.Progress.report
	id := strings.ToLower(nuid.Next()[:10])
	res = &MQResult{Trigger: "sluice-bench-" + id, Topic: "sluice-bench." + id + ".in", RespTopic: "sluice-bench." + id + ".out", Messages: o.Messages}

	if o.Broker == "" {
		if o.Broker, err = daemonBroker(ctx, o.Client); err != nil {
			return nil, err
		}
	}
	res.Broker = o.Broker
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := connectBroker(cctx, o)
	cancel()
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	results := make(chan time.Time, o.Messages+o.Latency+1024)
	var got atomic.Int64
	sub, err := conn.Subscribe(res.RespTopic, eventlog.SubOptions{Start: eventlog.New}, func(*eventlog.Msg) {
		got.Add(1)
		select {
		case results <- time.Now():
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", res.RespTopic, err)
	}
	defer sub.Unsubscribe()

	if _, err := o.Client.CreateTrigger(ctx, api.TriggerRequest{Name: res.Trigger, Function: o.Function,
		Queue: &api.QueueRequest{Topic: res.Topic, RespTopic: res.RespTopic, MaxInflight: o.Inflight}}); err != nil {
		return nil, fmt.Errorf("create trigger %s: %w", res.Trigger, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if derr := o.Client.DeleteTrigger(dctx, res.Trigger); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete trigger %s: %w", res.Trigger, derr))
		}
	}()

	// wait takes n results, or fails if none comes for a while: the
	// function failing, or a trigger that never started.
	wait := func(n int, what string, frac func(int) float64) (last time.Time, err error) {
		const stall = 30 * time.Second
		timer := time.NewTimer(stall)
		defer timer.Stop()
		for i := 0; i < n; i++ {
			select {
			case last = <-results:
				if !timer.Stop() {
					<-timer.C
				}
				timer.Reset(stall)
				if frac != nil && i%256 == 0 {
					progress(frac(i), what)
				}
			case <-timer.C:
				return last, fmt.Errorf("%s: %d of %d results on %s, none for %s (does %q fail? see sluice fn logs %s)",
					what, i, n, res.RespTopic, stall, o.Function, o.Function)
			case <-ctx.Done():
				return last, ctx.Err()
			}
		}
		return last, nil
	}
	var ackErr atomic.Pointer[error]
	publishBurst := func(n int) (time.Time, error) {
		start := time.Now()
		for i := 0; i < n; i++ {
			err := conn.PublishAsync(res.Topic, eventlog.Message{Data: o.Payload}, func(_ uint64, err error) {
				if err != nil {
					ackErr.CompareAndSwap(nil, &err)
				}
			})
			if err != nil {
				return start, fmt.Errorf("publish to %s: %w", res.Topic, err)
			}
		}
		return start, nil
	}

	// Warm-up: connections, the durable subscription, the instances
	// the burst will use, the heaps.
	warm := min(o.Messages, max(200, 8*o.Inflight))
	progress(0, "warm-up")
	if _, err := publishBurst(warm); err != nil {
		return nil, err
	}
	if _, err := wait(warm, "warm-up", nil); err != nil {
		return nil, err
	}

	// Latency, one message at a time.
	res.Samples = make([]time.Duration, 0, o.Latency)
	for i := 0; i < o.Latency; i++ {
		// A result already here is a redelivered earlier message's (at
		// least once), not this one's.
	drain:
		for {
			select {
			case <-results:
			default:
				break drain
			}
		}
		start := time.Now()
		if _, err := conn.Publish(ctx, res.Topic, eventlog.Message{Data: o.Payload}); err != nil {
			return nil, err
		}
		var last time.Time
		for last.Before(start) {
			if last, err = wait(1, "latency", nil); err != nil {
				return nil, err
			}
		}
		res.Samples = append(res.Samples, last.Sub(start))
		if i%16 == 0 {
			progress(0.5*float64(i)/float64(o.Latency), "latency, one message at a time")
		}
	}
	res.Latency = Summarize(res.Samples)

	// Throughput: the burst.
	start, err := publishBurst(o.Messages)
	if err != nil {
		return nil, err
	}
	last, err := wait(o.Messages, "burst", func(i int) float64 { return 0.5 + 0.5*float64(i)/float64(o.Messages) })
	if err != nil {
		return nil, err
	}
	if p := ackErr.Load(); p != nil {
		return nil, fmt.Errorf("publish to %s: %w", res.Topic, *p)
	}
	res.Elapsed = last.Sub(start)
	res.MsgsPerSec = float64(o.Messages) / res.Elapsed.Seconds()
	if extra := got.Load() - int64(warm+o.Latency+o.Messages); extra > 0 {
		res.Redelivered = extra
	}
	return res, nil
}

// mqPubAckWait is how long each publication of a burst may wait for its
// acknowledgement: a burst is published at once and stored one fsync at a
// time, so its last messages wait for all the others (10,000 messages at
// about 1,000 per second on JetStream's file store).
const mqPubAckWait = 5 * time.Minute

// connectBroker connects to the daemon's broker as any application would.
func connectBroker(ctx context.Context, o MQOptions) (eventlog.Log, error) {
	pubs := max(o.Messages, broker.DefaultMaxPubAcksInflight)
	switch o.Broker {
	case daemon.BrokerJetStream:
		l, err := jslog.Connect(ctx, jslog.Options{URL: o.NATSURL, Name: "sluice-bench", MaxPubAcksInflight: pubs, PubAckWait: mqPubAckWait})
		if err != nil {
			return nil, fmt.Errorf("connect to JetStream at %s (set --nats, with the daemon's credentials): %w", broker.Redact(o.NATSURL), err)
		}
		return l, nil
	case daemon.BrokerNATSStreaming:
		l, err := natslog.Connect(ctx, broker.Options{URL: o.NATSURL, ClusterID: o.ClusterID, Name: "sluice-bench", MaxPubAcksInflight: pubs, PubAckWait: mqPubAckWait})
		if err != nil {
			return nil, fmt.Errorf("connect to NATS Streaming at %s (cluster %s; set --nats, with the daemon's credentials, and --cluster-id): %w", broker.Redact(o.NATSURL), o.ClusterID, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("broker %q: want %s or %s", o.Broker, daemon.BrokerNATSStreaming, daemon.BrokerJetStream)
}

// daemonBroker asks the daemon which broker it runs on: its /readyz
// says. A daemon that does not say predates JetStream: NATS Streaming.
func daemonBroker(ctx context.Context, c *client.Client) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base()+"/readyz", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("ask the daemon at %s which broker it runs on: %w", c.Base(), err)
	}
	defer resp.Body.Close()
	var ready struct {
		Broker *daemon.BrokerStatus `json:"broker"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ask the daemon at %s which broker it runs on: GET /readyz answered %s (is it ready?)", c.Base(), resp.Status)
	}
	if ready.Broker == nil || ready.Broker.Broker == "" {
		return daemon.BrokerNATSStreaming, nil
	}
	return ready.Broker.Broker, nil
}
