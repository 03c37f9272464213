// Package stsgate is a strict STS gate: an HTTP proxy to put in front of an AWS emulator (moto, LocalStack) whose
// AssumeRoleWithWebIdentity accepts any token. The gate checks each AssumeRoleWithWebIdentity request the way AWS STS
// does (pipeline/trust), reading the IAM OIDC provider and the role from the emulator's own IAM, and answers the
// failures with AWS-shaped errors; valid requests and every other request go to the emulator unchanged. A test suite
// that runs against the gate then fails where real AWS would.
//
// What it checks, in order: the parameters against STS's constraints (RoleArn, RoleSessionName, WebIdentityToken,
// ProviderId, Policy, PolicyArns, DurationSeconds; every violation reported at once, as STS does); ProviderId (which
// turns the token into an OAuth 2.0 access token STS cannot accept from a cluster); the session policy's JSON; the
// token's form (a JWS signed with RS256/384/512 or ES256/384/512, integer NumericDate claims); an IAM OIDC provider
// whose URL is exactly the token's iss; the issuer's discovery document and JWKS fetched anonymously over HTTPS; the
// JWKS host's certificate against the provider's thumbprints when it does not chain to a CA IAM trusts; the key by
// kid and the signature; exp (five minutes' grace), nbf, iat; aud among the provider's client IDs; the role's trust
// policy; DurationSeconds against the role's MaxSessionDuration. The answers are ValidationError,
// MalformedPolicyDocument, InvalidIdentityToken, IDPCommunicationError, ExpiredTokenException (HTTP 400),
// AccessDenied and IDPRejectedClaim (HTTP 403), as STS gives them.
//
// Using it with LocalStack (or moto): run the emulator as usual, run `irsa sts-gate --backend
// http://127.0.0.1:4566 --listen 127.0.0.1:4567`, and point only STS at the gate (AWS_ENDPOINT_URL_STS=
// http://127.0.0.1:4567, keep AWS_ENDPOINT_URL for the rest); pointing everything at it works too, since other
// requests are forwarded. The issuer URL must be https and reachable from the gate: for an issuer in the emulator's
// S3, put an HTTPS front before the emulator and give the gate its CA. Providers and roles are read from the
// emulator's IAM and reused for two seconds (IAMCacheTTL); issuer documents for a minute (DocumentCacheTTL).
package stsgate

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	netproxy "github.com/irsa-anywhere/irsa/pipeline/proxy"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
)

// maxFormSize bounds the form body the gate reads; STS accepts tokens up to 20,000 characters.
const maxFormSize = 1 << 20

// DefaultIAMCacheTTL is how long the gate reuses a provider or role it read from the backend. Real IAM is eventually
// consistent too (changes take seconds to reach STS); only successful reads are cached, so a role or provider
// created just before the call is always found.
const DefaultIAMCacheTTL = 2 * time.Second

// Options configure a Gate.
type Options struct {
	// Backend is the emulator's endpoint, such as https://127.0.0.1:4566. Required.
	Backend string
	// BackendCA is the pool the backend's certificate chains to; nil means the system roots.
	BackendCA *x509.CertPool
	// IssuerClient fetches the issuers' discovery documents and key sets; nil means http.DefaultClient.
	IssuerClient *http.Client
	// IAMTrustedRoots are the CAs IAM trusts on its own; nil means the system roots. An issuer whose JWKS host's
	// certificate does not chain to one of them (an issuer behind a private CA, trusted only through IssuerClient)
	// must have the top certificate of its served chain in the provider's thumbprints (trust.Options).
	IAMTrustedRoots *x509.CertPool
	// Now is the clock for token lifetimes; nil means time.Now.
	Now func() time.Time
	// DocumentCacheTTL is how long fetched issuer documents are reused; 0 means trust.DefaultCacheTTL, negative
	// disables the cache.
	DocumentCacheTTL time.Duration
	// IAMCacheTTL is how long a provider or role read from the backend is reused; 0 means DefaultIAMCacheTTL,
	// negative reads the backend on every request.
	IAMCacheTTL time.Duration
	// Region signs the gate's IAM calls to the backend; empty means us-east-1.
	Region string
	// Credentials sign the gate's IAM calls to the backend; nil means static test/test, which emulators accept.
	Credentials aws.CredentialsProvider
	// Logger receives one line per AssumeRoleWithWebIdentity decision; nil discards them.
	Logger *slog.Logger
}

