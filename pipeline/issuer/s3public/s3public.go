// Package s3public is the s3-public hosting mode of the issuer: an S3 bucket that serves the OIDC discovery
// document and the JWKS to anyone, through a bucket policy (never ACLs: buckets created since 2023 enforce
// BucketOwnerEnforced and reject them), while everything else in the bucket stays private.
package s3public

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/issuer"
	"github.com/irsa-anywhere/irsa/pipeline/lock"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Host is an S3 bucket that makes exactly the issuer's documents public.
type Host struct {
	S3          *s3.Client
	Bucket      string
	Region      string
	ClusterName string
	// DiscoveryKey and JWKSKey are the two object keys the bucket policy makes public: the only objects irsa writes.
	DiscoveryKey, JWKSKey string
	// Force makes Remove delete objects irsa did not write too, and with them the bucket.
	Force bool
	// Access, when set, replaces the public access this package gives (PublicAccess): another hosting mode keeps the
	// bucket and its documents here but grants access its own way (cloudfront: a private bucket only its
	// distribution reads).
	Access *Access
}

// Access is what the bucket's policy grants and how Block Public Access is set.
type Access struct {
	// Policy is a bucket policy with exactly one statement, irsa's, whose Sid is Sid. Apply sets that statement and
	// removes those whose Sid is in Replaces (another mode's statement); every other statement is kept.
	Policy   string
	Sid      string
	Replaces []string
	// Detail says what the statement grants, for plans.
	Detail string
	// Block is the Block Public Access configuration wanted; BlockDetail says it for plans.
	Block       s3types.PublicAccessBlockConfiguration
	BlockDetail string
	// DenyHint is added to the error when PutBucketPolicy answers AccessDenied.
	DenyHint string
}

// PublicAccess is the s3-public mode's access: anonymous GetObject on the two documents (BucketPolicy), and Block
// Public Access off for policies only (ACLs stay blocked).
func PublicAccess(partition, bucket, discoveryKey, jwksKey string) *Access {
	return &Access{
		Policy: BucketPolicy(partition, bucket, discoveryKey, jwksKey), Sid: PolicySid,
		Detail: "anonymous GetObject on the two issuer documents",
		Block: s3types.PublicAccessBlockConfiguration{
			BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true),
			BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: aws.Bool(false),
		},
		BlockDetail: "BlockPublicPolicy=false RestrictPublicBuckets=false (ACLs stay blocked)",
		DenyHint: "Block Public Access is probably on at the account level " +
			"(BlockPublicPolicy or RestrictPublicBuckets in `aws s3control get-public-access-block --account-id ACCOUNT`); " +
			"turn those two off for the account, or serve the issuer through CloudFront from a private bucket (--issuer-hosting cloudfront)",
	}
}

func (s *Host) access() *Access {
	if s.Access != nil {
		return s.Access
	}
	return PublicAccess(awsclient.Partition(s.Region), s.Bucket, s.DiscoveryKey, s.JWKSKey)
}

var _ issuer.Host = (*Host)(nil)

// PolicySid names irsa's statement in the bucket policy. Apply sets only the statement with this Sid and keeps every
// other statement (a third party's) as it is.
const PolicySid = "IrsaPublicIssuerDocuments"

// MergePolicy returns the bucket policy existing (empty for none) with irsa's statement, the one statement of want
// (BucketPolicy), put in place of any statement with Sid PolicySid; every other statement is kept, in its order. The
// error names the policy that is not valid JSON.
func MergePolicy(existing, want string) (string, error) {
	return MergeStatement(existing, want, PolicySid)
}

