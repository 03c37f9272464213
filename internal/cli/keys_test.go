package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// TestKeysAndJWKSForEveryAlgorithm generates a keypair per --algorithm with `irsa keys`, prints its JWKS with
// `irsa jwks`, and checks the kid against openssl's base64url(SHA-256(PKIX DER)) and the alg kube-apiserver signs with.
func TestKeysAndJWKSForEveryAlgorithm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ flag, alg, kty string }{
		{"", "RS256", "RSA"}, {"ES256", "ES256", "EC"}, {"es384", "ES384", "EC"}, {"P-521", "ES512", "EC"},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "keys")
			args := []string{"keys", "--out", dir, "-o", "json"}
			if tc.flag != "" {
				args = append(args, "--algorithm", tc.flag)
			}
			var out, errOut bytes.Buffer
			if code := Main(context.Background(), args, &out, &errOut); code != 0 {
				t.Fatalf("irsa %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
			}
			var rep struct {
				Kid, Algorithm string
				Created        bool
			}
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil || !rep.Created || rep.Algorithm != tc.alg {
				t.Fatalf("keys report %s (%v), want a created %s key", out.String(), err, tc.alg)
			}
			pub := keys.PairIn(dir).PublicKeyPath
			if want := opensslKID(t, pub); rep.Kid != want {
				t.Fatalf("kid %q, openssl says %q", rep.Kid, want)
			}
			out.Reset()
			if code := Main(context.Background(), []string{"jwks", "--public-key", pub}, &out, &errOut); code != 0 {
				t.Fatalf("irsa jwks: exit %d: %s", code, errOut.String())
			}
			var set struct {
				Keys []struct{ Kid, Alg, Kty, Use string }
			}
			if err := json.Unmarshal(out.Bytes(), &set); err != nil || len(set.Keys) != 1 {
				t.Fatalf("jwks %s: %v", out.String(), err)
			}
			if k := set.Keys[0]; k.Kid != rep.Kid || k.Alg != tc.alg || k.Kty != tc.kty || k.Use != "sig" {
				t.Fatalf("jwks key %+v, want kid %s alg %s kty %s use sig", k, rep.Kid, tc.alg, tc.kty)
			}
		})
	}
}

func TestKeysRefusesUnknownAlgorithm(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	dir := t.TempDir()
	code := Main(context.Background(), []string{"keys", "--out", dir, "--algorithm", "HS256"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "HS256") {
		t.Fatalf("keys --algorithm HS256: exit %d, stderr %q; want a failure naming HS256", code, errOut.String())
	}
	if _, err := keys.LoadPrivateKey(keys.PairIn(dir).PrivateKeyPath); err == nil {
		t.Fatal("a key was written despite the bad flag")
	}
}
