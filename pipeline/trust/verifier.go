// Package trust checks a web identity token against an IAM OIDC provider and a role trust policy the way AWS STS
// AssumeRoleWithWebIdentity does, and says step by step why it would pass or which AWS error it would return. It is
// pure apart from the anonymous HTTPS fetches of the issuer's discovery document and key set.
//
// Emulators (moto, LocalStack) accept any token, so this package is what `irsa doctor` and the strict STS gate
// (pipeline/stsgate) use to make emulator-based tests fail where real STS would.
package trust

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// AWS error codes of AssumeRoleWithWebIdentity.
const (
	// CodeInvalidIdentityToken: the token, the provider, the issuer documents or the key do not check out (HTTP 400).
	CodeInvalidIdentityToken = "InvalidIdentityToken"
	// CodeIDPCommunicationError: the issuer could not be reached at all (HTTP 400).
	CodeIDPCommunicationError = "IDPCommunicationError"
	// CodeExpiredToken: exp is in the past, beyond the allowed clock skew (HTTP 400).
	CodeExpiredToken = "ExpiredTokenException"
	// CodeAccessDenied: the role's trust policy does not allow this token, or the role does not exist (HTTP 403).
	CodeAccessDenied = "AccessDenied"
	// CodeIDPRejectedClaim is what STS returns when an identity provider it asks rejects the claim (HTTP 403). STS
	// only asks the provider for OAuth 2.0 access tokens (ProviderId: Login with Amazon, Facebook); it verifies OIDC
	// ID tokens itself, so the verifier never returns this code.
	CodeIDPRejectedClaim = "IDPRejectedClaim"
)

// Messages STS returns, reproduced so a gate's answers read like the real thing.
const (
	MessageNoKey        = "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements"
	MessageAudience     = "Incorrect token audience"
	MessageAccessDenied = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
	MessageInvalid      = "The web identity token that was passed could not be validated by AWS"
	MessageThumbprint   = "OpenIDConnect provider's HTTPS certificate doesn't match configured thumbprint"
)

// Step names, in the order Verify runs them.
const (
	StepToken       = "token"
	StepProvider    = "provider"
	StepDiscovery   = "discovery"
	StepIssuer      = "issuer"
	StepThumbprint  = "thumbprint"
	StepJWKS        = "jwks"
	StepKey         = "key"
	StepSignature   = "signature"
	StepLifetime    = "lifetime"
	StepAudience    = "audience"
	StepTrustPolicy = "trust-policy"
)

// Defaults for Options.
const (
	// DefaultSkew is the clock skew IAM allows beyond exp (five minutes, per the IAM user guide); the verifier allows
	// the same before nbf and iat.
	DefaultSkew = 5 * time.Minute
	// DefaultCacheTTL is how long fetched issuer documents are reused.
	DefaultCacheTTL = time.Minute
	// DefaultFetchTimeout is how long STS waits for an issuer (five seconds).
	DefaultFetchTimeout = 5 * time.Second
)

// Provider is an IAM OIDC identity provider as GetOpenIDConnectProvider describes it.
type Provider struct {
	// URL is the issuer URL. IAM returns it without a scheme ("host/path"); https:// is assumed then.
	URL string
	// ARN is the provider's ARN, the Principal.Federated that trust policies name.
	ARN         string
	ClientIDs   []string
	Thumbprints []string
}

// IssuerURL is the provider URL with its https:// scheme.
func (p Provider) IssuerURL() string {
	if strings.Contains(p.URL, "://") {
		return p.URL
	}
	return "https://" + p.URL
}

// Options configure a Verifier. The zero value is usable.
type Options struct {
	// HTTPClient fetches the issuer's documents; nil means http.DefaultClient. Tests pass one that trusts their CA.
	// The verifier uses a copy without cookie jar and without redirects: STS fetches anonymously and does not follow
	// redirects.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Skew is the clock skew allowed around exp, nbf and iat; 0 means DefaultSkew, negative means none.
	Skew time.Duration
	// CacheTTL is how long fetched documents are reused; 0 means DefaultCacheTTL, negative disables the cache.
	CacheTTL time.Duration
	// FetchTimeout bounds each fetch; 0 means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// IAMTrustedRoots are the CAs IAM trusts on its own (its library of trusted root CAs); nil means the system roots.
	// When the certificate of the JWKS host does not chain to one of them, STS checks the provider's thumbprint list
	// instead, and it must name the top certificate of the chain the host serves (the top intermediate or the root,
	// as IAM's "Obtain the thumbprint" guide takes it); otherwise STS answers InvalidIdentityToken. HTTPClient decides
	// whether the host can be reached at all; this pool decides whether the thumbprints are consulted.
	IAMTrustedRoots *x509.CertPool
}

