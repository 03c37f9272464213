package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/heal"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
)

func init() { extraCommands = append(extraCommands, newHealCommand) }

func newHealCommand(g *globalOptions) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "heal",
		Short: "Restart the workloads whose pods run without the web identity irsa bound them to",
		Long: `The pod identity webhook fails open: a pod created before the webhook was in the admission path, or before its
ServiceAccount was annotated, runs without AWS credentials. heal finds the running pods of every ServiceAccount irsa
bound that lack AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE or the projected token (what ` + "`irsa doctor --pods`" + ` lists)
and restarts their Deployments, StatefulSets and DaemonSets the way ` + "`kubectl rollout restart`" + ` does. Bare pods and
Jobs are reported, never touched. heal is never part of apply; it asks before restarting (--yes without a terminal).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			cluster, err := setup.LoadCluster(cfg.Kubeconfig, cfg.Context)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			findings, checked, err := heal.Find(ctx, cluster.Client)
			if err != nil {
				return err
			}
			var restarts []string
			seen := map[heal.Owner]bool{}
			for _, f := range findings {
				if f.Owner.Restartable() && !seen[f.Owner] {
					seen[f.Owner] = true
					restarts = append(restarts, "the pods of "+f.Owner.String()+" (restarted like kubectl rollout restart)")
				}
			}
			res := heal.Result{}
			if len(restarts) > 0 {
				if err := g.confirm("irsa heal", restarts, yes); err != nil {
					return err
				}
				if res, err = heal.Restart(ctx, cluster.Client, findings, time.Now()); err != nil {
					return err
				}
			} else {
				res.Untouched = findings
			}
			if g.output == "json" {
				return writeJSON(g.stdout, struct {
					Checked  int            `json:"checked"`
					Findings []heal.Finding `json:"findings"`
					heal.Result
				}{checked, nonNilFindings(findings), res})
			}
			if len(findings) == 0 {
				fmt.Fprintf(g.stdout, "all %d running pod(s) of ServiceAccounts irsa bound have the web identity: nothing to heal\n", checked)
				return nil
			}
			for _, o := range res.Restarted {
				fmt.Fprintf(g.stdout, "~ restarted %s\n", o)
			}
			for _, f := range res.Untouched {
				fmt.Fprintf(g.stdout, "! %s lacks %s: %s\n", f.Pod, strings.Join(f.Missing, ", "), f.Advice())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "restart without asking (needed when stdin is not a terminal)")
	addTargetFlags(cmd, g)
	return cmd
}

func nonNilFindings(f []heal.Finding) []heal.Finding {
	if f == nil {
		return []heal.Finding{}
	}
	return f
}
