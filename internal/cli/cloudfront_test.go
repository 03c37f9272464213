package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cf "github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/irsa-anywhere/irsa/internal/cloudfrontedge"
	"github.com/irsa-anywhere/irsa/internal/faultproxy"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/doctor"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/cloudfront"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/s3public"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
)

// startEdge serves the strict CloudFront stand-in in front of moto until the test ends.
func startEdge(t *testing.T, c *awsclient.Clients) *cloudfrontedge.Server {
	t.Helper()
	edge := &cloudfrontedge.Edge{CloudFront: c.CloudFront, S3: c.S3,
		Anonymous: func(ctx context.Context, bucket, key string) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, moto.URL+"/"+bucket+"/"+key, nil)
			return moto.HTTPClient.Do(req)
		}}
	s, err := cloudfrontedge.Start(edge, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func edgeGet(t *testing.T, s *cloudfrontedge.Server, rawURL string) (int, string, []byte) {
	t.Helper()
	resp, err := s.Client().Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s through the edge: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// ownedDistribution is the one distribution tagged for cluster.
func ownedDistribution(t *testing.T, c *awsclient.Clients, cluster string) *cftypes.Distribution {
	t.Helper()
	ctx := context.Background()
	list, err := c.CloudFront.ListDistributions(ctx, &cf.ListDistributionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var found *cftypes.Distribution
	for _, s := range list.DistributionList.Items {
		tags, err := c.CloudFront.ListTagsForResource(ctx, &cf.ListTagsForResourceInput{Resource: s.ARN})
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range tags.Tags.Items {
			if aws.ToString(tg.Key) == config.OwnerTagKey && aws.ToString(tg.Value) == cluster {
				if found != nil {
					t.Fatalf("two distributions tagged for %s", cluster)
				}
				d, err := c.CloudFront.GetDistribution(ctx, &cf.GetDistributionInput{Id: s.Id})
				if err != nil {
					t.Fatal(err)
				}
				found = d.Distribution
			}
		}
	}
	return found
}

// The "done when": apply creates the private bucket, the origin access control, the distribution and the
// provider; the bucket refuses anonymous GETs; the stand-in edge serves both documents; a second apply makes no
// mutating call and plan exits 0; teardown removes what irsa made, in AWS's order, and keeps what it did not.
func TestCloudFrontApplyPlanTeardown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := clients(t)
	// moto 5.2.1 drops an origin's OriginAccessControlId, so what irsa sends is read off the wire instead.
	p := withProxy(t, e)
	var mu sync.Mutex
	var createBody string
	p.OnRequest(func(r faultproxy.Request) bool {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/distribution") {
			mu.Lock()
			createBody = string(r.Body)
			mu.Unlock()
		}
		return false
	}, func() {})

	out := e.mustRun("apply", "--issuer-hosting", "cloudfront")
	d := ownedDistribution(t, c, e.cluster)
	if d == nil {
		t.Fatalf("no distribution tagged for %s after apply:\n%s", e.cluster, out)
	}
	issuerURL := "https://" + aws.ToString(d.DomainName)
	oacName := cloudfront.OACName(e.cluster, e.bucket)
	oacs, err := c.CloudFront.ListOriginAccessControls(ctx, &cf.ListOriginAccessControlsInput{})
	if err != nil {
		t.Fatal(err)
	}
	oacID := ""
	for _, o := range oacs.OriginAccessControlList.Items {
		if aws.ToString(o.Name) == oacName {
			oacID = aws.ToString(o.Id)
			if o.SigningBehavior != cftypes.OriginAccessControlSigningBehaviorsAlways || o.SigningProtocol != cftypes.OriginAccessControlSigningProtocolsSigv4 {
				t.Errorf("origin access control %s: signing %s %s, want always sigv4", oacName, o.SigningBehavior, o.SigningProtocol)
			}
		}
	}
	if oacID == "" {
		t.Fatalf("no origin access control %s", oacName)
	}
	mu.Lock()
	if !strings.Contains(createBody, "<OriginAccessControlId>"+oacID+"</OriginAccessControlId>") || !strings.Contains(createBody, "<ViewerProtocolPolicy>https-only</ViewerProtocolPolicy>") {
		t.Errorf("CreateDistribution did not attach origin access control %s with HTTPS only:\n%s", oacID, createBody)
	}
	mu.Unlock()

	// The bucket is private: all four Block Public Access settings, and no statement grants an anonymous caller.
	// moto 5.2.1 evaluates a bucket policy's Allow without its Principal, so with irsa's policy (an Allow for the
	// service principal cloudfront.amazonaws.com) it would let anonymous GETs through where S3 refuses them. The
	// objects themselves are shown private against moto without the policy; the policy is judged by the edge's
	// evaluator (cloudfrontedge.Anonymous), which the distribution's GETs go through too.
	pab, err := c.S3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if b := pab.PublicAccessBlockConfiguration; !aws.ToBool(b.BlockPublicAcls) || !aws.ToBool(b.IgnorePublicAcls) || !aws.ToBool(b.BlockPublicPolicy) || !aws.ToBool(b.RestrictPublicBuckets) {
		t.Errorf("public access block %+v: want all four on", *b)
	}
	pol, err := c.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{config.DiscoveryKey, config.JWKSKey} {
		res := "arn:aws:s3:::" + e.bucket + "/" + key
		if cloudfrontedge.Anonymous(aws.ToString(pol.Policy), res) || cloudfrontedge.Grants(aws.ToString(pol.Policy), aws.ToString(d.ARN), res) != "" {
			t.Errorf("bucket policy grants %s to anonymous callers, or not to distribution %s: %s", key, aws.ToString(d.ARN), aws.ToString(pol.Policy))
		}
	}
	if _, err := c.S3.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: &e.bucket}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{config.DiscoveryKey, config.JWKSKey} {
		if code, _ := anonymousGet(t, moto.URL+"/"+e.bucket+"/"+key); code != http.StatusForbidden {
			t.Errorf("anonymous GET of %s straight from the bucket: %d, want 403", key, code)
		}
	}
	if _, err := c.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &e.bucket, Policy: pol.Policy}); err != nil {
		t.Fatal(err)
	}

	// The stand-in edge serves both documents as the distribution would.
	edge := startEdge(t, c)
	code, ctype, body := edgeGet(t, edge, issuerURL+"/"+config.DiscoveryKey)
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &disc); code != 200 || ctype != "application/json" || err != nil || disc.Issuer != issuerURL || disc.JWKSURI != issuerURL+"/"+config.JWKSKey {
		t.Errorf("discovery through the edge: %d %s %s (%v), want issuer %s", code, ctype, body, err, issuerURL)
	}
	if code, ctype, body := edgeGet(t, edge, issuerURL+"/"+config.JWKSKey); code != 200 || ctype != "application/json" || !strings.Contains(string(body), `"keys"`) {
		t.Errorf("JWKS through the edge: %d %s %s", code, ctype, body)
	}
	if code, _, _ := edgeGet(t, edge, issuerURL+"/not-a-document"); code != http.StatusForbidden {
		t.Errorf("another key through the edge: %d, want 403 (the policy grants the two documents only)", code)
	}

	// doctor's lines for this mode pass, reading the documents through the edge as STS would through CloudFront.
	rep := doctor.Run(ctx, doctor.Inputs{
		IssuerURL: issuerURL, Audience: config.DefaultAudience, Bucket: e.bucket, Region: "eu-west-1",
		ProviderARN: "arn:aws:iam::123456789012:oidc-provider/" + aws.ToString(d.DomainName), S3: c.S3, IAM: c.IAM,
		Verifier:   trust.New(trust.Options{HTTPClient: edge.Client(), IAMTrustedRoots: edge.Pool()}),
		CloudFront: &cloudfront.Host{S3: c.S3, CloudFront: c.CloudFront, Bucket: e.bucket, Region: "eu-west-1", ClusterName: e.cluster},
		HTTPClient: edge.Client(),
	})
	for _, name := range []string{"published documents", "bucket not public", "origin access control", "distribution serves the documents", "IAM provider", "provider URL", "thumbprint"} {
		found := false
		for _, ch := range rep.Checks {
			if ch.Name == name {
				found = true
				if !ch.OK {
					t.Errorf("doctor line %q failed: %s (%s)", name, ch.Message, ch.Fix)
				}
			}
		}
		if !found {
			t.Errorf("doctor has no line %q: %+v", name, rep.Checks)
		}
	}

	// The provider trusts the distribution's URL with no thumbprint invented.
	prov, err := c.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String("arn:aws:iam::123456789012:oidc-provider/" + aws.ToString(d.DomainName))})
	if err != nil {
		t.Fatalf("provider for %s: %v\n%s", issuerURL, err, out)
	}
	if len(prov.ThumbprintList) != 0 {
		t.Errorf("provider thumbprints %v, want none (CloudFront's certificate chains to a public CA)", prov.ThumbprintList)
	}

	// A bucket that was public (s3-public hosting's statement, as after switching modes) fails doctor's line, and
	// apply takes the public statement out.
	public, err := s3public.MergePolicy(aws.ToString(pol.Policy), s3public.BucketPolicy("aws", e.bucket, config.DiscoveryKey, config.JWKSKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &e.bucket, Policy: &public}); err != nil {
		t.Fatal(err)
	}
	rep = doctor.Run(ctx, doctor.Inputs{IssuerURL: issuerURL, Bucket: e.bucket, IAM: c.IAM, S3: c.S3, Verifier: trust.New(trust.Options{HTTPClient: edge.Client()}),
		CloudFront: &cloudfront.Host{S3: c.S3, CloudFront: c.CloudFront, Bucket: e.bucket, Region: "eu-west-1", ClusterName: e.cluster}, HTTPClient: edge.Client()})
	for _, ch := range rep.Checks {
		if ch.Name == "bucket not public" && (ch.OK || !strings.Contains(ch.Message, s3public.PolicySid)) {
			t.Errorf("doctor with a public statement: %+v", ch)
		}
	}
	out = e.mustRun("apply", "--issuer-hosting", "cloudfront")
	if !strings.Contains(out, "~ s3-bucket-policy "+e.bucket) {
		t.Errorf("apply did not take the public statement out:\n%s", out)
	}
	if got, _ := c.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &e.bucket}); strings.Contains(aws.ToString(got.Policy), s3public.PolicySid) {
		t.Errorf("public statement left: %s", aws.ToString(got.Policy))
	}

	out = e.mustRun("apply", "--issuer-hosting", "cloudfront")
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("second apply made mutating AWS calls: %v\n%s", m, out)
	}
	if code, out, errOut := e.run("plan", "--issuer-hosting", "cloudfront"); code != 0 {
		t.Errorf("plan after apply: exit %d, want 0\n%s%s", code, out, errOut)
	}

	// Someone else's distribution and origin access control, and an object irsa did not write, are kept.
	foreignOAC, err := c.CloudFront.CreateOriginAccessControl(ctx, &cf.CreateOriginAccessControlInput{OriginAccessControlConfig: &cftypes.OriginAccessControlConfig{
		Name: aws.String("theirs-" + e.cluster), OriginAccessControlOriginType: cftypes.OriginAccessControlOriginTypesS3,
		SigningBehavior: cftypes.OriginAccessControlSigningBehaviorsAlways, SigningProtocol: cftypes.OriginAccessControlSigningProtocolsSigv4,
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := &cloudfront.Host{Bucket: e.bucket, Region: "eu-west-1", ClusterName: "someone-else"}
	foreign, err := c.CloudFront.CreateDistribution(ctx, &cf.CreateDistributionInput{DistributionConfig: h.DistributionConfig(fmt.Sprintf("theirs-%s", e.cluster), aws.ToString(foreignOAC.OriginAccessControl.Id), "")})
	if err != nil {
		t.Fatal(err)
	}

	out = e.mustRun("teardown", "--yes", "--aws-only", "--issuer-hosting", "cloudfront")
	disable := strings.Index(out, "~ cloudfront-distribution "+aws.ToString(d.Id)+" (disable)")
	del := strings.Index(out, "- cloudfront-distribution "+aws.ToString(d.Id))
	delOAC := strings.Index(out, "- cloudfront-origin-access-control "+oacName)
	delBucket := strings.Index(out, "- s3-bucket "+e.bucket)
	if disable < 0 || del < disable || delOAC < del || delBucket < delOAC {
		t.Errorf("teardown did not disable, delete the distribution, then the origin access control, then the bucket, in that order:\n%s", out)
	}
	if ownedDistribution(t, c, e.cluster) != nil {
		t.Errorf("irsa's distribution left after teardown")
	}
	if _, err := c.CloudFront.GetDistribution(ctx, &cf.GetDistributionInput{Id: foreign.Distribution.Id}); err != nil {
		t.Errorf("someone else's distribution on the same bucket was removed: %v", err)
	}
	if _, err := c.CloudFront.GetOriginAccessControl(ctx, &cf.GetOriginAccessControlInput{Id: foreignOAC.OriginAccessControl.Id}); err != nil {
		t.Errorf("someone else's origin access control was removed: %v", err)
	}
	if _, err := c.CloudFront.GetOriginAccessControl(ctx, &cf.GetOriginAccessControlInput{Id: &oacID}); !awsclient.IsNotFound(err) {
		t.Errorf("irsa's origin access control %s left after teardown: %v", oacID, err)
	}
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
		t.Errorf("bucket %s left after teardown: %v", e.bucket, err)
	}
	if _, err := c.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String("arn:aws:iam::123456789012:oidc-provider/" + aws.ToString(d.DomainName))}); !awsclient.IsNotFound(err) {
		t.Errorf("provider left after teardown: %v", err)
	}
}

