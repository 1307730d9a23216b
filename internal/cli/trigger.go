package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/triggers"
)

var triggerCommands = []command{
	{"create", "bind a function to HTTP requests, a topic or a schedule", triggerCreate},
	{"list", "list triggers", triggerList},
	{"get", "show a trigger", triggerGet},
	{"delete", "delete a trigger", triggerDelete},
}

func triggerCreate(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("trigger create", &cf, e)
	fn := fs.String("fn", "", "the function to call")
	path := fs.String("http-path", "", "HTTP trigger: serve the function at /fn + this path, e.g. /hello")
	method := fs.String("method", "", "HTTP trigger: accept only this method (default: any)")
	topic := fs.String("topic", "", "message-queue trigger: call the function once per message on this NATS Streaming topic")
	respTopic := fs.String("resp-topic", "", "publish each output to this topic (queue and timer triggers)")
	errorTopic := fs.String("error-topic", "", "queue trigger: publish messages that failed every attempt here, with the error")
	maxRetries := fs.Int("max-retries", 3, "queue trigger: redeliveries of a failed message before it is dead-lettered")
	maxInflight := fs.Int("max-inflight", 16, "queue trigger: messages processed at once, per daemon")
	ackWait := fs.Duration("ack-wait", 30*time.Second, "queue trigger: how long before an unacked message is redelivered")
	cron := fs.String("cron", "", `timer trigger: a cron schedule in UTC ("*/5 * * * *") or "@every 10s"`)
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if *fn == "" {
		return usagef("trigger create: --fn is required")
	}
	req := api.TriggerRequest{Name: rest[0], Function: *fn}
	kinds := 0
	if *path != "" {
		kinds++
		req.HTTP = &catalog.HTTPSpec{Path: *path, Method: strings.ToUpper(*method)}
	}
	if *topic != "" {
		kinds++
		req.Queue = &api.QueueRequest{Topic: *topic, RespTopic: *respTopic, ErrorTopic: *errorTopic,
			MaxRetries: maxRetries, MaxInflight: *maxInflight, AckWait: ackWait.String()}
	}
	if *cron != "" {
		kinds++
		req.Cron = &catalog.CronSpec{Schedule: *cron, RespTopic: *respTopic}
	}
	switch {
	case kinds == 0:
		return usagef("trigger create: give the trigger's kind: --http-path, --topic or --cron")
	case kinds > 1:
		return usagef("trigger create: give one of --http-path, --topic and --cron")
	}
	t, err := cf.client().CreateTrigger(e.ctx, req)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, t)
	}
	fmt.Fprintf(e.stdout, "created trigger %s: %s -> %s\n", t.Name, describeTrigger(t), t.Function)
	return nil
}

func methodOrAny(m string) string {
	if m == "" {
		return "ANY"
	}
	return m
}

func describeTrigger(t catalog.Trigger) string {
	var on string
	switch {
	case t.HTTP != nil:
		return methodOrAny(t.HTTP.Method) + " " + triggers.HTTPPrefix + t.HTTP.Path
	case t.Queue != nil:
		q := t.Queue
		on = "topic " + q.Topic
		if q.RespTopic != "" {
			on += ", results to " + q.RespTopic
		}
		if q.ErrorTopic != "" {
			on += ", dead letters to " + q.ErrorTopic
		}
		return fmt.Sprintf("%s (retries %d, in flight %d, ack wait %s)", on, q.MaxRetries, q.MaxInflight, time.Duration(q.AckWait))
	case t.Cron != nil:
		on = "cron " + t.Cron.Schedule + " (UTC)"
		if t.Cron.RespTopic != "" {
			on += ", results to " + t.Cron.RespTopic
		}
		return on
	}
	return "-"
}

func triggerList(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("trigger list", &cf, e)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	ts, err := cf.client().Triggers(e.ctx)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, ts)
	}
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, []string{t.Name, t.Kind(), t.Function, describeTrigger(t), ago(t.Created)})
	}
	return table(e.stdout, []string{"NAME", "KIND", "FUNCTION", "ON", "CREATED"}, rows)
}

func triggerGet(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("trigger get", &cf, e)
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	t, err := cf.client().Trigger(e.ctx, rest[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, t)
	}
	fmt.Fprintf(e.stdout, "name:      %s\nkind:      %s\nfunction:  %s\non:        %s\ncreated:   %s\n", t.Name, t.Kind(), t.Function, describeTrigger(t.Trigger), ago(t.Created))
	if s := t.Stats; s != nil {
		fmt.Fprintf(e.stdout, "here:      %d delivered (%d redelivered), %d succeeded, %d failed, %d dead-lettered, %d in flight\n",
			s.Delivered, s.Redelivered, s.Succeeded, s.Failed, s.DeadLettered, s.InFlight)
	}
	return nil
}

func triggerDelete(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("trigger delete", &cf, e)
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if err := cf.client().DeleteTrigger(e.ctx, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "deleted trigger %s\n", rest[0])
	return nil
}
