package keys

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Names of the staged keypair in a key directory: the key `irsa rotate-key stage` made (or was given), published and
// accepted by the apiservers but not signing yet. `irsa rotate-key promote` renames it to PrivateKeyFile and
// PublicKeyFile once every apiserver signs with it.
const (
	NextPrivateKeyFile = "sa-signer.next.key"
	NextPublicKeyFile  = "sa-signer.next.pub"
)

// NextPairIn is the staged keypair's paths in dir.
func NextPairIn(dir string) Pair {
	return Pair{filepath.Join(dir, NextPrivateKeyFile), filepath.Join(dir, NextPublicKeyFile)}
}

// StageNext makes the staged keypair in dir: key (a given private key, already checked by the caller) or, when nil,
// a new key of alg (empty: the algorithm of the current key, else DefaultAlgorithm). A staged key that is already
// there is kept, so a crashed stage is finished by running it again; a given key that differs from it is an error.
// It returns the staged key and whether it wrote it.
func StageNext(dir string, key crypto.Signer, alg Algorithm) (crypto.Signer, bool, error) {
	p := NextPairIn(dir)
	if existing, err := LoadPrivateKey(p.PrivateKeyPath); err == nil {
		if key != nil {
			a, _ := KeyID(existing.Public())
			b, _ := KeyID(key.Public())
			if a != b {
				return nil, false, fmt.Errorf("key directory %q already holds a staged key (kid %s), not the given one (kid %s): promote it, or delete %s to stage another", dir, a, b, p.PrivateKeyPath)
			}
		}
		// The public file may be missing after a crash between the two writes.
		return existing, false, writeNextPublic(p, existing)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if key == nil {
		if alg == "" {
			if cur, err := LoadPrivateKey(PairIn(dir).PrivateKeyPath); err == nil {
				alg, _ = AlgorithmOf(cur.Public())
			}
		}
		if alg == "" {
			alg = DefaultAlgorithm
		}
		var err error
		if key, err = GenerateKey(alg); err != nil {
			return nil, false, err
		}
	}
	privPEM, _, err := EncodePair(key)
	if err != nil {
		return nil, false, err
	}
	if err := writeAtomic(p.PrivateKeyPath, privPEM, 0o600); err != nil {
		return nil, false, err
	}
	return key, true, writeNextPublic(p, key)
}

func writeNextPublic(p Pair, key crypto.Signer) error {
	_, pubPEM, err := EncodePair(key)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(p.PublicKeyPath); err == nil && string(old) == string(pubPEM) {
		return nil
	}
	return writeAtomic(p.PublicKeyPath, pubPEM, 0o644)
}

// PromoteNext makes the staged keypair the key directory's keypair (private key first, so a crash leaves either the
// staged pair or the promoted one to find). It reports whether it moved anything; with no staged key it does nothing.
func PromoteNext(dir string) (bool, error) {
	next, cur := NextPairIn(dir), PairIn(dir)
	if _, err := os.Stat(next.PrivateKeyPath); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	key, err := LoadPrivateKey(next.PrivateKeyPath)
	if err != nil {
		return false, err
	}
	priv, pub, err := EncodePair(key)
	if err != nil {
		return false, err
	}
	if err := writeAtomic(cur.PrivateKeyPath, priv, 0o600); err != nil {
		return false, err
	}
	if err := writeAtomic(cur.PublicKeyPath, pub, 0o644); err != nil {
		return false, err
	}
	for _, f := range []string{next.PrivateKeyPath, next.PublicKeyPath} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return true, fmt.Errorf("remove %s: %w", f, err)
		}
	}
	return true, nil
}