// MergeStatement is MergePolicy for a statement with Sid sid; statements whose Sid is in replaces go too.
func MergeStatement(existing, want, sid string, replaces ...string) (string, error) {
	var w struct{ Statement []json.RawMessage }
	if err := json.Unmarshal([]byte(want), &w); err != nil || len(w.Statement) != 1 {
		return "", fmt.Errorf("irsa bucket policy %q: want one statement (%v)", want, err)
	}
	if strings.TrimSpace(existing) == "" {
		return want, nil
	}
	doc := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(existing), &doc); err != nil {
		return "", fmt.Errorf("bucket policy %q: %w", existing, err)
	}
	var stmts []json.RawMessage
	if raw := bytes.TrimSpace(doc["Statement"]); len(raw) > 0 && raw[0] == '{' {
		stmts = []json.RawMessage{raw} // IAM allows a lone statement object
	} else if len(raw) > 0 {
		if err := json.Unmarshal(raw, &stmts); err != nil {
			return "", fmt.Errorf("bucket policy %q: Statement: %w", existing, err)
		}
	}
	out := []json.RawMessage{}
	own := sid
	for _, st := range stmts {
		var sid struct{ Sid string }
		_ = json.Unmarshal(st, &sid)
		if sid.Sid != own && !slices.Contains(replaces, sid.Sid) {
			out = append(out, st)
		}
	}
	doc["Statement"], _ = json.Marshal(append(out, w.Statement[0]))
	if _, ok := doc["Version"]; !ok {
		doc["Version"] = json.RawMessage(`"2012-10-17"`)
	}
	b, err := json.Marshal(doc)
	return string(b), err
}

// BucketPolicy allows anonymous s3:GetObject on exactly the two documents.
func BucketPolicy(partition, bucket, discoveryKey, jwksKey string) string {
	d, j := discoveryKey, jwksKey
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       PolicySid,
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

// bucketState is what the bucket is to irsa.
type bucketState int

const (
	missing  bucketState = iota
	owned                // tagged for this cluster
	untagged             // exists with no tags at all
	foreign              // tagged, but not for this cluster
)

// diff finds what differs between the bucket and what is wanted. A missing bucket means everything is to be created.
// An untagged bucket this account owns that is empty and has no policy is adopted: it is what a create whose
// response was lost (the retry answers BucketAlreadyOwnedByYou) or a run killed before tagging leaves behind.
func (s *Host) diff(ctx context.Context, objs []issuer.Document) (changes []stage.Change, state bucketState, err error) {
	state, err = s.ownership(ctx)
	if err != nil {
		return nil, state, err
	}
	switch state {
	case foreign:
		return nil, state, s.notOwned("it is tagged, but not for this cluster")
	case untagged:
		why, err := s.notAdoptable(ctx)
		if err != nil {
			return nil, state, err
		}
		if why != "" {
			return nil, state, s.notOwned(why)
		}
		changes = append(changes, stage.Change{Action: stage.Update, Kind: "s3-bucket", Name: s.Bucket, Detail: "adopt: empty, untagged, no policy, this account's; tag " + config.OwnerTagKey + "=" + s.ClusterName})
	case missing:
		changes = append(changes,
			stage.Change{Action: stage.Create, Kind: "s3-bucket", Name: s.Bucket, Detail: "region " + s.Region},
			stage.Change{Action: stage.Create, Kind: "s3-public-access-block", Name: s.Bucket, Detail: s.access().BlockDetail},
			stage.Change{Action: stage.Create, Kind: "s3-bucket-policy", Name: s.Bucket, Detail: s.access().Detail})
		for _, o := range objs {
			changes = append(changes, stage.Change{Action: stage.Create, Kind: "s3-object", Name: s.Bucket + "/" + o.Key})
		}
		return changes, state, nil
	}
	if c, err := s.diffPublicAccessBlock(ctx); err != nil {
		return nil, state, err
	} else if c != nil {
		changes = append(changes, *c)
	}
	if c, err := s.diffPolicy(ctx); err != nil {
		return nil, state, err
	} else if c != nil {
		changes = append(changes, *c)
	}
	for _, o := range objs {
		c, err := s.diffObject(ctx, o)
		if err != nil {
			return nil, state, err
		}
		if c != nil {
			changes = append(changes, *c)
		}
	}
	return changes, state, nil
}

// CheckOwned is the ownership check apply, plan and teardown make on the bucket, for commands that only look (doctor):
// nil when the bucket is missing or tagged for this cluster, or when apply would adopt it; the error apply would stop
// with otherwise.
func (s *Host) CheckOwned(ctx context.Context) error {
	state, err := s.ownership(ctx)
	switch {
	case err != nil:
		return err
	case state == foreign:
		return s.notOwned("it is tagged, but not for this cluster")
	case state == untagged:
		why, err := s.notAdoptable(ctx)
		if err != nil {
			return err
		}
		if why != "" {
			return s.notOwned(why)
		}
	}
	return nil
}

func (s *Host) notOwned(why string) error {
	return fmt.Errorf("bucket %q exists but is not owned by irsa cluster %q (no tag %s=%s; %s): choose another --bucket, or tag the bucket if it is meant for this cluster", s.Bucket, s.ClusterName, config.OwnerTagKey, s.ClusterName, why)
}

// notAdoptable says why an untagged bucket cannot be adopted, or "" when it can: the caller's account must own it
// (ListBuckets lists only the caller's buckets), and it must hold no object version, no delete marker and no policy,
// so adopting it takes nothing from anyone.
func (s *Host) notAdoptable(ctx context.Context) (string, error) {
	mine := false
	p := s3.NewListBucketsPaginator(s.S3, &s3.ListBucketsInput{Prefix: &s.Bucket})
	for p.HasMorePages() && !mine {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("list buckets (is %q this account's?): %w", s.Bucket, err)
		}
		for _, b := range page.Buckets {
			mine = mine || aws.ToString(b.Name) == s.Bucket
		}
	}
	if !mine {
		return "it is not this account's", nil
	}
	// The lock object of a run that made the bucket a moment ago (package lock) is irsa's, not someone's object.
	vs, err := s.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &s.Bucket, MaxKeys: aws.Int32(10)})
	if err != nil {
		return "", fmt.Errorf("list object versions of bucket %q: %w", s.Bucket, err)
	}
	for _, v := range vs.Versions {
		if aws.ToString(v.Key) != lock.Key {
			return "it holds objects", nil
		}
	}
	for _, m := range vs.DeleteMarkers {
		if aws.ToString(m.Key) != lock.Key {
			return "it holds objects", nil
		}
	}
	if aws.ToBool(vs.IsTruncated) {
		return "it holds objects", nil
	}
	_, err = s.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &s.Bucket})
	switch {
	case err == nil:
		return "it has a bucket policy", nil
	case !awsclient.IsNotFound(err):
		return "", fmt.Errorf("read policy of bucket %q: %w", s.Bucket, err)
	}
	return "", nil
}

