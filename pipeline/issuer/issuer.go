// Package issuer is the issuer stage: an S3 bucket that serves the OIDC discovery document and the JWKS to anyone,
// through a bucket policy (never ACLs: buckets created since 2023 enforce BucketOwnerEnforced and reject them), while
// everything else in the bucket stays private.
package issuer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Stage publishes the issuer.
type Stage struct {
	S3          *s3.Client
	Bucket      string
	Region      string
	ClusterName string
	IssuerURL   string
	// Keys returns the public keys to publish.
	Keys           func(ctx context.Context) ([]crypto.PublicKey, error)
	LegacyEmptyKID bool
}

func (s *Stage) Name() string { return stage.Issuer }

// Prefix is where the documents live in the bucket: the issuer URL's path, less the bucket name when the URL is
// path-style (https://endpoint/bucket).
func Prefix(issuerURL, bucket string) string {
	u, err := url.Parse(issuerURL)
	if err != nil {
		return ""
	}
	p := strings.Trim(u.Path, "/")
	if !strings.HasPrefix(u.Host, bucket+".") {
		p = strings.TrimPrefix(strings.TrimPrefix(p, bucket), "/")
	}
	if p == "" {
		return ""
	}
	return p + "/"
}

// ObjectKeys are the keys of the discovery document and the JWKS in the bucket.
func ObjectKeys(issuerURL, bucket string) (discovery, jwks string) {
	pre := Prefix(issuerURL, bucket)
	return pre + config.DiscoveryKey, pre + config.JWKSKey
}

// BucketPolicy allows anonymous s3:GetObject on exactly the two documents.
func BucketPolicy(partition, bucket, issuerURL string) string {
	d, j := ObjectKeys(issuerURL, bucket)
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       "IrsaPublicIssuerDocuments",
			"Effect":    "Allow",
			"Principal": "*",
			"Action":    "s3:GetObject",
			"Resource": []string{
				fmt.Sprintf("arn:%s:s3:::%s/%s", partition, bucket, d),
				fmt.Sprintf("arn:%s:s3:::%s/%s", partition, bucket, j),
			},
		}},
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

type object struct {
	key  string
	body []byte
}

func (s *Stage) documents(ctx context.Context) ([]object, error) {
	keys, err := s.Keys(ctx)
	if err != nil {
		return nil, err
	}
	// The discovery document advertises the algorithms of the keys (RS256, ES256, ...), as kube-apiserver's does.
	disc, err := documents.DiscoveryDocumentFor(s.IssuerURL, keys)
	if err != nil {
		return nil, err
	}
	jwks, err := documents.JWKS(keys, documents.JWKSOptions{LegacyEmptyKID: s.LegacyEmptyKID})
	if err != nil {
		return nil, err
	}
	dk, jk := ObjectKeys(s.IssuerURL, s.Bucket)
	return []object{{dk, disc}, {jk, jwks}}, nil
}

// diff finds what differs between the bucket and what is wanted. A missing bucket means everything is to be created.
func (s *Stage) diff(ctx context.Context) (changes []stage.Change, bucketExists bool, objs []object, err error) {
	objs, err = s.documents(ctx)
	if err != nil {
		return nil, false, nil, err
	}
	owned, exists, err := s.ownership(ctx)
	if err != nil {
		return nil, false, nil, err
	}
	if exists && !owned {
		return nil, true, nil, fmt.Errorf("bucket %q exists but is not owned by irsa cluster %q (no tag %s=%s): choose another --bucket, or tag the bucket if it is meant for this cluster", s.Bucket, s.ClusterName, config.OwnerTagKey, s.ClusterName)
	}
	if !exists {
		changes = append(changes,
			stage.Change{Action: stage.Create, Kind: "s3-bucket", Name: s.Bucket, Detail: "region " + s.Region},
			stage.Change{Action: stage.Create, Kind: "s3-public-access-block", Name: s.Bucket, Detail: "BlockPublicPolicy=false RestrictPublicBuckets=false (ACLs stay blocked)"},
			stage.Change{Action: stage.Create, Kind: "s3-bucket-policy", Name: s.Bucket, Detail: "anonymous GetObject on the two issuer documents"})
		for _, o := range objs {
			changes = append(changes, stage.Change{Action: stage.Create, Kind: "s3-object", Name: s.Bucket + "/" + o.key})
		}
		return changes, false, objs, nil
	}
	if c, err := s.diffPublicAccessBlock(ctx); err != nil {
		return nil, true, nil, err
	} else if c != nil {
		changes = append(changes, *c)
	}
	if c, err := s.diffPolicy(ctx); err != nil {
		return nil, true, nil, err
	} else if c != nil {
		changes = append(changes, *c)
	}
	for _, o := range objs {
		c, err := s.diffObject(ctx, o)
		if err != nil {
			return nil, true, nil, err
		}
		if c != nil {
			changes = append(changes, *c)
		}
	}
	return changes, true, objs, nil
}

