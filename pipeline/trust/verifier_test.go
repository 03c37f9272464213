package trust_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/pipeline/trust"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
)

const audience = "sts.amazonaws.com"

// fixture is an issuer with one signing key, its IAM provider and a trust policy for team-a/app.
type fixture struct {
	srv      *trusttest.Server
	issuer   string
	provider trust.Provider
	policy   string
	now      time.Time
	kid      string
	claims   map[string]any
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	srv := trusttest.NewServer(t)
	key := trusttest.Key(t, 0)
	issuer := srv.Publish(t, trusttest.Issuer{Name: "good", Keys: []crypto.PublicKey{&key.PublicKey}})
	prefix := trust.ConditionKeyPrefix(issuer)
	arn := "arn:aws:iam::123456789012:oidc-provider/" + prefix
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return &fixture{
		srv: srv, issuer: issuer, now: now, kid: trusttest.KeyID(t, &key.PublicKey),
		provider: trust.Provider{URL: prefix, ARN: arn, ClientIDs: []string{audience}, Thumbprints: []string{trust.Thumbprint(srv.Certificate())}},
		policy:   trustPolicy(arn, prefix, "StringEquals", "system:serviceaccount:team-a:app"),
		claims:   trusttest.ServiceAccountClaims(issuer, "team-a", "app", audience, now.Add(-time.Minute)),
	}
}

func trustPolicy(providerARN, prefix, operator, sub string) string {
	cond := map[string]map[string]any{"StringEquals": {prefix + ":aud": audience}}
	if cond[operator] == nil {
		cond[operator] = map[string]any{}
	}
	cond[operator][prefix+":sub"] = sub
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect":    "Allow",
			"Principal": map[string]any{"Federated": providerARN},
			"Action":    "sts:AssumeRoleWithWebIdentity",
			"Condition": cond,
		}},
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

func (f *fixture) verifier(ttl time.Duration) *trust.Verifier {
	return trust.New(trust.Options{HTTPClient: f.srv.Client(), Now: func() time.Time { return f.now }, CacheTTL: ttl})
}

func TestVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	key, foreign := trusttest.Key(t, 0), trusttest.Key(t, 1)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&key.PublicKey))})
	good := trusttest.Sign(t, key, f.kid, f.claims)

	privateIssuer := f.srv.Publish(t, trusttest.Issuer{Name: "private", Keys: []crypto.PublicKey{&key.PublicKey}, DiscoveryStatus: http.StatusForbidden})
	noJWKSIssuer := f.srv.Publish(t, trusttest.Issuer{Name: "nojwks", Keys: []crypto.PublicKey{&key.PublicKey}, JWKSStatus: http.StatusNotFound})
	mismatchIssuer := f.srv.Publish(t, trusttest.Issuer{Name: "mismatch", Keys: []crypto.PublicKey{&key.PublicKey}, DiscoveryIssuer: "https://elsewhere.example"})
	legacyIssuer := f.srv.Publish(t, trusttest.Issuer{Name: "legacy", Keys: []crypto.PublicKey{&key.PublicKey}, LegacyEmptyKID: true})
	closed := closedPortURL(t)
	p256, p384, p521 := trusttest.ECKey(t, elliptic.P256()), trusttest.ECKey(t, elliptic.P384()), trusttest.ECKey(t, elliptic.P521())
	foreignEC := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	ecIssuer := f.srv.Publish(t, trusttest.Issuer{Name: "ec", Keys: []crypto.PublicKey{&p256.PublicKey, &p384.PublicKey, &p521.PublicKey}})

	// providerFor returns f's provider and policy moved to another issuer URL.
	providerFor := func(issuer string) (trust.Provider, string) {
		prefix := trust.ConditionKeyPrefix(issuer)
		arn := "arn:aws:iam::123456789012:oidc-provider/" + prefix
		return trust.Provider{URL: issuer, ARN: arn, ClientIDs: []string{audience}, Thumbprints: f.provider.Thumbprints},
			trustPolicy(arn, prefix, "StringEquals", "system:serviceaccount:team-a:app")
	}
	onIssuer := func(issuer string) map[string]any { return trusttest.With(f.claims, "iss", issuer) }

	cases := []struct {
		name     string
		token    string
		issuer   string // "" means f.issuer
		policy   string // "" means the issuer's default policy
		wantCode string
		wantStep string
	}{
		{name: "valid", token: good},
		{name: "foreign signing key", token: trusttest.Sign(t, foreign, f.kid, f.claims), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepSignature},
		{name: "unknown kid", token: trusttest.Sign(t, key, "not-a-published-kid", f.claims), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepKey},
		{name: "tampered payload", token: trusttest.Tamper(t, good, trusttest.With(f.claims, "sub", "system:serviceaccount:kube-system:admin")), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepSignature},
		{name: "alg none", token: trusttest.Unsigned(t, f.kid, f.claims), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepToken},
		{name: "alg HS256 keyed with the public key", token: trusttest.SignHS256(t, pubPEM, f.kid, f.claims), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepToken},
		{name: "garbage", token: "not.a.jwt", wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepToken},
		{name: "expired", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "exp", f.now.Add(-6*time.Minute).Unix())), wantCode: trust.CodeExpiredToken, wantStep: trust.StepLifetime},
		{name: "expired within skew", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "exp", f.now.Add(-4*time.Minute).Unix()))},
		{name: "no exp", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "exp", nil)), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepLifetime},
		{name: "nbf in the future", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "nbf", f.now.Add(10*time.Minute).Unix())), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepLifetime},
		{name: "iat in the future", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "iat", f.now.Add(10*time.Minute).Unix(), "nbf", nil)), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepLifetime},
		{name: "iss with a trailing slash", token: trusttest.Sign(t, key, f.kid, onIssuer(f.issuer+"/")), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepProvider},
		{name: "iss of another issuer", token: trusttest.Sign(t, key, f.kid, onIssuer(f.srv.IssuerURL("other"))), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepProvider},
		{name: "iss with upper-case host", token: trusttest.Sign(t, key, f.kid, onIssuer(strings.Replace(f.issuer, "https://", "HTTPS://", 1))), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepProvider},
		{name: "aud not a client ID", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "aud", "kubernetes.default.svc")), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepAudience},
		{name: "sub of another ServiceAccount", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "sub", "system:serviceaccount:team-a:other")), wantCode: trust.CodeAccessDenied, wantStep: trust.StepTrustPolicy},
		{name: "sub of another namespace", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "sub", "system:serviceaccount:team-b:app")), wantCode: trust.CodeAccessDenied, wantStep: trust.StepTrustPolicy},
		{name: "StringLike that admits", token: good, policy: trustPolicy(f.provider.ARN, f.provider.URL, "StringLike", "system:serviceaccount:team-a:*")},
		{name: "StringLike that does not admit", token: good, policy: trustPolicy(f.provider.ARN, f.provider.URL, "StringLike", "system:serviceaccount:team-b:*"), wantCode: trust.CodeAccessDenied, wantStep: trust.StepTrustPolicy},
		{name: "trust policy of another provider", token: good, policy: trustPolicy("arn:aws:iam::123456789012:oidc-provider/other.example", f.provider.URL, "StringEquals", "system:serviceaccount:team-a:app"), wantCode: trust.CodeAccessDenied, wantStep: trust.StepTrustPolicy},
		{name: "explicit deny", token: good, policy: `{"Version":"2012-10-17","Statement":[` +
			`{"Effect":"Allow","Principal":{"Federated":"` + f.provider.ARN + `"},"Action":"sts:AssumeRoleWithWebIdentity"},` +
			`{"Sid":"NoTeamA","Effect":"Deny","Principal":"*","Action":"sts:*","Condition":{"StringLike":{"` + f.provider.URL + `:sub":"system:serviceaccount:team-a:*"}}}]}`,
			wantCode: trust.CodeAccessDenied, wantStep: trust.StepTrustPolicy},
		{name: "discovery document private", token: trusttest.Sign(t, key, f.kid, onIssuer(privateIssuer)), issuer: privateIssuer, wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepDiscovery},
		{name: "JWKS missing", token: trusttest.Sign(t, key, f.kid, onIssuer(noJWKSIssuer)), issuer: noJWKSIssuer, wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepJWKS},
		{name: "discovery issuer differs", token: trusttest.Sign(t, key, f.kid, onIssuer(mismatchIssuer)), issuer: mismatchIssuer, wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepIssuer},
		{name: "issuer unreachable", token: trusttest.Sign(t, key, f.kid, onIssuer(closed)), issuer: closed, wantCode: trust.CodeIDPCommunicationError, wantStep: trust.StepDiscovery},
		{name: "no kid, legacy empty-kid key published", token: trusttest.Sign(t, key, "", onIssuer(legacyIssuer)), issuer: legacyIssuer},
		{name: "no kid, no empty-kid key", token: trusttest.Sign(t, key, "", f.claims), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepKey},
		{name: "RS384", token: trusttest.SignWith(t, key, jose.RS384, f.kid, f.claims)},
		{name: "RS512", token: trusttest.SignWith(t, key, jose.RS512, f.kid, f.claims)},
		{name: "ES256 (P-256 key)", token: trusttest.SignWith(t, p256, jose.ES256, kidOf(t, &p256.PublicKey), onIssuer(ecIssuer)), issuer: ecIssuer},
		{name: "ES384 (P-384 key)", token: trusttest.SignWith(t, p384, jose.ES384, kidOf(t, &p384.PublicKey), onIssuer(ecIssuer)), issuer: ecIssuer},
		{name: "ES512 (P-521 key)", token: trusttest.SignWith(t, p521, jose.ES512, kidOf(t, &p521.PublicKey), onIssuer(ecIssuer)), issuer: ecIssuer},
		{name: "ES256 signed by a foreign P-256 key", token: trusttest.SignWith(t, foreignEC, jose.ES256, kidOf(t, &p256.PublicKey), onIssuer(ecIssuer)), issuer: ecIssuer, wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepSignature},
		{name: "ES256 token with the kid of an RSA key", token: trusttest.SignWith(t, p256, jose.ES256, f.kid, f.claims), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepSignature},
		{name: "PS256 (STS refuses RSA-PSS)", token: trusttest.SignWith(t, key, jose.PS256, f.kid, f.claims), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepToken},
		{name: "exp with a fraction", token: trusttest.SignPayload(t, key, jose.RS256, f.kid, rawClaims(t, f.claims, "exp", fmt.Sprintf("%d.5", f.now.Add(time.Hour).Unix()))), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepToken},
		{name: "iat in exponent notation", token: trusttest.SignPayload(t, key, jose.RS256, f.kid, rawClaims(t, f.claims, "iat", "1.7e9")), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepToken},
		{name: "nbf as a string", token: trusttest.SignPayload(t, key, jose.RS256, f.kid, rawClaims(t, f.claims, "nbf", fmt.Sprintf("%q", fmt.Sprint(f.now.Unix())))), wantCode: trust.CodeInvalidIdentityToken, wantStep: trust.StepToken},
		{name: "aud as a single string", token: trusttest.Sign(t, key, f.kid, trusttest.With(f.claims, "aud", audience))},
	}
	v := f.verifier(0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, policy := f.provider, f.policy
			if c.issuer != "" {
				p, policy = providerFor(c.issuer)
			}
			if c.policy != "" {
				policy = c.policy
			}
			res := v.Verify(context.Background(), c.token, p, policy)
			if res.Code != c.wantCode {
				t.Fatalf("code %q, want %q; steps:\n%s", res.Code, c.wantCode, steps(res))
			}
			if c.wantCode == "" {
				if res.Err() != nil || res.Failed() != nil {
					t.Fatalf("success with a failed step:\n%s", steps(res))
				}
				if last := res.Steps[len(res.Steps)-1]; last.Name != trust.StepTrustPolicy {
					t.Fatalf("last step %q, want %q", last.Name, trust.StepTrustPolicy)
				}
				return
			}
			failed := res.Failed()
			if failed == nil || failed.Name != c.wantStep || failed != &res.Steps[len(res.Steps)-1] {
				t.Fatalf("want the last step to fail at %q; steps:\n%s", c.wantStep, steps(res))
			}
			if failed.Message == "" || failed.Fix == "" || res.Message == "" {
				t.Errorf("failed step without message or fix: %+v (AWS message %q)", failed, res.Message)
			}
		})
	}
}

