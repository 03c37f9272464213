package cli

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/doctor"
	"github.com/irsa-anywhere/irsa/pipeline/proxy"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
)

func init() { extraCommands = append(extraCommands, newDoctorCommand) }

func newDoctorCommand(g *globalOptions) *cobra.Command {
	var live, pods bool
	cmd := &cobra.Command{
		Use:   "doctor [NAMESPACE/SERVICEACCOUNT]",
		Short: "Check the whole IRSA chain on the live cluster and AWS, link by link",
		Long: `doctor checks what STS and the webhook will check, so a misconfiguration shows up here rather than as
InvalidIdentityToken or AccessDenied inside a pod: the apiserver's issuer, the published documents and keys, the IAM
provider, the webhook and its certificate, and, for a ServiceAccount, the injected env, the role's trust policy and a
real token run through the same checks as STS. --live also calls AssumeRoleWithWebIdentity for real.
Exit status 1 when any line fails.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ns, sa string
			if len(args) == 1 {
				var err error
				if ns, sa, err = config.ParseServiceAccountRef(args[0]); err != nil {
					return err
				}
			}
			env, err := g.connect(cmd.Context())
			if err != nil {
				return err
			}
			t := env.Target
			in := doctor.Inputs{
				IssuerURL: t.Issuer.URL, Audience: t.Audience, Bucket: t.Issuer.Bucket, Region: t.Region,
				ProviderARN: t.ProviderARN, S3: env.AWS.S3, IAM: env.AWS.IAM, Namespace: ns, ServiceAccount: sa, Pods: pods,
				Verifier: trust.New(trust.Options{HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: proxy.Transport(env.RootCAs)}}),
			}
			in.Ownership = func(ctx context.Context, roleARN string) []error { return env.CheckOwnership(ctx, roleARN, ns, sa) }
			in.KMSDefault = env.KMSDefault
			if env.Cluster != nil {
				in.Cluster = env.Cluster.Client
			}
			if t.Issuer.Hosting == config.HostingCloudFront {
				in.CloudFront = env.CloudFrontHost()
				in.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: proxy.Transport(env.RootCAs)}
			}
			if live {
				in.AssumeRole = func(ctx context.Context, roleARN, token string) error {
					_, err := env.AWS.STS.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
						RoleArn: &roleARN, WebIdentityToken: &token, RoleSessionName: aws.String("irsa-doctor"),
					})
					return err
				}
			}
			rep := doctor.Run(cmd.Context(), in)
			if g.structured() {
				if err := g.write(rep); err != nil {
					return err
				}
			} else {
				for _, c := range rep.Checks {
					mark := "✓"
					switch {
					case c.Info && !c.OK:
						mark = "i"
					case !c.OK:
						mark = "✗"
					}
					fmt.Fprintf(g.stdout, "%s %-22s %s\n", mark, c.Name, c.Message)
					if !c.OK && c.Fix != "" {
						fmt.Fprintf(g.stdout, "  %-22s fix: %s\n", "", c.Fix)
					}
				}
			}
			if !rep.OK {
				return &exitError{code: 1, err: fmt.Errorf("doctor found problems")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&live, "live", false, "also call AssumeRoleWithWebIdentity for real")
	cmd.Flags().BoolVar(&pods, "pods", false, "also check the running pods of every ServiceAccount irsa bound for the injected web identity (irsa heal restarts their owners)")
	addTargetFlags(cmd, g)
	return cmd
}
