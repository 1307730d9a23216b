package cli

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/internal/api"
)

var topicCommands = []command{
	{"publish", "publish a message to a NATS Streaming topic", topicPublish},
	{"tail", "print a topic's messages, one payload per line", topicTail},
}

func topicPublish(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("topic publish", &cf, e)
	data := fs.StringP("data", "d", "", "the message, as a string")
	file := fs.StringP("file", "f", "", "read the message from a file (- for stdin)")
	rest, err := parse(fs, args, "TOPIC")
	if err != nil {
		return err
	}
	msg, err := readInput(e, data, fs.Changed("data"), *file)
	if err != nil {
		return err
	}
	return cf.client().Publish(e.ctx, rest[0], msg)
}

func topicTail(e *env, args []string) error {
	var cf clientFlags
	fs := newFlags("topic tail", &cf, e)
	fromStart := fs.Bool("from-start", false, "start with the oldest stored message instead of new ones")
	count := fs.IntP("count", "n", 0, "stop after this many messages (default: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after this long (default: never)")
	rest, err := parse(fs, args, "TOPIC")
	if err != nil {
		return err
	}
	if *count < 0 {
		return usagef("--count must not be negative")
	}
	n := 0
	err = cf.client().Tail(e.ctx, rest[0], *fromStart, *count, *timeout, func(m api.TopicMessage) error {
		n++
		if cf.output == "json" {
			return printJSON(e.stdout, m)
		}
		_, err := fmt.Fprintf(e.stdout, "%s\n", m.Data)
		return err
	})
	if err != nil && !errors.Is(err, e.ctx.Err()) {
		return err
	}
	if *count > 0 && n < *count {
		return fmt.Errorf("got %d of %d messages before the timeout", n, *count)
	}
	return nil
}
