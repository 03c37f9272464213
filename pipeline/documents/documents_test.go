package documents

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

func testKeys(t *testing.T, names ...string) []crypto.PublicKey {
	t.Helper()
	var out []crypto.PublicKey
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		k, err := ParsePublicKeyPEM(n, data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k...)
	}
	return out
}

func TestDiscoveryDocument(t *testing.T) {
	cases := map[string]string{
		"discovery-s3.json":   "https://my-cluster-oidc.s3.eu-west-1.amazonaws.com",
		"discovery-path.json": "https://oidc.example.com/clusters/prod",
	}
	for file, issuer := range cases {
		t.Run(file, func(t *testing.T) {
			got, err := DiscoveryDocument(issuer)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, file, got)
		})
	}
}

func TestDiscoveryRejectsIssuerDrift(t *testing.T) {
	for _, issuer := range []string{"https://x.example.com/", "http://x.example.com", "https://X.example.com", "https://x.example.com?a=1"} {
		if _, err := DiscoveryDocument(issuer); err == nil {
			t.Errorf("DiscoveryDocument(%q) succeeded, want an error", issuer)
		}
	}
}

func TestJWKSIsSortedAndDeterministic(t *testing.T) {
	a, err := JWKS(testKeys(t, "pub1.pem", "pub2.pem"), JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := JWKS(testKeys(t, "pub2.pem", "pub1.pem", "pub2.pem"), JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("JWKS depends on input order or duplicates:\n%s\n%s", a, b)
	}
	golden(t, "jwks-two-keys.json", a)
}

func TestJWKSLegacyEmptyKID(t *testing.T) {
	got, err := JWKS(testKeys(t, "pub1.pem"), JWKSOptions{LegacyEmptyKID: true})
	if err != nil {
		t.Fatal(err)
	}
	// go-jose leaves an empty kid out of the JSON; STS treats a missing kid and an empty one alike.
	if n, k := strings.Count(string(got), `"kty"`), strings.Count(string(got), `"kid"`); n != 2 || k != 1 {
		t.Errorf("want the key twice, once without a kid; got %d keys, %d kids:\n%s", n, k, got)
	}
	golden(t, "jwks-legacy.json", got)
}

func TestKeyIDRoundTrip(t *testing.T) {
	k := testKeys(t, "pub1.pem")
	set, err := KeySet(k, JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := KeyID(k[0])
	if set.Keys[0].KeyID != kid || len(kid) != 43 {
		t.Errorf("kid %q (len %d), want %q of 43 characters", set.Keys[0].KeyID, len(kid), kid)
	}
	raw, _ := JWKS(k, JWKSOptions{})
	parsed, err := ParseJWKS(raw)
	if err != nil || len(parsed) != 1 {
		t.Fatalf("ParseJWKS: %d keys, %v", len(parsed), err)
	}
	if kid2, _ := KeyID(parsed[0]); kid2 != kid {
		t.Errorf("kid after round trip %q, want %q", kid2, kid)
	}
}

func TestHostPath(t *testing.T) {
	for in, want := range map[string]string{
		"https://b.s3.us-east-1.amazonaws.com": "b.s3.us-east-1.amazonaws.com",
		"https://127.0.0.1:4566/bucket":        "127.0.0.1:4566/bucket",
		"https://oidc.example.com/a/b":         "oidc.example.com/a/b",
	} {
		if got := HostPath(in); got != want {
			t.Errorf("HostPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestJWKSWithECKeys pins the key set for an RSA key and two ECDSA keys: each with its alg (RS256, ES256, ES384),
// crv/x/y for the EC keys, and kid = base64url(SHA-256(PKIX DER)) computed here from the PEM bytes themselves.
func TestJWKSWithECKeys(t *testing.T) {
	files := []string{"pub1.pem", "ec-p256.pem", "ec-p384.pem"}
	got, err := JWKS(testKeys(t, files...), JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "jwks-ec.json", got)
	set, err := KeySet(testKeys(t, files...), JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i, f := range files {
		data, _ := os.ReadFile(filepath.Join("testdata", f))
		block, _ := pem.Decode(data)
		sum := sha256.Sum256(block.Bytes)
		want[base64.RawURLEncoding.EncodeToString(sum[:])] = []string{"RS256", "ES256", "ES384"}[i]
	}
	for _, k := range set.Keys {
		if alg, ok := want[k.KeyID]; !ok || alg != k.Algorithm || k.Use != "sig" {
			t.Errorf("key kid %q alg %q use %q; want one of %v with its alg and use sig", k.KeyID, k.Algorithm, k.Use, want)
		}
	}
	parsed, err := ParseJWKS(got)
	if err != nil || len(parsed) != 3 {
		t.Fatalf("ParseJWKS of the EC set: %d keys, %v", len(parsed), err)
	}
}

func TestDiscoveryDocumentForECKeys(t *testing.T) {
	got, err := DiscoveryDocumentFor("https://oidc.example.com/clusters/ec", testKeys(t, "ec-p256.pem", "pub1.pem", "ec-p256.pem"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "discovery-ec.json", got)
}

func TestKeySetRefusesKeysOutsideTheRule(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []crypto.PublicKey{&small.PublicKey, &p224.PublicKey} {
		if _, err := KeySet([]crypto.PublicKey{k}, JWKSOptions{}); err == nil || !strings.Contains(err.Error(), "at least 2048 bits or ECDSA on P-256") {
			t.Errorf("KeySet(%T): %v, want the key rule", k, err)
		}
	}
}