// TestVerifyCachesDocuments checks that documents are fetched once per TTL and again after it.
func TestVerifyCachesDocuments(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	v := f.verifier(time.Minute)
	token := trusttest.Sign(t, trusttest.Key(t, 0), f.kid, f.claims)
	for i := 0; i < 3; i++ {
		if res := v.Verify(context.Background(), token, f.provider, f.policy); !res.OK() {
			t.Fatalf("verify %d: %v", i, res.Err())
		}
	}
	disc, jwks := "/good/.well-known/openid-configuration", "/good/keys.json"
	if f.srv.Hits(disc) != 1 || f.srv.Hits(jwks) != 1 {
		t.Fatalf("fetches within the TTL: discovery %d, JWKS %d; want 1 each", f.srv.Hits(disc), f.srv.Hits(jwks))
	}
	f.now = f.now.Add(2 * time.Minute)
	f.claims = trusttest.With(f.claims, "exp", f.now.Add(time.Hour).Unix())
	token = trusttest.Sign(t, trusttest.Key(t, 0), f.kid, f.claims)
	if res := v.Verify(context.Background(), token, f.provider, f.policy); !res.OK() {
		t.Fatalf("verify after TTL: %v", res.Err())
	}
	if f.srv.Hits(disc) != 2 || f.srv.Hits(jwks) != 2 {
		t.Fatalf("fetches after the TTL: discovery %d, JWKS %d; want 2 each", f.srv.Hits(disc), f.srv.Hits(jwks))
	}
}

