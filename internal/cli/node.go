package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

func init() { extraCommands = append(extraCommands, newNodeCommand) }

// newNodeCommand is what the apiserver stage's node pod runs on a control-plane node, with /etc/kubernetes mounted.
func newNodeCommand(g *globalOptions) *cobra.Command {
	node := &cobra.Command{
		Use:    "node",
		Short:  "Operations on a control-plane node (run by irsa's node pod)",
		Hidden: true,
	}
	for _, op := range []string{apiserver.NodePatchCommand, apiserver.NodeRestoreCommand} {
		o := apiserver.NodeOptions{}
		var verifyTimeout time.Duration
		cmd := &cobra.Command{
			Use:   op,
			Short: "Edit the kube-apiserver static pod manifest (" + op + ")",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if op == apiserver.NodePatchCommand {
					if err := config.ValidateIssuerURL(o.IssuerURL); err != nil {
						return err
					}
					if err := config.ValidateAudience(o.Audience); err != nil {
						return err
					}
				}
				return apiserver.RunNode(cmd.Context(), op, o, verifyTimeout, g.stdout)
			},
		}
		f := cmd.Flags()
		f.StringVar(&o.ManifestPath, "manifest", apiserver.DefaultManifestPath, "kube-apiserver static pod manifest")
		f.StringVar(&o.StateDir, "state-dir", "", "where the original manifest is backed up (default "+apiserver.DefaultStateDir+")")
		f.StringVar(&o.PKIDir, "pki-dir", "", "where a provided signing keypair is installed (default "+apiserver.DefaultPKIDir+")")
		f.DurationVar(&verifyTimeout, "verify-timeout", 2*time.Minute, "how long to wait for this node's apiserver to serve the new issuer before undoing the change")
		if op == apiserver.NodePatchCommand {
			f.StringVar(&o.IssuerURL, "issuer-url", "", "issuer the apiserver must issue tokens for")
			f.StringVar(&o.Audience, "audience", config.DefaultAudience, "audience to add to --api-audiences")
			f.StringVar(&o.SigningKeyFile, "signing-key-file", "", "PEM private key to sign tokens with (default: keep the cluster's)")
			f.BoolVar(&o.AcceptOnly, "accept-only", false, "accept irsa's tokens without issuing them yet (first pass on a multi-node control plane)")
		} else {
			f.BoolVar(&o.KeepAccepting, "keep-accepting", false, "stop issuing irsa's tokens but keep accepting them (first pass of a multi-node restore)")
			f.StringVar(&o.Record, "record", "", "the flags to restore (JSON, as irsa records them on the manifest) when kubeadm wrote the manifest again without irsa's record")
		}
		node.AddCommand(cmd)
	}
	return node
}
