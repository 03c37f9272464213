package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/kindconfig"
)

func init() { extraCommands = append(extraCommands, newKindConfigCommand) }

func newKindConfigCommand(g *globalOptions) *cobra.Command {
	o := kindconfig.Options{}
	cmd := &cobra.Command{
		Use:   "kind-config",
		Short: "Print a kind cluster config whose apiserver already issues tokens for the irsa issuer",
		Long: `kind-config prints a kind (kind.x-k8s.io/v1alpha4) cluster config: create the cluster with
  irsa kind-config --bucket B --region R > kind.yaml && kind create cluster --config kind.yaml
and the apiserver stage then only checks the served issuer. With --key-dir, the cluster signs tokens with that keypair
(made by irsa keys); otherwise kubeadm makes one and irsa publishes what the apiserver serves. -o json prints the same
document as JSON; -o yaml and text print YAML.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// irsa.yaml with the flags laid over it, as every other command reads them, then the environment's region.
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			c.Region = cmp.Or(c.Region, os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"))
			if c.Bucket != "" {
				if err := config.ValidateBucketName(c.Bucket); err != nil {
					return err
				}
			}
			issuer := c.IssuerURL
			switch {
			case issuer == "" && c.CloudFront() && c.Issuer.Domain != "":
				issuer = "https://" + c.Issuer.Domain
			case issuer == "" && c.CloudFront():
				return fmt.Errorf("issuer.hosting cloudfront: the issuer is the CloudFront distribution's https://DOMAIN.cloudfront.net, known once it exists: run `irsa apply --only keys,issuer` first and pass its URL with --issuer-url, or set issuer.domain")
			case issuer == "" && c.Bucket != "" && c.Region != "":
				issuer = config.BucketIssuerURL(c.Bucket, c.Region)
			}
			if err := config.ValidateIssuerURL(issuer); err != nil {
				return err
			}
			o.IssuerURL = issuer
			o.Audience = cmp.Or(c.Audience, config.DefaultAudience)
			if c.KeyDir != "" {
				p := keys.PairIn(c.KeyDir)
				priv, err := filepath.Abs(p.PrivateKeyPath)
				if err != nil {
					return err
				}
				pub, _ := filepath.Abs(p.PublicKeyPath)
				o.SigningKey = &kindconfig.KeyFiles{PrivateKey: priv, PublicKey: pub}
			}
			out, err := kindconfig.Generate(o)
			if err != nil {
				return fmt.Errorf("kind config: %w", err)
			}
			if g.output == outputJSON {
				// The same document as JSON (kind reads either).
				j, err := yaml.YAMLToJSON(out)
				if err != nil {
					return fmt.Errorf("kind config as JSON: %w", err)
				}
				var doc any
				if err := json.Unmarshal(j, &doc); err != nil {
					return fmt.Errorf("kind config as JSON: %w", err)
				}
				return writeJSON(g.stdout, doc)
			}
			_, err = g.stdout.Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&g.configFile, "config", "f", "", "irsa.yaml to read the issuer, bucket, region, audience and key directory from (flags override it)")
	cmd.Flags().StringVar(&g.issuerURL, "issuer-url", "", "service account issuer URL (default: the bucket's https URL)")
	cmd.Flags().StringVar(&g.bucket, "bucket", "", "S3 bucket that serves the issuer documents")
	cmd.Flags().StringVar(&g.region, "region", "", "AWS region of the bucket (default: $AWS_REGION, $AWS_DEFAULT_REGION)")
	cmd.Flags().StringVar(&g.audience, "audience", "", "token audience (default "+config.DefaultAudience+")")
	cmd.Flags().StringVar(&g.keyDir, "key-dir", "", "directory of a keypair made by irsa keys for the cluster to sign with")
	cmd.Flags().StringVar(&o.Name, "name", "", "kind cluster name")
	cmd.Flags().StringVar(&o.NodeImage, "node-image", kindconfig.DefaultNodeImage, "kind node image (pinned)")
	cmd.Flags().IntVar(&o.Workers, "workers", 0, "number of worker nodes")
	return cmd
}