// TestVerifyThumbprint checks when STS consults the provider's thumbprints (the JWKS host's certificate does not
// chain to a CA IAM trusts) and which certificate's fingerprint counts (the top of the chain the host serves: here an
// intermediate, neither the leaf nor the root).
func TestVerifyThumbprint(t *testing.T) {
	t.Parallel()
	chain := newChain(t)
	srv := trusttest.NewServerWithCertificate(t, &chain.served)
	key := trusttest.Key(t, 0)
	issuer := srv.Publish(t, trusttest.Issuer{Name: "chained", Keys: []crypto.PublicKey{&key.PublicKey}})
	prefix := trust.ConditionKeyPrefix(issuer)
	arn := "arn:aws:iam::123456789012:oidc-provider/" + prefix
	policy := trustPolicy(arn, prefix, "StringEquals", "system:serviceaccount:team-a:app")
	token := trusttest.Sign(t, key, trusttest.KeyID(t, &key.PublicKey), trusttest.ServiceAccountClaims(issuer, "team-a", "app", audience, time.Now()))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: chain.rootPool}}}
	iamTrusts := chain.rootPool
	otherCA := x509.NewCertPool()
	otherCA.AddCert(newChain(t).root)

	top, leaf, root := trust.Thumbprint(chain.intermediate), trust.Thumbprint(chain.leaf), trust.Thumbprint(chain.root)
	cases := []struct {
		name        string
		iamRoots    *x509.CertPool
		thumbprints []string
		wantCode    string
	}{
		{name: "chains to a CA IAM trusts: thumbprints not consulted", iamRoots: iamTrusts, thumbprints: []string{"0000000000000000000000000000000000000000"}},
		{name: "chains to a CA IAM trusts, no thumbprints", iamRoots: iamTrusts},
		{name: "private CA, top certificate's thumbprint listed", iamRoots: otherCA, thumbprints: []string{"0000000000000000000000000000000000000000", top}},
		{name: "private CA, thumbprint listed in upper case", iamRoots: otherCA, thumbprints: []string{strings.ToUpper(top)}},
		{name: "private CA, only the leaf's thumbprint", iamRoots: otherCA, thumbprints: []string{leaf}, wantCode: trust.CodeInvalidIdentityToken},
		{name: "private CA, only the root's thumbprint (not served)", iamRoots: otherCA, thumbprints: []string{root}, wantCode: trust.CodeInvalidIdentityToken},
		{name: "private CA, no thumbprints", iamRoots: otherCA, wantCode: trust.CodeInvalidIdentityToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			v := trust.New(trust.Options{HTTPClient: client, IAMTrustedRoots: c.iamRoots, CacheTTL: -1})
			p := trust.Provider{URL: prefix, ARN: arn, ClientIDs: []string{audience}, Thumbprints: c.thumbprints}
			res := v.Verify(context.Background(), token, p, policy)
			if res.Code != c.wantCode {
				t.Fatalf("code %q, want %q:\n%s", res.Code, c.wantCode, steps(res))
			}
			if c.wantCode != "" && (res.Failed().Name != trust.StepThumbprint || res.Message != trust.MessageThumbprint || !strings.Contains(res.Failed().Fix, top)) {
				t.Fatalf("want the thumbprint step to fail with STS's message and a fix naming %s:\n%s (message %q)", top, steps(res), res.Message)
			}
			is, dres := v.Discover(context.Background(), issuer)
			if !dres.OK() || is.Thumbprint != top || is.ThumbprintOK(c.thumbprints) != (c.wantCode == "") {
				t.Fatalf("discover: %+v (thumbprint ok %v), want thumbprint %s and ok %v:\n%s", is, is.ThumbprintOK(c.thumbprints), top, c.wantCode == "", steps(dres))
			}
		})
	}
}

