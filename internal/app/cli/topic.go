package cli

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/app/client"
)

func topicCommands(e *env) []*cobra.Command {
	return []*cobra.Command{topicList(e), topicPublish(e), topicTail(e), topicDeadLetters(e), topicRedrive(e)}
}

func topicList(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "list",
		Short: "list the topics with their message counts and last sequences",
		Long: `List every topic the broker holds (not sluice's own streams, under sluice.),
with how many messages it holds and the sequence of its last one. On NATS
Streaming the daemon reads them from its embedded server; with --nats
(an external server) it cannot, and says so.`,
		Example: `  sluice topic list
  sluice topic list -o json`,
	})
	cf := addClientFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ts, err := cf.client().Topics(e.ctx)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, ts)
		}
		rows := make([][]string, 0, len(ts))
		for _, t := range ts {
			rows = append(rows, []string{t.Name, strconv.FormatUint(t.Messages, 10), strconv.FormatUint(t.Last, 10)})
		}
		return table(e.stdout, []string{"TOPIC", "MESSAGES", "LAST"}, rows)
	}
	return cmd
}

func topicPublish(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "publish TOPIC",
		Short: "publish a message to a NATS Streaming topic; prints its sequence",
		Long: `Publish a message to a NATS Streaming topic, from --data, --file or stdin, and
print the sequence NATS Streaming stored it at (with -o json, an object with
the topic and the sequence).`,
		Example: `  sluice topic publish names --data Ada
  seq=$(sluice topic publish images --file photo.jpg)`,
	}, arg("TOPIC", "the topic (channel); those under sluice. are sluice's own"))
	cf := addClientFlags(cmd, true)
	in := addInputFlags(cmd.Flags(), "the message, as a string")
	cmd.ValidArgsFunction = cobra.NoFileCompletions
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		msg, _, err := in.read(e, cmd.Flags())
		if err != nil {
			return err
		}
		seq, err := cf.client().PublishSeq(e.ctx, args[0], msg)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, struct {
				Topic    string `json:"topic"`
				Sequence uint64 `json:"sequence"`
			}{args[0], seq})
		}
		if seq == 0 {
			// published all the same: failing would invite a duplicate
			fmt.Fprintln(e.stderr, "sluice: published; the daemon did not say at which sequence (it is older than this command)")
			return nil
		}
		_, err = fmt.Fprintln(e.stdout, seq)
		return err
	}
	return cmd
}

func topicTail(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "tail TOPIC",
		Short: "print a topic's messages, one payload per line",
		Long: `Print a topic's messages as they arrive, one payload per line: new ones, or
first the last --tail stored ones, or every stored one with --from-start.
On a terminal, control characters in payloads are shown as escapes. With
-o json, one JSON object per line: sequence, time, redelivered and data
(base64).`,
		Example: `  # the next two results, or fail after 20s
  sluice topic tail greetings --count 2 --timeout 20s

  # the last 10 stored messages, then new ones
  sluice topic tail orders --tail 10 -o json`,
	}, arg("TOPIC", "the topic (channel); sluice.catalog shows sluice's own event log"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	streamOutput(cmd)
	fromStart := fs.Bool("from-start", false, "start with the oldest stored message")
	last := fs.Int("tail", 0, "start with the last N stored messages (default: new ones only)")
	count := fs.IntP("count", "n", 0, "stop after this many messages (default: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after this long (default: never)")
	cmd.ValidArgsFunction = cobra.NoFileCompletions
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case *count < 0:
			return usagef("--count must not be negative")
		case *last < 0:
			return usagef("--tail must not be negative")
		case *last > 0 && *fromStart:
			return usagef("give --tail or --from-start, not both")
		case *timeout < 0:
			return usagef("--timeout must not be negative")
		}
		n := 0
		err := cf.client().Tail(e.ctx, args[0], client.TailOptions{FromStart: *fromStart, Last: *last, Count: *count, Timeout: *timeout}, func(m api.TopicMessage) error {
			n++
			if cf.json() {
				return printNDJSON(e.stdout, m)
			}
			return e.writeData(append(m.Data, '\n'))
		})
		if err != nil && !errors.Is(err, e.ctx.Err()) {
			return err
		}
		if *count > 0 && n < *count {
			return fmt.Errorf("got %d of %d messages before the timeout", n, *count)
		}
		return nil
	}
	return cmd
}
