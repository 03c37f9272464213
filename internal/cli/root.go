// Package cli is the irsa command line: one file per command, each with its flags and a run function; the shared
// options and the wiring of stages live here.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/runner"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// exitError carries a process exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// ExitInterrupted is Main's exit code when its context is cancelled (Ctrl-C): 128 + SIGINT, as shells report it.
const ExitInterrupted = 130

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code, msg := 1, err
	var ee *exitError
	if errors.As(err, &ee) {
		code, msg = ee.code, ee.err
	}
	if ctx.Err() != nil {
		// Interrupted (Ctrl-C, SIGTERM): the shell's convention, 128 + SIGINT.
		code, msg = ExitInterrupted, fmt.Errorf("interrupted: %w", err)
	}
	if msg == nil {
		return code
	}
	if format, _ := root.PersistentFlags().GetString("output"); format == outputJSON || format == outputYAML {
		// A stable shape, whatever failed: {"error": {"message": ..., "exitCode": ...}} on stderr (stdout may hold
		// the report of a run that failed halfway).
		_ = writeJSON(stderr, map[string]any{"error": map[string]any{"message": msg.Error(), "exitCode": code}})
		return code
	}
	fmt.Fprintln(stderr, "irsa:", msg)
	return code
}

// globalOptions holds every flag's value. Only -o and -v are on every command; the others are registered by the
// commands that use them (addTargetFlags, addStageFlags, and each command's own).
type globalOptions struct {
	configFile     string
	clusterName    string
	region         string
	profile        string
	bucket         string
	issuerURL      string
	issuerHosting  string
	issuerDomain   string
	audience       string
	awsEndpointURL string
	caBundle       string
	kubeconfig     string
	kubeContext    string
	clusterType    string
	output         string
	only           []string
	publicKeys     []string
	keyDir         string
	signingKey     string
	thumbprints    []string
	image          string
	webhookImage   string
	verifyImage    string
	podEndpoint    string
	podSTSEndpoint string
	podCABundle    string
	verbosity      int
	quiet          bool
	images         imageFlags

	// flags is the running command's flag set, to tell set flags from defaults.
	flags  *pflag.FlagSet
	stdout io.Writer
	stderr io.Writer
}