// Gate is the proxy. It is an http.Handler.
type Gate struct {
	*Checker
	backend *url.URL
	proxy   *httputil.ReverseProxy
	log     *slog.Logger
}

// Checker decides AssumeRoleWithWebIdentity requests the way STS does, reading IAM OIDC providers and roles from an
// IAM endpoint (an emulator's, or real AWS's). The gate uses one; `irsa doctor` uses one too, so that doctor's token
// line and the gate can never disagree. It is safe for concurrent use.
type Checker struct {
	verifier *trust.Verifier
	iam      *iamReader
}

// NewChecker returns a Checker that reads providers and roles with client, reusing successful reads for iamCacheTTL
// (0 means DefaultIAMCacheTTL, negative reads IAM on every call), and verifies tokens with verifier.
func NewChecker(client *iam.Client, verifier *trust.Verifier, iamCacheTTL time.Duration) *Checker {
	if iamCacheTTL == 0 {
		iamCacheTTL = DefaultIAMCacheTTL
	}
	return &Checker{verifier: verifier, iam: &iamReader{client: client, ttl: iamCacheTTL, now: time.Now}}
}

// New returns a Gate for opts.
func New(opts Options) (*Gate, error) {
	if opts.Backend == "" {
		return nil, fmt.Errorf("sts gate: no backend URL")
	}
	backend, err := url.Parse(opts.Backend)
	if err != nil || (backend.Scheme != "http" && backend.Scheme != "https") || backend.Host == "" {
		return nil, fmt.Errorf("sts gate: backend URL %q: want http(s)://host:port", opts.Backend)
	}
	tlsConfig := &tls.Config{RootCAs: opts.BackendCA, MinVersion: tls.VersionTLS12}
	transport := netproxy.Transport(nil)
	transport.TLSClientConfig = tlsConfig
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(backend)
			// Keep the client's Host: SigV4 signatures cover it, and emulators build URLs (S3 virtual hosts) from it.
			pr.Out.Host = pr.In.Host
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, http.StatusBadGateway, "Receiver", "ServiceUnavailable",
				fmt.Sprintf("sts gate: backend %s: %v", backend, err))
		},
	}

	region := opts.Region
	if region == "" {
		region = "us-east-1"
	}
	creds := opts.Credentials
	if creds == nil {
		creds = credentials.NewStaticCredentialsProvider("test", "test", "")
	}
	// AWS_CA_BUNDLE may be set in the environment: the SDK then insists on a buildable client.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.TLSClientConfig = tlsConfig.Clone()
		tr.Proxy = netproxy.FromEnvironment()
	})
	iamClient := iam.New(iam.Options{
		Region:           region,
		Credentials:      creds,
		HTTPClient:       httpClient,
		BaseEndpoint:     aws.String(strings.TrimSuffix(backend.String(), "/")),
		RetryMaxAttempts: 2,
	})
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	verifier := trust.New(trust.Options{
		HTTPClient: opts.IssuerClient, Now: opts.Now, CacheTTL: opts.DocumentCacheTTL, IAMTrustedRoots: opts.IAMTrustedRoots,
	})
	return &Gate{Checker: NewChecker(iamClient, verifier, opts.IAMCacheTTL), backend: backend, proxy: proxy, log: logger}, nil
}

// HealthPath answers 200 "ok" from the gate itself, never forwarded, for readiness probes (the testcontainers-go
// module polls it). No AWS API uses a path starting with "/_": S3 bucket names cannot start with an underscore.
const HealthPath = "/_irsa/sts-gate/health"

