package stsgate_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/stsgate"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
	"github.com/irsa-anywhere/irsa/pipeline/trust/trusttest"
)

const (
	audience = "sts.amazonaws.com"
	account  = "123456789012"
)

// env is moto behind the gate, with issuers served over HTTPS and their providers and roles in moto's IAM.
type env struct {
	moto      *motoserver.Server
	issuers   *trusttest.Server
	gateURL   string
	iam       *iam.Client // straight to moto
	sts       *sts.Client // through the gate
	directSTS *sts.Client // straight to moto
	providers map[string]string
}

func newEnv(t testing.TB, opts stsgate.Options) *env {
	t.Helper()
	e := &env{moto: motoserver.Start(t), issuers: trusttest.NewServer(t), providers: map[string]string{}}
	opts.Backend, opts.BackendCA, opts.IssuerClient = e.moto.URL, e.moto.CAPool, e.issuers.Client()
	gate, err := stsgate.New(opts)
	if err != nil {
		t.Fatalf("new gate: %v", err)
	}
	gateSrv := httptest.NewServer(gate)
	t.Cleanup(gateSrv.Close)
	e.gateURL = gateSrv.URL

	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.TLSClientConfig = &tls.Config{RootCAs: e.moto.CAPool}
	})
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	e.iam = iam.New(iam.Options{Region: "us-east-1", Credentials: creds, HTTPClient: httpClient, BaseEndpoint: aws.String(e.moto.URL)})
	e.sts = sts.New(sts.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(e.gateURL), RetryMaxAttempts: 1})
	e.directSTS = sts.New(sts.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(e.moto.URL), RetryMaxAttempts: 1})
	return e
}

// addProvider creates the IAM OIDC provider for issuerURL in moto, with the issuer server's thumbprint, and returns
// its ARN.
func (e *env) addProvider(t testing.TB, issuerURL string) string {
	t.Helper()
	return e.addProviderWith(t, issuerURL, []string{trust.Thumbprint(e.issuers.Certificate())})
}

// addProviderWith creates the IAM OIDC provider for issuerURL with the given thumbprints and returns its ARN.
func (e *env) addProviderWith(t testing.TB, issuerURL string, thumbprints []string) string {
	t.Helper()
	out, err := e.iam.CreateOpenIDConnectProvider(context.Background(), &iam.CreateOpenIDConnectProviderInput{
		Url:            aws.String(issuerURL),
		ClientIDList:   []string{audience},
		ThumbprintList: thumbprints,
	})
	if err != nil {
		t.Fatalf("create provider %s: %v", issuerURL, err)
	}
	e.providers[issuerURL] = aws.ToString(out.OpenIDConnectProviderArn)
	return aws.ToString(out.OpenIDConnectProviderArn)
}

// addRole creates a role whose trust policy has the given statements and returns its ARN.
func (e *env) addRole(t testing.TB, name string, statements ...map[string]any) string {
	t.Helper()
	doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	out, err := e.iam.CreateRole(context.Background(), &iam.CreateRoleInput{
		RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(string(doc)),
	})
	if err != nil {
		t.Fatalf("create role %s: %v", name, err)
	}
	return aws.ToString(out.Role.Arn)
}

// allowFor is an Allow statement for providerARN with operator on sub and StringEquals on aud.
func allowFor(providerARN, issuerURL, operator, sub string) map[string]any {
	prefix := trust.ConditionKeyPrefix(issuerURL)
	cond := map[string]map[string]string{"StringEquals": {prefix + ":aud": audience}}
	if cond[operator] == nil {
		cond[operator] = map[string]string{}
	}
	cond[operator][prefix+":sub"] = sub
	return map[string]any{
		"Effect":    "Allow",
		"Principal": map[string]any{"Federated": providerARN},
		"Action":    "sts:AssumeRoleWithWebIdentity",
		"Condition": cond,
	}
}

func (e *env) assume(ctx context.Context, client *sts.Client, roleARN, token string) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	return client.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("irsa-test"), WebIdentityToken: aws.String(token),
	})
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	if err != nil {
		return "non-API error: " + err.Error()
	}
	return ""
}

