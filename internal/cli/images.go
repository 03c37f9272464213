package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// imageFlags are the global flags of air-gapped clusters; they lay over irsa.yaml's `images:`.
type imageFlags struct {
	registry    string
	pullSecrets []string
}

func (o *imageFlags) add(f *pflag.FlagSet) {
	f.StringVar(&o.registry, "image-registry", "", "pull every image from this mirror (host[:port][/path]); the repository path and tag are kept: public.ecr.aws/eks/x:v1 -> MIRROR/eks/x:v1")
	f.StringArrayVar(&o.pullSecrets, "image-pull-secret", nil, "imagePullSecret for the webhook, the node pods and the verify Job (repeatable; the Secret must exist in each pod's namespace)")
}

// set lays the flags that were set over c.Images; setup.Connect rewrites the images to the mirror once the defaults
// are filled in (config.ApplyImages).
func (o *imageFlags) set(flags *pflag.FlagSet, c *config.Config) {
	if flags.Changed("image-registry") {
		c.Images.Registry = o.registry
	}
	if flags.Changed("image-pull-secret") {
		c.Images.PullSecrets = o.pullSecrets
	}
}

func newImagesCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List every image the configuration deploys or runs, one reference per line (the input of a mirror tool)",
		Long: `Lists the images irsa apply and irsa verify make the cluster pull, after the mirror rewrite
(--image-registry, images.registry in irsa.yaml), each once: the pod identity webhook, the verify Job's image, and
on kubeadm clusters (or when --cluster-type is not given) the irsa image that patches the apiserver manifest.

Mirror them, for example with crane, then apply with the same --image-registry:

  irsa images | while read -r ref; do crane copy "$ref" "mirror.example:5000/${ref#*/}"; done
  irsa apply --image-registry mirror.example:5000 ...`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := g.loadConfig()
			if c == nil {
				return err // the file did not load
			}
			// Only the images matter here: the AWS settings may still be missing.
			set, err := c.ImageSet()
			if err != nil {
				return err
			}
			refs := set.Deployed(c.ClusterType)
			if g.structured() {
				pullSecrets := set.PullSecrets
				if pullSecrets == nil {
					pullSecrets = []string{}
				}
				return g.write(map[string]any{"images": refs, "pullSecrets": pullSecrets})
			}
			for _, r := range refs {
				fmt.Fprintln(g.stdout, r)
			}
			return nil
		},
	}
	// Only the flags that choose images: the AWS and cluster flags change nothing here.
	f := cmd.Flags()
	f.StringVarP(&g.configFile, "config", "f", "", "irsa.yaml to read the images, the mirror and the cluster type from (flags override it)")
	f.StringVar(&g.clusterType, "cluster-type", "", "cluster type: "+strings.Join(config.ClusterTypes, ", ")+" (the irsa image is listed for kubeadm, or when not given)")
	f.StringVar(&g.image, "image", "", "irsa image the apiserver stage runs on control-plane nodes (default "+config.DefaultIrsaImage+")")
	f.StringVar(&g.webhookImage, "webhook-image", "", "pod identity webhook image (default "+config.DefaultWebhookImage+")")
	f.StringVar(&g.verifyImage, "verify-image", "", "image of the verify pod (default "+config.DefaultVerifyImage+")")
	g.images.add(f)
	return cmd
}