// ServeHTTP checks AssumeRoleWithWebIdentity requests and forwards everything else.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == HealthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	params, err := readParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Sender", "MalformedQueryString", err.Error())
		return
	}
	if params.Get("Action") != "AssumeRoleWithWebIdentity" {
		g.proxy.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	req := RequestFrom(params)
	res := g.Check(r.Context(), req)
	if res.OK() {
		g.log.Info("sts gate: AssumeRoleWithWebIdentity allowed", "role", req.RoleARN,
			"sub", claim(res, func(c *trust.Claims) string { return c.Subject }), "duration", time.Since(start))
		g.proxy.ServeHTTP(w, r)
		return
	}
	detail := res.Message
	if s := res.Failed(); s != nil {
		detail = fmt.Sprintf("%s (irsa sts-gate, step %s: %s)", res.Message, s.Name, s.Message)
	}
	g.log.Info("sts gate: AssumeRoleWithWebIdentity refused", "role", req.RoleARN, "code", res.Code,
		"detail", detail, "duration", time.Since(start))
	typ := "Sender"
	if res.Code == CodeInternalFailure {
		typ = "Receiver"
	}
	writeError(w, StatusFor(res.Code), typ, res.Code, detail)
}

func claim(res *trust.Result, f func(*trust.Claims) string) string {
	if res.Claims == nil {
		return ""
	}
	return f(res.Claims)
}

// Request is an AssumeRoleWithWebIdentity call, as far as the gate checks it.
type Request struct {
	RoleARN          string
	RoleSessionName  string
	WebIdentityToken string
	// DurationSeconds is the raw parameter; empty means the default (one hour).
	DurationSeconds string
	// ProviderID is the OAuth 2.0 provider's host (www.amazon.com, graph.facebook.com); STS wants it only for OAuth
	// access tokens, never for OIDC ID tokens.
	ProviderID string
	// Policy is the inline session policy; PolicyARNs the managed session policies (PolicyArns.member.N.arn).
	Policy     string
	PolicyARNs []string
	// set records which parameters were present, so an empty value and an absent one can be told apart.
	set map[string]bool
}

// RequestFrom reads a Request from query or form parameters.
func RequestFrom(params url.Values) Request {
	req := Request{
		RoleARN: params.Get("RoleArn"), RoleSessionName: params.Get("RoleSessionName"),
		WebIdentityToken: params.Get("WebIdentityToken"), DurationSeconds: params.Get("DurationSeconds"),
		ProviderID: params.Get("ProviderId"), Policy: params.Get("Policy"), set: map[string]bool{},
	}
	for _, name := range []string{"RoleArn", "RoleSessionName", "WebIdentityToken", "DurationSeconds", "ProviderId", "Policy"} {
		_, req.set[name] = params[name]
	}
	// PolicyArns.member.N.arn, in member order.
	byIndex := map[int]string{}
	for k, v := range params {
		rest, ok := strings.CutPrefix(k, "PolicyArns.member.")
		if !ok {
			continue
		}
		n, field, _ := strings.Cut(rest, ".")
		i, err := strconv.Atoi(n)
		if err == nil && field == "arn" && len(v) > 0 {
			byIndex[i] = v[0]
		}
	}
	idx := make([]int, 0, len(byIndex))
	for i := range byIndex {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		req.PolicyARNs = append(req.PolicyARNs, byIndex[i])
	}
	return req
}

// Codes the gate answers with besides the verifier's (pipeline/trust).
const (
	// CodeValidationError answers requests whose parameters STS would refuse before looking at the token (HTTP 400).
	CodeValidationError = "ValidationError"
	// CodeMalformedPolicyDocument answers a session policy that is not a JSON policy document (HTTP 400).
	CodeMalformedPolicyDocument = "MalformedPolicyDocument"
)

// StepParameters is the name of the parameter validation step the gate runs before the verifier's.
const StepParameters = "parameters"

// The request constraints of AssumeRoleWithWebIdentity (STS API reference, Request Parameters).
const (
	minRoleARN, maxRoleARN         = 20, 2048
	minSessionName, maxSessionName = 2, 64
	minToken, maxToken             = 4, 20000
	minProviderID, maxProviderID   = 4, 2048
	minPolicy, maxPolicy           = 1, 2048
	maxPolicyARNs                  = 10
	minDuration, maxDuration       = 900, 43200
)

