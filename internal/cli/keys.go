package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

func newKeysCommand(g *globalOptions) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keys --out DIR",
		Short: "Generate a service account signing keypair (RSA-2048)",
		Long: `keys writes sa-signer.key (PEM, mode 0600) and sa-signer.pub (PKIX PEM) into DIR, for clusters whose
apiserver should sign tokens with a key irsa made (--signing-key). An existing key is kept unless --force is given:
replacing a signing key invalidates every token the cluster has issued.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out: a directory is required")
			}
			p, created, err := keys.Generate(out, force)
			if err != nil {
				return err
			}
			pub, err := keys.LoadPublicKeys(p.PublicKeyPath)
			if err != nil {
				return err
			}
			kid, err := documents.KeyID(pub[0])
			if err != nil {
				return err
			}
			verb := "kept existing"
			if created {
				verb = "generated"
			}
			if g.structured() {
				return g.write(map[string]any{"privateKey": p.PrivateKeyPath, "publicKey": p.PublicKeyPath, "kid": kid, "created": created})
			}
			fmt.Fprintf(g.stdout, "%s keypair\n  private key: %s\n  public key:  %s\n  kid:         %s\n", verb, p.PrivateKeyPath, p.PublicKeyPath, kid)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the keypair into")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing keypair")
	return cmd
}

func newJWKSCommand(g *globalOptions) *cobra.Command {
	var legacy bool
	cmd := &cobra.Command{
		Use:   "jwks --public-key FILE [--public-key FILE...]",
		Short: "Print the JSON Web Key Set for service account public keys",
		Long: `jwks prints the JWKS to publish for the given public keys (PEM: PKIX, PKCS#1, certificate or private key),
with kid = base64url(SHA-256(PKIX DER)), the kid kube-apiserver puts in the tokens it signs. Keys are sorted by kid,
so the output is the same whatever the order of the files. Give several keys during a key rotation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(g.publicKeys) == 0 {
				return fmt.Errorf("--public-key: at least one PEM public key file is required")
			}
			ks, err := keys.LoadPublicKeys(g.publicKeys...)
			if err != nil {
				return err
			}
			out, err := documents.JWKS(ks, documents.JWKSOptions{LegacyEmptyKID: legacy})
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(out)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&g.publicKeys, "public-key", nil, "PEM public key file (repeatable)")
	cmd.Flags().BoolVar(&legacy, "legacy-empty-kid", false, "also publish each key with an empty kid (clusters older than Kubernetes 1.16)")
	return cmd
}
