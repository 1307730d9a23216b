package cli

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/catalog"
	"github.com/sluicehq/sluice/triggers"
)

var triggerCommands = []command{
	{"create", "bind a function to HTTP requests", triggerCreate},
	{"list", "list triggers", triggerList},
	{"get", "show a trigger", triggerGet},
	{"delete", "delete a trigger", triggerDelete},
}

func triggerCreate(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("trigger create", &cf, e)
	fn := fs.String("fn", "", "the function to call")
	path := fs.String("http-path", "", "serve the function at /fn + this path, e.g. /hello")
	method := fs.String("method", "", "accept only this HTTP method (default: any)")
	rest, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	if *fn == "" {
		return usagef("trigger create: --fn is required")
	}
	if *path == "" {
		return usagef("trigger create: give the trigger's kind: --http-path")
	}
	req := api.TriggerRequest{Name: rest[0], Function: *fn, HTTP: &catalog.HTTPSpec{Path: *path, Method: strings.ToUpper(*method)}}
	t, err := cf.client().CreateTrigger(e.ctx, req)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(e.stdout, t)
	}
	fmt.Fprintf(e.stdout, "created trigger %s: %s %s%s -> %s\n", t.Name, methodOrAny(t.HTTP.Method), triggers.HTTPPrefix, t.HTTP.Path, t.Function)
	return nil
}

func methodOrAny(m string) string {
	if m == "" {
		return "ANY"
	}
	return m
}

func describeTrigger(t catalog.Trigger) string {
	switch {
	case t.HTTP != nil:
		return methodOrAny(t.HTTP.Method) + " " + triggers.HTTPPrefix + t.HTTP.Path
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
	ts, err := cf.client().Triggers(e.ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Name == rest[0] {
			if cf.output == "json" {
				return printJSON(e.stdout, t)
			}
			fmt.Fprintf(e.stdout, "name:      %s\nkind:      %s\nfunction:  %s\non:        %s\ncreated:   %s\n", t.Name, t.Kind(), t.Function, describeTrigger(t), ago(t.Created))
			return nil
		}
	}
	return fmt.Errorf("no trigger %q", rest[0])
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
