package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/runner"
)

func newStatusCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the issuer, the provider and whether the setup has drifted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			only, err := runner.ParseOnly(g.only)
			if err != nil {
				return err
			}
			a, err := g.newApp(cmd.Context())
			if err != nil {
				return err
			}
			r := a.runner()
			r.Log = g.logger()
			rep, err := r.Run(cmd.Context(), runner.Plan, only)
			if err != nil {
				return err
			}
			providerARN, err := a.providerARN(cmd.Context())
			if err != nil {
				return err
			}
			st := map[string]any{
				"cluster": a.cfg.ClusterName, "issuer": a.cfg.IssuerURL, "jwksURI": documents.JoinURL(a.cfg.IssuerURL, "keys.json"),
				"provider": providerARN, "audience": a.cfg.Audience, "inSync": !rep.Changed, "drift": rep.Stages,
			}
			if g.output == "json" {
				return writeJSON(g.stdout, st)
			}
			fmt.Fprintf(g.stdout, "cluster:  %s\nissuer:   %s\nprovider: %s\naudience: %s\n", a.cfg.ClusterName, a.cfg.IssuerURL, providerARN, a.cfg.Audience)
			if !rep.Changed {
				fmt.Fprintln(g.stdout, "state:    in sync")
				return nil
			}
			fmt.Fprintln(g.stdout, "state:    drifted (run `irsa apply`):")
			progressPrinterFromReport(g, rep)
			return nil
		},
	}
}

func progressPrinterFromReport(g *globalOptions, rep *runner.Report) {
	p := progressPrinter(g.stdout)
	for _, s := range rep.Stages {
		if len(s.Changes) > 0 {
			p(runner.Event{Stage: s.Name, Mode: runner.Plan, Done: true, Changes: s.Changes})
		}
	}
}