func (s *Stage) ownership(ctx context.Context) (owned, exists bool, err error) {
	out, err := s.S3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: &s.Bucket})
	switch code := awsclient.ErrorCode(err); {
	case err == nil:
	case code == "NoSuchBucket":
		return false, false, nil
	case code == "NoSuchTagSet" || code == "NoSuchTagSetError":
		return false, true, nil
	case code == "AccessDenied" || code == "AllAccessDisabled":
		return false, true, fmt.Errorf("read tags of bucket %q: %w (the bucket may belong to another account: bucket names are global; choose another --bucket)", s.Bucket, err)
	default:
		return false, false, fmt.Errorf("read tags of bucket %q: %w", s.Bucket, err)
	}
	for _, t := range out.TagSet {
		if aws.ToString(t.Key) == config.OwnerTagKey && aws.ToString(t.Value) == s.ClusterName {
			return true, true, nil
		}
	}
	return false, true, nil
}

func wantedPublicAccessBlock() *s3types.PublicAccessBlockConfiguration {
	return &s3types.PublicAccessBlockConfiguration{
		BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true),
		BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: aws.Bool(false),
	}
}

func (s *Stage) diffPublicAccessBlock(ctx context.Context) (*stage.Change, error) {
	out, err := s.S3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: &s.Bucket})
	if err != nil && !awsclient.IsNotFound(err) {
		return nil, fmt.Errorf("read public access block of bucket %q: %w", s.Bucket, err)
	}
	if err == nil && out.PublicAccessBlockConfiguration != nil {
		c := out.PublicAccessBlockConfiguration
		if !aws.ToBool(c.BlockPublicPolicy) && !aws.ToBool(c.RestrictPublicBuckets) && aws.ToBool(c.BlockPublicAcls) && aws.ToBool(c.IgnorePublicAcls) {
			return nil, nil
		}
	}
	return &stage.Change{Action: stage.Update, Kind: "s3-public-access-block", Name: s.Bucket, Detail: "BlockPublicPolicy=false RestrictPublicBuckets=false (ACLs stay blocked)"}, nil
}

func (s *Stage) diffPolicy(ctx context.Context) (*stage.Change, error) {
	want := BucketPolicy(awsclient.Partition(s.Region), s.Bucket, s.IssuerURL)
	out, err := s.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &s.Bucket})
	if err != nil && !awsclient.IsNotFound(err) {
		return nil, fmt.Errorf("read policy of bucket %q: %w", s.Bucket, err)
	}
	if err == nil && documents.SameJSON(aws.ToString(out.Policy), want) {
		return nil, nil
	}
	return &stage.Change{Action: stage.Update, Kind: "s3-bucket-policy", Name: s.Bucket, Detail: "anonymous GetObject on the two issuer documents"}, nil
}

func (s *Stage) diffObject(ctx context.Context, o object) (*stage.Change, error) {
	out, err := s.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.Bucket, Key: &o.key})
	if awsclient.IsNotFound(err) {
		return &stage.Change{Action: stage.Create, Kind: "s3-object", Name: s.Bucket + "/" + o.key}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", s.Bucket, o.key, err)
	}
	sum := md5.Sum(o.body)
	if strings.Trim(aws.ToString(out.ETag), `"`) == hex.EncodeToString(sum[:]) && aws.ToString(out.ContentType) == "application/json" {
		return nil, nil
	}
	return &stage.Change{Action: stage.Update, Kind: "s3-object", Name: s.Bucket + "/" + o.key, Detail: "content differs"}, nil
}

// Plan lists what Apply would change.
func (s *Stage) Plan(ctx context.Context) ([]stage.Change, error) {
	changes, _, _, err := s.diff(ctx)
	return changes, err
}