var (
	roleSessionName = regexp.MustCompile(`^[\w+=,.@-]*$`)
	// policyText is the Policy pattern [\u0009\u000A\u000D\u0020-\u00FF]+.
	policyText = regexp.MustCompile(`^[\x{0009}\x{000A}\x{000D}\x{0020}-\x{00FF}]+$`)
)

// validate applies STS's parameter constraints, which emulators do not check, and returns the requested duration (0
// for the default). Like STS it reports every violated constraint at once: "2 validation errors detected: ...; ...".
func (req Request) validate() (duration int, err error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	length := func(name, value string, shown bool, lo, hi int) {
		v := "Value '" + value + "'"
		if !shown {
			v = "Value"
		}
		switch n := utf8.RuneCountInString(value); {
		case n < lo:
			add("%s at '%s' failed to satisfy constraint: Member must have length greater than or equal to %d", v, name, lo)
		case n > hi:
			add("%s at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", v, name, hi)
		}
	}
	required := func(param, name string) bool {
		if !req.set[param] {
			add("Value null at '%s' failed to satisfy constraint: Member must not be null", name)
			return false
		}
		return true
	}
	if req.set == nil {
		// A Request built by hand rather than by RequestFrom: what is non-empty is present.
		req.set = map[string]bool{"RoleArn": req.RoleARN != "", "RoleSessionName": req.RoleSessionName != "",
			"WebIdentityToken": req.WebIdentityToken != "", "DurationSeconds": req.DurationSeconds != "",
			"ProviderId": req.ProviderID != "", "Policy": req.Policy != ""}
	}
	if required("RoleArn", "roleArn") {
		length("roleArn", req.RoleARN, true, minRoleARN, maxRoleARN)
	}
	if required("RoleSessionName", "roleSessionName") {
		length("roleSessionName", req.RoleSessionName, true, minSessionName, maxSessionName)
		if !roleSessionName.MatchString(req.RoleSessionName) {
			add("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", req.RoleSessionName)
		}
	}
	if required("WebIdentityToken", "webIdentityToken") {
		// The token is sensitive: STS does not echo it.
		length("webIdentityToken", req.WebIdentityToken, false, minToken, maxToken)
	}
	if req.set["ProviderId"] {
		length("providerId", req.ProviderID, true, minProviderID, maxProviderID)
	}
	if req.set["Policy"] {
		length("policy", req.Policy, false, minPolicy, maxPolicy)
		if req.Policy != "" && !policyText.MatchString(req.Policy) {
			add("Value at 'policy' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+")
		}
	}
	if len(req.PolicyARNs) > maxPolicyARNs {
		add("Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to %d", maxPolicyARNs)
	}
	for i, arn := range req.PolicyARNs {
		length(fmt.Sprintf("policyArns.%d.member.arn", i+1), arn, true, minRoleARN, maxRoleARN)
	}
	if req.DurationSeconds != "" {
		d, err := strconv.Atoi(req.DurationSeconds)
		switch {
		case err != nil:
			add("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be an integer", req.DurationSeconds)
		case d < minDuration:
			add("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to %d", d, minDuration)
		case d > maxDuration:
			add("Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to %d", d, maxDuration)
		default:
			duration = d
		}
	}
	switch len(problems) {
	case 0:
		return duration, nil
	case 1:
		return 0, fmt.Errorf("1 validation error detected: %s", problems[0])
	default:
		return 0, fmt.Errorf("%d validation errors detected: %s", len(problems), strings.Join(problems, "; "))
	}
}

// oauthProviders are the ProviderId values STS sends access tokens to for verification (Login with Amazon and
// Facebook, the OAuth 2.0 providers AssumeRoleWithWebIdentity documents). Such a provider rejects a Kubernetes
// token; any other ProviderId names no provider STS can ask.
var oauthProviders = map[string]bool{"www.amazon.com": true, "graph.facebook.com": true}