// NewRootCommand builds the irsa command tree.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "irsa",
		Short: "IAM Roles for Service Accounts on any self-managed Kubernetes cluster",
		Long: `irsa gives a self-managed Kubernetes cluster (kubeadm, kind, EKS Anywhere) IAM Roles for Service Accounts:
it publishes the cluster's service account issuer in S3, trusts it in IAM, points kube-apiserver at it, deploys the
pod identity webhook, binds service accounts to roles, and proves it works with a pod that calls AWS.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.flags = cmd.Flags()
			if g.output != outputText && g.output != outputJSON && g.output != outputYAML {
				return fmt.Errorf("output %q: must be text, json or yaml", g.output)
			}
			if g.verbosity < 0 || g.verbosity > 9 {
				return fmt.Errorf("verbosity %d: must be 0-9", g.verbosity)
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	f := root.PersistentFlags()
	f.StringVarP(&g.output, "output", "o", outputText, "output format: text, json or yaml")
	f.IntVarP(&g.verbosity, "verbose", "v", 0, "log level on stderr: 0 warnings, 1-2 progress details, 3 and up debug (-v alone is 4)")
	f.Lookup("verbose").NoOptDefVal = "4"
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print no progress, only results and errors")
	setVersionFlag(root)

	root.AddCommand(
		newKeysCommand(g),
		newJWKSCommand(g),
		newRunCommand(g, "plan", nil, runner.Plan),
		newRunCommand(g, "apply", []string{"setup"}, runner.Apply),
		newRunCommand(g, "teardown", []string{"destroy"}, runner.Delete),
		newStatusCommand(g),
		newBindCommand(g),
		newUnbindCommand(g),
		newVersionCommand(g),
		newImagesCommand(g),
	)
	for _, extra := range extraCommands {
		root.AddCommand(extra(g))
	}
	addExamples(root)
	addCompletions(root, g)
	return root
}

// addTargetFlags registers the flags that say which cluster and AWS account a command acts on (they override
// irsa.yaml), on every command that reads the configuration.
func addTargetFlags(cmd *cobra.Command, g *globalOptions) {
	f := cmd.Flags()
	f.StringVarP(&g.configFile, "config", "f", "", "irsa.yaml with the cluster, AWS settings and bindings (flags override it)")
	f.StringVar(&g.clusterName, "cluster-name", "", "cluster name: tags every AWS object irsa creates")
	f.StringVar(&g.region, "region", "", "AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, then the profile's region)")
	f.StringVar(&g.profile, "profile", "", "AWS shared-config profile (default: $AWS_PROFILE)")
	f.StringVar(&g.bucket, "bucket", "", "S3 bucket that serves the issuer documents")
	f.StringVar(&g.issuerURL, "issuer-url", "", "service account issuer URL (default: the bucket's https URL)")
	f.StringVar(&g.issuerHosting, "issuer-hosting", "", "how the issuer is served: "+strings.Join(config.IssuerHostings, ", ")+" (a private bucket behind CloudFront) (default "+config.HostingS3Public+")")
	f.StringVar(&g.issuerDomain, "issuer-domain", "", "with --issuer-hosting cloudfront, the issuer's own domain (ACM certificate and Route 53 records in its hosted zone)")
	f.StringVar(&g.audience, "audience", "", "token audience and IAM client ID (default "+config.DefaultAudience+")")
	f.StringVar(&g.awsEndpointURL, "aws-endpoint-url", "", "send AWS calls to this endpoint (emulators such as moto or LocalStack; S3 then path-style)")
	f.StringVar(&g.caBundle, "ca-bundle", "", "PEM file of CAs to trust for AWS and the issuer (default: $AWS_CA_BUNDLE or the system roots)")
	f.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&g.kubeContext, "context", "", "kubeconfig context")
	f.StringVar(&g.clusterType, "cluster-type", "", "how to configure the apiserver: "+strings.Join(config.ClusterTypes, ", ")+" (default: detected)")
	f.StringArrayVar(&g.publicKeys, "public-key", nil, "PEM public key to publish in the JWKS (repeatable); the cluster's keys are read from it when a cluster is given")
	f.StringVar(&g.keyDir, "key-dir", "", "directory of the signing keypair made by the keys stage")
	f.StringVar(&g.signingKey, "signing-key", "", "apiserver signing key: cluster (keep the cluster's own), generate, or a private key FILE")
	f.StringSliceVar(&g.thumbprints, "thumbprint", nil, "IAM provider thumbprint (default: taken from the issuer's TLS chain)")
	f.StringVar(&g.image, "image", "", "irsa image the apiserver stage runs on control-plane nodes (default "+config.DefaultIrsaImage+")")
	f.StringVar(&g.webhookImage, "webhook-image", "", "pod identity webhook image (default "+config.DefaultWebhookImage+")")
	f.StringVar(&g.verifyImage, "verify-image", "", "image of the verify pod (default "+config.DefaultVerifyImage+"; with the irsa image it runs irsa probe)")
	f.StringVar(&g.podEndpoint, "pod-aws-endpoint-url", "", "AWS endpoint pods use in the verify pod (emulators)")
	f.StringVar(&g.podSTSEndpoint, "pod-sts-endpoint-url", "", "STS endpoint the verify pod uses (default --pod-aws-endpoint-url; the strict STS gate)")
	f.StringVar(&g.podCABundle, "pod-ca-bundle", "", "PEM CA bundle the verify pod trusts for the pod endpoints")
	g.images.add(f)
	f.Bool("accept-issuer-replacement", false, "EKS Anywhere: accept that apply replaces the cluster's one issuer (running pods' tokens fail until the kubelet refreshes them)")
}

// addOnlyFlag registers --only on the commands that run stages.
func addOnlyFlag(cmd *cobra.Command, g *globalOptions) {
	cmd.Flags().StringSliceVar(&g.only, "only", nil, "run only these stages (comma-separated): "+strings.Join(stage.Order, ", "))
}

// extraCommands are added by other files of this package (cluster-side commands).
var extraCommands []func(*globalOptions) *cobra.Command

func (g *globalOptions) logger() *slog.Logger {
	level := slog.LevelWarn
	switch {
	case g.quiet:
		level = slog.LevelError
	case g.verbosity >= 3:
		level = slog.LevelDebug
	case g.verbosity >= 1:
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

// loadConfig reads the config file and lays the flags that were set over it. An explicitly empty value is an error
// (it would otherwise silently mean the default). Defaults and validation are setup.Connect's.
func (g *globalOptions) loadConfig() (*config.Config, error) {
	c := &config.Config{}
	if g.configFile != "" {
		var (
			warnings []string
			err      error
		)
		if c, warnings, err = config.Load(g.configFile); err != nil {
			return nil, err
		}
		for _, w := range warnings {
			fmt.Fprintln(g.stderr, "irsa: warning:", w)
		}
	}
	var errs []string
	set := func(name string, dst *string, v string) {
		if !g.flags.Changed(name) {
			return
		}
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Sprintf("--%s %q: must not be empty (leave the flag out for the default)", name, v))
			return
		}
		*dst = v
	}
	set("cluster-name", &c.ClusterName, g.clusterName)
	set("region", &c.Region, g.region)
	set("bucket", &c.Bucket, g.bucket)
	set("issuer-url", &c.IssuerURL, g.issuerURL)
	set("issuer-hosting", &c.Issuer.Hosting, g.issuerHosting)
	set("issuer-domain", &c.Issuer.Domain, g.issuerDomain)
	set("audience", &c.Audience, g.audience)
	set("aws-endpoint-url", &c.AWSEndpointURL, g.awsEndpointURL)
	set("kubeconfig", &c.Kubeconfig, g.kubeconfig)
	set("context", &c.Context, g.kubeContext)
	set("cluster-type", &c.ClusterType, g.clusterType)
	set("key-dir", &c.KeyDir, g.keyDir)
	set("signing-key", &c.SigningKey, g.signingKey)
	set("image", &c.Image, g.image)
	set("webhook-image", &c.Webhook.Image, g.webhookImage)
	set("verify-image", &c.Verify.Image, g.verifyImage)
	set("pod-aws-endpoint-url", &c.Verify.PodEndpointURL, g.podEndpoint)
	set("pod-sts-endpoint-url", &c.Verify.PodSTSEndpointURL, g.podSTSEndpoint)
	set("pod-ca-bundle", &c.Verify.PodCABundle, g.podCABundle)
	if g.flags.Changed("public-key") {
		c.PublicKeyFiles = g.publicKeys
	}
	if g.flags.Changed("thumbprint") {
		c.Thumbprints = g.thumbprints
	}
	g.images.set(g.flags, c)
	if g.flags.Changed("accept-issuer-replacement") {
		c.AcceptIssuerReplacement, _ = g.flags.GetBool("accept-issuer-replacement")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid flags:\n  %s", strings.Join(errs, "\n  "))
	}
	return c, nil
}

// testHook lets tests see the environment a command connected to (to count its AWS calls).
var testHook func(*setup.Env)

// connect loads the configuration and connects: after it, every input has been checked and nothing is written yet.
func (g *globalOptions) connect(ctx context.Context) (*setup.Env, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	return setup.Connect(ctx, cfg, g.setupOptions())
}

func (g *globalOptions) setupOptions() setup.Options {
	return setup.Options{CABundle: g.caBundle, Profile: g.profile, Log: g.logger(), Hook: testHook}
}
