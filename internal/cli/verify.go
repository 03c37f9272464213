package cli

import (
	"strings"

	"fmt"
	"io"
	"sigs.k8s.io/yaml"
	"time"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/probe"
)

func init() { extraCommands = append(extraCommands, newVerifyCommand, newProbeCommand) }

func newVerifyCommand(g *globalOptions) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "verify [--keep]",
		Short: "Prove IRSA works: a pod assumes a role with the injected web identity and lists S3",
		Long: `verify binds a dedicated ServiceAccount (default/irsa-verify) to a role with AmazonS3ReadOnlyAccess, runs a
pod that calls sts get-caller-identity and s3 ls, and reports PASS only if the pod had AWS_ROLE_ARN,
AWS_WEB_IDENTITY_TOKEN_FILE and the projected token with the audience injected, the caller is the assumed role, and
the listing contains the issuer bucket. A failure report says which of these failed, with the pod's events and logs.
The pod, ServiceAccount and role are removed afterwards unless --keep is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			s, err := env.VerifyStage(keep)
			if err != nil {
				return err
			}
			p := g.progress()
			rep, _, runErr := s.Run(p.Context(cmd.Context(), "verify"))
			p.Close()
			if rep != nil {
				if g.structured() {
					data, err := rep.JSON()
					if err != nil {
						return err
					}
					if g.output == outputYAML {
						if data, err = yaml.JSONToYAML(data); err != nil {
							return err
						}
					}
					fmt.Fprintln(g.stdout, strings.TrimRight(string(data), "\n"))
				} else {
					fmt.Fprint(g.stdout, rep.Text())
				}
			}
			if runErr != nil {
				return runErr
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the pod, ServiceAccount and role in place for debugging")
	addTargetFlags(cmd, g)
	return cmd
}

// newProbeCommand is what the verify pod runs in irsa's own image: get-caller-identity and a bucket listing, printed
// as the aws CLI prints them.
// With --every it probes again at that interval until stopped, one "probe ok" or "probe failed: ..." line each time
// (a long-running pod that proves a key rotation never interrupts it).
func newProbeCommand(g *globalOptions) *cobra.Command {
	var every time.Duration
	cmd := &cobra.Command{
		Use:    "probe",
		Short:  "Call STS and list S3 with the pod's web identity (run by the verify pod)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if every <= 0 {
				return probe.Run(cmd.Context(), g.stdout)
			}
			ctx := cmd.Context()
			for {
				if err := probe.Run(ctx, io.Discard); err != nil {
					fmt.Fprintf(g.stdout, "%s probe failed: %v\n", time.Now().UTC().Format(time.RFC3339), err)
				} else {
					fmt.Fprintf(g.stdout, "%s probe ok\n", time.Now().UTC().Format(time.RFC3339))
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&every, "every", 0, "probe again at this interval until stopped")
	return cmd
}
