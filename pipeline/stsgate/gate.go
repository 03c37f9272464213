// Package stsgate is a strict STS gate: an HTTP proxy to put in front of an AWS emulator (moto, LocalStack) whose
// AssumeRoleWithWebIdentity accepts any token. The gate checks each AssumeRoleWithWebIdentity request the way AWS STS
// does (pipeline/trust), reading the IAM OIDC provider and the role from the emulator's own IAM, and answers the
// failures with AWS-shaped errors; valid requests and every other request go to the emulator unchanged. A test suite
// that runs against the gate then fails where real AWS would.
//
// What it checks, in order: the parameters (RoleArn, RoleSessionName, WebIdentityToken, DurationSeconds against the
// role's MaxSessionDuration); an IAM OIDC provider whose URL is exactly the token's iss; the issuer's discovery
// document and JWKS fetched anonymously over HTTPS; the key by kid; RS256; exp (five minutes' grace), nbf, iat; aud
// among the provider's client IDs; the role's trust policy. The answers are ValidationError, InvalidIdentityToken,
// IDPCommunicationError, ExpiredTokenException (HTTP 400) and AccessDenied (HTTP 403), as STS gives them.
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
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

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
	backend  *url.URL
	proxy    *httputil.ReverseProxy
	verifier *trust.Verifier
	iam      *iamReader
	log      *slog.Logger
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
	transport := http.DefaultTransport.(*http.Transport).Clone()
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
	})
	iamClient := iam.New(iam.Options{
		Region:           region,
		Credentials:      creds,
		HTTPClient:       httpClient,
		BaseEndpoint:     aws.String(strings.TrimSuffix(backend.String(), "/")),
		RetryMaxAttempts: 2,
	})
	ttl := opts.IAMCacheTTL
	if ttl == 0 {
		ttl = DefaultIAMCacheTTL
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Gate{
		backend: backend,
		proxy:   proxy,
		verifier: trust.New(trust.Options{
			HTTPClient: opts.IssuerClient, Now: opts.Now, CacheTTL: opts.DocumentCacheTTL,
		}),
		iam: &iamReader{client: iamClient, ttl: ttl, now: time.Now},
		log: logger,
	}, nil
}

// ServeHTTP checks AssumeRoleWithWebIdentity requests and forwards everything else.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
}

// RequestFrom reads a Request from query or form parameters.
func RequestFrom(params url.Values) Request {
	return Request{
		RoleARN: params.Get("RoleArn"), RoleSessionName: params.Get("RoleSessionName"),
		WebIdentityToken: params.Get("WebIdentityToken"), DurationSeconds: params.Get("DurationSeconds"),
	}
}

// CodeValidationError answers requests whose parameters STS would refuse before looking at the token (HTTP 400).
const CodeValidationError = "ValidationError"

// StepParameters is the name of the parameter validation step the gate runs before the verifier's.
const StepParameters = "parameters"

var roleSessionName = regexp.MustCompile(`^[\w+=,.@-]*$`)

// validate applies STS's parameter constraints, which emulators do not check.
func (req Request) validate() (duration int, err error) {
	switch {
	case req.RoleARN == "":
		return 0, fmt.Errorf("1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
	case len(req.RoleARN) < 20 || len(req.RoleARN) > 2048:
		return 0, fmt.Errorf("1 validation error detected: Value '%s' at 'roleArn' failed to satisfy constraint: Member must have length between 20 and 2048", req.RoleARN)
	case req.RoleSessionName == "":
		return 0, fmt.Errorf("1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
	case len(req.RoleSessionName) < 2 || len(req.RoleSessionName) > 64:
		return 0, fmt.Errorf("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must have length between 2 and 64", req.RoleSessionName)
	case !roleSessionName.MatchString(req.RoleSessionName):
		return 0, fmt.Errorf("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", req.RoleSessionName)
	case req.WebIdentityToken == "":
		return 0, fmt.Errorf("1 validation error detected: Value null at 'webIdentityToken' failed to satisfy constraint: Member must not be null")
	case len(req.WebIdentityToken) < 4 || len(req.WebIdentityToken) > 20000:
		return 0, fmt.Errorf("1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: Member must have length between 4 and 20000")
	}
	if req.DurationSeconds == "" {
		return 0, nil
	}
	d, err := strconv.Atoi(req.DurationSeconds)
	if err != nil || d < 900 || d > 43200 {
		return 0, fmt.Errorf("1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", req.DurationSeconds)
	}
	return d, nil
}

// Check decides an AssumeRoleWithWebIdentity call the way STS would: parameters first, then the token against the
// backend's IAM OIDC provider whose URL is the token's iss, then the role's trust policy and session duration.
func (g *Gate) Check(ctx context.Context, req Request) *trust.Result {
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
	roleARN, token := req.RoleARN, req.WebIdentityToken
	account, roleName, err := parseRoleARN(roleARN)
	if err != nil {
		return fail(CodeValidationError, err.Error(), StepParameters, "pass a role ARN arn:aws:iam::ACCOUNT:role/NAME", err.Error())
	}
	claims, err := trust.PeekClaims(token)
	if err != nil {
		res.Steps = append(res.Steps, trust.Step{Name: trust.StepToken, Message: err.Error(),
			Fix: "pass the ServiceAccount token itself (a JWT signed with RS256)"})
		res.Code, res.Message = trust.CodeInvalidIdentityToken, "The web identity token that was passed could not be validated by AWS"
		return res
	}

	type providerResult struct {
		p   *trust.Provider
		err error
	}
	pc := make(chan providerResult, 1)
	go func() {
		p, err := g.iam.provider(ctx, account, claims.Issuer)
		pc <- providerResult{p, err}
	}()
	role, roleErr := g.iam.role(ctx, roleName)
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
	vres := g.verifier.Verify(ctx, token, *pr.p, policy)
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
