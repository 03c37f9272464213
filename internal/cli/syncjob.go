package cli

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/jwkssync"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
)

func init() { extraCommands = append(extraCommands, newSyncJobCommand) }

// newSyncJobCommand is what the CronJob of `irsa sync --install` runs in the cluster (package jwkssync).
func newSyncJobCommand(g *globalOptions) *cobra.Command {
	o := jwkssync.Options{}
	var region, endpoint, caBundle, kubeconfig string
	cmd := &cobra.Command{
		Use:    "sync-job",
		Short:  "Add the keys the apiserver serves to the published JWKS (run by the CronJob of sync --install)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var rc *rest.Config
			var err error
			if kubeconfig != "" {
				rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
			} else {
				rc, err = rest.InClusterConfig()
			}
			if err != nil {
				return fmt.Errorf("cluster config: %w", err)
			}
			if o.Client, err = kubernetes.NewForConfig(rc); err != nil {
				return err
			}
			bundle, pool, err := setup.LoadCABundle(caBundle)
			if err != nil {
				return err
			}
			o.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			// The SDK's default chain: the web identity the webhook injected.
			c, err := awsclient.New(ctx, awsclient.Options{Region: region, EndpointURL: endpoint, CABundle: bundle})
			if err != nil {
				return err
			}
			o.S3 = c.S3
			res, err := jwkssync.Run(ctx, o)
			if err != nil {
				return err
			}
			if res.Changed {
				fmt.Fprintf(g.stdout, "published key(s) %v in %s\n", res.Added, o.IssuerURL)
			} else {
				fmt.Fprintf(g.stdout, "the JWKS of %s publishes every key the apiserver serves\n", o.IssuerURL)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.IssuerURL, "issuer-url", "", "issuer whose JWKS is kept in sync")
	f.StringVar(&o.Bucket, "bucket", "", "bucket of the JWKS object")
	f.StringVar(&o.JWKSKey, "jwks-key", "", "object key of the JWKS")
	f.StringVar(&region, "region", "", "AWS region")
	f.StringVar(&endpoint, "aws-endpoint-url", "", "AWS endpoint (emulators)")
	f.StringVar(&caBundle, "ca-bundle", "", "PEM CAs to trust for the issuer and AWS")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig (default: the pod's in-cluster config)")
	return cmd
}
