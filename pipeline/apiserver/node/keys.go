package node

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
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
// PKIX DER, which is the kid kube-apiserver gives the key in /openid/v1/jwks.
func ParseSigningKey(privPEM []byte) (priv, pubPEM []byte, kid string, err error) {
	pub, err := publicKeyOf(privPEM)
	if err != nil {
		return nil, nil, "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, "", fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return privPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

func publicKeyOf(privPEM []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(privPEM)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: want an RSA or ECDSA private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k.Public(), nil
	case *ecdsa.PrivateKey:
		return k.Public(), nil
	default:
		return nil, fmt.Errorf("key type %T: kube-apiserver signs with RSA or ECDSA keys only", key)
	}
}
