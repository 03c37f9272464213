package node

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// readSigningKey reads a PEM private key file; see ParseSigningKey.
func readSigningKey(path string) (privPEM, pubPEM []byte, kid string, err error) {
	privPEM, err = os.ReadFile(path)
	if err != nil {
		return nil, nil, "", fmt.Errorf("read signing key %s: %w", path, err)
	}
	privPEM, pubPEM, kid, err = ParseSigningKey(privPEM)
	if err != nil {
		return nil, nil, "", fmt.Errorf("signing key %s: %w", path, err)
	}
	return privPEM, pubPEM, kid, nil
}

// ParseSigningKey returns the private key, its public key as PEM (PKIX) and its key ID: the base64url SHA-256 of the
// PKIX DER, which is the kid kube-apiserver gives the key in /openid/v1/jwks. The key must satisfy keys.KeyRule (the
// one rule irsa applies to signing keys).
func ParseSigningKey(privPEM []byte) (priv, pubPEM []byte, kid string, err error) {
	signer, err := keys.ParsePrivateKey(privPEM)
	if err != nil {
		return nil, nil, "", err
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, nil, "", fmt.Errorf("encode public key: %w", err)
	}
	if kid, err = keys.KeyID(signer.Public()); err != nil {
		return nil, nil, "", err
	}
	return privPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), kid, nil
}
