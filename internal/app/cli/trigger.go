package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/triggers"
)

func triggerCommands(e *env) []*cobra.Command {
	return []*cobra.Command{triggerCreate(e), triggerList(e), triggerGet(e), triggerDelete(e)}
}

func triggerCreate(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "create NAME (--fn FN | --workflow WF) (--http-path P | --topic T | --cron S)",
		Short: "bind a function or a workflow to HTTP requests, a topic or a schedule",
		Long: `Bind a function (--fn) or a workflow (--workflow) to one kind of event:
HTTP requests on a route under /fn (--http-path), the messages of a NATS
Streaming topic (--topic; at least once, with retries and a dead-letter
topic), or a schedule (--cron, in UTC).`,
		Example: `  # POST /fn/hello calls the function hello
  sluice trigger create hello-http --fn hello --http-path /hello --method POST

  # GET /fn/users/42 calls users, which reads http.param.id (42)
  sluice trigger create users --fn users --http-path '/users/{id}' --method GET

  # one call per message on "images", results to "thumbs", failures to "images.dead"
  sluice trigger create thumbs --fn resize --topic images --resp-topic thumbs --error-topic images.dead

  # POST /fn/orders/42 invokes the workflow order with the whole request as
  # its input (input.params.id, input.body.items...); an output
  # {status: 201, headers: {...}, body: ...} is the response
  sluice trigger create orders --workflow order --http-path '/orders/{id}' --method POST --http-request

  # a workflow every five minutes
  sluice trigger create nightly --workflow report --cron "*/5 * * * *"`,
	}, arg("NAME", "the trigger's name: "+nameHelp))
	cmd.DisableFlagsInUseLine = true
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	var ts triggerSettings
	fs.StringVar(&ts.fn, "fn", "", "the function to call")
	fs.StringVar(&ts.workflow, "workflow", "", "the workflow to invoke instead of a function (with the event as its input)")
	fs.StringVar(&ts.httpPath, "http-path", "", "HTTP trigger: serve the function at /fn + this route: an exact path (/hello), with parameters (/users/{id}) or a prefix (/api/*)")
	fs.StringVar(&ts.method, "method", "", "HTTP trigger: accept only this method (default: any)")
	fs.BoolVar(&ts.httpRequest, "http-request", false, "HTTP trigger of a workflow: its input is the whole request ({method, path, params, query, headers, body}), and an output {status, headers, body} sets the response")
	fs.StringVar(&ts.topic, "topic", "", "message-queue trigger: call the function once per message on this NATS Streaming topic")
	fs.StringVar(&ts.respTopic, "resp-topic", "", "publish each output to this topic (queue and timer triggers)")
	fs.StringVar(&ts.errorTopic, "error-topic", "", "queue trigger: publish messages that failed every attempt here, with the error")
	maxRetries := fs.Int("max-retries", catalog.DefaultMaxRetries, "queue trigger: redeliveries of a failed message before it is dead-lettered")
	fs.IntVar(&ts.maxInflight, "max-inflight", catalog.DefaultMaxInflight, "queue trigger: messages processed at once, per daemon")
	ackWait := fs.Duration("ack-wait", time.Duration(catalog.DefaultAckWait), "queue trigger: how long before an unacked message is redelivered")
	fs.StringVar(&ts.cron, "cron", "", `timer trigger: a cron schedule in UTC ("*/5 * * * *") or "@every 10s"`)
	_ = cmd.RegisterFlagCompletionFunc("fn", completeFlag(cf, functionNames))
	_ = cmd.RegisterFlagCompletionFunc("workflow", completeFlag(cf, workflowNames))
	cmd.ValidArgsFunction = cobra.NoFileCompletions
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ts.maxRetries, ts.ackWait = maxRetries, ackWait.String()
		req, err := ts.request(args[0], flagNames)
		if err != nil {
			return err
		}
		t, err := cf.client().CreateTrigger(e.ctx, req)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, t)
		}
		fmt.Fprintln(e.stdout, visible(fmt.Sprintf("created trigger %s: %s -> %s", t.Name, describeTrigger(t), target(t))))
		return nil
	}
	return cmd
}

// triggerSettings are a trigger's settings as trigger create and apply
// take them.
type triggerSettings struct {
	fn, workflow                 string
	httpPath, method             string
	httpRequest                  bool
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
		req.HTTP = &catalog.HTTPSpec{Path: ts.httpPath, Method: strings.ToUpper(ts.method), Request: ts.httpRequest}
	} else if ts.httpRequest {
		return req, usagef("trigger %s: %s is an HTTP trigger's: give %s", name, n("http-request"), n("http-path"))
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
		on = methodOrAny(t.HTTP.Method) + " " + triggers.HTTPPrefix + t.HTTP.Path
		if t.HTTP.Request {
			on += " (the whole request as input, the output may set the response)"
		}
		return on
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

func triggerList(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:     "list",
		Short:   "list triggers",
		Example: `  sluice trigger list -o json`,
	})
	cf := addClientFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ts, err := cf.client().Triggers(e.ctx)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, ts)
		}
		rows := make([][]string, 0, len(ts))
		for _, t := range ts {
			rows = append(rows, []string{t.Name, t.Kind(), target(t), describeTrigger(t), ago(t.Created)})
		}
		return table(e.stdout, []string{"NAME", "KIND", "TARGET", "ON", "CREATED"}, rows)
	}
	return cmd
}

func triggerGet(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:     "get NAME",
		Short:   "show a trigger, with this daemon's counters",
		Example: `  sluice trigger get thumbs`,
	}, arg("NAME", "the trigger"))
	cf := addClientFlags(cmd, true)
	cmd.ValidArgsFunction = completeFirst(cf, triggerNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		t, err := cf.client().Trigger(e.ctx, args[0])
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, t)
		}
		runs, what := "function:", t.Function
		if t.Workflow != "" {
			runs, what = "workflow:", t.Workflow
		}
		rows := [][2]string{{"name:", t.Name}, {"kind:", t.Kind()}, {runs, what}, {"on:", describeTrigger(t.Trigger)}, {"created:", ago(t.Created)}}
		if s := t.Stats; s != nil {
			rows = append(rows, [2]string{"here:", fmt.Sprintf("%d delivered (%d redelivered), %d succeeded, %d failed, %d dead-lettered, %d in flight",
				s.Delivered, s.Redelivered, s.Succeeded, s.Failed, s.DeadLettered, s.InFlight)})
		}
		fields(e.stdout, 10, rows)
		return nil
	}
	return cmd
}

func triggerDelete(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:     "delete NAME",
		Short:   "delete a trigger",
		Example: `  sluice trigger delete thumbs`,
	}, arg("NAME", "the trigger"))
	cf := addClientFlags(cmd, false)
	cmd.ValidArgsFunction = completeFirst(cf, triggerNames)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := cf.client().DeleteTrigger(e.ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted trigger %s\n", args[0])
		return nil
	}
	return cmd
}
