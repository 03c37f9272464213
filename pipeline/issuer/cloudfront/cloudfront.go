// Package cloudfront is the cloudfront hosting mode of the issuer: the documents live in a private S3 bucket (all
// four Block Public Access settings on, ACLs disabled, no public statement) that only one CloudFront distribution may
// read, through an origin access control (SigV4, always sign) and a bucket policy granting the service principal
// cloudfront.amazonaws.com GetObject on exactly the two documents with an AWS:SourceArn condition naming that
// distribution (CloudFront developer guide, "Restrict access to an Amazon S3 origin"). The issuer URL is
// https://<distribution domain>, or https://Domain with an ACM certificate and Route 53 alias records (domain.go).
//
// Ownership. The bucket, the distribution and the certificate carry irsa's tags (config.OwnerTagKey). An origin
// access control cannot be tagged: irsa names it OACName (deterministic per cluster and bucket), describes it as
// irsa's, and records its ID in the distribution's OACTagKey tag. Route 53 records cannot be tagged either: see
// domain.go.
package cloudfront

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	cf "github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/s3public"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Host serves the issuer through CloudFront from a private bucket.
type Host struct {
	S3         *s3.Client
	CloudFront *cf.Client
	// ACM is a client in us-east-1 (awsclient.CloudFrontCertificateRegion); Route53 is global. Both are used only
	// with Domain.
	ACM     *acm.Client
	Route53 *route53.Client

	Bucket, Region, Partition, AccountID, ClusterName string
	// DiscoveryKey and JWKSKey are the documents' object keys: the only objects irsa writes and the only ones the
	// distribution may read.
	DiscoveryKey, JWKSKey string
	// Domain, when set, is the issuer's own domain; HostedZoneID its public hosted zone (empty: looked up).
	Domain, HostedZoneID string
	// Force makes Remove delete objects irsa did not write too, and with them the bucket.
	Force bool
	// S3PublicIssuerURL is the issuer the bucket served with s3-public hosting: a bucket that still holds that
	// mode's public statement is being migrated, and plan and apply say what that means (migrationNotes).
	S3PublicIssuerURL string
	// DeployTimeout bounds the wait for the distribution to deploy (and, when it is deleted, to be disabled);
	// default 40 minutes (a new distribution deploys in minutes, sometimes longer). PollInterval is the time between
	// two looks; default 20 s.
	DeployTimeout, PollInterval time.Duration
	Log                         *slog.Logger

	// found is the distribution Locate found or made, for Publish.
	found *distribution
}

var _ issuer.Locator = (*Host)(nil)

// Names and tags that mark what irsa owns.
const (
	// PolicySid names irsa's statement in the bucket policy in this mode.
	PolicySid = "IrsaCloudFrontIssuerDocuments"
	// OACTagKey, on the distribution, records the ID of the origin access control irsa made for it.
	OACTagKey = "irsa.irsa-anywhere.io/origin-access-control"
	// OriginID is the distribution's one origin.
	OriginID = "irsa-issuer-bucket"
	// CachingOptimized is CloudFront's managed cache policy of that name (CloudFront developer guide, "Use managed
	// cache policies"): no cookies, headers or query strings in the key, the origin's Content-Type passed through.
	CachingOptimized = "658327ea-f89d-4fab-a63d-7e88639e58f6"
)

// OACName is the origin access control's name: irsa-CLUSTER-BUCKET, or, beyond CloudFront's 64 characters, its
// first 51 characters and a hash of the whole.
func OACName(cluster, bucket string) string {
	n := "irsa-" + cluster + "-" + bucket
	if len(n) <= 64 {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return n[:51] + "-" + hex.EncodeToString(sum[:])[:12]
}

// OriginDomain is the bucket's regional domain name, CloudFront's S3 origin.
func OriginDomain(bucket, region string) string {
	suffix := ".amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = ".amazonaws.com.cn"
	}
	return bucket + ".s3." + region + suffix
}

// DistributionARN is a distribution's ARN: CloudFront is global, so it has no region.
func DistributionARN(partition, account, id string) string {
	return fmt.Sprintf("arn:%s:cloudfront::%s:distribution/%s", partition, account, id)
}