func (s *Host) ownership(ctx context.Context) (bucketState, error) {
	out, err := s.S3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: &s.Bucket})
	switch code := awsclient.ErrorCode(err); {
	case err == nil:
	case code == "NoSuchBucket":
		return missing, nil
	case code == "NoSuchTagSet" || code == "NoSuchTagSetError":
		return untagged, nil
	case code == "AccessDenied" || code == "AllAccessDisabled":
		return foreign, fmt.Errorf("read tags of bucket %q: %w (the bucket may belong to another account: bucket names are global; choose another --bucket)", s.Bucket, err)
	default:
		return missing, fmt.Errorf("read tags of bucket %q: %w", s.Bucket, err)
	}
	if len(out.TagSet) == 0 {
		return untagged, nil
	}
	for _, t := range out.TagSet {
		if aws.ToString(t.Key) == config.OwnerTagKey && aws.ToString(t.Value) == s.ClusterName {
			return owned, nil
		}
	}
	return foreign, nil
}

func (s *Host) diffPublicAccessBlock(ctx context.Context) (*stage.Change, error) {
	out, err := s.S3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: &s.Bucket})
	if err != nil && !awsclient.IsNotFound(err) {
		return nil, fmt.Errorf("read public access block of bucket %q: %w", s.Bucket, err)
	}
	a := s.access()
	if err == nil && out.PublicAccessBlockConfiguration != nil {
		c, w := out.PublicAccessBlockConfiguration, a.Block
		if aws.ToBool(c.BlockPublicPolicy) == aws.ToBool(w.BlockPublicPolicy) && aws.ToBool(c.RestrictPublicBuckets) == aws.ToBool(w.RestrictPublicBuckets) &&
			aws.ToBool(c.BlockPublicAcls) == aws.ToBool(w.BlockPublicAcls) && aws.ToBool(c.IgnorePublicAcls) == aws.ToBool(w.IgnorePublicAcls) {
			return nil, nil
		}
	}
	action := stage.Update
	if err != nil {
		action = stage.Create
	}
	return &stage.Change{Action: action, Kind: "s3-public-access-block", Name: s.Bucket, Detail: a.BlockDetail}, nil
}