// Check decides an AssumeRoleWithWebIdentity call the way STS would: parameters first, then the token against the
// backend's IAM OIDC provider whose URL is the token's iss, then the role's trust policy and session duration.
func (c *Checker) Check(ctx context.Context, req Request) *trust.Result {
	res := &trust.Result{}
	fail := func(code, message, step, fix, detail string) *trust.Result {
		res.Steps = append(res.Steps, trust.Step{Name: step, Message: detail, Fix: fix})
		res.Code, res.Message = code, message
		return res
	}
	duration, err := req.validate()
	if err != nil {
		return fail(CodeValidationError, err.Error(), StepParameters, "pass parameters within STS's constraints", err.Error())
	}
	// With ProviderId STS treats the token as an OAuth 2.0 access token of that provider and asks the provider, even
	// when the token is an OIDC ID token: a Kubernetes token then never passes.
	if req.ProviderID != "" {
		if oauthProviders[strings.ToLower(req.ProviderID)] {
			return fail(trust.CodeIDPRejectedClaim, "The identity provider rejected the access token", StepParameters,
				"drop ProviderId: it is only for OAuth 2.0 access tokens of Login with Amazon or Facebook, never for OIDC ID tokens",
				fmt.Sprintf("ProviderId %q makes STS verify the token as that provider's OAuth 2.0 access token, which a Kubernetes token is not", req.ProviderID))
		}
		return fail(trust.CodeInvalidIdentityToken, trust.MessageInvalid, StepParameters,
			"drop ProviderId: it is only for OAuth 2.0 access tokens of Login with Amazon or Facebook, never for OIDC ID tokens",
			fmt.Sprintf("ProviderId %q is not an OAuth 2.0 provider STS knows; OIDC ID tokens are matched to IAM OIDC providers by iss, without ProviderId", req.ProviderID))
	}
	if req.Policy != "" {
		if err := checkSessionPolicy(req.Policy); err != nil {
			return fail(CodeMalformedPolicyDocument, "The policy is not in the valid JSON format.", StepParameters,
				"pass a JSON policy document (Version, Statement) as Policy", err.Error())
		}
	}
	roleARN, token := req.RoleARN, req.WebIdentityToken
	account, roleName, err := parseRoleARN(roleARN)
	if err != nil {
		return fail(CodeValidationError, err.Error(), StepParameters, "pass a role ARN arn:aws:iam::ACCOUNT:role/NAME", err.Error())
	}
	claims, err := trust.PeekClaims(token)
	if err != nil {
		res.Steps = append(res.Steps, trust.Step{Name: trust.StepToken, Message: err.Error(),
			Fix: "pass the ServiceAccount token itself (a JWT signed with RS256, RS384, RS512, ES256, ES384 or ES512)"})
		res.Code, res.Message = trust.CodeInvalidIdentityToken, trust.MessageInvalid
		return res
	}

	type providerResult struct {
		p   *trust.Provider
		err error
	}
	pc := make(chan providerResult, 1)
	go func() {
		p, err := c.iam.provider(ctx, account, claims.Issuer)
		pc <- providerResult{p, err}
	}()
	role, roleErr := c.iam.role(ctx, roleName)
	pr := <-pc

	if pr.err != nil {
		return fail(CodeInternalFailure, "sts gate could not read IAM OIDC providers from the backend",
			trust.StepProvider, "check that the backend serves IAM", pr.err.Error())
	}
	if pr.p == nil {
		return fail(trust.CodeInvalidIdentityToken, "No OpenIDConnect provider found in your account for "+claims.Issuer,
			trust.StepProvider, "create an IAM OIDC provider whose URL is exactly the token's iss",
			fmt.Sprintf("no IAM OIDC provider in account %s has URL %q", account, claims.Issuer))
	}
	policy := ""
	switch {
	case roleErr != nil:
		return fail(CodeInternalFailure, "sts gate could not read the role from the backend",
			trust.StepTrustPolicy, "check that the backend serves IAM", roleErr.Error())
	case role == nil:
		// STS verifies the token before it reveals anything about the role; a missing role then reads as denied.
		policy = ""
	case role.arn != roleARN:
		return fail(trust.CodeAccessDenied, trust.MessageAccessDenied, trust.StepTrustPolicy,
			"pass the role's exact ARN", fmt.Sprintf("role ARN %q is not %q", roleARN, role.arn))
	default:
		policy = role.trustPolicy
	}
	vres := c.verifier.Verify(ctx, token, *pr.p, policy)
	if last := len(vres.Steps) - 1; role == nil && last >= 0 && vres.Steps[last].Name == trust.StepTrustPolicy {
		// The token checked out; with no role there is no trust policy to evaluate, and STS answers AccessDenied.
		vres.Steps[last] = trust.Step{Name: trust.StepTrustPolicy,
			Message: fmt.Sprintf("role %q does not exist in the backend's IAM", roleName),
			Fix:     "create the role (irsa bindings) or fix the ServiceAccount's role-arn annotation"}
		vres.Code, vres.Message = trust.CodeAccessDenied, trust.MessageAccessDenied
	}
	if vres.OK() && duration > role.maxSessionDuration {
		vres.Steps = append(vres.Steps, trust.Step{Name: StepParameters,
			Message: fmt.Sprintf("DurationSeconds %d exceeds the role's MaxSessionDuration %d", duration, role.maxSessionDuration),
			Fix:     "request a shorter session or raise the role's MaxSessionDuration"})
		vres.Code, vres.Message = CodeValidationError, "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
	}
	return vres
}