// BucketPolicy lets only the distribution distARN read the two documents: the service principal
// cloudfront.amazonaws.com with an AWS:SourceArn condition, as CloudFront's origin access control requires.
func BucketPolicy(partition, bucket, discoveryKey, jwksKey, distARN string) string {
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       PolicySid,
			"Effect":    "Allow",
			"Principal": map[string]any{"Service": "cloudfront.amazonaws.com"},
			"Action":    "s3:GetObject",
			"Resource": []string{
				fmt.Sprintf("arn:%s:s3:::%s/%s", partition, bucket, discoveryKey),
				fmt.Sprintf("arn:%s:s3:::%s/%s", partition, bucket, jwksKey),
			},
			"Condition": map[string]any{"StringEquals": map[string]any{"AWS:SourceArn": distARN}},
		}},
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

func (h *Host) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// bucket is the private bucket: s3public's bucket handling with this mode's access.
func (h *Host) bucket(distARN string) *s3public.Host {
	return &s3public.Host{
		S3: h.S3, Bucket: h.Bucket, Region: h.Region, ClusterName: h.ClusterName,
		DiscoveryKey: h.DiscoveryKey, JWKSKey: h.JWKSKey, Force: h.Force,
		Access: &s3public.Access{
			Policy:   BucketPolicy(h.Partition, h.Bucket, h.DiscoveryKey, h.JWKSKey, distARN),
			Sid:      PolicySid,
			Replaces: []string{s3public.PolicySid}, // a bucket moving from s3-public hosting stops being public
			Detail:   "only CloudFront distribution " + distARN + " (service principal, AWS:SourceArn) may GetObject the two issuer documents",
			Block: s3types.PublicAccessBlockConfiguration{
				BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true),
				BlockPublicPolicy: aws.Bool(true), RestrictPublicBuckets: aws.Bool(true),
			},
			BlockDetail: "all four Block Public Access settings on",
		},
	}
}

// distribution is irsa's distribution as found.
type distribution struct {
	id, arn, domain, status string
	enabled                 bool
	oacTag                  string
}

// URL is the issuer URL this host serves for d (nil: not known yet without a domain).
func (h *Host) url(d *distribution) string {
	if h.Domain != "" {
		return "https://" + h.Domain
	}
	if d == nil {
		return ""
	}
	return "https://" + d.domain
}

func (h *Host) tags() []cftypes.Tag {
	return []cftypes.Tag{
		{Key: aws.String(config.OwnerTagKey), Value: aws.String(h.ClusterName)},
		{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
	}
}

// findDistribution finds irsa's distribution for this cluster: one whose origin is the bucket and that carries the
// cluster's owner tag. A distribution with the bucket as origin but without the tag is someone else's and ignored.
// A summary without origins (moto 5.2.1 lists none) is judged by its tags alone; Locate then compares its origin.
func (h *Host) findDistribution(ctx context.Context) (*distribution, error) {
	origin := OriginDomain(h.Bucket, h.Region)
	p := cf.NewListDistributionsPaginator(h.CloudFront, &cf.ListDistributionsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list CloudFront distributions: %w", err)
		}
		if page.DistributionList == nil {
			break
		}
		for _, d := range page.DistributionList.Items {
			if d.Origins != nil && !hasOrigin(d.Origins.Items, origin) {
				continue
			}
			tags, err := h.CloudFront.ListTagsForResource(ctx, &cf.ListTagsForResourceInput{Resource: d.ARN})
			if err != nil {
				return nil, fmt.Errorf("read tags of CloudFront distribution %s: %w", aws.ToString(d.Id), err)
			}
			var items []cftypes.Tag
			if tags.Tags != nil {
				items = tags.Tags.Items
			}
			if tagValue(items, config.OwnerTagKey) != h.ClusterName {
				continue
			}
			return &distribution{id: aws.ToString(d.Id), arn: aws.ToString(d.ARN), domain: aws.ToString(d.DomainName),
				status: aws.ToString(d.Status), enabled: aws.ToBool(d.Enabled), oacTag: tagValue(items, OACTagKey)}, nil
		}
	}
	return nil, nil
}

