package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

func newKeysCommand(g *globalOptions) *cobra.Command {
	var out, algorithm string
	var force bool
	cmd := &cobra.Command{
		Use:   "keys --out DIR [--algorithm RS256|ES256|ES384|ES512]",
		Short: "Generate a service account signing keypair (RSA-2048, or ECDSA with --algorithm)",
		Long: `keys writes sa-signer.key (PEM, mode 0600) and sa-signer.pub (PKIX PEM) into DIR, for clusters whose
apiserver should sign tokens with a key irsa made (--signing-key). --algorithm picks the key: RS256 (RSA-2048, the
default), ES256 (ECDSA P-256), ES384 (P-384) or ES512 (P-521); kube-apiserver signs with that algorithm and STS accepts
all four. An existing key is kept unless --force is given: replacing a signing key invalidates every token the cluster
has issued.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out: a directory is required")
			}
			var alg keys.Algorithm
			if cmd.Flags().Changed("algorithm") {
				var err error
				if alg, err = keys.ParseAlgorithm(algorithm); err != nil {
					return fmt.Errorf("--algorithm: %w", err)
				}
			}
			p, created, err := keys.GenerateWith(out, alg, force)
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
			signingAlg, err := keys.AlgorithmOf(pub[0])
			if err != nil {
				return err
			}
			verb := "kept existing"
			if created {
				verb = "generated"
			}
			if g.structured() {
				return g.write(map[string]any{"privateKey": p.PrivateKeyPath, "publicKey": p.PublicKeyPath, "kid": kid,
					"algorithm": signingAlg, "created": created})
			}
			fmt.Fprintf(g.stdout, "%s keypair\n  private key: %s\n  public key:  %s\n  algorithm:   %s (%s)\n  kid:         %s\n",
				verb, p.PrivateKeyPath, p.PublicKeyPath, signingAlg, keys.Describe(pub[0]), kid)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the keypair into")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing keypair")
	cmd.Flags().StringVar(&algorithm, "algorithm", string(keys.DefaultAlgorithm), "signing algorithm of the new key: RS256 (RSA-2048), ES256 (ECDSA P-256), ES384 (P-384) or ES512 (P-521)")
	return cmd
}

func newJWKSCommand(g *globalOptions) *cobra.Command {
	var legacy bool
	cmd := &cobra.Command{
		Use:   "jwks --public-key FILE [--public-key FILE...]",
		Short: "Print the JSON Web Key Set for service account public keys",
		Long: `jwks prints the JWKS to publish for the given public keys (PEM: PKIX, PKCS#1, certificate or private key;
RSA of at least 2048 bits or ECDSA on P-256, P-384 or P-521), with kid = base64url(SHA-256(PKIX DER)), the kid
kube-apiserver puts in the tokens it signs, and alg RS256, ES256, ES384 or ES512 as it signs with the key. Keys are sorted by kid,
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
