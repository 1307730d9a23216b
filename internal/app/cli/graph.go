package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/graph"
)

func graphCommand(e *env) *cobra.Command {
	cmd := withArgs(&cobra.Command{
		Use:   "graph",
		Short: "what feeds what: routes, topics, timers, triggers, functions, workflows",
		Long: `Print the system's graph: HTTP routes, topics and timers feed triggers, which
invoke functions and workflows, whose results and dead letters go to response
and error topics; workflows run functions and child workflows (read from
their current definitions). A workflow task whose target is an expression
is an edge to a "dynamic" node naming those tasks. Topics that only
functions publish to (from their code, which says nothing before it runs)
are nodes without edges, listed from the broker.

-o table (the default) lists the edges, then the nodes without any; -o json
the nodes (with their versions, options and topic counts) and the edges;
-o dot and -o mermaid draw it (render with Graphviz: sluice graph -o dot |
dot -Tsvg > graph.svg, or paste into a Mermaid viewer).`,
		Example: `  sluice graph
  sluice graph -o dot | dot -Tsvg > graph.svg
  sluice graph -o mermaid`,
	})
	cf := addClientFlags(cmd, false)
	output := cmd.Flags().StringP("output", "o", "table", "output format: table, json, dot or mermaid")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{"table", "json", "dot", "mermaid"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c := cf.client()
		switch *output {
		case "dot", "mermaid":
			b, err := c.GraphText(e.ctx, *output)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(b)
			return err
		case "table", "json":
		default:
			return usagef("-o %q: use table, json, dot or mermaid", *output)
		}
		g, err := c.Graph(e.ctx)
		if err != nil {
			return err
		}
		if *output == "json" {
			return printJSON(e.stdout, g)
		}
		for _, w := range g.Warnings {
			fmt.Fprintln(e.stderr, "sluice: "+visible(w))
		}
		return graphTable(e, g)
	}
	return cmd
}

// graphTable lists the edges, then the nodes that have none.
func graphTable(e *env, g *graph.Graph) error {
	linked := map[string]bool{}
	rows := make([][]string, 0, len(g.Edges))
	for _, ed := range g.Edges {
		linked[ed.From], linked[ed.To] = true, true
		via := ""
		if ed.Trigger != "" {
			via = "via " + ed.Trigger
		}
		rows = append(rows, []string{ed.From, string(ed.Kind), ed.To, via})
	}
	for _, n := range g.Nodes {
		if !linked[n.ID] {
			rows = append(rows, []string{n.ID, "", "", nodeNote(n)})
		}
	}
	return table(e.stdout, []string{"FROM", "EDGE", "TO", ""}, rows)
}

// nodeNote says what a node without edges is.
func nodeNote(n *graph.Node) string {
	switch {
	case n.Topic != nil && n.Topic.Stored:
		return "no trigger; " + strconv.FormatUint(n.Topic.Messages, 10) + " messages"
	case n.Workflow != nil && n.Workflow.Error != "":
		return n.Workflow.Error
	}
	return "no edges"
}