func hasOrigin(origins []cftypes.Origin, domain string) bool {
	for _, o := range origins {
		if aws.ToString(o.DomainName) == domain {
			return true
		}
	}
	return false
}

func tagValue(tags []cftypes.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// oac is an origin access control as found.
type oac struct {
	id, etag string
	cfg      cftypes.OriginAccessControlConfig
}

// oacDescription marks an origin access control as irsa's (it cannot be tagged).
func (h *Host) oacDescription() string {
	return fmt.Sprintf("irsa issuer of cluster %s (bucket %s); managed by irsa", h.ClusterName, h.Bucket)
}

// findOAC finds the origin access control named OACName.
func (h *Host) findOAC(ctx context.Context) (*oac, error) {
	name := OACName(h.ClusterName, h.Bucket)
	in := &cf.ListOriginAccessControlsInput{}
	for {
		out, err := h.CloudFront.ListOriginAccessControls(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list CloudFront origin access controls: %w", err)
		}
		if out.OriginAccessControlList == nil {
			return nil, nil
		}
		for _, o := range out.OriginAccessControlList.Items {
			if aws.ToString(o.Name) == name {
				return &oac{id: aws.ToString(o.Id), cfg: cftypes.OriginAccessControlConfig{
					Name: o.Name, Description: o.Description, OriginAccessControlOriginType: o.OriginAccessControlOriginType,
					SigningBehavior: o.SigningBehavior, SigningProtocol: o.SigningProtocol,
				}}, nil
			}
		}
		if !aws.ToBool(out.OriginAccessControlList.IsTruncated) {
			return nil, nil
		}
		in.Marker = out.OriginAccessControlList.NextMarker
	}
}

func (h *Host) wantOAC() *cftypes.OriginAccessControlConfig {
	return &cftypes.OriginAccessControlConfig{
		Name: aws.String(OACName(h.ClusterName, h.Bucket)), Description: aws.String(h.oacDescription()),
		OriginAccessControlOriginType: cftypes.OriginAccessControlOriginTypesS3,
		SigningBehavior:               cftypes.OriginAccessControlSigningBehaviorsAlways,
		SigningProtocol:               cftypes.OriginAccessControlSigningProtocolsSigv4,
	}
}

// oacDrift says how o differs from what irsa wants, or "".
func (h *Host) oacDrift(o *oac) string {
	w := h.wantOAC()
	var d []string
	if o.cfg.SigningBehavior != w.SigningBehavior {
		d = append(d, fmt.Sprintf("signing behavior %q -> %q", o.cfg.SigningBehavior, w.SigningBehavior))
	}
	if o.cfg.SigningProtocol != w.SigningProtocol {
		d = append(d, fmt.Sprintf("signing protocol %q -> %q", o.cfg.SigningProtocol, w.SigningProtocol))
	}
	if o.cfg.OriginAccessControlOriginType != w.OriginAccessControlOriginType {
		d = append(d, fmt.Sprintf("origin type %q -> %q", o.cfg.OriginAccessControlOriginType, w.OriginAccessControlOriginType))
	}
	return strings.Join(d, ", ")
}

// DistributionConfig is the distribution irsa wants: one S3 origin (the bucket's regional domain) signed by the
// origin access control oacID, HTTPS only, GET and HEAD, cached with CachingOptimized (the objects' Content-Type,
// application/json, passes through), IPv6, the cheapest price class; with certARN, the domain as alias and the ACM
// certificate (SNI, TLS 1.2 at least), else CloudFront's default certificate.
func (h *Host) DistributionConfig(callerRef, oacID, certARN string) *cftypes.DistributionConfig {
	c := &cftypes.DistributionConfig{
		CallerReference: aws.String(callerRef),
		Comment:         aws.String("irsa issuer of cluster " + h.ClusterName),
		Enabled:         aws.Bool(true),
		Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{
			Id: aws.String(OriginID), DomainName: aws.String(OriginDomain(h.Bucket, h.Region)),
			OriginAccessControlId: aws.String(oacID),
			S3OriginConfig:        &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")},
		}}},
		DefaultCacheBehavior: &cftypes.DefaultCacheBehavior{
			TargetOriginId:       aws.String(OriginID),
			ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyHttpsOnly,
			CachePolicyId:        aws.String(CachingOptimized),
			Compress:             aws.Bool(false),
			AllowedMethods: &cftypes.AllowedMethods{Quantity: aws.Int32(2), Items: []cftypes.Method{cftypes.MethodGet, cftypes.MethodHead},
				CachedMethods: &cftypes.CachedMethods{Quantity: aws.Int32(2), Items: []cftypes.Method{cftypes.MethodGet, cftypes.MethodHead}}},
		},
		HttpVersion:   cftypes.HttpVersionHttp2,
		IsIPV6Enabled: aws.Bool(true),
		PriceClass:    cftypes.PriceClassPriceClass100,
		ViewerCertificate: &cftypes.ViewerCertificate{
			CloudFrontDefaultCertificate: aws.Bool(true), MinimumProtocolVersion: cftypes.MinimumProtocolVersionTLSv1,
		},
		Aliases: &cftypes.Aliases{Quantity: aws.Int32(0)},
	}
	if certARN != "" {
		c.Aliases = &cftypes.Aliases{Quantity: aws.Int32(1), Items: []string{h.Domain}}
		c.ViewerCertificate = &cftypes.ViewerCertificate{
			ACMCertificateArn: aws.String(certARN), SSLSupportMethod: cftypes.SSLSupportMethodSniOnly,
			MinimumProtocolVersion: cftypes.MinimumProtocolVersionTLSv122021,
		}
	}
	return c
}