// TestGateAssumeRoleWithWebIdentity runs each case through the AWS SDK's STS client, the gate and moto, and expects
// the AWS error code real STS returns.
func TestGateAssumeRoleWithWebIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stsgate.Options{})
	ctx := context.Background()
	key, foreign := trusttest.Key(t, 0), trusttest.Key(t, 1)
	kid := trusttest.KeyID(t, &key.PublicKey)
	keys := []crypto.PublicKey{&key.PublicKey}
	now := time.Now()

	good := e.issuers.Publish(t, trusttest.Issuer{Name: "good", Keys: keys})
	private := e.issuers.Publish(t, trusttest.Issuer{Name: "private", Keys: keys, DiscoveryStatus: http.StatusForbidden})
	noJWKS := e.issuers.Publish(t, trusttest.Issuer{Name: "nojwks", Keys: keys, JWKSStatus: http.StatusNotFound})
	noProvider := e.issuers.Publish(t, trusttest.Issuer{Name: "noprovider", Keys: keys})
	other := e.issuers.Publish(t, trusttest.Issuer{Name: "other", Keys: keys})
	p256, p384 := trusttest.ECKey(t, elliptic.P256()), trusttest.ECKey(t, elliptic.P384())
	ec := e.issuers.Publish(t, trusttest.Issuer{Name: "ec", Keys: []crypto.PublicKey{&p256.PublicKey, &p384.PublicKey}})
	noThumb := e.issuers.Publish(t, trusttest.Issuer{Name: "nothumb", Keys: keys})
	wrongThumb := e.issuers.Publish(t, trusttest.Issuer{Name: "wrongthumb", Keys: keys})

	goodARN := e.addProvider(t, good)
	const sa = "system:serviceaccount:team-a:app"
	roles := map[string]string{
		"app":          e.addRole(t, "irsa-app", allowFor(goodARN, good, "StringEquals", sa)),
		"like-admits":  e.addRole(t, "irsa-like-admits", allowFor(goodARN, good, "StringLike", "system:serviceaccount:team-a:*")),
		"like-rejects": e.addRole(t, "irsa-like-rejects", allowFor(goodARN, good, "StringLike", "system:serviceaccount:team-b:*")),
		"deny": e.addRole(t, "irsa-deny", allowFor(goodARN, good, "StringLike", "system:serviceaccount:*"), map[string]any{
			"Sid": "NoTeamA", "Effect": "Deny", "Principal": map[string]any{"Federated": goodARN}, "Action": "sts:AssumeRoleWithWebIdentity",
			"Condition": map[string]any{"StringLike": map[string]any{trust.ConditionKeyPrefix(good) + ":sub": "system:serviceaccount:team-a:*"}},
		}),
		"private":    e.addRole(t, "irsa-private", allowFor(e.addProvider(t, private), private, "StringEquals", sa)),
		"nojwks":     e.addRole(t, "irsa-nojwks", allowFor(e.addProvider(t, noJWKS), noJWKS, "StringEquals", sa)),
		"noprovider": e.addRole(t, "irsa-noprovider", allowFor("arn:aws:iam::"+account+":oidc-provider/"+trust.ConditionKeyPrefix(noProvider), noProvider, "StringEquals", sa)),
		"missing":    "arn:aws:iam::" + account + ":role/irsa-missing",
		"ec":         e.addRole(t, "irsa-ec", allowFor(e.addProvider(t, ec), ec, "StringEquals", sa)),
		"nothumb":    e.addRole(t, "irsa-nothumb", allowFor(e.addProviderWith(t, noThumb, nil), noThumb, "StringEquals", sa)),
		"wrongthumb": e.addRole(t, "irsa-wrongthumb", allowFor(e.addProviderWith(t, wrongThumb, []string{strings.Repeat("ab", 20)}), wrongThumb, "StringEquals", sa)),
	}
	claims := trusttest.ServiceAccountClaims(good, "team-a", "app", audience, now.Add(-time.Minute))
	on := func(issuer string) map[string]any { return trusttest.With(claims, "iss", issuer) }
	sign := func(c map[string]any) string { return trusttest.Sign(t, key, kid, c) }
	valid := sign(claims)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustDER(t, &key.PublicKey)})
	signEC := func(k *ecdsa.PrivateKey, alg jose.SignatureAlgorithm) string {
		return trusttest.SignWith(t, k, alg, trusttest.KeyID(t, &k.PublicKey), on(ec))
	}
	withRaw := func(claim, value string) string {
		m := map[string]json.RawMessage{}
		for k, v := range claims {
			m[k], _ = json.Marshal(v)
		}
		m[claim] = json.RawMessage(value)
		payload, _ := json.Marshal(m)
		return trusttest.SignPayload(t, key, jose.RS256, kid, payload)
	}
	arns := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "arn:aws:iam::aws:policy/ReadOnlyAccess"
		}
		return out
	}

	cases := []struct {
		name, role, token, want string
		// step is the verifier step the gate's message must name.
		step string
		// session and duration override RoleSessionName and set DurationSeconds.
		session  string
		duration int32
		// providerID, policy and policyARNs set ProviderId, Policy and PolicyArns.
		providerID, policy string
		policyARNs         []string
		// msg is a substring of the error message (STS's wording).
		msg string
	}{
		{name: "valid token and trust policy", role: "app", token: valid},
		{name: "trust policy StringLike that admits", role: "like-admits", token: valid},
		{name: "foreign signing key", role: "app", token: trusttest.Sign(t, foreign, kid, claims), want: trust.CodeInvalidIdentityToken, step: trust.StepSignature},
		{name: "unknown kid", role: "app", token: trusttest.Sign(t, key, "unpublished-kid", claims), want: trust.CodeInvalidIdentityToken, step: trust.StepKey},
		{name: "tampered payload", role: "app", token: trusttest.Tamper(t, trusttest.Sign(t, key, kid, trusttest.With(claims, "sub", "system:serviceaccount:team-b:app")), claims), want: trust.CodeInvalidIdentityToken, step: trust.StepSignature},
		{name: "alg none", role: "app", token: trusttest.Unsigned(t, kid, claims), want: trust.CodeInvalidIdentityToken, step: trust.StepToken},
		{name: "alg HS256 keyed with the public key", role: "app", token: trusttest.SignHS256(t, pubPEM, kid, claims), want: trust.CodeInvalidIdentityToken, step: trust.StepToken},
		{name: "garbage token", role: "app", token: "garbage", want: trust.CodeInvalidIdentityToken, step: trust.StepToken},
		{name: "expired", role: "app", token: sign(trusttest.With(claims, "exp", now.Add(-10*time.Minute).Unix())), want: trust.CodeExpiredToken, step: trust.StepLifetime},
		{name: "nbf in the future", role: "app", token: sign(trusttest.With(claims, "nbf", now.Add(10*time.Minute).Unix())), want: trust.CodeInvalidIdentityToken, step: trust.StepLifetime},
		{name: "iss with a trailing slash", role: "app", token: sign(on(good + "/")), want: trust.CodeInvalidIdentityToken, step: trust.StepProvider},
		{name: "iss of another issuer", role: "app", token: sign(on(other)), want: trust.CodeInvalidIdentityToken, step: trust.StepProvider},
		{name: "aud not in client IDs", role: "app", token: sign(trusttest.With(claims, "aud", []string{"kubernetes.default.svc"})), want: trust.CodeInvalidIdentityToken, step: trust.StepAudience},
		{name: "sub of another ServiceAccount", role: "app", token: sign(trusttest.With(claims, "sub", "system:serviceaccount:team-a:other")), want: trust.CodeAccessDenied, step: trust.StepTrustPolicy},
		{name: "sub of another namespace", role: "app", token: sign(trusttest.With(claims, "sub", "system:serviceaccount:team-b:app")), want: trust.CodeAccessDenied, step: trust.StepTrustPolicy},
		{name: "trust policy StringLike that does not admit", role: "like-rejects", token: valid, want: trust.CodeAccessDenied, step: trust.StepTrustPolicy},
		{name: "explicit deny", role: "deny", token: valid, want: trust.CodeAccessDenied, step: trust.StepTrustPolicy},
		{name: "role missing", role: "missing", token: valid, want: trust.CodeAccessDenied, step: trust.StepTrustPolicy},
		{name: "provider missing", role: "noprovider", token: sign(on(noProvider)), want: trust.CodeInvalidIdentityToken, step: trust.StepProvider},
		{name: "discovery document private (403)", role: "private", token: sign(on(private)), want: trust.CodeInvalidIdentityToken, step: trust.StepDiscovery},
		{name: "role session name with a space", role: "app", token: valid, want: stsgate.CodeValidationError, step: stsgate.StepParameters, session: "irsa test"},
		{name: "DurationSeconds below 900", role: "app", token: valid, want: stsgate.CodeValidationError, step: stsgate.StepParameters, duration: 60},
		{name: "DurationSeconds above the role's maximum", role: "app", token: valid, want: stsgate.CodeValidationError, step: stsgate.StepParameters, duration: 7200},
		{name: "DurationSeconds within the role's maximum", role: "app", token: valid, duration: 1800},
		{name: "JWKS missing (404)", role: "nojwks", token: sign(on(noJWKS)), want: trust.CodeInvalidIdentityToken, step: trust.StepJWKS},
		// Round two: every algorithm STS accepts, and the ones it refuses.
		{name: "RS384", role: "app", token: trusttest.SignWith(t, key, jose.RS384, kid, claims)},
		{name: "RS512", role: "app", token: trusttest.SignWith(t, key, jose.RS512, kid, claims)},
		{name: "ES256 from an EC P-256 issuer", role: "ec", token: signEC(p256, jose.ES256)},
		{name: "ES384 from an EC P-384 issuer", role: "ec", token: signEC(p384, jose.ES384)},
		{name: "PS256 refused", role: "app", token: trusttest.SignWith(t, key, jose.PS256, kid, claims), want: trust.CodeInvalidIdentityToken, step: trust.StepToken, msg: "not one STS accepts"},
		// Claims: NumericDate must be an integer.
		{name: "exp with a fraction", role: "app", token: withRaw("exp", fmt.Sprintf("%d.5", now.Add(time.Hour).Unix())), want: trust.CodeInvalidIdentityToken, step: trust.StepToken, msg: "not an integer"},
		{name: "iat in exponent notation", role: "app", token: withRaw("iat", "1.7e9"), want: trust.CodeInvalidIdentityToken, step: trust.StepToken, msg: "not an integer"},
		{name: "nbf as a string", role: "app", token: withRaw("nbf", fmt.Sprintf(`"%d"`, now.Unix())), want: trust.CodeInvalidIdentityToken, step: trust.StepToken},
		{name: "iat in the future", role: "app", token: sign(trusttest.With(claims, "iat", now.Add(10*time.Minute).Unix(), "nbf", nil)), want: trust.CodeInvalidIdentityToken, step: trust.StepLifetime},
		{name: "no exp", role: "app", token: sign(trusttest.With(claims, "exp", nil)), want: trust.CodeInvalidIdentityToken, step: trust.StepLifetime},
		{name: "expired within the five-minute skew", role: "app", token: sign(trusttest.With(claims, "exp", now.Add(-4*time.Minute).Unix()))},
		// Thumbprints: the issuer's certificate chains to no CA IAM trusts, so the provider's list must name it.
		{name: "provider without thumbprints", role: "nothumb", token: sign(on(noThumb)), want: trust.CodeInvalidIdentityToken, step: trust.StepThumbprint, msg: trust.MessageThumbprint},
		{name: "provider with another thumbprint", role: "wrongthumb", token: sign(on(wrongThumb)), want: trust.CodeInvalidIdentityToken, step: trust.StepThumbprint, msg: trust.MessageThumbprint},
		// Request parameters.
		{name: "ProviderId of an OAuth provider with an OIDC token", role: "app", token: valid, providerID: "www.amazon.com", want: trust.CodeIDPRejectedClaim, step: stsgate.StepParameters},
		{name: "ProviderId of an OIDC issuer", role: "app", token: valid, providerID: strings.TrimPrefix(good, "https://"), want: trust.CodeInvalidIdentityToken, step: stsgate.StepParameters},
		{name: "ProviderId too short", role: "app", token: valid, providerID: "abc", want: stsgate.CodeValidationError, msg: "'providerId' failed to satisfy constraint: Member must have length greater than or equal to 4"},
		{name: "role session name of 65 characters", role: "app", token: valid, session: strings.Repeat("s", 65), want: stsgate.CodeValidationError, msg: "Member must have length less than or equal to 64"},
		{name: "role session name of 1 character", role: "app", token: valid, session: "s", want: stsgate.CodeValidationError, msg: "Member must have length greater than or equal to 2"},
		{name: "role session name of 64 characters", role: "app", token: valid, session: strings.Repeat("s", 64)},
		{name: "role session name with all allowed punctuation", role: "app", token: valid, session: "a_b+c=d,e.f@g-h"},
		{name: "DurationSeconds above 43200", role: "app", token: valid, duration: 43201, want: stsgate.CodeValidationError, msg: "Member must have value less than or equal to 43200"},
		{name: "two violations reported together", role: "app", token: valid, session: "s", duration: 60, want: stsgate.CodeValidationError, msg: "2 validation errors detected"},
		{name: "token longer than 20000 characters", role: "app", token: strings.Repeat("a", 20001), want: stsgate.CodeValidationError, msg: "'webIdentityToken' failed to satisfy constraint: Member must have length less than or equal to 20000"},
		{name: "token shorter than 4 characters", role: "app", token: "abc", want: stsgate.CodeValidationError, msg: "Member must have length greater than or equal to 4"},
		{name: "session policy of 2049 characters", role: "app", token: valid, policy: `{"Version":"2012-10-17","Statement":[]}` + strings.Repeat(" ", 2049-39), want: stsgate.CodeValidationError, msg: "'policy' failed to satisfy constraint: Member must have length less than or equal to 2048"},
		{name: "session policy not JSON", role: "app", token: valid, policy: "allow everything", want: stsgate.CodeMalformedPolicyDocument},
		{name: "session policy within the rules", role: "app", token: valid, policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}`},
		{name: "eleven policy ARNs", role: "app", token: valid, policyARNs: arns(11), want: stsgate.CodeValidationError, msg: "'policyArns' failed to satisfy constraint: Member must have length less than or equal to 10"},
		{name: "policy ARN too short", role: "app", token: valid, policyARNs: []string{"arn:aws:iam::x"}, want: stsgate.CodeValidationError, msg: "'policyArns.1.member.arn' failed to satisfy constraint"},
		{name: "ten policy ARNs", role: "app", token: valid, policyARNs: arns(10)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(roles[c.role]), RoleSessionName: aws.String("irsa-test"),
				WebIdentityToken: aws.String(c.token)}
			if c.session != "" {
				in.RoleSessionName = aws.String(c.session)
			}
			if c.duration != 0 {
				in.DurationSeconds = aws.Int32(c.duration)
			}
			if c.providerID != "" {
				in.ProviderId = aws.String(c.providerID)
			}
			if c.policy != "" {
				in.Policy = aws.String(c.policy)
			}
			for _, arn := range c.policyARNs {
				in.PolicyArns = append(in.PolicyArns, ststypes.PolicyDescriptorType{Arn: aws.String(arn)})
			}
			out, err := e.sts.AssumeRoleWithWebIdentity(ctx, in)
			if got := errorCode(err); got != c.want {
				t.Fatalf("error code %q, want %q (err: %v)", got, c.want, err)
			}
			if c.step != "" && !strings.Contains(err.Error(), "step "+c.step+":") {
				t.Fatalf("error does not name step %q: %v", c.step, err)
			}
			if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error does not say %q: %v", c.msg, err)
			}
			if c.want == "" && (out.Credentials == nil || aws.ToString(out.Credentials.AccessKeyId) == "") {
				t.Fatalf("no credentials from moto: %+v", out)
			}
		})
	}

	// The point of the gate: moto alone accepts the tokens the gate refuses.
	t.Run("moto alone accepts a forged token", func(t *testing.T) {
		t.Parallel()
		if _, err := e.assume(ctx, e.directSTS, roles["missing"], "garbage"); err != nil {
			t.Fatalf("moto refused a garbage token (%v): the premise of the gate has changed", err)
		}
	})
}

// TestGateAnswersLikeSTS checks the raw HTTP answers: status, XML shape, GET query-string requests, and that other
// requests reach the backend unchanged.
func TestGateAnswersLikeSTS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stsgate.Options{IAMCacheTTL: -1})
	key := trusttest.Key(t, 0)
	good := e.issuers.Publish(t, trusttest.Issuer{Name: "good", Keys: []crypto.PublicKey{&key.PublicKey}})
	providerARN := e.addProvider(t, good)
	roleARN := e.addRole(t, "irsa-raw", allowFor(providerARN, good, "StringEquals", "system:serviceaccount:team-a:app"))
	claims := trusttest.ServiceAccountClaims(good, "team-a", "app", audience, time.Now().Add(-time.Minute))
	kid := trusttest.KeyID(t, &key.PublicKey)

	cases := []struct {
		name       string
		token      string
		method     string
		wantStatus int
		wantCode   string
	}{
		{"POST valid", trusttest.Sign(t, key, kid, claims), http.MethodPost, http.StatusOK, ""},
		{"GET valid", trusttest.Sign(t, key, kid, claims), http.MethodGet, http.StatusOK, ""},
		{"POST invalid token", "garbage", http.MethodPost, http.StatusBadRequest, trust.CodeInvalidIdentityToken},
		{"GET invalid token", "garbage", http.MethodGet, http.StatusBadRequest, trust.CodeInvalidIdentityToken},
		{"POST access denied", trusttest.Sign(t, key, kid, trusttest.With(claims, "sub", "system:serviceaccount:x:y")), http.MethodPost, http.StatusForbidden, trust.CodeAccessDenied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			form := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}, "RoleArn": {roleARN},
				"RoleSessionName": {"raw"}, "WebIdentityToken": {c.token}}
			var req *http.Request
			if c.method == http.MethodGet {
				req, _ = http.NewRequest(http.MethodGet, e.gateURL+"/?"+form.Encode(), nil)
			} else {
				req, _ = http.NewRequest(http.MethodPost, e.gateURL+"/", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.wantStatus, body)
			}
			if c.wantCode == "" {
				// moto routes an unsigned GET / to S3, not STS, so only the POST reaches moto's STS; both must pass the gate.
				if c.method == http.MethodGet && !strings.Contains(string(body), "<ErrorResponse") {
					return
				}
				if !strings.Contains(string(body), "<AccessKeyId>") {
					t.Fatalf("no credentials in the forwarded answer: %s", body)
				}
				return
			}
			var er struct {
				XMLName   xml.Name `xml:"ErrorResponse"`
				Error     struct{ Type, Code, Message string }
				RequestID string `xml:"RequestId"`
			}
			if err := xml.Unmarshal(body, &er); err != nil {
				t.Fatalf("not an ErrorResponse: %v: %s", err, body)
			}
			if er.Error.Type != "Sender" || er.Error.Code != c.wantCode || er.Error.Message == "" || er.RequestID == "" ||
				resp.Header.Get("x-amzn-RequestId") != er.RequestID || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
				t.Fatalf("error response %+v (headers %v), want Sender/%s with a message and request id", er, resp.Header, c.wantCode)
			}
		})
	}

	t.Run("other requests are forwarded", func(t *testing.T) {
		t.Parallel()
		httpClient := awshttp.NewBuildableClient()
		viaGate := iam.New(iam.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(e.gateURL),
			Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
		out, err := viaGate.GetRole(context.Background(), &iam.GetRoleInput{RoleName: aws.String("irsa-raw")})
		if err != nil {
			t.Fatalf("GetRole through the gate: %v", err)
		}
		if aws.ToString(out.Role.Arn) != roleARN {
			t.Fatalf("GetRole through the gate: ARN %q, want %q", aws.ToString(out.Role.Arn), roleARN)
		}
		caller, err := sts.New(sts.Options{Region: "us-east-1", HTTPClient: httpClient, BaseEndpoint: aws.String(e.gateURL),
			Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if err != nil || aws.ToString(caller.Account) != account {
			t.Fatalf("GetCallerIdentity through the gate: %+v, %v", caller, err)
		}
	})
}

func TestNewRejectsBadBackend(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"", "127.0.0.1:4566", "ftp://host", "https://"} {
		if _, err := stsgate.New(stsgate.Options{Backend: backend}); err == nil {
			t.Errorf("New with backend %q: no error", backend)
		}
	}
}

func mustDER(t testing.TB, key crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