// Plan before anything exists says what the issuer URL will be and what waits for it, and writes nothing.
func TestCloudFrontPlanBeforeApply(t *testing.T) {
	e := newEnv(t)
	code, out, errOut := e.run("plan", "--issuer-hosting", "cloudfront")
	if code != 2 {
		t.Fatalf("plan: exit %d, want 2\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"+ cloudfront-origin-access-control", "+ cloudfront-distribution", "the issuer URL is https://<the distribution's domain",
		"+ iam-oidc-provider (the distribution's issuer URL) (waits for the issuer URL", "all four Block Public Access settings on"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("plan made mutating calls: %v", m)
	}
}

// Switching a cluster from s3-public to cloudfront changes the issuer URL: plan says the bucket stops serving the
// old issuer and that the old provider stays; apply makes the bucket private and keeps the old provider.
func TestCloudFrontMigrationFromS3Public(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustRun("apply")
	oldProvider := "arn:aws:iam::123456789012:oidc-provider/" + strings.TrimPrefix(e.issuer, "https://")
	code, out, errOut := e.run("plan", "--issuer-hosting", "cloudfront")
	if code != 2 || !strings.Contains(out, "migration from s3-public") || !strings.Contains(out, oldProvider) || !strings.Contains(out, "stays until you delete it") {
		t.Errorf("plan of the switch (exit %d) does not explain the migration:\n%s%s", code, out, errOut)
	}
	out = e.mustRun("apply", "--issuer-hosting", "cloudfront")
	c := clients(t)
	pol, err := c.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &e.bucket})
	if err != nil || strings.Contains(aws.ToString(pol.Policy), s3public.PolicySid) {
		t.Errorf("public statement left after the switch (%v): %s\n%s", err, aws.ToString(pol.Policy), out)
	}
	if _, err := c.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &oldProvider}); err != nil {
		t.Errorf("the s3-public issuer's provider %s was removed by the switch: %v", oldProvider, err)
	}
	e.mustRun("teardown", "--yes", "--aws-only", "--issuer-hosting", "cloudfront")
	e.mustRun("teardown", "--yes", "--aws-only", "--only", "provider") // the old provider, pruned with the old settings
	if _, err := c.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &oldProvider}); !awsclient.IsNotFound(err) {
		t.Errorf("old provider not pruned: %v", err)
	}
}

// kind-config with cloudfront hosting uses the domain's issuer, and without a domain says the URL is not known yet
// instead of writing the bucket's.
func TestKindConfigCloudFront(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "irsa.yaml")
	base := "apiVersion: irsa.irsa-anywhere.io/v1alpha1\nkind: Config\nclusterName: demo\nregion: eu-west-1\nbucket: demo-oidc\nissuer:\n  hosting: cloudfront\n"
	var out, errOut bytes.Buffer
	os.WriteFile(cfg, []byte(base+"  domain: oidc.example.com\n"), 0o644)
	if code := Main(context.Background(), []string{"kind-config", "-f", cfg}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "service-account-issuer: https://oidc.example.com") {
		t.Errorf("kind-config with a domain: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	os.WriteFile(cfg, []byte(base), 0o644)
	if code := Main(context.Background(), []string{"kind-config", "-f", cfg}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "known once it exists") {
		t.Errorf("kind-config without a domain: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}
