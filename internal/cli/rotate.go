package cli

import (
	"crypto"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
)

func init() { extraCommands = append(extraCommands, newRotateKeyCommand) }

func newRotateKeyCommand(g *globalOptions) *cobra.Command {
	var newKey string
	var dryRun, force, yes bool
	cmd := &cobra.Command{
		Use:   "rotate-key stage|promote|retire",
		Short: "Rotate the service account signing key in three steps, without breaking a pod",
		Long: `rotate-key replaces the key the apiservers sign service account tokens with (kubeadm, --signing-key generate),
in three steps run in order; each is idempotent, so a step that stopped halfway is finished by running it again:

  stage    a new key (generated like the current one, or --new-key FILE) is published in the JWKS, then accepted
           by every kube-apiserver while the current key still signs (one restart per control-plane node)
  promote  every kube-apiserver signs with the staged key, which becomes the key directory's key; the previous
           key stays published and accepted (one restart per node)
  retire   the previous key leaves the JWKS, then every kube-apiserver (one restart per node). Refused before the
           retire time, worked out from the cluster (when the last apiserver started signing with the current key,
           the running pods' projected token lifetimes, --service-account-max-token-expiration and
           --service-account-extend-token-expiration, the kubelet's refresh at 80% of a token's life or 24h),
           unless --force. Asks first (--yes without a terminal).

--dry-run shows what the step would change, the keys involved and the retire time, and exits 2 when the step would
change something, as plan does. State is read from the key directory, the control-plane mirror pods and the
published JWKS, never remembered.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("rotate-key takes one step, got %d: the steps are %s, run in that order", len(args), strings.Join(setup.RotateSteps, ", "))
			}
			return nil
		},
		ValidArgs: setup.RotateSteps,
		RunE: func(cmd *cobra.Command, args []string) error {
			step := args[0]
			if !slices.Contains(setup.RotateSteps, step) {
				return fmt.Errorf("rotate-key %q: the steps are %s, run in that order", step, strings.Join(setup.RotateSteps, ", "))
			}
			var given crypto.Signer
			if newKey != "" {
				if step != setup.RotateStage {
					return fmt.Errorf("--new-key: only rotate-key stage takes a key")
				}
				var err error
				if given, err = setup.CheckNewKey(newKey); err != nil {
					return err
				}
			}
			env, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			rot, err := env.Rotate(cmd.Context(), step, setup.RotateOptions{NewKey: given, Force: force, Plan: dryRun})
			if rot != nil && !g.structured() {
				for _, n := range rot.Notes {
					fmt.Fprintln(g.stdout, n)
				}
			}
			if err != nil {
				return err
			}
			mode := runner.Apply
			if dryRun {
				mode = runner.Plan
			} else if len(rot.Removes) > 0 {
				if err := g.confirm("rotate-key retire", rot.Removes, yes); err != nil {
					return err
				}
			}
			r := rot.Runner
			p := g.progress()
			r.Progress = p.Event
			rep, runErr := r.Run(cmd.Context(), mode, nil)
			p.Close()
			rep.Calls = env.Calls()
			if g.structured() {
				if err := g.write(struct {
					Step  string   `json:"step"`
					Notes []string `json:"notes"`
					*runner.Report
				}{step, rot.Notes, rep}); err != nil {
					return err
				}
			} else {
				writeDryRunReport(g.stdout, rep, runErr != nil)
			}
			if runErr == nil && dryRun && rep.Changed {
				return &exitError{code: 2}
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&newKey, "new-key", "", "stage: PEM private key to rotate to (RSA of at least 2048 bits or ECDSA P-256/P-384/P-521; default: generate one like the current key)")
	f.BoolVar(&dryRun, "dry-run", false, "show what the step would change, the keys and the retire time; change nothing (exit 2 when it would change something)")
	f.BoolVar(&force, "force", false, "retire: run before the retire time (pods still holding a token of the previous key then fail)")
	f.BoolVar(&yes, "yes", false, "retire: do not ask for confirmation (required when stdin is not a terminal)")
	addTargetFlags(cmd, g)
	return cmd
}
