// Package cloudfrontedge is a strict stand-in for CloudFront's edge, which cannot run here, as pipeline/stsgate is
// for STS: an HTTPS server for distributions' domains (and their aliases) that reads the distribution from an AWS
// emulator's CloudFront API and fetches objects from its S3 origin as the distribution would, answering 403 unless
// CloudFront would serve them:
//   - the distribution exists, is enabled and deployed, and its default cache behaviour allows GET and HEAD only
//     over HTTPS (a viewer on HTTP would be redirected or refused: the edge serves HTTPS only);
//   - its origin is an S3 bucket's regional domain with an origin access control that signs always with SigV4;
//   - the bucket policy has an Allow statement for the service principal cloudfront.amazonaws.com, action
//     s3:GetObject, a resource covering the object, and a StringEquals or ArnEquals condition on AWS:SourceArn equal
//     to the distribution's ARN (CloudFront developer guide, "Restrict access to an Amazon S3 origin"), and no Deny
//     statement covering it;
//   - the object exists (with origin access control and no s3:ListBucket grant, S3 answers 403 for a missing key,
//     and CloudFront passes that on).
//
// Without an origin access control the edge fetches anonymously, as CloudFront would: a private bucket answers 403.
// moto 5.2.1 drops an origin's OriginAccessControlId: when the API returns none, the edge takes the origin access
// control the distribution's irsa tag names (cloudfront.OACTagKey), and the tests prove separately, from the request
// irsa sends, that the distribution is created with it.
package cloudfrontedge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cf "github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/irsa-anywhere/irsa/internal/testpki"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/cloudfront"
)

// Edge is the stand-in. It is an http.Handler.
type Edge struct {
	// CloudFront reads distributions and origin access controls; S3 reads bucket policies and, signed, objects
	// (the distribution's origin access control). Both point at the emulator.
	CloudFront *cf.Client
	S3         *s3.Client
	// Anonymous fetches an object without credentials (an origin without origin access control), such as
	// GET https://emulator/bucket/key.
	Anonymous func(ctx context.Context, bucket, key string) (*http.Response, error)
	Log       *slog.Logger
}

// ServeHTTP implements http.Handler.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status, body, ctype := e.serve(r)
	if status != http.StatusOK {
		e.log().Info("cloudfront edge refused", "host", r.Host, "path", r.URL.Path, "status", status, "why", string(body))
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Cache", "Error from cloudfront")
		w.WriteHeader(status)
		_, _ = w.Write(body)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Cache", "Miss from cloudfront")
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	_, _ = w.Write(body)
}

func (e *Edge) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

func refuse(format string, a ...any) (int, []byte, string) {
	return http.StatusForbidden, []byte(fmt.Sprintf(format, a...)), ""
}

