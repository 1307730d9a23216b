package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/app/client"
)

// Shell completion of names: what the daemon at --server has. The shell
// scripts come from cobra (sluice completion bash|zsh|fish); they run
// `sluice __complete ARGS...`, which lands here.

// completeTimeout bounds how long a completion waits for the daemon: a
// shell must not hang on a daemon that does not answer (it then offers
// nothing).
const completeTimeout = 2 * time.Second

// lister lists names of one kind on a daemon.
type lister func(ctx context.Context, c *client.Client) ([]string, error)

func functionNames(ctx context.Context, c *client.Client) ([]string, error) {
	fns, err := c.Functions(ctx)
	out := make([]string, len(fns))
	for i, f := range fns {
		out[i] = f.Name
	}
	return out, err
}

func workflowNames(ctx context.Context, c *client.Client) ([]string, error) {
	wfs, err := c.Workflows(ctx)
	out := make([]string, len(wfs))
	for i, w := range wfs {
		out[i] = w.Name
	}
	return out, err
}

func triggerNames(ctx context.Context, c *client.Client) ([]string, error) {
	ts, err := c.Triggers(ctx)
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out, err
}

func invocationIDs(ctx context.Context, c *client.Client) ([]string, error) {
	invs, err := c.ListInvocations(ctx, client.InvocationFilter{Limit: 50})
	out := make([]string, len(invs))
	for i, inv := range invs {
		out[i] = inv.ID
	}
	return out, err
}

// completeFirst completes a command's first argument with names from the
// daemon, and nothing after it.
func completeFirst(cf *clientFlags, list lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeNames(cmd, cf, list, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFlag completes a flag's value with names from the daemon.
func completeFlag(cf *clientFlags, list lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return completeNames(cmd, cf, list, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNames lists the names that start with prefix; nothing if the
// daemon cannot be asked. Only well-formed names are offered: the shell
// must not be handed text that could break its line.
func completeNames(cmd *cobra.Command, cf *clientFlags, list lister, prefix string) []cobra.Completion {
	tok, err := resolveToken(cmd.Flags(), cf.token, cf.tokenFile)
	if err != nil {
		return nil
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	names, _ := list(ctx, client.New(cf.server, tok))
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && wellFormed(n) {
			out = append(out, n)
		}
	}
	return out
}

// wellFormed reports whether a name is one the catalog accepts or an
// invocation id: letters, digits, '-', '_' and '.'.
func wellFormed(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// completeFiles completes a file argument with files of these extensions.
func completeFiles(exts ...string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return exts, cobra.ShellCompDirectiveFilterFileExt
	}
}
