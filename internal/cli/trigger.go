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
	{"create", "bind a function or a workflow to HTTP requests, a topic or a schedule", triggerCreate},
	{"list", "list triggers", triggerList},
	{"get", "show a trigger", triggerGet},
	{"delete", "delete a trigger", triggerDelete},
}

func triggerCreate(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("trigger create", &cf, e)
	var ts triggerSettings
	fs.StringVar(&ts.fn, "fn", "", "the function to call")
	fs.StringVar(&ts.workflow, "workflow", "", "the workflow to invoke instead of a function (with the event as its input)")
	fs.StringVar(&ts.httpPath, "http-path", "", "HTTP trigger: serve the function at /fn + this path, e.g. /hello")
	fs.StringVar(&ts.method, "method", "", "HTTP trigger: accept only this method (default: any)")
	fs.StringVar(&ts.topic, "topic", "", "message-queue trigger: call the function once per message on this NATS Streaming topic")
	fs.StringVar(&ts.respTopic, "resp-topic", "", "publish each output to this topic (queue and timer triggers)")
	fs.StringVar(&ts.errorTopic, "error-topic", "", "queue trigger: publish messages that failed every attempt here, with the error")
	maxRetries := fs.Int("max-retries", catalog.DefaultMaxRetries, "queue trigger: redeliveries of a failed message before it is dead-lettered")
	fs.IntVar(&ts.maxInflight, "max-inflight", catalog.DefaultMaxInflight, "queue trigger: messages processed at once, per daemon")
	ackWait := fs.Duration("ack-wait", time.Duration(catalog.DefaultAckWait), "queue trigger: how long before an unacked message is redelivered")
	fs.StringVar(&ts.cron, "cron", "", `timer trigger: a cron schedule in UTC ("*/5 * * * *") or "@every 10s"`)
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	ts.maxRetries, ts.ackWait = maxRetries, ackWait.String()
	req, err := ts.request(rest[0], flagNames)
	if err != nil {
		return err
	}
	t, err := cf.client().CreateTrigger(e.ctx, req)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, t)
	}
	fmt.Fprintf(e.stdout, "created trigger %s: %s -> %s\n", t.Name, describeTrigger(t), target(t))
	return nil
}

// triggerSettings are a trigger's settings as trigger create and apply
// take them.
type triggerSettings struct {
	fn, workflow                 string
	httpPath, method             string
	topic, respTopic, errorTopic string
	maxRetries                   *int   // nil: the default
	maxInflight                  int    // 0: the default
	ackWait                      string // "": the default
	cron                         string
}

// namer names a setting in messages: as a flag (--http-path) or a spec
// field (http_path).
type namer func(setting string) string

func flagNames(setting string) string { return "--" + setting }

func fieldNames(setting string) string { return strings.ReplaceAll(setting, "-", "_") }

// request checks the settings' shape (a target, one kind) and returns the
// request that creates the trigger; the daemon checks the rest.
func (ts *triggerSettings) request(name string, n namer) (api.TriggerRequest, error) {
	req := api.TriggerRequest{Name: name, Function: ts.fn, Workflow: ts.workflow}
	switch {
	case ts.fn == "" && ts.workflow == "":
		return req, usagef("trigger %s: give the function (%s) or the workflow (%s) it runs", name, n("fn"), n("workflow"))
	case ts.fn != "" && ts.workflow != "":
		return req, usagef("trigger %s: give %s or %s, not both", name, n("fn"), n("workflow"))
	}
	kinds := 0
	if ts.httpPath != "" {
		kinds++
		req.HTTP = &catalog.HTTPSpec{Path: ts.httpPath, Method: strings.ToUpper(ts.method)}
	}
	if ts.topic != "" {
		kinds++
		req.Queue = &api.QueueRequest{Topic: ts.topic, RespTopic: ts.respTopic, ErrorTopic: ts.errorTopic,
			MaxRetries: ts.maxRetries, MaxInflight: ts.maxInflight, AckWait: ts.ackWait}
	}
	if ts.cron != "" {
		kinds++
		req.Cron = &catalog.CronSpec{Schedule: ts.cron, RespTopic: ts.respTopic}
	}
	switch {
	case kinds == 0:
		return req, usagef("trigger %s: give the trigger's kind: %s, %s or %s", name, n("http-path"), n("topic"), n("cron"))
	case kinds > 1:
		return req, usagef("trigger %s: give one of %s, %s and %s", name, n("http-path"), n("topic"), n("cron"))
	}
	return req, nil
}

// target names what a trigger runs: a function, or "workflow NAME".
func target(t catalog.Trigger) string {
	if t.Workflow != "" {
		return "workflow " + t.Workflow
	}
	return t.Function
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
		rows = append(rows, []string{t.Name, t.Kind(), target(t), describeTrigger(t), ago(t.Created)})
	}
	return table(e.stdout, []string{"NAME", "KIND", "TARGET", "ON", "CREATED"}, rows)
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
	runs, what := "function:", t.Function
	if t.Workflow != "" {
		runs, what = "workflow:", t.Workflow
	}
	fmt.Fprintf(e.stdout, "name:      %s\nkind:      %s\n%-10s %s\non:        %s\ncreated:   %s\n", t.Name, t.Kind(), runs, what, describeTrigger(t.Trigger), ago(t.Created))
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