// Apply creates the bucket if needed and brings its settings and documents to what is wanted.
func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	changes, exists, objs, err := s.diff(ctx)
	if err != nil || len(changes) == 0 {
		return nil, err
	}
	if !exists {
		if err := s.createBucket(ctx); err != nil {
			return nil, err
		}
	}
	for _, c := range changes {
		switch c.Kind {
		case "s3-public-access-block":
			if _, err := s.S3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: &s.Bucket, PublicAccessBlockConfiguration: wantedPublicAccessBlock()}); err != nil {
				return nil, fmt.Errorf("set public access block of bucket %q: %w", s.Bucket, err)
			}
		case "s3-bucket-policy":
			policy := BucketPolicy(awsclient.Partition(s.Region), s.Bucket, s.IssuerURL)
			if _, err := s.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &s.Bucket, Policy: &policy}); err != nil {
				if awsclient.ErrorCode(err) == "AccessDenied" {
					return nil, fmt.Errorf("set public-read policy on bucket %q: %w: Block Public Access is probably on at the account level "+
						"(BlockPublicPolicy or RestrictPublicBuckets in `aws s3control get-public-access-block --account-id ACCOUNT`); "+
						"turn those two off for the account, or serve the issuer from elsewhere (CloudFront with origin access control) and pass --issuer-url", s.Bucket, err)
				}
				return nil, fmt.Errorf("set policy of bucket %q: %w", s.Bucket, err)
			}
		}
	}
	for _, o := range objs {
		for _, c := range changes {
			if c.Kind == "s3-object" && c.Name == s.Bucket+"/"+o.key {
				if _, err := s.S3.PutObject(ctx, &s3.PutObjectInput{
					Bucket: &s.Bucket, Key: aws.String(o.key), Body: bytes.NewReader(o.body),
					ContentType: aws.String("application/json"), CacheControl: aws.String("max-age=300"),
				}); err != nil {
					return nil, fmt.Errorf("upload s3://%s/%s: %w", s.Bucket, o.key, err)
				}
			}
		}
	}
	return changes, nil
}

func (s *Stage) createBucket(ctx context.Context) error {
	in := &s3.CreateBucketInput{Bucket: &s.Bucket, ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}
	// us-east-1 is the one region that rejects its own name as a LocationConstraint.
	if s.Region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(s.Region)}
	}
	if _, err := s.S3.CreateBucket(ctx, in); err != nil {
		if code := awsclient.ErrorCode(err); code == "BucketAlreadyExists" {
			return fmt.Errorf("create bucket %q: %w: bucket names are global and another account has this one; choose another --bucket", s.Bucket, err)
		}
		return fmt.Errorf("create bucket %q in %s: %w", s.Bucket, s.Region, err)
	}
	if _, err := s.S3.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: &s.Bucket, Tagging: &s3types.Tagging{TagSet: []s3types.Tag{
		{Key: aws.String(config.OwnerTagKey), Value: aws.String(s.ClusterName)},
		{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
	}}}); err != nil {
		return fmt.Errorf("tag bucket %q: %w", s.Bucket, err)
	}
	return nil
}

// Delete removes the bucket and everything in it, if irsa owns it for this cluster. A bucket it does not own is left
// alone, with no error: teardown must not fail on what it never made.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) {
	owned, exists, err := s.ownership(ctx)
	if err != nil || !exists || !owned {
		return nil, err
	}
	var changes []stage.Change
	p := s3.NewListObjectsV2Paginator(s.S3, &s3.ListObjectsV2Input{Bucket: &s.Bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return changes, fmt.Errorf("list objects of bucket %q: %w", s.Bucket, err)
		}
		for _, o := range page.Contents {
			if _, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: o.Key}); err != nil && !awsclient.IsNotFound(err) {
				return changes, fmt.Errorf("delete s3://%s/%s: %w", s.Bucket, aws.ToString(o.Key), err)
			}
			changes = append(changes, stage.Change{Action: stage.Delete, Kind: "s3-object", Name: s.Bucket + "/" + aws.ToString(o.Key)})
		}
	}
	if _, err := s.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &s.Bucket}); err != nil && !awsclient.IsNotFound(err) {
		return changes, fmt.Errorf("delete bucket %q: %w", s.Bucket, err)
	}
	return append(changes, stage.Change{Action: stage.Delete, Kind: "s3-bucket", Name: s.Bucket}), nil
}