// wantedPolicy is the bucket's policy with irsa's statement merged in (MergePolicy), whether that differs from the
// policy it has, and whether it has one.
func (s *Host) wantedPolicy(ctx context.Context) (policy string, differs, had bool, err error) {
	a := s.access()
	out, err := s.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &s.Bucket})
	if err != nil && !awsclient.IsNotFound(err) {
		return "", false, false, fmt.Errorf("read policy of bucket %q: %w", s.Bucket, err)
	}
	have := ""
	if err == nil {
		have = aws.ToString(out.Policy)
	}
	merged, err := MergeStatement(have, a.Policy, a.Sid, a.Replaces...)
	if err != nil {
		return "", false, false, err
	}
	return merged, have == "" || !documents.SameJSON(have, merged), have != "", nil
}

func (s *Host) diffPolicy(ctx context.Context) (*stage.Change, error) {
	_, differs, had, err := s.wantedPolicy(ctx)
	if err != nil || !differs {
		return nil, err
	}
	a := s.access()
	if !had {
		return &stage.Change{Action: stage.Create, Kind: "s3-bucket-policy", Name: s.Bucket, Detail: a.Detail}, nil
	}
	return &stage.Change{Action: stage.Update, Kind: "s3-bucket-policy", Name: s.Bucket, Detail: "statement " + a.Sid + ": " + a.Detail + " (other statements kept)"}, nil
}

// PrepareLock readies the bucket for the run's lock (package lock), which lives in it, and says whether the run can
// take it. A missing bucket is made (tagged for the cluster) when create is set, after check (the run's checks) passes,
// and the change is returned for the issuer stage's report; without create (teardown) a missing bucket takes no lock. An untagged or foreign bucket
// takes none either: the issuer stage adopts it or refuses it with its reason, before any write of its own.
func (s *Host) PrepareLock(ctx context.Context, create bool, check func(context.Context) error) (lockable bool, changes []stage.Change, err error) {
	state, err := s.ownership(ctx)
	if err != nil {
		return false, nil, nil // the issuer stage reports it
	}
	switch {
	case state == owned:
		return true, nil, nil
	case state != missing || !create:
		return false, nil, nil
	}
	if check != nil {
		if err := check(ctx); err != nil {
			return false, nil, err
		}
	}
	if err := s.createBucket(ctx); err != nil {
		return false, nil, err
	}
	return true, []stage.Change{{Action: stage.Create, Kind: "s3-bucket", Name: s.Bucket, Detail: "region " + s.Region}}, nil
}

// diffObject compares the object with the document by content (a GET: the documents are small), not by ETag: an
// ETag is the MD5 of the content only for objects stored unencrypted or with SSE-S3 in one part
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html, ETag). An object encrypted with a KMS key is
// rewritten even when its content is right: S3 answers anonymous GETs of it with 403, so STS cannot fetch it.
func (s *Host) diffObject(ctx context.Context, o issuer.Document) (*stage.Change, error) {
	out, err := s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: &o.Key})
	if awsclient.IsNotFound(err) {
		return &stage.Change{Action: stage.Create, Kind: "s3-object", Name: s.Bucket + "/" + o.Key, Detail: s.kmsNote(ctx)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", s.Bucket, o.Key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", s.Bucket, o.Key, err)
	}
	var why []string
	if kmsEncrypted(out.ServerSideEncryption) {
		why = append(why, fmt.Sprintf("encrypted with %s: anonymous readers (STS) get 403; rewritten with SSE-S3", out.ServerSideEncryption))
	}
	if !bytes.Equal(body, o.Body) {
		why = append(why, "content differs")
	}
	if ct := aws.ToString(out.ContentType); ct != o.ContentType {
		why = append(why, fmt.Sprintf("content type %q, want %q", ct, o.ContentType))
	}
	if len(why) == 0 {
		return nil, nil
	}
	return &stage.Change{Action: stage.Update, Kind: "s3-object", Name: s.Bucket + "/" + o.Key, Detail: strings.Join(why, "; ")}, nil
}

func kmsEncrypted(sse s3types.ServerSideEncryption) bool {
	return sse == s3types.ServerSideEncryptionAwsKms || sse == s3types.ServerSideEncryptionAwsKmsDsse
}