// Verifier checks tokens. It is safe for concurrent use; it caches the issuer documents it fetches.
type Verifier struct {
	client       *http.Client
	iamRoots     *x509.CertPool
	now          func() time.Time
	skew         time.Duration
	fetchTimeout time.Duration
	cache        documentCache
}

// New returns a Verifier.
func New(opts Options) *Verifier {
	base := opts.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	client := *base
	client.Jar = nil
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	v := &Verifier{client: &client, now: opts.Now, skew: opts.Skew, fetchTimeout: opts.FetchTimeout, iamRoots: opts.IAMTrustedRoots}
	if v.now == nil {
		v.now = time.Now
	}
	switch {
	case v.skew == 0:
		v.skew = DefaultSkew
	case v.skew < 0:
		v.skew = 0
	}
	if v.fetchTimeout <= 0 {
		v.fetchTimeout = DefaultFetchTimeout
	}
	v.cache.ttl = opts.CacheTTL
	if v.cache.ttl == 0 {
		v.cache.ttl = DefaultCacheTTL
	}
	return v
}

// Step is one check of the chain.
type Step struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Message says what was checked and what was found.
	Message string `json:"message"`
	// Fix says, for a failed step, what to do in one sentence.
	Fix string `json:"fix,omitempty"`
}

// Result is the verdict on one token: the steps run, in order, and the AWS error STS would return.
type Result struct {
	Steps []Step `json:"steps"`
	// Code is the AWS error code; empty when STS would issue credentials.
	Code string `json:"code,omitempty"`
	// Message is the error message STS would return, empty on success.
	Message string `json:"message,omitempty"`
	// Claims are the token's claims, set once they could be read (verified or not: see the signature step).
	Claims *Claims `json:"claims,omitempty"`
}

// OK reports whether STS would accept the token.
func (r *Result) OK() bool { return r.Code == "" }

// Failed returns the failed step, or nil.
func (r *Result) Failed() *Step {
	for i := range r.Steps {
		if !r.Steps[i].OK {
			return &r.Steps[i]
		}
	}
	return nil
}

// Err returns nil on success, or an error naming the AWS code and the failed step.
func (r *Result) Err() error {
	if r.OK() {
		return nil
	}
	if s := r.Failed(); s != nil {
		return fmt.Errorf("%s: %s: %s", r.Code, s.Name, s.Message)
	}
	return fmt.Errorf("%s: %s", r.Code, r.Message)
}

func (r *Result) pass(name, format string, args ...any) {
	r.Steps = append(r.Steps, Step{Name: name, OK: true, Message: fmt.Sprintf(format, args...)})
}

func (r *Result) fail(code, awsMessage, name, fix, format string, args ...any) *Result {
	r.Steps = append(r.Steps, Step{Name: name, Message: fmt.Sprintf(format, args...), Fix: fix})
	r.Code, r.Message = code, awsMessage
	return r
}