// distributionDrift lists how have differs from what irsa wants, and fixes it in place. An origin that comes back
// without an OriginAccessControlId at all (nil: moto 5.2.1 drops the field; AWS always returns it, empty when none)
// cannot be judged and is taken as it is; an empty one is drift.
func (h *Host) distributionDrift(have *cftypes.DistributionConfig, oacID, certARN string) []string {
	want := h.DistributionConfig(aws.ToString(have.CallerReference), oacID, certARN)
	var d []string
	if !aws.ToBool(have.Enabled) {
		d = append(d, "enable")
		have.Enabled = aws.Bool(true)
	}
	var origin *cftypes.Origin
	if have.Origins != nil {
		for i := range have.Origins.Items {
			if aws.ToString(have.Origins.Items[i].Id) == OriginID {
				origin = &have.Origins.Items[i]
			}
		}
	}
	switch {
	case origin == nil:
		d = append(d, "origin "+OriginID+" missing")
		have.Origins = want.Origins
	case aws.ToString(origin.DomainName) != OriginDomain(h.Bucket, h.Region):
		d = append(d, fmt.Sprintf("origin domain %s -> %s", aws.ToString(origin.DomainName), OriginDomain(h.Bucket, h.Region)))
		origin.DomainName = want.Origins.Items[0].DomainName
		origin.OriginAccessControlId = aws.String(oacID)
	case origin.OriginAccessControlId != nil && aws.ToString(origin.OriginAccessControlId) != oacID:
		d = append(d, fmt.Sprintf("origin access control %q -> %q", aws.ToString(origin.OriginAccessControlId), oacID))
		origin.OriginAccessControlId = aws.String(oacID)
	}
	if b := have.DefaultCacheBehavior; b == nil || b.ViewerProtocolPolicy != cftypes.ViewerProtocolPolicyHttpsOnly || aws.ToString(b.TargetOriginId) != OriginID {
		d = append(d, "default cache behavior: HTTPS only, to origin "+OriginID)
		have.DefaultCacheBehavior = want.DefaultCacheBehavior
	}
	haveAliases := []string{}
	if have.Aliases != nil {
		haveAliases = have.Aliases.Items
	}
	if strings.Join(haveAliases, ",") != strings.Join(want.Aliases.Items, ",") {
		d = append(d, fmt.Sprintf("aliases [%s] -> [%s]", strings.Join(haveAliases, ","), strings.Join(want.Aliases.Items, ",")))
		have.Aliases = want.Aliases
	}
	haveCert := ""
	if have.ViewerCertificate != nil {
		haveCert = aws.ToString(have.ViewerCertificate.ACMCertificateArn)
	}
	if haveCert != certARN {
		d = append(d, fmt.Sprintf("certificate %q -> %q", haveCert, certARN))
		have.ViewerCertificate = want.ViewerCertificate
	}
	return d
}

