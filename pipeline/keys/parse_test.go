package keys_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// must panics on err: only for setup that cannot fail on a sane machine.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	rsa2048 := must(rsa.GenerateKey(rand.Reader, 2048))
	rsa1024 := must(rsa.GenerateKey(rand.Reader, 1024))
	p256 := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	p384 := must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	p521 := must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader))
	p224 := must(ecdsa.GenerateKey(elliptic.P224(), rand.Reader))
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	//nolint:staticcheck // a legacy encrypted PEM is exactly what users have and what must be refused clearly.
	legacy := must(x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048), []byte("pw"), x509.PEMCipherAES256))

	cases := []struct {
		name    string
		pem     []byte
		wantAlg keys.Algorithm
		// wantErr are substrings of the error; empty means success.
		wantErr []string
	}{
		{name: "RSA-2048 PKCS#1", pem: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048)), wantAlg: keys.RS256},
		{name: "RSA-2048 PKCS#8", pem: pemOf("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(rsa2048))), wantAlg: keys.RS256},
		{name: "ECDSA P-256 SEC 1", pem: pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p256))), wantAlg: keys.ES256},
		{name: "ECDSA P-256 SEC 1 after EC PARAMETERS", pem: append(pemOf("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}), pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p256)))...), wantAlg: keys.ES256},
		{name: "ECDSA P-384 PKCS#8", pem: pemOf("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(p384))), wantAlg: keys.ES384},
		{name: "ECDSA P-521 SEC 1", pem: pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p521))), wantAlg: keys.ES512},
		{name: "RSA-1024", pem: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024)), wantErr: []string{"RSA-1024", "at least 2048 bits"}},
		{name: "ECDSA P-224", pem: pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p224))), wantErr: []string{"ECDSA P-224", "P-256, P-384 or P-521"}},
		{name: "Ed25519", pem: pemOf("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(ed))), wantErr: []string{"Ed25519", keys.KeyRule}},
		{name: "encrypted PKCS#8", pem: pemOf("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}), wantErr: []string{"encrypted private keys are not supported", "openssl"}},
		{name: "legacy encrypted PEM", pem: pem.EncodeToMemory(legacy), wantErr: []string{"encrypted private keys are not supported", "openssl"}},
		{name: "OpenSSH key", pem: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"), wantErr: []string{"OpenSSH", "ssh-keygen"}},
		{name: "public key only", pem: pemOf("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&p256.PublicKey))), wantErr: []string{"no PEM private key block"}},
		{name: "not PEM", pem: []byte("hello"), wantErr: []string{"no PEM private key block"}},
		{name: "corrupt PKCS#1", pem: pemOf("RSA PRIVATE KEY", []byte{1, 2, 3}), wantErr: []string{"parse RSA PRIVATE KEY PEM block"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k, err := keys.ParsePrivateKey(c.pem)
			if len(c.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want one containing %q", c.wantErr)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if strings.Contains(c.name, "encrypted") && !errors.Is(err, keys.ErrEncrypted) {
					t.Errorf("error %v does not wrap ErrEncrypted", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if alg, err := keys.AlgorithmOf(k.Public()); err != nil || alg != c.wantAlg {
				t.Fatalf("algorithm %q (%v), want %q", alg, err, c.wantAlg)
			}
			// The public half read back from the same PEM is its pair.
			pub, err := keys.ParsePublicKey(c.pem)
			if err != nil {
				t.Fatalf("public half: %v", err)
			}
			if err := keys.CheckPair(k, pub); err != nil {
				t.Fatalf("CheckPair with its own public half: %v", err)
			}
		})
	}
}

func TestParsePublicKeys(t *testing.T) {
	t.Parallel()
	r := must(rsa.GenerateKey(rand.Reader, 2048))
	e := must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	small := must(rsa.GenerateKey(rand.Reader, 1024))
	two := append(pemOf("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&r.PublicKey))), pemOf("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&e.PublicKey)))...)

	ks, err := keys.ParsePublicKeys(two)
	if err != nil || len(ks) != 2 {
		t.Fatalf("two keys: %d, %v", len(ks), err)
	}
	if _, err := keys.ParsePublicKey(two); err == nil || !strings.Contains(err.Error(), "2 public keys") {
		t.Fatalf("ParsePublicKey with two keys: %v, want an error naming the count", err)
	}
	if k, err := keys.ParsePublicKey(pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&r.PublicKey))); err != nil || !r.PublicKey.Equal(k) {
		t.Fatalf("PKCS#1 public key: %v", err)
	}
	withSmall := append(two, pemOf("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&small.PublicKey)))...)
	if _, err := keys.ParsePublicKeys(withSmall); err == nil || !strings.Contains(err.Error(), "PEM block 2") || !strings.Contains(err.Error(), "RSA-1024") {
		t.Fatalf("a 1024-bit key in third place: %v, want an error naming block 2 and RSA-1024", err)
	}
	if _, err := keys.ParsePublicKeys([]byte("nothing")); err == nil {
		t.Fatal("no key: no error")
	}
}

func TestCheckPairMismatch(t *testing.T) {
	t.Parallel()
	a := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	b := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	r := must(rsa.GenerateKey(rand.Reader, 2048))
	for _, pub := range []crypto.PublicKey{&b.PublicKey, &r.PublicKey} {
		err := keys.CheckPair(a, pub)
		if err == nil || !strings.Contains(err.Error(), "not a pair") || !strings.Contains(err.Error(), must(keys.KeyID(pub))) {
			t.Errorf("CheckPair(%s, %s): %v, want a mismatch naming the public key's kid", keys.Describe(a), keys.Describe(pub), err)
		}
	}
}

func TestGenerateWith(t *testing.T) {
	t.Parallel()
	for _, alg := range []keys.Algorithm{keys.RS256, keys.ES256, keys.ES384, keys.ES512} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "keys")
			p, created, err := keys.GenerateWith(dir, alg, false)
			if err != nil || !created {
				t.Fatalf("generate: created %v, %v", created, err)
			}
			if fi, err := os.Stat(p.PrivateKeyPath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("private key mode: %v, %v", fi, err)
			}
			if err := keys.CheckDir(dir, alg); err != nil {
				t.Fatalf("check the generated pair: %v", err)
			}
			priv := must(keys.LoadPrivateKey(p.PrivateKeyPath))
			if got, _ := keys.AlgorithmOf(priv.Public()); got != alg {
				t.Fatalf("generated a %s key, want %s", got, alg)
			}
			// A second run keeps the key; asking for another algorithm is an error, not a silent keep.
			if _, created, err := keys.GenerateWith(dir, alg, false); err != nil || created {
				t.Fatalf("second run: created %v, %v", created, err)
			}
			if _, created, err := keys.Generate(dir, false); err != nil || created {
				t.Fatalf("Generate without an algorithm keeps any key: created %v, %v", created, err)
			}
			other := keys.ES256
			if alg == keys.ES256 {
				other = keys.RS256
			}
			if _, _, err := keys.GenerateWith(dir, other, false); err == nil || !strings.Contains(err.Error(), "--force") {
				t.Fatalf("asking for %s over a %s key: %v, want an error mentioning --force", other, alg, err)
			}
		})
	}
}

func TestCheckDirMismatchedPublicKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := keys.GenerateWith(dir, keys.ES256, false); err != nil {
		t.Fatal(err)
	}
	other := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	if err := os.WriteFile(keys.PairIn(dir).PublicKeyPath, pemOf("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&other.PublicKey))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keys.CheckDir(dir, ""); err == nil || !strings.Contains(err.Error(), "not a pair") {
		t.Fatalf("CheckDir with a foreign public key: %v", err)
	}
}

func TestParseAlgorithm(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]keys.Algorithm{"": keys.RS256, "rsa": keys.RS256, "RS256": keys.RS256, "es256": keys.ES256,
		"P-256": keys.ES256, "ES384": keys.ES384, "p-384": keys.ES384, "ES512": keys.ES512, "P-521": keys.ES512} {
		if got, err := keys.ParseAlgorithm(in); err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"HS256", "PS256", "EdDSA", "RSA-1024"} {
		if _, err := keys.ParseAlgorithm(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseAlgorithm(%q): %v, want an error naming it", bad, err)
		}
	}
}