// checkSessionPolicy checks that an inline session policy is a JSON object with a Statement, which STS requires
// before it packs the policy.
func checkSessionPolicy(policy string) error {
	var doc struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return fmt.Errorf("Policy is not a JSON object: %w", err)
	}
	if len(doc.Statement) == 0 || string(doc.Statement) == "null" {
		return fmt.Errorf("Policy has no Statement")
	}
	return nil
}

// parseRoleARN splits arn:aws:iam::ACCOUNT:role/PATH/NAME into the account and the name.
func parseRoleARN(arn string) (account, name string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || !strings.HasPrefix(parts[5], "role/") {
		return "", "", fmt.Errorf("RoleArn %q is not an IAM role ARN", arn)
	}
	resource := strings.TrimPrefix(parts[5], "role/")
	name = resource[strings.LastIndex(resource, "/")+1:]
	if parts[4] == "" || name == "" {
		return "", "", fmt.Errorf("RoleArn %q is not an IAM role ARN", arn)
	}
	return parts[4], name, nil
}

// readParams returns the query parameters merged with a form-encoded body, leaving the body readable for the proxy.
func readParams(r *http.Request) (url.Values, error) {
	params := r.URL.Query()
	if r.Body == nil || r.Method != http.MethodPost {
		return params, nil
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/x-www-form-urlencoded" {
		return params, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormSize+1))
	_ = r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if len(body) > maxFormSize {
		// Too large to be an STS call: forward it untouched.
		return params, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("parse form body: %w", err)
	}
	for k, v := range form {
		params[k] = append(params[k], v...)
	}
	return params, nil
}

// CodeInternalFailure answers when the gate cannot read the backend's IAM (HTTP 500, so SDKs retry).
const CodeInternalFailure = "InternalFailure"

// StatusFor is the HTTP status STS answers with for an error code.
func StatusFor(code string) int {
	switch code {
	case trust.CodeAccessDenied, trust.CodeIDPRejectedClaim:
		return http.StatusForbidden
	case CodeInternalFailure:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

type errorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	XMLNS   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// writeError answers like STS's query protocol does.
func writeError(w http.ResponseWriter, status int, typ, code, message string) {
	var e errorResponse
	e.XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
	e.Error.Type, e.Error.Code, e.Error.Message = typ, code, message
	e.RequestID = requestID()
	body, err := xml.Marshal(e)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", e.RequestID)
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), body...))
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