// KMSDefault returns the bucket's default encryption when it is a KMS key (SSE-KMS, DSSE-KMS), "" otherwise. irsa
// writes its documents with SSE-S3 explicitly, which overrides the default, because S3 refuses anonymous GETs of
// KMS-encrypted objects and STS fetches the documents anonymously; a bucket policy that requires KMS encryption
// then refuses irsa's writes.
func (s *Host) KMSDefault(ctx context.Context) (string, error) {
	out, err := s.S3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: &s.Bucket})
	if err != nil {
		if awsclient.IsNotFound(err) || awsclient.ErrorCode(err) == "ServerSideEncryptionConfigurationNotFoundError" {
			return "", nil
		}
		return "", fmt.Errorf("read default encryption of bucket %q: %w", s.Bucket, err)
	}
	if out.ServerSideEncryptionConfiguration == nil {
		return "", nil
	}
	for _, r := range out.ServerSideEncryptionConfiguration.Rules {
		if d := r.ApplyServerSideEncryptionByDefault; d != nil && kmsEncrypted(d.SSEAlgorithm) {
			return string(d.SSEAlgorithm), nil
		}
	}
	return "", nil
}

// kmsNote says, for a document about to be written, that the bucket's KMS default is overridden; "" otherwise or when
// it cannot be read (the write itself then tells).
func (s *Host) kmsNote(ctx context.Context) string {
	if alg, err := s.KMSDefault(ctx); err == nil && alg != "" {
		return "bucket default encryption " + alg + " is overridden with SSE-S3: STS cannot read KMS-encrypted documents"
	}
	return ""
}

// Plan implements issuer.Host.
func (s *Host) Plan(ctx context.Context, objs []issuer.Document) ([]stage.Change, error) {
	changes, _, err := s.diff(ctx, objs)
	return changes, err
}

// Publish implements issuer.Host: it creates (or adopts) the bucket if needed and brings its settings and documents to
// what is wanted. It makes the changes in diff's order and, when one fails, returns those already made with the error,
// so the report of a failed run lists them.
func (s *Host) Publish(ctx context.Context, objs []issuer.Document) ([]stage.Change, error) {
	changes, state, err := s.diff(ctx, objs)
	if err != nil || len(changes) == 0 {
		return nil, err
	}
	for i, c := range changes {
		if err := s.make(ctx, c, state, objs); err != nil {
			return changes[:i], err
		}
	}
	return changes, nil
}

// make makes one change diff listed.
func (s *Host) make(ctx context.Context, c stage.Change, state bucketState, objs []issuer.Document) error {
	switch c.Kind {
	case "s3-bucket":
		if state == untagged {
			return s.tag(ctx)
		}
		return s.createBucket(ctx)
	case "s3-public-access-block":
		block := s.access().Block
		if _, err := s.S3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: &s.Bucket, PublicAccessBlockConfiguration: &block}); err != nil {
			return fmt.Errorf("set public access block of bucket %q: %w", s.Bucket, err)
		}
	case "s3-bucket-policy":
		policy, _, _, err := s.wantedPolicy(ctx)
		if err != nil {
			return err
		}
		if _, err := s.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &s.Bucket, Policy: &policy}); err != nil {
			if hint := s.access().DenyHint; hint != "" && awsclient.ErrorCode(err) == "AccessDenied" {
				return fmt.Errorf("set policy of bucket %q: %w: %s", s.Bucket, err, hint)
			}
			return fmt.Errorf("set policy of bucket %q: %w", s.Bucket, err)
		}
	case "s3-object":
		for _, o := range objs {
			if c.Name != s.Bucket+"/"+o.Key {
				continue
			}
			// SSE-S3 explicitly: a bucket default of SSE-KMS would make the document unreadable to STS.
			if _, err := s.S3.PutObject(ctx, &s3.PutObjectInput{
				Bucket: &s.Bucket, Key: aws.String(o.Key), Body: bytes.NewReader(o.Body),
				ContentType: aws.String(o.ContentType), CacheControl: aws.String("max-age=300"),
				ServerSideEncryption: s3types.ServerSideEncryptionAes256,
			}); err != nil {
				return fmt.Errorf("upload s3://%s/%s: %w", s.Bucket, o.Key, err)
			}
		}
	}
	return nil
}