func (e *Edge) serve(r *http.Request) (int, []byte, string) {
	ctx := r.Context()
	if r.TLS == nil {
		return refuse("HTTPS only")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return refuse("method %s not allowed", r.Method)
	}
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	d, cfg, err := e.distribution(ctx, host)
	if err != nil {
		return http.StatusBadGateway, []byte(err.Error()), ""
	}
	if d == nil {
		return refuse("no distribution serves %s", host)
	}
	if !aws.ToBool(cfg.Enabled) || aws.ToString(d.Status) != "Deployed" {
		return refuse("distribution %s is disabled or not deployed (status %s)", aws.ToString(d.Id), aws.ToString(d.Status))
	}
	b := cfg.DefaultCacheBehavior
	if b == nil || b.ViewerProtocolPolicy != cftypes.ViewerProtocolPolicyHttpsOnly {
		return refuse("default cache behaviour is not HTTPS only")
	}
	var origin *cftypes.Origin
	for i := range cfg.Origins.Items {
		if aws.ToString(cfg.Origins.Items[i].Id) == aws.ToString(b.TargetOriginId) {
			origin = &cfg.Origins.Items[i]
		}
	}
	if origin == nil {
		return refuse("no origin %s", aws.ToString(b.TargetOriginId))
	}
	bucket, ok := bucketOf(aws.ToString(origin.DomainName))
	if !ok {
		return refuse("origin %s is not an S3 bucket's regional domain", aws.ToString(origin.DomainName))
	}
	key := strings.TrimPrefix(path.Join(strings.Trim(aws.ToString(origin.OriginPath), "/"), strings.TrimPrefix(r.URL.Path, "/")), "/")
	oacID := aws.ToString(origin.OriginAccessControlId)
	if origin.OriginAccessControlId == nil { // moto drops the field (package doc)
		tags, err := e.CloudFront.ListTagsForResource(ctx, &cf.ListTagsForResourceInput{Resource: d.ARN})
		if err != nil {
			return http.StatusBadGateway, []byte(err.Error()), ""
		}
		for _, t := range tags.Tags.Items {
			if aws.ToString(t.Key) == cloudfront.OACTagKey {
				oacID = aws.ToString(t.Value)
			}
		}
	}
	if oacID == "" {
		return e.anonymous(ctx, bucket, key)
	}
	oac, err := e.CloudFront.GetOriginAccessControl(ctx, &cf.GetOriginAccessControlInput{Id: &oacID})
	if err != nil {
		return refuse("origin access control %s: %v", oacID, err)
	}
	oc := oac.OriginAccessControl.OriginAccessControlConfig
	if oc.SigningBehavior != cftypes.OriginAccessControlSigningBehaviorsAlways || oc.SigningProtocol != cftypes.OriginAccessControlSigningProtocolsSigv4 ||
		oc.OriginAccessControlOriginType != cftypes.OriginAccessControlOriginTypesS3 {
		return refuse("origin access control %s does not sign S3 requests always with SigV4", oacID)
	}
	pol, err := e.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &bucket})
	if err != nil {
		return refuse("bucket %s: no policy (%v)", bucket, err)
	}
	if why := Grants(aws.ToString(pol.Policy), aws.ToString(d.ARN), fmt.Sprintf("arn:aws:s3:::%s/%s", bucket, key)); why != "" {
		return refuse("bucket %s policy does not grant distribution %s GetObject on %s: %s", bucket, aws.ToString(d.ARN), key, why)
	}
	obj, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return refuse("GetObject s3://%s/%s: %v", bucket, key, err) // S3 answers 403 for a missing key here
	}
	defer obj.Body.Close()
	body, err := io.ReadAll(obj.Body)
	if err != nil {
		return http.StatusBadGateway, []byte(err.Error()), ""
	}
	return http.StatusOK, body, aws.ToString(obj.ContentType)
}

func (e *Edge) anonymous(ctx context.Context, bucket, key string) (int, []byte, string) {
	resp, err := e.Anonymous(ctx, bucket, key)
	if err != nil {
		return http.StatusBadGateway, []byte(err.Error()), ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return refuse("anonymous GET s3://%s/%s (no origin access control): %d", bucket, key, resp.StatusCode)
	}
	return http.StatusOK, body, resp.Header.Get("Content-Type")
}

// bucketOf is the bucket of an S3 regional domain BUCKET.s3.REGION.amazonaws.com (or .s3.amazonaws.com).
func bucketOf(domain string) (string, bool) {
	i := strings.Index(domain, ".s3.")
	if i <= 0 || !(strings.HasSuffix(domain, ".amazonaws.com") || strings.HasSuffix(domain, ".amazonaws.com.cn")) {
		return "", false
	}
	return domain[:i], true
}

// distribution finds the distribution whose domain or alias is host.
func (e *Edge) distribution(ctx context.Context, host string) (*cftypes.Distribution, *cftypes.DistributionConfig, error) {
	p := cf.NewListDistributionsPaginator(e.CloudFront, &cf.ListDistributionsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("list distributions: %w", err)
		}
		if page.DistributionList == nil {
			break
		}
		for _, s := range page.DistributionList.Items {
			out, err := e.CloudFront.GetDistribution(ctx, &cf.GetDistributionInput{Id: s.Id})
			if err != nil {
				return nil, nil, fmt.Errorf("get distribution %s: %w", aws.ToString(s.Id), err)
			}
			d := out.Distribution
			cfg := d.DistributionConfig
			var aliases []string
			if cfg.Aliases != nil {
				aliases = cfg.Aliases.Items
			}
			if strings.EqualFold(aws.ToString(d.DomainName), host) || slices.Contains(aliases, host) {
				return d, cfg, nil
			}
		}
	}
	return nil, nil, nil
}