// certChain is a root CA, an intermediate it signed and a leaf for 127.0.0.1 the intermediate signed; the server
// sends the leaf and the intermediate, as a server behind a private CA usually does.
type certChain struct {
	root, intermediate, leaf *x509.Certificate
	served                   tls.Certificate
	rootPool                 *x509.CertPool
}

func newChain(t *testing.T) certChain {
	t.Helper()
	mk := func(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
		key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der := must(x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey))
		return must(x509.ParseCertificate(der)), key
	}
	now := time.Now()
	ca := func(serial int64, name string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root, rootKey := mk(ca(1, "irsa test root"), nil, nil)
	inter, interKey := mk(ca(2, "irsa test intermediate"), root, rootKey)
	leaf, leafKey := mk(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}, inter, interKey)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return certChain{root: root, intermediate: inter, leaf: leaf, rootPool: pool,
		served: tls.Certificate{Certificate: [][]byte{leaf.Raw, inter.Raw}, PrivateKey: leafKey, Leaf: leaf}}
}

func kidOf(t *testing.T, key crypto.PublicKey) string { return trusttest.KeyID(t, key) }

// rawClaims is claims as JSON with key set to the literal JSON text value.
func rawClaims(t *testing.T, claims map[string]any, key, value string) []byte {
	t.Helper()
	m := map[string]json.RawMessage{}
	for k, v := range claims {
		m[k] = must(json.Marshal(v))
	}
	m[key] = json.RawMessage(value)
	return must(json.Marshal(m))
}

func steps(res *trust.Result) string {
	var b strings.Builder
	for _, s := range res.Steps {
		mark := "ok  "
		if !s.OK {
			mark = "FAIL"
		}
		b.WriteString("  " + mark + " " + s.Name + ": " + s.Message + "\n")
	}
	return b.String()
}

// closedPortURL is an https URL on loopback where nothing listens.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "https://" + addr + "/gone"
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	key := trusttest.Key(t, 0)
	private := f.srv.Publish(t, trusttest.Issuer{Name: "private-jwks", Keys: []crypto.PublicKey{&key.PublicKey}, JWKSStatus: http.StatusForbidden})
	v := f.verifier(0)

	is, res := v.Discover(context.Background(), f.issuer)
	if !res.OK() || is == nil {
		t.Fatalf("discover %s: %v\n%s", f.issuer, res.Err(), steps(res))
	}
	if len(is.Keys) != 1 || is.Keys[0].KeyID != f.kid || is.JWKSURI != f.issuer+"/keys.json" || is.Thumbprint != trust.Thumbprint(f.srv.Certificate()) {
		t.Fatalf("discovered %+v, want one key with kid %s at %s/keys.json", is, f.kid, f.issuer)
	}

	is, res = v.Discover(context.Background(), private)
	if is != nil || res.Code != trust.CodeInvalidIdentityToken || res.Failed() == nil || res.Failed().Name != trust.StepJWKS ||
		!strings.Contains(res.Failed().Message, "HTTP 403") {
		t.Fatalf("discover with a private JWKS: %+v\n%s", is, steps(res))
	}

	_, res = v.Discover(context.Background(), f.issuer+"/")
	if res.Failed() == nil || res.Failed().Name != trust.StepIssuer {
		t.Fatalf("discover with a trailing slash: want the issuer step to fail\n%s", steps(res))
	}
}

// TestVerifySlowIssuer checks that an issuer slower than the fetch timeout reads as STS reports it
// (InvalidIdentityToken: STS waits five seconds), not as unreachable.
func TestVerifySlowIssuer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	issuer := srv.URL + "/slow"
	prefix := trust.ConditionKeyPrefix(issuer)
	p := trust.Provider{URL: issuer, ARN: "arn:aws:iam::123456789012:oidc-provider/" + prefix, ClientIDs: []string{audience}}
	key := trusttest.Key(t, 0)
	token := trusttest.Sign(t, key, trusttest.KeyID(t, &key.PublicKey),
		trusttest.ServiceAccountClaims(issuer, "team-a", "app", audience, time.Now()))

	v := trust.New(trust.Options{HTTPClient: srv.Client(), FetchTimeout: 50 * time.Millisecond})
	res := v.Verify(context.Background(), token, p, trustPolicy(p.ARN, prefix, "StringEquals", "system:serviceaccount:team-a:app"))
	if res.Code != trust.CodeInvalidIdentityToken || res.Failed() == nil || res.Failed().Name != trust.StepDiscovery {
		t.Fatalf("code %q, want %q at the discovery step:\n%s", res.Code, trust.CodeInvalidIdentityToken, steps(res))
	}
}
