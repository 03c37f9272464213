package target

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// Signing-key modes (config.Config.SigningKey is one of the first two, or a file path).
const (
	SigningKeyCluster  = "cluster"
	SigningKeyGenerate = "generate"
	SigningKeyFile     = "file"
)

// SigningKey is the key the apiserver signs service account tokens with.
type SigningKey struct {
	// Mode is SigningKeyCluster (keep the cluster's own key), SigningKeyGenerate (the keys stage makes a keypair in
	// Dir) or SigningKeyFile (the private key at Path, read and checked by Resolve).
	Mode string
	// Dir is the key directory of SigningKeyGenerate.
	Dir string
	// Path is the private key file: the given file, or the keys stage's file in Dir.
	Path string
	// PEM is the given private key (SigningKeyFile only).
	PEM []byte
}

// resolveSigningKey reads and checks the signing key the configuration names. A generated key that already exists
// (a re-run) is checked too: a private and a public key that do not match would publish a kid nothing signs with.
func resolveSigningKey(cfg *config.Config) (SigningKey, error) {
	if cfg.KeyDir != "" {
		if err := checkKeyDir(cfg.KeyDir); err != nil {
			return SigningKey{}, err
		}
	}
	switch cfg.SigningKey {
	case SigningKeyCluster:
		return SigningKey{Mode: SigningKeyCluster}, nil
	case SigningKeyGenerate:
		return SigningKey{Mode: SigningKeyGenerate, Dir: cfg.KeyDir, Path: keys.PairIn(cfg.KeyDir).PrivateKeyPath}, nil
	}
	path := cfg.SigningKey
	data, err := os.ReadFile(path)
	if err != nil {
		return SigningKey{}, fmt.Errorf("signing key %q: %w (give cluster, generate or a readable PEM private key file)", path, err)
	}
	if _, err := parsePrivateKey(path, data); err != nil {
		return SigningKey{}, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return SigningKey{Mode: SigningKeyFile, Path: abs, PEM: data}, nil
}

// checkKeyDir checks an existing keypair in dir; a missing one is made by the keys stage.
func checkKeyDir(dir string) error {
	p := keys.PairIn(dir)
	privData, err := os.ReadFile(p.PrivateKeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("signing key %q: %w", p.PrivateKeyPath, err)
	}
	priv, err := parsePrivateKey(p.PrivateKeyPath, privData)
	if err != nil {
		return err
	}
	pubData, err := os.ReadFile(p.PublicKeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the keys stage derives it from the private key
	}
	if err != nil {
		return fmt.Errorf("public key %q: %w", p.PublicKeyPath, err)
	}
	pubs, err := documents.ParsePublicKeyPEM(p.PublicKeyPath, pubData)
	if err != nil {
		return err
	}
	want, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("signing key %q: %w", p.PrivateKeyPath, err)
	}
	for _, k := range pubs {
		if got, err := x509.MarshalPKIXPublicKey(k); err == nil && string(got) == string(want) {
			return nil
		}
	}
	return fmt.Errorf("key directory %q: public key %s does not match private key %s: the JWKS would publish a kid the apiserver never signs with; remove %s so it is derived again from the private key", dir, keys.PublicKeyFile, keys.PrivateKeyFile, p.PublicKeyPath)
}

// parsePrivateKey accepts the keys kube-apiserver signs with and STS verifies: RSA of at least 2048 bits, or EC on
// P-256 or P-384 (STS accepts RS256/384/512 and ES256/384/512 tokens since November 2024).
func parsePrivateKey(path string, data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("signing key %q: no PEM block found: want a PEM private key (RSA or EC)", path)
	}
	if x509.IsEncryptedPEMBlock(block) || block.Type == "ENCRYPTED PRIVATE KEY" { //nolint:staticcheck // detection only
		return nil, fmt.Errorf("signing key %q: the private key is encrypted, and kube-apiserver reads only unencrypted keys: decrypt it first (openssl pkey -in %s -out DECRYPTED.key)", path, path)
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
		return nil, fmt.Errorf("signing key %q: PEM block %q is not a private key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", path, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < 2048 {
			return nil, fmt.Errorf("signing key %q: RSA key of %d bits: must be at least 2048 bits (kube-apiserver and STS)", path, n)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("signing key %q: EC key on %s: must be P-256 or P-384 (ES256, ES384)", path, k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("signing key %q: %T: must be RSA (at least 2048 bits) or EC P-256/P-384", path, key)
}

// checkPublicKeyFiles reads and parses every --public-key file.
func checkPublicKeyFiles(paths []string) error {
	var errs []error
	for _, p := range paths {
		if _, err := keys.LoadPublicKeys(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
