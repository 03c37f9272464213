package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Algorithm is the JWS algorithm kube-apiserver signs service account tokens with for a key: RS256 for every RSA key,
// ES256, ES384 or ES512 for an ECDSA key on P-256, P-384 or P-521 (k8s.io/kubernetes pkg/serviceaccount/jwt.go,
// signerFromRSAPrivateKey and signerFromECDSAPrivateKey). STS verifies all four (it accepts RS256, RS384, RS512, ES256,
// ES384 and ES512: AssumeRoleWithWebIdentity, WebIdentityToken).
type Algorithm string

// The algorithms of service account signing keys.
const (
	RS256 Algorithm = "RS256"
	ES256 Algorithm = "ES256"
	ES384 Algorithm = "ES384"
	ES512 Algorithm = "ES512"
)

// DefaultAlgorithm is what irsa generates without --algorithm: RSA-2048, what kubeadm generates too.
const DefaultAlgorithm = RS256

// MinRSABits is the smallest RSA modulus irsa accepts for a signing key. Shorter keys are factorable with public
// tooling; kubeadm and irsa generate 2048-bit keys.
const MinRSABits = 2048

// KeyRule is the rule a signing key must satisfy, as error messages quote it.
const KeyRule = "service account signing keys must be RSA of at least 2048 bits or ECDSA on P-256, P-384 or P-521 " +
	"(the keys kube-apiserver signs with and STS verifies)"

// ErrEncrypted is returned (wrapped) for a passphrase-protected private key.
var ErrEncrypted = errors.New("encrypted private keys are not supported: decrypt it with `openssl pkey -in KEY -out KEY.plain` " +
	"(kube-apiserver cannot read an encrypted key either)")

// ParseAlgorithm reads an --algorithm value: RS256 (alias RSA), ES256 (alias P-256), ES384 (alias P-384) or ES512
// (alias P-521), case-insensitive. Empty means DefaultAlgorithm.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "RS256", "RSA", "RSA-2048":
		return RS256, nil
	case "ES256", "P-256", "P256", "EC":
		return ES256, nil
	case "ES384", "P-384", "P384":
		return ES384, nil
	case "ES512", "P-521", "P521":
		return ES512, nil
	}
	return "", fmt.Errorf("algorithm %q: want RS256 (RSA-2048), ES256 (ECDSA P-256), ES384 (ECDSA P-384) or ES512 (ECDSA P-521)", s)
}

// Describe names a key's type and size for messages: "RSA-2048", "ECDSA P-256", "Ed25519", or its Go type.
func Describe(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + curveName(k.Curve)
	case *ecdsa.PrivateKey:
		return "ECDSA " + curveName(k.Curve)
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	case nil:
		return "no key"
	}
	return fmt.Sprintf("%T", key)
}

func curveName(c elliptic.Curve) string {
	if c == nil || c.Params() == nil {
		return "on an unknown curve"
	}
	return c.Params().Name
}

// AlgorithmOf returns the algorithm kube-apiserver signs with for pub, or an error naming the key's type and size and
// KeyRule when pub is not a signing key irsa accepts.
func AlgorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("key is %s: %s", Describe(k), KeyRule)
		}
		return RS256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ES256, nil
		case elliptic.P384():
			return ES384, nil
		case elliptic.P521():
			return ES512, nil
		}
	}
	return "", fmt.Errorf("key is %s: %s", Describe(pub), KeyRule)
}

// ParsePrivateKey reads a service account signing key from PEM: PKCS#1 "RSA PRIVATE KEY", SEC 1 "EC PRIVATE KEY" or
// PKCS#8 "PRIVATE KEY" (the first private key block; other blocks, such as EC PARAMETERS, are skipped). It returns
// *rsa.PrivateKey or *ecdsa.PrivateKey. Errors: no private key block; an encrypted key (wraps ErrEncrypted); a key
// that breaks KeyRule, naming its type and size.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("PEM block %q: %w", block.Type, ErrEncrypted)
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s PEM block: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key is %s: %s", Describe(key), KeyRule)
		}
		if _, err := AlgorithmOf(signer.Public()); err != nil {
			return nil, fmt.Errorf("private %w", err)
		}
		return signer, nil
	}
	if bytes.Contains(data, []byte("BEGIN OPENSSH PRIVATE KEY")) {
		return nil, fmt.Errorf("an OpenSSH private key is not a PEM private key: convert it with `ssh-keygen -p -m PEM -f KEY`")
	}
	return nil, fmt.Errorf("no PEM private key block (RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY) found")
}

// ParsePublicKeys reads every public key of a PEM file: PKIX "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY", "CERTIFICATE"
// (its subject key), or a private key (its public half). Each must satisfy KeyRule; the error names the failing
// block's index (from 0), type and size. Unrelated blocks are skipped; no public key at all is an error.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := data
	for i := 0; ; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = c.PublicKey
			}
		case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			var s crypto.Signer
			if s, err = ParsePrivateKey(pem.EncodeToMemory(block)); err == nil {
				key = s.Public()
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", i, block.Type, err)
		}
		if _, err := AlgorithmOf(key); err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", i, block.Type, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no PEM public key (PUBLIC KEY, RSA PUBLIC KEY, CERTIFICATE or a private key) found")
	}
	return keys, nil
}

// ParsePublicKey reads the one public key of a PEM file (see ParsePublicKeys for the forms); more than one is an
// error, since the caller would not know which one is meant.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	keys, err := ParsePublicKeys(data)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("%d public keys found, want exactly one", len(keys))
	}
	return keys[0], nil
}

// CheckPair returns nil when pub is the public half of priv, and otherwise an error naming both keys (type, size and
// kid = base64url(SHA-256(PKIX DER)), the kid kube-apiserver puts in its tokens): tokens signed with priv would not
// verify with pub, and STS would answer InvalidIdentityToken.
func CheckPair(priv crypto.Signer, pub crypto.PublicKey) error {
	if priv == nil || pub == nil {
		return fmt.Errorf("check keypair: missing private or public key")
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	have, ok := priv.Public().(equaler)
	if ok && have.Equal(pub) {
		return nil
	}
	return fmt.Errorf("the private key (%s, kid %s) and the public key (%s, kid %s) are not a pair: tokens signed with the private key would not verify with the public one",
		Describe(priv), kidOrErr(priv.Public()), Describe(pub), kidOrErr(pub))
}

// KeyID returns the kid kube-apiserver puts in the header of the tokens it signs with key: base64url(SHA-256(PKIX DER
// of the public key)), unpadded (k8s.io/kubernetes pkg/serviceaccount/jwt.go, keyIDFromPublicKey).
func KeyID(key crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("marshal %s public key: %w", Describe(key), err)
	}
	return kidOf(der), nil
}

func kidOrErr(key crypto.PublicKey) string {
	kid, err := KeyID(key)
	if err != nil {
		return "unknown"
	}
	return kid
}