// Locate implements issuer.Locator: with a domain, the certificate first (CloudFront takes only an issued one);
// then the origin access control and the distribution. The URL is https://Domain, or the distribution's domain once
// it exists.
func (h *Host) Locate(ctx context.Context, create bool) (string, []stage.Change, error) {
	var changes []stage.Change
	certARN := ""
	if h.Domain != "" {
		arn, c, err := h.certificate(ctx, create)
		changes = append(changes, c...)
		if err != nil {
			return "", changes, err
		}
		certARN = arn
		if certARN == "" {
			certARN = "(requested by apply)"
		}
	}
	o, err := h.findOAC(ctx)
	if err != nil {
		return "", changes, err
	}
	oacName := OACName(h.ClusterName, h.Bucket)
	switch {
	case o == nil:
		changes = append(changes, stage.Change{Action: stage.Create, Kind: "cloudfront-origin-access-control", Name: oacName, Detail: "S3, SigV4, always sign"})
		if create {
			out, err := h.CloudFront.CreateOriginAccessControl(ctx, &cf.CreateOriginAccessControlInput{OriginAccessControlConfig: h.wantOAC()})
			if err != nil {
				return "", changes[:len(changes)-1], fmt.Errorf("create CloudFront origin access control %q: %w", oacName, err)
			}
			o = &oac{id: aws.ToString(out.OriginAccessControl.Id), etag: aws.ToString(out.ETag)}
		}
	case aws.ToString(o.cfg.Description) != h.oacDescription():
		return "", changes, fmt.Errorf("CloudFront origin access control %q (%s) exists but is not irsa's for cluster %q (description %q, want %q): delete or rename it, or choose another --bucket",
			oacName, o.id, h.ClusterName, aws.ToString(o.cfg.Description), h.oacDescription())
	default:
		if drift := h.oacDrift(o); drift != "" {
			changes = append(changes, stage.Change{Action: stage.Update, Kind: "cloudfront-origin-access-control", Name: oacName, Detail: drift})
			if create {
				if err := h.updateOAC(ctx, o); err != nil {
					return "", changes[:len(changes)-1], err
				}
			}
		}
	}
	oacID := "(made by apply)"
	if o != nil {
		oacID = o.id
	}

	d, err := h.findDistribution(ctx)
	if err != nil {
		return "", changes, err
	}
	if d == nil {
		changes = append(changes, stage.Change{Action: stage.Create, Kind: "cloudfront-distribution", Name: "issuer of cluster " + h.ClusterName,
			Detail: fmt.Sprintf("origin %s through origin access control %s, HTTPS only; the issuer URL is %s", OriginDomain(h.Bucket, h.Region), oacName, h.urlOrPending())})
		if !create {
			return h.url(nil), changes, nil
		}
		if d, err = h.createDistribution(ctx, oacID, certARN); err != nil {
			return "", changes[:len(changes)-1], err
		}
		h.found = d
		return h.url(d), changes, nil
	}
	h.found = d
	got, err := h.CloudFront.GetDistributionConfig(ctx, &cf.GetDistributionConfigInput{Id: &d.id})
	if err != nil {
		return "", changes, fmt.Errorf("read CloudFront distribution %s: %w", d.id, err)
	}
	have := got.DistributionConfig
	drift := h.distributionDrift(have, oacID, certARN)
	if d.oacTag != oacID {
		drift = append(drift, "tag "+OACTagKey+"="+oacID)
	}
	if len(drift) == 0 {
		return h.url(d), changes, nil
	}
	changes = append(changes, stage.Change{Action: stage.Update, Kind: "cloudfront-distribution", Name: d.id, Detail: strings.Join(drift, "; ")})
	if !create {
		return h.url(d), changes, nil
	}
	if _, err := h.CloudFront.UpdateDistribution(ctx, &cf.UpdateDistributionInput{Id: &d.id, IfMatch: got.ETag, DistributionConfig: have}); err != nil {
		return "", changes[:len(changes)-1], fmt.Errorf("update CloudFront distribution %s: %w", d.id, err)
	}
	if d.oacTag != oacID {
		if _, err := h.CloudFront.TagResource(ctx, &cf.TagResourceInput{Resource: &d.arn, Tags: &cftypes.Tags{Items: []cftypes.Tag{{Key: aws.String(OACTagKey), Value: aws.String(oacID)}}}}); err != nil {
			return "", changes, fmt.Errorf("tag CloudFront distribution %s: %w", d.id, err)
		}
	}
	d.status = "InProgress"
	return h.url(d), changes, nil
}

