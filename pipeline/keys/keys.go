// Package keys is the keys stage and irsa's one parser of service account signing keys: it generates the signing
// keypair (RSA-2048 by default, or ECDSA P-256/P-384/P-521; private key PEM mode 0600, public key PKIX PEM), reads and
// checks keys against the rule kube-apiserver and STS share (ParsePrivateKey, ParsePublicKey, CheckPair, KeyRule), and
// gathers the public keys the issuer publishes, from files, a key directory and the cluster.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// File names inside a key directory.
const (
	PrivateKeyFile = "sa-signer.key"
	PublicKeyFile  = "sa-signer.pub"
)

// Pair is a keypair on disk.
type Pair struct {
	PrivateKeyPath, PublicKeyPath string
}

// PairIn is the keypair's paths in dir.
func PairIn(dir string) Pair {
	return Pair{filepath.Join(dir, PrivateKeyFile), filepath.Join(dir, PublicKeyFile)}
}

// Generate writes a new RSA-2048 keypair into dir, or keeps the one there: GenerateWith with no algorithm.
func Generate(dir string, overwrite bool) (Pair, bool, error) {
	return GenerateWith(dir, "", overwrite)
}

// GenerateWith writes a new keypair for alg (empty means DefaultAlgorithm) into dir and reports whether it created
// one. An existing key is kept unless overwrite is set, because replacing a signing key invalidates every token the
// cluster has issued with it; an existing key of another algorithm than an explicitly asked alg is an error that
// says so, rather than a silent keep.
func GenerateWith(dir string, alg Algorithm, overwrite bool) (Pair, bool, error) {
	p := PairIn(dir)
	if _, err := os.Stat(p.PrivateKeyPath); err == nil && !overwrite {
		existing, err := LoadPrivateKey(p.PrivateKeyPath)
		if err != nil {
			return p, false, err
		}
		if have, _ := AlgorithmOf(existing.Public()); alg != "" && have != alg {
			return p, false, fmt.Errorf("key directory %q holds a %s key (%s), not the %s key asked for: keep it (drop --algorithm) or replace it with --force, which invalidates every token signed with it",
				dir, Describe(existing), have, alg)
		}
		return p, false, nil
	}
	if alg == "" {
		alg = DefaultAlgorithm
	}
	key, err := GenerateKey(alg)
	if err != nil {
		return p, false, err
	}
	privPEM, pubPEM, err := EncodePair(key)
	if err != nil {
		return p, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, false, fmt.Errorf("create key directory %q: %w", dir, err)
	}
	// The directory entry of a directory made just now lives in its parent.
	if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return p, false, err
	}
	if err := writeAtomic(p.PrivateKeyPath, privPEM, 0o600); err != nil {
		return p, false, err
	}
	if err := writeAtomic(p.PublicKeyPath, pubPEM, 0o644); err != nil {
		return p, false, err
	}
	return p, true, nil
}

// GenerateKey returns a new signing key for alg: RSA-2048 for RS256, ECDSA on P-256, P-384 or P-521 for ES256, ES384
// or ES512.
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	var curve elliptic.Curve
	switch alg {
	case RS256:
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate RSA-2048 key: %w", err)
		}
		return key, nil
	case ES256:
		curve = elliptic.P256()
	case ES384:
		curve = elliptic.P384()
	case ES512:
		curve = elliptic.P521()
	default:
		_, err := ParseAlgorithm(string(alg))
		if err == nil {
			err = fmt.Errorf("algorithm %q: use ParseAlgorithm to read it", alg)
		}
		return nil, err
	}
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA %s key: %w", curve.Params().Name, err)
	}
	return key, nil
}

// EncodePair returns key as PEM, the way kubeadm writes service account keys ("RSA PRIVATE KEY" PKCS#1 or "EC PRIVATE
// KEY" SEC 1, both of which kube-apiserver reads), and its public half as PKIX "PUBLIC KEY" PEM.
func EncodePair(key crypto.Signer) (private, public []byte, err error) {
	var block *pem.Block
	switch k := key.(type) {
	case *rsa.PrivateKey:
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, nil, fmt.Errorf("encode %s private key: %w", Describe(k), err)
		}
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	default:
		return nil, nil, fmt.Errorf("private key is %s: %s", Describe(key), KeyRule)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s public key: %w", Describe(key), err)
	}
	return pem.EncodeToMemory(block), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func kidOf(pkixDER []byte) string {
	sum := sha256.Sum256(pkixDER)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// LoadPrivateKey reads a signing key file with ParsePrivateKey; errors name the file.
func LoadPrivateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key %q: %w", path, err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("private key %q: %w", path, err)
	}
	return k, nil
}

// LoadPublicKeys reads the public keys of PEM files with ParsePublicKeys; errors name the file.
func LoadPublicKeys(paths ...string) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read public key %q: %w", p, err)
		}
		ks, err := ParsePublicKeys(data)
		if err != nil {
			return nil, fmt.Errorf("public key %q: %w", p, err)
		}
		out = append(out, ks...)
	}
	return out, nil
}