func (s *Host) createBucket(ctx context.Context) error {
	in := &s3.CreateBucketInput{Bucket: &s.Bucket, ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}
	// us-east-1 is the one region that rejects its own name as a LocationConstraint.
	if s.Region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(s.Region)}
	}
	if _, err := s.S3.CreateBucket(ctx, in); err != nil {
		switch awsclient.ErrorCode(err) {
		case "BucketAlreadyExists":
			return fmt.Errorf("create bucket %q: %w: bucket names are global and another account has this one; choose another --bucket", s.Bucket, err)
		case "BucketAlreadyOwnedByYou":
			// The bucket was missing a moment ago: the SDK retried a create whose response was lost, or another run
			// made it. Take it only as diff would adopt it.
			return s.adoptAfterCreate(ctx, err)
		}
		return fmt.Errorf("create bucket %q in %s: %w", s.Bucket, s.Region, err)
	}
	return s.tag(ctx)
}

func (s *Host) adoptAfterCreate(ctx context.Context, createErr error) error {
	state, err := s.ownership(ctx)
	if err != nil {
		return err
	}
	switch state {
	case owned:
		return nil
	case untagged:
		why, err := s.notAdoptable(ctx)
		if err != nil {
			return err
		}
		if why == "" {
			return s.tag(ctx)
		}
		return fmt.Errorf("create bucket %q: %w: %w", s.Bucket, createErr, s.notOwned(why))
	}
	return fmt.Errorf("create bucket %q: %w: %w", s.Bucket, createErr, s.notOwned("it is tagged, but not for this cluster"))
}

func (s *Host) tag(ctx context.Context) error {
	if _, err := s.S3.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: &s.Bucket, Tagging: &s3types.Tagging{TagSet: []s3types.Tag{
		{Key: aws.String(config.OwnerTagKey), Value: aws.String(s.ClusterName)},
		{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
	}}}); err != nil {
		return fmt.Errorf("tag bucket %q: %w", s.Bucket, err)
	}
	return nil
}

// Remove implements issuer.Host: it removes the configured bucket (removeOne) and every other bucket of this account in
// the region tagged for this cluster, which an earlier configuration used (another --bucket or issuer URL): teardown
// finds what the cluster owns by its tags, not by today's configuration.
func (s *Host) Remove(ctx context.Context) ([]stage.Change, error) {
	changes, err := s.removeOne(ctx)
	if err != nil {
		return changes, err
	}
	others, err := s.otherOwnedBuckets(ctx)
	if err != nil {
		return changes, err
	}
	for _, b := range others {
		o := *s
		o.Bucket = b
		more, err := o.removeOne(ctx)
		changes = append(changes, more...)
		if err != nil {
			return changes, err
		}
	}
	return changes, nil
}

// otherOwnedBuckets lists, sorted, the buckets besides s.Bucket that this account has in the region and that are
// tagged for this cluster. Buckets whose tags cannot be read (another region's, no tags, denied) are not irsa's.
func (s *Host) otherOwnedBuckets(ctx context.Context) ([]string, error) {
	var names []string
	p := s3.NewListBucketsPaginator(s.S3, &s3.ListBucketsInput{BucketRegion: &s.Region})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list buckets (to find the ones tagged %s=%s): %w", config.OwnerTagKey, s.ClusterName, err)
		}
		for _, b := range page.Buckets {
			if n := aws.ToString(b.Name); n != s.Bucket {
				names = append(names, n)
			}
		}
	}
	// Tags are one read per bucket: eight at a time.
	var mu sync.Mutex
	var mine []string
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := *s
			o.Bucket = n
			state, err := o.ownership(ctx)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && ctx.Err() != nil && firstErr == nil:
				firstErr = err
			case err == nil && state == owned:
				mine = append(mine, n)
			}
		}()
	}
	wg.Wait()
	sort.Strings(mine)
	return mine, firstErr
}