func (h *Host) urlOrPending() string {
	if h.Domain != "" {
		return "https://" + h.Domain
	}
	return "https://<the distribution's domain, known once it is created>"
}

func (h *Host) updateOAC(ctx context.Context, o *oac) error {
	got, err := h.CloudFront.GetOriginAccessControl(ctx, &cf.GetOriginAccessControlInput{Id: &o.id})
	if err != nil {
		return fmt.Errorf("read CloudFront origin access control %s: %w", o.id, err)
	}
	if _, err := h.CloudFront.UpdateOriginAccessControl(ctx, &cf.UpdateOriginAccessControlInput{Id: &o.id, IfMatch: got.ETag, OriginAccessControlConfig: h.wantOAC()}); err != nil {
		return fmt.Errorf("update CloudFront origin access control %s: %w", o.id, err)
	}
	return nil
}

func (h *Host) createDistribution(ctx context.Context, oacID, certARN string) (*distribution, error) {
	// A caller reference unique per cluster, bucket and moment: CloudFront answers DistributionAlreadyExists to a
	// repeated one, and a retried create whose response was lost is found by its tags on the next run.
	ref := fmt.Sprintf("irsa/%s/%s/%d", h.ClusterName, h.Bucket, time.Now().UnixNano())
	tags := append(h.tags(), cftypes.Tag{Key: aws.String(OACTagKey), Value: aws.String(oacID)})
	out, err := h.CloudFront.CreateDistributionWithTags(ctx, &cf.CreateDistributionWithTagsInput{DistributionConfigWithTags: &cftypes.DistributionConfigWithTags{
		DistributionConfig: h.DistributionConfig(ref, oacID, certARN), Tags: &cftypes.Tags{Items: tags},
	}})
	if err != nil {
		return nil, fmt.Errorf("create CloudFront distribution for bucket %q: %w", h.Bucket, err)
	}
	d := out.Distribution
	h.log().Info("created CloudFront distribution", "id", aws.ToString(d.Id), "domain", aws.ToString(d.DomainName))
	return &distribution{id: aws.ToString(d.Id), arn: aws.ToString(d.ARN), domain: aws.ToString(d.DomainName), status: aws.ToString(d.Status), enabled: true, oacTag: oacID}, nil
}

// distARN is the ARN the bucket policy names: the distribution's, or a stand-in in a plan before it exists.
func (h *Host) distARN() string {
	if h.found == nil {
		return DistributionARN(h.Partition, h.AccountID, "(created by apply)")
	}
	return h.found.arn
}

// migrationNotes explains, on the bucket policy change, a bucket that still holds s3-public hosting's statement,
// and lists the s3-public issuer's IAM provider as kept: switching to cloudfront changes the issuer URL.
func (h *Host) migrationNotes(ctx context.Context, changes []stage.Change) ([]stage.Change, error) {
	out, err := h.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &h.Bucket})
	if awsclient.IsNotFound(err) || (err == nil && !strings.Contains(aws.ToString(out.Policy), `"`+s3public.PolicySid+`"`)) {
		return changes, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read policy of bucket %q: %w", h.Bucket, err)
	}
	old := h.S3PublicIssuerURL
	for i, c := range changes {
		if c.Kind == "s3-bucket-policy" {
			changes[i].Detail += fmt.Sprintf("; migration from s3-public: the public statement goes, so %s stops serving the documents to STS. "+
				"The apiserver keeps accepting tokens it issued for %s, but STS refuses them from now on: restart the bound workloads once the apiserver issues for the new URL "+
				"(or keep s3-public on this bucket and use a new --bucket for cloudfront)", old, old)
		}
	}
	if old != "" {
		changes = append(changes, stage.Change{Action: stage.Keep, Kind: "iam-oidc-provider", Name: provider.ARN(h.Partition, h.AccountID, old),
			Detail: "the s3-public issuer's provider stays until you delete it (aws iam delete-open-id-connect-provider) once no token for " + old + " is in use"})
	}
	return changes, nil
}