// Source says where the issuer's public keys come from.
type Source struct {
	// Files are PEM public keys given by the user.
	Files []string
	// Dir is the keys stage's directory; its public key, and the staged key of a rotation, are used when present.
	Dir string
	// Cluster returns the keys the cluster's apiserver serves at /openid/v1/jwks; nil when no cluster is configured.
	Cluster func(ctx context.Context) ([]crypto.PublicKey, error)
}

// Load gathers the public keys to publish.
func (s Source) Load(ctx context.Context) ([]crypto.PublicKey, error) {
	files := append([]string(nil), s.Files...)
	if s.Dir != "" {
		// The staged key of a rotation (NextPublicKeyFile) is published too, before any apiserver accepts it.
		for _, pub := range []string{PairIn(s.Dir).PublicKeyPath, NextPairIn(s.Dir).PublicKeyPath} {
			if _, err := os.Stat(pub); err == nil {
				files = append(files, pub)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("stat %q: %w", pub, err)
			}
		}
	}
	keys, err := LoadPublicKeys(files...)
	if err != nil {
		return nil, err
	}
	if s.Cluster != nil {
		ck, err := s.Cluster(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the cluster's service account keys: %w", err)
		}
		keys = append(keys, ck...)
	}
	if len(keys) == 0 && s.Dir != "" {
		return nil, fmt.Errorf("%w: %s", ErrKeysPending, PairIn(s.Dir).PublicKeyPath)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no service account public keys: give --kubeconfig to read them from the cluster, --public-key FILE, or --key-dir DIR with the keys stage")
	}
	return keys, nil
}

// ErrKeysPending is Load's error when the only key to publish is the one the keys stage has yet to make in Dir: a plan
// says what it will publish once the stage has run, an apply runs the keys stage first.
var ErrKeysPending = errors.New("no public key yet: the keys stage makes it")

// Stage is the keys stage: it makes sure the signing keypair exists in Dir when the signing key is generated by irsa.
// With the cluster's own signing key (Dir empty) there is nothing to do.
type Stage struct {
	Dir string
	// Algorithm is the key to generate; empty means DefaultAlgorithm for a new key and any accepted key for an
	// existing one.
	Algorithm Algorithm
}

func (s *Stage) Name() string { return stage.Keys }

// Plan checks an existing keypair (readable, accepted by KeyRule, of Algorithm when set, public file the pair of the
// private one) or reports the one Apply would create.
func (s *Stage) Plan(context.Context) ([]stage.Change, error) {
	if s.Dir == "" {
		return nil, nil
	}
	p := PairIn(s.Dir)
	if _, err := os.Stat(p.PrivateKeyPath); err == nil {
		return nil, CheckDir(s.Dir, s.Algorithm)
	}
	return []stage.Change{{Action: stage.Create, Kind: "keypair", Name: p.PrivateKeyPath, Detail: describeAlgorithm(s.Algorithm)}}, nil
}

func (s *Stage) Apply(context.Context) ([]stage.Change, error) {
	if s.Dir == "" {
		return nil, nil
	}
	p, created, err := GenerateWith(s.Dir, s.Algorithm, false)
	if err != nil || !created {
		return nil, err
	}
	return []stage.Change{{Action: stage.Create, Kind: "keypair", Name: p.PrivateKeyPath, Detail: describeAlgorithm(s.Algorithm)}}, nil
}

// CheckDir checks the keypair in dir without changing it: the private key parses and satisfies KeyRule, is of alg
// when alg is set, and the public key file, when present, is its pair.
func CheckDir(dir string, alg Algorithm) error {
	p := PairIn(dir)
	priv, err := LoadPrivateKey(p.PrivateKeyPath)
	if err != nil {
		return err
	}
	if have, _ := AlgorithmOf(priv.Public()); alg != "" && have != alg {
		return fmt.Errorf("key directory %q holds a %s key (%s), not the %s key asked for", dir, Describe(priv), have, alg)
	}
	data, err := os.ReadFile(p.PublicKeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read public key %q: %w", p.PublicKeyPath, err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return fmt.Errorf("public key %q: %w", p.PublicKeyPath, err)
	}
	if err := CheckPair(priv, pub); err != nil {
		return fmt.Errorf("key directory %q: %w", dir, err)
	}
	return nil
}

func describeAlgorithm(alg Algorithm) string {
	switch alg {
	case ES256:
		return "ECDSA P-256 (ES256)"
	case ES384:
		return "ECDSA P-384 (ES384)"
	case ES512:
		return "ECDSA P-521 (ES512)"
	}
	return "RSA-2048 (RS256)"
}

// Delete keeps the keys: the cluster may still sign with them, and a lost signing key cannot be recovered.
func (s *Stage) Delete(context.Context) ([]stage.Change, error) { return nil, nil }

// writeAtomic writes data to a temporary file next to path, syncs it, renames it over path and syncs the directory, so
// after a crash or power loss path holds the old content or the new, never a truncated key, and the rename itself is
// on disk (rename(2) is atomic but not durable until the directory is synced: fsync(2), "Calling fsync() does not
// necessarily ensure that the entry in the directory containing the file has also reached disk").
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".irsa-*")
	if err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %q: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %q: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory, making the entries created or renamed in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}
