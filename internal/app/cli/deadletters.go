package cli

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/app/api"
	"github.com/sluicehq/sluice/internal/redrive"
)

func topicDeadLetters(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "dead-letters ERROR_TOPIC",
		Short: "list the dead letters on an error topic, with whether each was redriven",
		Long: fmt.Sprintf(`List the dead letters a queue trigger published to its --error-topic, oldest
first: the letter's sequence on the error topic, the source topic and
sequence, the function (or workflow), the redeliveries, the error, the first
%d bytes of the payload, and whether it was redriven (when, by which
request, to which topic). --limit letters are shown (at most %d); a further
page starts with --after the last sequence shown (the command says so).
With -o json, the daemon's page as it is (payload_text, or payload_base64
for binary payloads).`, api.PreviewBytes, api.MaxDeadLetters),
		Example: `  sluice topic dead-letters jobs.dead
  sluice topic dead-letters jobs.dead --after 120 --limit 20 -o json`,
	}, arg("ERROR_TOPIC", "the trigger's --error-topic"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	limit := fs.Int("limit", api.DefaultDeadLetters, fmt.Sprintf("show at most this many letters (1 to %d)", api.MaxDeadLetters))
	after := fs.Uint64("after", 0, "show the letters after this sequence of the error topic")
	cmd.ValidArgsFunction = cobra.NoFileCompletions
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *limit < 1 || *limit > api.MaxDeadLetters {
			return usagef("--limit must be from 1 to %d", api.MaxDeadLetters)
		}
		page, err := cf.client().DeadLetters(e.ctx, args[0], *after, *limit)
		if err != nil {
			return err
		}
		if cf.json() {
			return printJSON(e.stdout, page)
		}
		rows := make([][]string, 0, len(page.Letters))
		for _, l := range page.Letters {
			what := l.Function
			if l.Workflow != "" {
				what = "workflow " + l.Workflow
			}
			payload := l.PayloadText
			if l.PayloadBase64 != "" {
				payload = "base64:" + l.PayloadBase64
			}
			if l.PayloadTruncated {
				payload += "..."
			}
			errText := l.Error
			if l.Problem != "" {
				errText = l.Problem
			}
			rows = append(rows, []string{strconv.FormatUint(l.Sequence, 10), l.Time.Format(time.RFC3339),
				fmt.Sprintf("%s:%d", l.SourceTopic, l.SourceSequence), what, strconv.Itoa(int(l.Redeliveries)),
				redriveState(l.Redrive), errText, payload})
		}
		if err := table(e.stdout, []string{"SEQ", "TIME", "SOURCE", "FUNCTION", "REDELIVERIES", "REDRIVEN", "ERROR", "PAYLOAD"}, rows); err != nil {
			return err
		}
		if page.Next > 0 {
			fmt.Fprintf(e.stderr, "sluice: more letters: sluice topic dead-letters %s --after %d\n", args[0], page.Next)
		}
		return nil
	}
	return cmd
}

// redriveState says in a table cell whether a letter was redriven.
func redriveState(st *redrive.State) string {
	switch {
	case st == nil || st.Claim == nil:
		return "no"
	case st.Done:
		return fmt.Sprintf("to %s at %s", st.Claim.To, st.DoneAt.Format(time.RFC3339))
	}
	return fmt.Sprintf("pending since %s", st.Claim.At.Format(time.RFC3339))
}

func topicRedrive(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "redrive ERROR_TOPIC (--seq N... | --all)",
		Short: "publish dead letters back to their source topic, once",
		Long: `Publish the payloads of dead letters back to the topic they failed on (or
--to another), so that their trigger runs them again, e.g. after the
function was fixed. --seq picks letters by their sequence on the error topic
(sluice topic dead-letters lists them); --all takes every letter not yet
redriven.

Each redrive is recorded on the broker before its payload is published, so a
letter is never redriven twice by accident, by one daemon or by several at
once: a letter redriven already is refused (naming when and by which
request) unless --force. A redrive cut short (a crash, the broker out of
reach) leaves its letter pending; the next redrive after the pending claim's
lease completes it, publishing the payload only if it was not published.
Prints one line per letter: redriven, skipped (and why) or failed; exits 1
if any failed, and with the daemon's 409 if every letter given by --seq was
redriven already.`,
		Example: `  sluice topic redrive jobs.dead --seq 3 --seq 7
  sluice topic redrive jobs.dead --all --to jobs.retry
  sluice topic redrive jobs.dead --seq 3 --force     # once more`,
	}, arg("ERROR_TOPIC", "the trigger's --error-topic"))
	cf := addClientFlags(cmd, true)
	fs := cmd.Flags()
	seqs := fs.UintSlice("seq", nil, "the sequence of a letter on the error topic (repeat, or comma-separate)")
	all := fs.Bool("all", false, "redrive every letter not yet redriven")
	to := fs.String("to", "", "publish to this topic instead of each letter's source topic")
	force := fs.Bool("force", false, "redrive letters already redriven once more (with --seq)")
	cmd.ValidArgsFunction = cobra.NoFileCompletions
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *all == (len(*seqs) > 0) {
			return usagef("give --seq N (one or more) or --all")
		}
		req := api.RedriveRequest{Sequences: make([]uint64, len(*seqs)), All: *all, To: *to, Force: *force}
		for i, n := range *seqs {
			req.Sequences[i] = uint64(n)
		}
		total := redrive.Result{Redriven: []redrive.Redriven{}, Skipped: []redrive.Skipped{}, Failed: []redrive.Failed{}}
		for {
			res, err := cf.client().Redrive(e.ctx, args[0], req)
			if err != nil {
				return err
			}
			total.Redriven = append(total.Redriven, res.Redriven...)
			total.Skipped = append(total.Skipped, res.Skipped...)
			total.Failed = append(total.Failed, res.Failed...)
			if !res.More || len(res.Redriven) == 0 {
				break
			}
		}
		if cf.json() {
			if err := printJSON(e.stdout, total); err != nil {
				return err
			}
		} else {
			for _, r := range total.Redriven {
				line := fmt.Sprintf("%d redriven to %s", r.Sequence, r.To)
				if r.Published > 0 {
					line += fmt.Sprintf(" (sequence %d)", r.Published)
				}
				if r.Found {
					line += "; an earlier redrive cut short had published it: not published again"
				} else if r.Completed {
					line += ", completing an earlier redrive cut short"
				}
				if r.Note != "" {
					line += "; " + r.Note
				}
				fmt.Fprintln(e.stdout, line)
			}
			for _, s := range total.Skipped {
				fmt.Fprintf(e.stdout, "%d skipped: it %s\n", s.Sequence, s.Reason)
			}
			for _, f := range total.Failed {
				fmt.Fprintf(e.stdout, "%d failed: %s\n", f.Sequence, f.Error)
			}
		}
		if len(total.Failed) > 0 {
			return errors.New("some dead letters were not redriven (see above)")
		}
		return nil
	}
	return cmd
}