// discoveryDocument is the part of the OpenID configuration STS reads.
type discoveryDocument struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// Verify checks token against provider p and the role's trust policy (JSON, or URL-encoded as GetRole returns it),
// in the order STS does, and stops at the first failure. The context bounds the issuer fetches.
func (v *Verifier) Verify(ctx context.Context, token string, p Provider, trustPolicy string) *Result {
	r := &Result{}

	// 1. The token must be a compact JWS signed with one of Algorithms; alg none, HS256 and the rest are refused here,
	// and so are NumericDate claims that are not integers.
	jws, claims, err := parseToken(token)
	if claims != nil {
		r.Claims = claims
	}
	if err != nil {
		return r.fail(CodeInvalidIdentityToken, MessageInvalid, StepToken,
			"pass the ServiceAccount token itself (a JWT signed by the cluster's service account key with "+algorithmList+", integer exp/iat/nbf)",
			"%v", err)
	}
	r.pass(StepToken, "%s JWT, kid %q, iss %q, sub %q, aud %q", claims.Algorithm, claims.KeyID, claims.Issuer, claims.Subject, claims.Audience)

	// 2. STS looks the provider up by the token's iss: it must equal the provider URL exactly.
	issuer := p.IssuerURL()
	if claims.Issuer != issuer {
		return r.fail(CodeInvalidIdentityToken, "No OpenIDConnect provider found in your account for "+claims.Issuer, StepProvider,
			"make the apiserver's --service-account-issuer, the published discovery document's issuer and the IAM OIDC provider URL the same string",
			"token iss %q does not equal the IAM OIDC provider URL %q (compared exactly: scheme, host case and trailing slash count)",
			claims.Issuer, issuer)
	}
	r.pass(StepProvider, "iss %q is the IAM OIDC provider %s", claims.Issuer, p.ARN)

	// 3-5. Discovery document, its issuer, the key set.
	pub := v.discover(ctx, r, issuer, p.Thumbprints, true)
	if pub == nil {
		return r
	}
	keys := pub.Keys

	// 6. The key: by kid; a token without kid uses the keys published without kid.
	candidates := selectKeys(keys, claims.KeyID)
	if len(candidates) == 0 {
		if claims.KeyID == "" {
			return r.fail(CodeInvalidIdentityToken, MessageNoKey, StepKey,
				"publish a copy of the signing key without kid (legacyEmptyKID) for tokens from clusters older than Kubernetes 1.16",
				"the token has no kid and %s has no signing key without kid", pub.JWKSURI)
		}
		return r.fail(CodeInvalidIdentityToken, MessageNoKey, StepKey,
			"publish the cluster's current service account public key (kid = base64url(SHA-256(PKIX DER))) in the JWKS",
			"no signing key with kid %q in %s (kids published: %q)", claims.KeyID, pub.JWKSURI, keyIDs(keys))
	}
	r.pass(StepKey, "%d key(s) with kid %q", len(candidates), claims.KeyID)

	// 7. The signature.
	var payload []byte
	for _, k := range candidates {
		if payload, err = jws.Verify(k.Key); err == nil {
			break
		}
	}
	if err != nil {
		return r.fail(CodeInvalidIdentityToken, MessageInvalid, StepSignature,
			"sign tokens with the private key whose public half is published in the JWKS, and pass them unmodified",
			"%s signature does not verify with the published key(s) for kid %q: %v", claims.Algorithm, claims.KeyID, err)
	}
	verified, err := parseClaims(payload)
	if err != nil {
		return r.fail(CodeInvalidIdentityToken, MessageInvalid, StepSignature,
			"pass a token whose claims are a JSON object with iss", "claims: %v", err)
	}
	verified.KeyID, verified.Algorithm = claims.KeyID, claims.Algorithm
	claims, r.Claims = verified, verified
	r.pass(StepSignature, "%s signature verifies", claims.Algorithm)

	// 8. Lifetime.
	now := v.now()
	switch {
	case claims.Expiry.IsZero():
		return r.fail(CodeInvalidIdentityToken, MessageInvalid, StepLifetime,
			"use a token with an exp claim", "the token has no exp claim")
	case now.After(claims.Expiry.Add(v.skew)):
		return r.fail(CodeExpiredToken,
			fmt.Sprintf("Token expired: current date/time %d must be before the expiration date/time %d", now.Unix(), claims.Expiry.Unix()),
			StepLifetime, "use a fresh token: the kubelet refreshes projected tokens, read the file again rather than caching it",
			"exp %s is more than %s before now (%s)", claims.Expiry.UTC().Format(time.RFC3339), v.skew, now.UTC().Format(time.RFC3339))
	case !claims.NotBefore.IsZero() && now.Add(v.skew).Before(claims.NotBefore):
		return r.fail(CodeInvalidIdentityToken, MessageInvalid, StepLifetime,
			"synchronize the clocks of the cluster and of the caller (NTP)",
			"nbf %s is more than %s after now (%s)", claims.NotBefore.UTC().Format(time.RFC3339), v.skew, now.UTC().Format(time.RFC3339))
	case !claims.IssuedAt.IsZero() && now.Add(v.skew).Before(claims.IssuedAt):
		return r.fail(CodeInvalidIdentityToken, MessageInvalid, StepLifetime,
			"synchronize the clocks of the cluster and of the caller (NTP)",
			"iat %s is more than %s after now (%s)", claims.IssuedAt.UTC().Format(time.RFC3339), v.skew, now.UTC().Format(time.RFC3339))
	}
	r.pass(StepLifetime, "valid until %s (skew %s)", claims.Expiry.UTC().Format(time.RFC3339), v.skew)

	// 9. Audience.
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(p.ClientIDs, a) }) {
		return r.fail(CodeInvalidIdentityToken, MessageAudience, StepAudience,
			"make the webhook's --token-audience (the token's aud) one of the IAM OIDC provider's client IDs",
			"aud %q is not among the provider's client IDs %q", claims.Audience, p.ClientIDs)
	}
	r.pass(StepAudience, "aud %q is a client ID of the provider", claims.Audience)

	// 10. The role's trust policy.
	decision, err := EvaluateTrustPolicy(trustPolicy, Request{
		Principal: p.ARN, Action: ActionAssumeRoleWithWebIdentity, Context: ConditionContext(issuer, claims),
	})
	if err != nil {
		return r.fail(CodeAccessDenied, MessageAccessDenied, StepTrustPolicy,
			"fix the role's trust policy document", "%v", err)
	}
	if !decision.Allowed {
		fix := fmt.Sprintf("add a statement allowing %s for Federated %s with StringEquals %s:sub %q",
			ActionAssumeRoleWithWebIdentity, p.ARN, ConditionKeyPrefix(issuer), claims.Subject)
		if decision.ExplicitDeny {
			fix = fmt.Sprintf("remove or narrow the Deny statement %s of the role's trust policy", decision.Statement)
		}
		return r.fail(CodeAccessDenied, MessageAccessDenied, StepTrustPolicy, fix, "%s", decision.Reason)
	}
	r.pass(StepTrustPolicy, "%s", decision.Reason)
	return r
}

