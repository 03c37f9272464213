package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/jwkssync"
	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
)

func init() { extraCommands = append(extraCommands, newSyncCommand) }

func newSyncCommand(g *globalOptions) *cobra.Command {
	var retire []string
	var dryRun, yes, install bool
	var schedule string
	cmd := &cobra.Command{
		Use:   "sync [--retire KID]...",
		Short: "Make the published JWKS hold every key the cluster serves, plus the keys retained on purpose",
		Long: `sync publishes the keys the apiserver serves at /openid/v1/jwks (and the key directory's, including a key
staged by rotate-key) in the issuer's JWKS, keeping every key already published: a key the apiserver no longer serves
(a rebuilt cluster's predecessor, a rotation not yet retired) stays until --retire KID removes it. Run it when
` + "`irsa doctor`" + ` says the apiserver signs with a key the JWKS lacks (a kubeadm re-init, a restored control plane, a key
replaced by hand). --retire refuses a key the cluster still serves, and asks first (--yes without a terminal):
tokens signed with a retired key fail in STS with InvalidIdentityToken. --dry-run shows the change and exits 2 when
there is one, as plan does.

--install runs sync in the cluster on a schedule (a CronJob in the webhook's namespace, with irsa's image): its
ServiceAccount gets a role allowed only s3:PutObject on the JWKS object, irsa's own IRSA. The job adds the keys the
apiserver serves and never removes one; retiring stays a decision made here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if install {
				if len(retire) > 0 || dryRun {
					return fmt.Errorf("--install: not with --retire or --dry-run (the job never retires a key)")
				}
				return g.installSync(cmd, schedule)
			}
			env, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			r, err := env.SyncRunner(cmd.Context(), retire)
			if err != nil {
				return err
			}
			mode := runner.Apply
			if dryRun {
				mode = runner.Plan
			} else if len(retire) > 0 {
				var removes []string
				for _, kid := range retire {
					removes = append(removes, "key "+kid+" from the JWKS of "+env.Target.Issuer.URL+" (tokens it signed then fail in STS)")
				}
				if err := g.confirm("sync --retire", removes, yes); err != nil {
					return err
				}
			}
			rep, err := g.runStages(cmd, env, r, mode)
			if err == nil && dryRun && rep.Changed {
				return &exitError{code: 2}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&retire, "retire", nil, "kid of a published key to remove from the JWKS (repeatable); refused while the cluster serves it")
	f.BoolVar(&dryRun, "dry-run", false, "show what sync would change and change nothing (exit 2 when it would change something)")
	f.BoolVar(&yes, "yes", false, "retire without asking (required with --retire when stdin is not a terminal)")
	f.BoolVar(&install, "install", false, "run sync in the cluster on a schedule, under a role allowed only to write the JWKS")
	f.StringVar(&schedule, "schedule", jwkssync.DefaultSchedule, "cron schedule of the in-cluster sync (--install)")
	addTargetFlags(cmd, g)
	return cmd
}

func (g *globalOptions) installSync(cmd *cobra.Command, schedule string) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	env, changes, err := setup.InstallSync(cmd.Context(), cfg, g.setupOptions(), schedule)
	if err != nil {
		return err
	}
	if g.structured() {
		return g.write(map[string]any{"cronJob": config.WebhookNamespace + "/" + jwkssync.CronJobName, "schedule": schedule, "changes": nonNil(changes)})
	}
	for _, c := range changes {
		fmt.Fprintf(g.stdout, "%s %s %s %s\n", c.Action, c.Kind, c.Name, c.Detail)
	}
	fmt.Fprintf(g.stdout, "CronJob %s/%s syncs the JWKS of %s on %q\n", config.WebhookNamespace, jwkssync.CronJobName, env.Target.Issuer.URL, schedule)
	return nil
}

// runStages runs r in mode and prints progress and the report, as plan and apply do.
func (g *globalOptions) runStages(cmd *cobra.Command, env *setup.Env, r *runner.Runner, mode runner.Mode) (*runner.Report, error) {
	p := g.progress()
	r.Progress = p.Event
	rep, runErr := r.Run(cmd.Context(), mode, nil)
	p.Close()
	rep.Calls = env.Calls()
	if g.structured() {
		if err := g.write(rep); err != nil {
			return rep, err
		}
	} else if rep != nil {
		writeDryRunReport(g.stdout, rep, runErr != nil)
	}
	return rep, runErr
}

// writeDryRunReport is writeReport whose plan summary points at the command itself, run without --dry-run.
func writeDryRunReport(w io.Writer, rep *runner.Report, failed bool) {
	var b strings.Builder
	writeReport(&b, rep, failed)
	_, _ = io.WriteString(w, strings.Replace(b.String(), "Run `irsa apply` to make them.", "Run the same command without --dry-run to make them.", 1))
}
