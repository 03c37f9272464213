package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

func newStatusCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the issuer, the provider and whether the setup has drifted",
		Long: `status prints the issuer, the IAM provider, the audience and whether anything drifted from the configuration,
and names the stages it could not check. Exit status, as plan's: 0 in sync, 2 drifted (run irsa apply), 1 on error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			only, err := runner.ParseOnly(g.only)
			if err != nil {
				return err
			}
			env, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := env.Runner(false).Run(cmd.Context(), runner.Plan, only)
			if err != nil {
				return err
			}
			t := env.Target
			providerARN := t.ProviderARN
			st := map[string]any{
				"cluster": t.ClusterName, "issuer": t.Issuer.URL, "jwksURI": t.Issuer.JWKSURL,
				"provider": providerARN, "audience": t.Audience, "inSync": !rep.Changed, "drift": rep.Stages,
			}
			// Drift exits 2, as plan does with changes to make: scripts and CI gate on it.
			drifted := func() error {
				if rep.Changed {
					return &exitError{code: 2}
				}
				return nil
			}
			if g.structured() {
				if err := g.write(st); err != nil {
					return err
				}
				return drifted()
			}
			fmt.Fprintf(g.stdout, "cluster:  %s\nissuer:   %s\nprovider: %s\naudience: %s\n", t.ClusterName, t.Issuer.URL, providerARN, t.Audience)
			var unchecked []string
			for _, st := range rep.Stages {
				if st.Skipped != "" && st.Name != stage.Verify {
					unchecked = append(unchecked, st.Name+" ("+st.Skipped+")")
				}
			}
			switch {
			case rep.Changed:
				fmt.Fprintln(g.stdout, "state:    drifted (run `irsa apply`):")
				for _, st := range rep.Stages {
					if len(st.Changes) > 0 {
						fmt.Fprintf(g.stdout, "  %s:\n", st.Name)
						writeChanges(g.stdout, "    ", st.Changes)
					}
				}
			case len(unchecked) > 0:
				fmt.Fprintln(g.stdout, "state:    in sync where checked")
			default:
				fmt.Fprintln(g.stdout, "state:    in sync")
			}
			for _, u := range unchecked {
				fmt.Fprintf(g.stdout, "not checked: %s\n", u)
			}
			return drifted()
		},
	}
	addTargetFlags(cmd, g)
	addOnlyFlag(cmd, g)
	return cmd
}