// Issuer is what an OIDC issuer publishes, as STS fetches it.
type Issuer struct {
	// URL is the issuer URL the documents were fetched for.
	URL          string
	DiscoveryURL string
	// DiscoveryIssuer is the issuer field of the discovery document.
	DiscoveryIssuer string
	JWKSURI         string
	// Keys are the signing keys of the JWKS (RSA and ECDSA), in published order.
	Keys []jose.JSONWebKey
	// Thumbprint is the IAM thumbprint (hex SHA-1) of the top certificate the JWKS host served.
	Thumbprint string
	// ThumbprintRequired is true when the JWKS host's certificate does not chain to a CA IAM trusts
	// (Options.IAMTrustedRoots): STS then requires Thumbprint in the provider's thumbprint list.
	ThumbprintRequired bool
}

// ThumbprintOK reports whether STS would accept the issuer's certificate with the provider's thumbprints: always when
// the certificate chains to a CA IAM trusts, otherwise when the list names Thumbprint (case-insensitive).
func (is *Issuer) ThumbprintOK(thumbprints []string) bool {
	return !is.ThumbprintRequired || slices.ContainsFunc(thumbprints, func(t string) bool { return strings.EqualFold(t, is.Thumbprint) })
}

// Discover fetches issuerURL's discovery document and key set anonymously, as STS does, and checks that the
// document's issuer is issuerURL exactly. It returns nil and a failed Result when STS could not get a key from it.
// `irsa doctor` uses it to check publication without a token.
func (v *Verifier) Discover(ctx context.Context, issuerURL string) (*Issuer, *Result) {
	r := &Result{}
	return v.discover(ctx, r, issuerURL, nil, false), r
}