// policyKeys are the object keys irsa's statement in the bucket policy makes public: the documents irsa wrote in this
// bucket under the issuer URL it had then.
func (s *Host) policyKeys(ctx context.Context) ([]string, error) {
	out, err := s.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &s.Bucket})
	if awsclient.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read policy of bucket %q: %w", s.Bucket, err)
	}
	var doc struct{ Statement json.RawMessage }
	if err := json.Unmarshal([]byte(aws.ToString(out.Policy)), &doc); err != nil {
		return nil, nil // not JSON irsa can read: it names no document of irsa's
	}
	var stmts []struct {
		Sid      string
		Resource json.RawMessage
	}
	if raw := bytes.TrimSpace(doc.Statement); len(raw) > 0 && raw[0] == '{' {
		doc.Statement = append(append([]byte{'['}, raw...), ']')
	}
	_ = json.Unmarshal(doc.Statement, &stmts)
	var keys []string
	for _, st := range stmts {
		if st.Sid != PolicySid {
			continue
		}
		var res []string
		if json.Unmarshal(st.Resource, &res) != nil {
			var one string
			_ = json.Unmarshal(st.Resource, &one)
			res = []string{one}
		}
		for _, r := range res {
			if _, key, ok := strings.Cut(r, ":s3:::"+s.Bucket+"/"); ok {
				keys = append(keys, key)
			}
		}
	}
	return keys, nil
}

// removeOne deletes every version and delete marker of the objects irsa wrote in s.Bucket (the two documents, and
// the documents its policy statement names, which an earlier issuer URL put elsewhere in the bucket), then the
// bucket, if irsa owns it for this cluster. A bucket that also holds objects irsa did not write is kept, with those
// objects, and reported as kept unless Force is set. A bucket irsa does not own is left alone, with no error: teardown
// must not fail on what it never made.
func (s *Host) removeOne(ctx context.Context) ([]stage.Change, error) {
	state, err := s.ownership(ctx)
	if err != nil || state == missing {
		return nil, err
	}
	if state != owned {
		return []stage.Change{{Action: stage.Keep, Kind: "s3-bucket", Name: s.Bucket, Detail: "not tagged " + config.OwnerTagKey + "=" + s.ClusterName}}, nil
	}
	ours := map[string]bool{s.DiscoveryKey: true, s.JWKSKey: true}
	published, err := s.policyKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range published {
		ours[k] = true
	}
	var changes []stage.Change
	var theirs []string
	deleted := map[string]bool{}
	del := func(key, version *string) error {
		if _, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: key, VersionId: version}); err != nil && !awsclient.IsNotFound(err) {
			return fmt.Errorf("delete s3://%s/%s (version %s): %w", s.Bucket, aws.ToString(key), aws.ToString(version), err)
		}
		if k := aws.ToString(key); !deleted[k] {
			deleted[k] = true
			changes = append(changes, stage.Change{Action: stage.Delete, Kind: "s3-object", Name: s.Bucket + "/" + k})
		}
		return nil
	}
	// ListObjectVersions also lists an unversioned bucket's objects (version "null"), so one pass serves both.
	type entry struct{ key, version *string }
	var locks []entry
	p := s3.NewListObjectVersionsPaginator(s.S3, &s3.ListObjectVersionsInput{Bucket: &s.Bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return changes, fmt.Errorf("list object versions of bucket %q: %w", s.Bucket, err)
		}
		var all []entry
		for _, v := range page.Versions {
			all = append(all, entry{v.Key, v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			all = append(all, entry{m.Key, m.VersionId})
		}
		for _, e := range all {
			if aws.ToString(e.key) == lock.Key {
				locks = append(locks, e) // this run's lock: deleted with the bucket, else left for its release
				continue
			}
			if !ours[aws.ToString(e.key)] && !s.Force {
				if k := aws.ToString(e.key); !slices.Contains(theirs, k) {
					theirs = append(theirs, k)
				}
				continue
			}
			if err := del(e.key, e.version); err != nil {
				return changes, err
			}
		}
	}
	if len(theirs) > 0 {
		sort.Strings(theirs)
		return append(changes, stage.Change{Action: stage.Keep, Kind: "s3-bucket", Name: s.Bucket,
			Detail: fmt.Sprintf("holds %d object(s) irsa did not write (%s): kept with them; teardown --force deletes them too", len(theirs), strings.Join(theirs, ", "))}), nil
	}
	for _, e := range locks {
		if _, err := s.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: e.key, VersionId: e.version}); err != nil && !awsclient.IsNotFound(err) {
			return changes, fmt.Errorf("delete the lock s3://%s/%s: %w", s.Bucket, lock.Key, err)
		}
	}
	if _, err := s.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &s.Bucket}); err != nil && !awsclient.IsNotFound(err) {
		return changes, fmt.Errorf("delete bucket %q: %w", s.Bucket, err)
	}
	return append(changes, stage.Change{Action: stage.Delete, Kind: "s3-bucket", Name: s.Bucket}), nil
}
