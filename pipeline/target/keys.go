package target

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/irsa-anywhere/irsa/pipeline/config"
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

// resolveSigningKey reads and checks the signing key the configuration names, with pipeline/keys' rule (RSA of at
// least 2048 bits or ECDSA P-256/P-384/P-521: what kube-apiserver signs with and STS verifies). A key directory that
// already holds a keypair (a re-run) is checked too: a private and a public key that do not match would publish a kid
// nothing signs with.
func resolveSigningKey(cfg *config.Config) (SigningKey, error) {
	if cfg.KeyDir != "" {
		if _, err := os.Stat(keys.PairIn(cfg.KeyDir).PrivateKeyPath); err == nil {
			if err := keys.CheckDir(cfg.KeyDir, ""); err != nil {
				return SigningKey{}, fmt.Errorf("signing key: %w", err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return SigningKey{}, fmt.Errorf("signing key: %w", err)
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
	if _, err := keys.ParsePrivateKey(data); err != nil {
		return SigningKey{}, fmt.Errorf("signing key %q: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return SigningKey{Mode: SigningKeyFile, Path: abs, PEM: data}, nil
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