// Plan implements issuer.Host (after Locate).
func (h *Host) Plan(ctx context.Context, docs []issuer.Document) ([]stage.Change, error) {
	changes, err := h.bucket(h.distARN()).Plan(ctx, docs)
	if err != nil {
		return nil, err
	}
	if changes, err = h.migrationNotes(ctx, changes); err != nil {
		return nil, err
	}
	if h.Domain != "" {
		more, err := h.records(ctx, false)
		if err != nil {
			return nil, err
		}
		changes = append(changes, more...)
	}
	return changes, nil
}

// Publish implements issuer.Host (after Locate): the private bucket, its policy and the documents, the alias records
// with a domain, then the wait for the distribution to deploy.
func (h *Host) Publish(ctx context.Context, docs []issuer.Document) ([]stage.Change, error) {
	if h.found == nil {
		return nil, fmt.Errorf("publish through CloudFront: no distribution (Locate makes it first)")
	}
	bucket := h.bucket(h.found.arn)
	planned, err := bucket.Plan(ctx, docs)
	if err != nil {
		return nil, err
	}
	if planned, err = h.migrationNotes(ctx, planned); err != nil {
		return nil, err
	}
	changes, err := bucket.Publish(ctx, docs)
	if err != nil {
		return changes, err
	}
	for _, p := range planned { // the notes go into the report of what apply did
		for i, c := range changes {
			if c.Kind == p.Kind && c.Name == p.Name {
				changes[i].Detail = p.Detail
			}
		}
		if p.Action == stage.Keep {
			changes = append(changes, p)
		}
	}
	if h.Domain != "" {
		more, err := h.records(ctx, true)
		changes = append(changes, more...)
		if err != nil {
			return changes, err
		}
	}
	if h.found.status != "Deployed" {
		if err := h.waitDeployed(ctx, h.found.id); err != nil {
			return changes, err
		}
	}
	return changes, nil
}

func (h *Host) timeouts() (deadline, interval time.Duration) {
	deadline, interval = h.DeployTimeout, h.PollInterval
	if deadline == 0 {
		deadline = 40 * time.Minute
	}
	if interval == 0 {
		interval = 20 * time.Second
	}
	return deadline, interval
}

