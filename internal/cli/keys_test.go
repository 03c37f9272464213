package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
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

// TestApplyWithAnECKeyIsAcceptedAsSTSWould runs the issuer, provider and bindings stages with an ECDSA P-256 signing
// key from `irsa keys --algorithm ES256`, then checks what was published (discovery advertising ES256, the JWKS entry
// with openssl's kid) and that an ES256 token of the bound ServiceAccount passes the STS gate's checker against moto.
func TestApplyWithAnECKeyIsAcceptedAsSTSWould(t *testing.T) {
	e := newEnv(t)
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"keys", "--out", e.keyDir, "--algorithm", "ES256", "--force"}, &out, &errOut); code != 0 {
		t.Fatalf("irsa keys: exit %d: %s", code, errOut.String())
	}
	e.mustRun("apply")
	e.mustRun("bind", "default/app", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")

	code, body := anonymousGet(t, e.issuer+"/.well-known/openid-configuration")
	var disc struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if code != 200 || json.Unmarshal(body, &disc) != nil || strings.Join(disc.Algs, ",") != "ES256" {
		t.Fatalf("discovery document (%d): %s; want id_token_signing_alg_values_supported [ES256]", code, body)
	}
	code, body = anonymousGet(t, e.issuer+"/keys.json")
	var set struct {
		Keys []struct{ Kid, Alg, Crv string }
	}
	if code != 200 || json.Unmarshal(body, &set) != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS (%d): %s", code, body)
	}
	kid := opensslKID(t, keys.PairIn(e.keyDir).PublicKeyPath)
	if k := set.Keys[0]; k.Kid != kid || k.Alg != "ES256" || k.Crv != "P-256" {
		t.Fatalf("JWKS key %+v, want kid %s alg ES256 crv P-256", k, kid)
	}

	ctx := context.Background()
	c := clients(t)
	rs, err := c.IAM.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String(roles.Path(e.cluster))})
	if err != nil || len(rs.Roles) != 1 {
		t.Fatalf("roles of the cluster: %v, %v", rs, err)
	}
	priv, err := keys.LoadPrivateKey(keys.PairIn(e.keyDir).PrivateKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token := trusttest.SignWith(t, priv, jose.ES256, kid, trusttest.ServiceAccountClaims(e.issuer, "default", "app", config.DefaultAudience, now.Add(-time.Minute)))
	checker := stsgate.NewChecker(c.IAM, trust.New(trust.Options{HTTPClient: moto.HTTPClient, CacheTTL: -1}), -1)
	res := checker.Check(ctx, stsgate.Request{RoleARN: aws.ToString(rs.Roles[0].Arn), RoleSessionName: "ec", WebIdentityToken: token})
	if !res.OK() {
		t.Fatalf("the gate's checker refuses the ES256 token: %v", res.Err())
	}
}