// Grants says why policy does not let the distribution distARN GetObject resource, or "" when it does.
func Grants(policy, distARN, resource string) string {
	var doc struct{ Statement json.RawMessage }
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return "policy is not JSON: " + err.Error()
	}
	var stmts []statement
	if raw := strings.TrimSpace(string(doc.Statement)); strings.HasPrefix(raw, "{") {
		var s statement
		if err := json.Unmarshal(doc.Statement, &s); err != nil {
			return err.Error()
		}
		stmts = []statement{s}
	} else if err := json.Unmarshal(doc.Statement, &stmts); err != nil {
		return err.Error()
	}
	allowed := false
	for _, s := range stmts {
		if !s.covers("s3:GetObject", resource) {
			continue
		}
		switch {
		case s.Effect == "Deny":
			return "a Deny statement covers it"
		case s.Effect == "Allow" && s.cloudFront() && s.sourceARN() == distARN:
			allowed = true
		}
	}
	if !allowed {
		return "no Allow statement for service principal cloudfront.amazonaws.com with AWS:SourceArn " + distARN
	}
	return ""
}

// Anonymous says whether policy lets an anonymous caller GetObject resource: an Allow statement covering it whose
// principal is "*" or {"AWS": "*"} (conditions aside: a conditional public grant is still public to S3's Block
// Public Access). moto 5.2.1 cannot say it: it evaluates a bucket policy's Allow without its Principal.
func Anonymous(policy, resource string) bool {
	var doc struct{ Statement json.RawMessage }
	if json.Unmarshal([]byte(policy), &doc) != nil {
		return false
	}
	var stmts []statement
	if raw := strings.TrimSpace(string(doc.Statement)); strings.HasPrefix(raw, "{") {
		var s statement
		_ = json.Unmarshal(doc.Statement, &s)
		stmts = []statement{s}
	} else {
		_ = json.Unmarshal(doc.Statement, &stmts)
	}
	for _, s := range stmts {
		if s.Effect != "Allow" || !s.covers("s3:GetObject", resource) {
			continue
		}
		var p struct{ AWS stringOrList }
		if strings.TrimSpace(string(s.Principal)) == `"*"` || (json.Unmarshal(s.Principal, &p) == nil && slices.Contains(p.AWS, "*")) {
			return true
		}
	}
	return false
}

type statement struct {
	Effect    string
	Principal json.RawMessage
	Action    stringOrList
	Resource  stringOrList
	Condition map[string]map[string]stringOrList
}

type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*s = many
	return err
}

func (s statement) covers(action, resource string) bool {
	return slices.ContainsFunc(s.Action, func(a string) bool { return match(strings.ToLower(a), strings.ToLower(action)) }) &&
		slices.ContainsFunc(s.Resource, func(r string) bool { return match(r, resource) })
}

// match is IAM's wildcard match (* any run, ? one character).
func match(pattern, s string) bool {
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", "\x00"), strings.ReplaceAll(s, "/", "\x00"))
	return err == nil && ok
}

func (s statement) cloudFront() bool {
	var p struct{ Service stringOrList }
	return json.Unmarshal(s.Principal, &p) == nil && slices.Contains(p.Service, "cloudfront.amazonaws.com")
}

func (s statement) sourceARN() string {
	for _, op := range []string{"StringEquals", "ArnEquals"} {
		for k, v := range s.Condition[op] {
			if strings.EqualFold(k, "AWS:SourceArn") && len(v) == 1 {
				return v[0]
			}
		}
	}
	return ""
}

// Server is an Edge serving HTTPS on loopback for every name under *.cloudfront.net and the given aliases.
type Server struct {
	// Addr is the loopback address it listens on; CA signed its certificate (it plays the public CA CloudFront's
	// and ACM's certificates chain to).
	Addr string
	CA   *testpki.CA
	srv  *http.Server
	done chan struct{}
}

// Start serves edge on a free loopback port, or on addr when it is not empty, with a certificate for
// *.cloudfront.net and aliases.
func Start(edge *Edge, addr string, aliases ...string) (*Server, error) {
	ca, err := testpki.NewCA("irsa test public CA (cloudfront edge)")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue(pkix.Name{CommonName: "*.cloudfront.net"}, append([]string{"*.cloudfront.net"}, aliases...))
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cloudfront edge: %w", err)
	}
	s := &Server{Addr: l.Addr().String(), CA: ca, done: make(chan struct{}),
		srv: &http.Server{Handler: edge, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}}
	go func() {
		defer close(s.done)
		_ = s.srv.ServeTLS(l, "", "")
	}()
	return s, nil
}

// Pool is a pool with the edge's CA.
func (s *Server) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.CA.Cert)
	return p
}

// Client is an HTTP client that reaches every https://HOST through the edge (as DNS would send a distribution's
// domain or alias to CloudFront) and trusts its CA, with no redirects followed.
func (s *Server) Client() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: s.Pool(), MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, s.Addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close stops the server.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