// waitDeployed waits until the distribution's status is Deployed, logging progress, and returns its ETag.
func (h *Host) waitDeployed(ctx context.Context, id string) error {
	deadline, interval := h.timeouts()
	start := time.Now()
	status := ""
	err := wait.PollUntilContextTimeout(ctx, interval, deadline, true, func(ctx context.Context) (bool, error) {
		out, err := h.CloudFront.GetDistribution(ctx, &cf.GetDistributionInput{Id: &id})
		if err != nil {
			return false, fmt.Errorf("read CloudFront distribution %s: %w", id, err)
		}
		status = aws.ToString(out.Distribution.Status)
		if status == "Deployed" {
			return true, nil
		}
		h.log().Info("waiting for the CloudFront distribution to deploy", "id", id, "status", status,
			"waited", time.Since(start).Round(time.Second).String(), "deadline", deadline.String())
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CloudFront distribution %s not deployed after %s (status %q): %w; run apply again to wait longer", id, time.Since(start).Round(time.Second), status, err)
	}
	return nil
}

// Remove implements issuer.Host, in the order AWS requires: disable the distribution, wait until that is deployed,
// delete it; then the origin access control (free once no distribution uses it), the certificate (free once the
// distribution is gone), the alias and ownership records, and the bucket with the documents. It removes only what
// irsa owns: a distribution without the cluster's tag, an origin access control without irsa's description, a
// certificate without the tag and records irsa cannot prove its own are kept.
func (h *Host) Remove(ctx context.Context) ([]stage.Change, error) {
	var changes []stage.Change
	d, err := h.findDistribution(ctx)
	if err != nil {
		return nil, err
	}
	if d != nil {
		c, err := h.deleteDistribution(ctx, d)
		changes = append(changes, c...)
		if err != nil {
			return changes, err
		}
	}
	o, err := h.findOAC(ctx)
	if err != nil {
		return changes, err
	}
	if o != nil {
		name := OACName(h.ClusterName, h.Bucket)
		if aws.ToString(o.cfg.Description) != h.oacDescription() {
			changes = append(changes, stage.Change{Action: stage.Keep, Kind: "cloudfront-origin-access-control", Name: name, Detail: "not described as irsa's for this cluster"})
		} else {
			got, err := h.CloudFront.GetOriginAccessControl(ctx, &cf.GetOriginAccessControlInput{Id: &o.id})
			if err != nil && !awsclient.IsNotFound(err) {
				return changes, fmt.Errorf("read CloudFront origin access control %s: %w", o.id, err)
			}
			if err == nil {
				if _, err := h.CloudFront.DeleteOriginAccessControl(ctx, &cf.DeleteOriginAccessControlInput{Id: &o.id, IfMatch: got.ETag}); err != nil && !awsclient.IsNotFound(err) {
					return changes, fmt.Errorf("delete CloudFront origin access control %s: %w", o.id, err)
				}
			}
			changes = append(changes, stage.Change{Action: stage.Delete, Kind: "cloudfront-origin-access-control", Name: name})
		}
	}
	if h.Domain != "" {
		c, err := h.deleteCertificate(ctx)
		changes = append(changes, c...)
		if err != nil {
			return changes, err
		}
		domain := ""
		if d != nil {
			domain = d.domain
		}
		c, err = h.deleteRecords(ctx, domain)
		changes = append(changes, c...)
		if err != nil {
			return changes, err
		}
	}
	c, err := h.bucket(h.distARN()).Remove(ctx)
	return append(changes, c...), err
}

// deleteDistribution disables d if it is enabled, waits until it is deployed, and deletes it (CloudFront deletes
// only a disabled, deployed distribution).
func (h *Host) deleteDistribution(ctx context.Context, d *distribution) ([]stage.Change, error) {
	var changes []stage.Change
	got, err := h.CloudFront.GetDistributionConfig(ctx, &cf.GetDistributionConfigInput{Id: &d.id})
	if awsclient.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CloudFront distribution %s: %w", d.id, err)
	}
	if aws.ToBool(got.DistributionConfig.Enabled) {
		got.DistributionConfig.Enabled = aws.Bool(false)
		if _, err := h.CloudFront.UpdateDistribution(ctx, &cf.UpdateDistributionInput{Id: &d.id, IfMatch: got.ETag, DistributionConfig: got.DistributionConfig}); err != nil {
			return nil, fmt.Errorf("disable CloudFront distribution %s: %w", d.id, err)
		}
		changes = append(changes, stage.Change{Action: stage.Update, Kind: "cloudfront-distribution", Name: d.id, Detail: "disable"})
	}
	if err := h.waitDeployed(ctx, d.id); err != nil {
		return changes, err
	}
	cur, err := h.CloudFront.GetDistribution(ctx, &cf.GetDistributionInput{Id: &d.id})
	if err != nil {
		return changes, fmt.Errorf("read CloudFront distribution %s: %w", d.id, err)
	}
	if _, err := h.CloudFront.DeleteDistribution(ctx, &cf.DeleteDistributionInput{Id: &d.id, IfMatch: cur.ETag}); err != nil && !awsclient.IsNotFound(err) {
		return changes, fmt.Errorf("delete CloudFront distribution %s: %w", d.id, err)
	}
	h.found = d // the bucket policy's statement names it until the bucket goes
	return append(changes, stage.Change{Action: stage.Delete, Kind: "cloudfront-distribution", Name: d.id, Detail: d.domain}), nil
}