// discover runs the discovery, issuer, JWKS and thumbprint steps, appending them to r. With checkThumbprint, a
// certificate STS would refuse with thumbprints fails the thumbprint step; without it the step only reports.
func (v *Verifier) discover(ctx context.Context, r *Result, issuer string, thumbprints []string, checkThumbprint bool) *Issuer {
	discoveryURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	ddoc, cached, ferr := v.fetch(ctx, discoveryURL)
	if ferr != nil {
		r.failFetch(StepDiscovery, ferr, "the discovery document")
		return nil
	}
	var disc discoveryDocument
	if err := json.Unmarshal(ddoc.body, &disc); err != nil {
		r.fail(CodeInvalidIdentityToken, MessageNoKey, StepDiscovery,
			"publish a JSON OpenID configuration at "+discoveryURL, "%s is not JSON: %v", discoveryURL, err)
		return nil
	}
	r.pass(StepDiscovery, "fetched %s anonymously%s", discoveryURL, cachedNote(cached))

	// The discovery document's issuer must be the token's iss and the provider URL, byte for byte.
	if disc.Issuer != issuer {
		r.fail(CodeInvalidIdentityToken, MessageNoKey, StepIssuer,
			"publish a discovery document whose issuer is exactly the apiserver's --service-account-issuer and the IAM provider URL",
			"discovery document issuer %q does not equal %q", disc.Issuer, issuer)
		return nil
	}
	r.pass(StepIssuer, "discovery document issuer %q equals the token's iss and the provider URL", disc.Issuer)

	if disc.JWKSURI == "" {
		r.fail(CodeInvalidIdentityToken, MessageNoKey, StepJWKS,
			"add jwks_uri to the discovery document", "discovery document %s has no jwks_uri", discoveryURL)
		return nil
	}
	kdoc, cached, ferr := v.fetch(ctx, disc.JWKSURI)
	if ferr != nil {
		r.failFetch(StepJWKS, ferr, "the key set (jwks_uri)")
		return nil
	}
	keys, skipped, err := parseKeySet(kdoc.body)
	if err != nil {
		r.fail(CodeInvalidIdentityToken, MessageNoKey, StepJWKS,
			"publish a JSON Web Key Set {\"keys\": [...]} at "+disc.JWKSURI, "%s: %v", disc.JWKSURI, err)
		return nil
	}
	r.pass(StepJWKS, "fetched %s anonymously: %d key(s)%s%s", disc.JWKSURI, len(keys), skippedNote(skipped), cachedNote(cached))
	is := &Issuer{URL: issuer, DiscoveryURL: discoveryURL, DiscoveryIssuer: disc.Issuer, JWKSURI: disc.JWKSURI,
		Keys: keys, Thumbprint: kdoc.thumbprint, ThumbprintRequired: kdoc.thumbprint != "" && !kdoc.chainTrusted}

	// IAM trusts well-known CAs itself and consults the thumbprints only for a JWKS host whose certificate chains to
	// another CA; then the top certificate of the served chain must be listed.
	switch {
	case kdoc.thumbprint == "":
	case !is.ThumbprintRequired:
		r.pass(StepThumbprint, "the certificate of %s chains to a CA IAM trusts: thumbprints are not consulted", hostOf(disc.JWKSURI))
	case is.ThumbprintOK(thumbprints):
		r.pass(StepThumbprint, "the certificate of %s does not chain to a CA IAM trusts; its top certificate's thumbprint %s is in the provider's list",
			hostOf(disc.JWKSURI), kdoc.thumbprint)
	case !checkThumbprint:
		r.pass(StepThumbprint, "the certificate of %s does not chain to a CA IAM trusts: the provider's thumbprints must include %s, its top certificate's",
			hostOf(disc.JWKSURI), kdoc.thumbprint)
	default:
		r.fail(CodeInvalidIdentityToken, MessageThumbprint, StepThumbprint,
			fmt.Sprintf("add thumbprint %s to the IAM OIDC provider (irsa apply --only provider), or serve the issuer with a certificate from a CA IAM trusts", kdoc.thumbprint),
			"the certificate of %s does not chain to a CA IAM trusts, and its top certificate's thumbprint %s is not in the provider's list %q",
			hostOf(disc.JWKSURI), kdoc.thumbprint, thumbprints)
		return nil
	}
	return is
}

func hostOf(u string) string {
	if parsed, err := url.Parse(u); err == nil && parsed.Host != "" {
		return parsed.Host
	}
	return u
}

func (r *Result) failFetch(step string, fe *fetchError, what string) *Result {
	fix := "make " + what + " publicly readable over HTTPS (anonymous GET must return 200): for S3, a bucket policy granting s3:GetObject to \"*\" on the two objects"
	msg := MessageNoKey
	switch {
	case fe.code == CodeIDPCommunicationError:
		fix = "make the issuer host reachable from the internet over HTTPS"
		msg = "Couldn't connect to the identity provider at " + fe.url
	case fe.status == http.StatusNotFound:
		fix = "upload " + what + " at " + fe.url
	case fe.status >= 300 && fe.status < 400:
		fix = "serve " + what + " at " + fe.url + " directly: STS does not follow redirects"
	}
	return r.fail(fe.code, msg, step, fix, "%v", fe)
}

func cachedNote(cached bool) string {
	if cached {
		return " (cached)"
	}
	return ""
}

func skippedNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d unusable entries skipped", n)
}

// ConditionKeyPrefix is the prefix of the condition keys STS sets for an OIDC provider: the provider URL without its
// scheme, exactly as IAM names the provider ("https://host/path" -> "host/path"; a trailing slash is kept, as IAM
// keeps it in the provider's ARN).
func ConditionKeyPrefix(issuerURL string) string {
	if i := strings.Index(issuerURL, "://"); i >= 0 {
		return issuerURL[i+3:]
	}
	return issuerURL
}

// ConditionContext returns the condition keys STS sets for a verified token: <prefix>:sub, <prefix>:aud and, when
// the token has them, <prefix>:amr and <prefix>:azp.
func ConditionContext(issuerURL string, c *Claims) map[string][]string {
	prefix := ConditionKeyPrefix(issuerURL)
	ctx := map[string][]string{
		prefix + ":sub": {c.Subject},
		prefix + ":aud": c.Audience,
	}
	if len(c.AMR) > 0 {
		ctx[prefix+":amr"] = c.AMR
	}
	if c.AuthorizedParty != "" {
		ctx[prefix+":azp"] = []string{c.AuthorizedParty}
	}
	return ctx
}

func selectKeys(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

func keyIDs(keys []jose.JSONWebKey) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.KeyID)
	}
	return out
}
