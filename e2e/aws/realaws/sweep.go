package realaws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// Kinds of resources the sweeper knows.
const (
	KindRole     = "iam-role"
	KindProvider = "iam-oidc-provider"
	KindBucket   = "s3-bucket"
)

// Resource is one AWS object with its tags.
type Resource struct {
	Kind string
	// ID is the role name, the provider ARN or the bucket name.
	ID      string
	Created time.Time
	Tags    map[string]string
}

func (r Resource) String() string { return r.Kind + " " + r.ID }

// fromE2E reports whether r was made by irsa for an e2e run.
func (r Resource) fromE2E() bool {
	return r.Tags[config.ManagedByTagKey] == config.ManagedByValue && strings.HasPrefix(r.Tags[config.OwnerTagKey], RunPrefix)
}

// Stale picks what a sweep deletes: resources made by irsa for an e2e run other than current, created more than
// maxAge before now. Anything without both tags, and anything of a user's own cluster, is left alone.
func Stale(rs []Resource, now time.Time, maxAge time.Duration, current string) []Resource {
	var out []Resource
	for _, r := range rs {
		if r.fromE2E() && r.Tags[config.OwnerTagKey] != current && now.Sub(r.Created) > maxAge {
			out = append(out, r)
		}
	}
	return ordered(out)
}

// Owned picks the resources of run runID, whatever their age.
func Owned(rs []Resource, runID string) []Resource {
	var out []Resource
	for _, r := range rs {
		if r.fromE2E() && r.Tags[config.OwnerTagKey] == runID {
			out = append(out, r)
		}
	}
	return ordered(out)
}

// ordered sorts for deletion: roles (they trust the provider) before providers before buckets, then by ID.
func ordered(rs []Resource) []Resource {
	rank := map[string]int{KindRole: 0, KindProvider: 1, KindBucket: 2}
	slices.SortFunc(rs, func(a, b Resource) int {
		if d := rank[a.Kind] - rank[b.Kind]; d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	return rs
}

// Sweeper lists and deletes tagged resources in one account.
type Sweeper struct {
	iam *iam.Client
	s3  *s3.Client
}

// NewSweeper uses the IAM and S3 clients of c.
func NewSweeper(c *awsclient.Clients) *Sweeper { return &Sweeper{iam: c.IAM, s3: c.S3} }

// List returns every IAM role, IAM OIDC provider and S3 bucket that carries the owner tag, with all its tags.
func (s *Sweeper) List(ctx context.Context) ([]Resource, error) {
	var out []Resource
	roles := iam.NewListRolesPaginator(s.iam, &iam.ListRolesInput{})
	for roles.HasMorePages() {
		page, err := roles.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list IAM roles: %w", err)
		}
		for _, r := range page.Roles {
			tags, err := s.iam.ListRoleTags(ctx, &iam.ListRoleTagsInput{RoleName: r.RoleName})
			if awsclient.IsNotFound(err) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("list tags of IAM role %q: %w", aws.ToString(r.RoleName), err)
			}
			m := map[string]string{}
			for _, t := range tags.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			out = appendTagged(out, Resource{Kind: KindRole, ID: aws.ToString(r.RoleName), Created: aws.ToTime(r.CreateDate), Tags: m})
		}
	}
	providers, err := s.iam.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
	if err != nil {
		return nil, fmt.Errorf("list IAM OIDC providers: %w", err)
	}
	for _, p := range providers.OpenIDConnectProviderList {
		arn := aws.ToString(p.Arn)
		got, err := s.iam.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: p.Arn})
		if awsclient.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get IAM OIDC provider %q: %w", arn, err)
		}
		m := map[string]string{}
		for _, t := range got.Tags {
			m[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		out = appendTagged(out, Resource{Kind: KindProvider, ID: arn, Created: aws.ToTime(got.CreateDate), Tags: m})
	}
	buckets := s3.NewListBucketsPaginator(s.s3, &s3.ListBucketsInput{})
	for buckets.HasMorePages() {
		page, err := buckets.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list S3 buckets: %w", err)
		}
		for _, b := range page.Buckets {
			name := aws.ToString(b.Name)
			tags, err := s.s3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b.Name}, s3RegionFor(b.BucketRegion))
			if awsclient.IsNotFound(err) {
				continue // no tags, or deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("get tags of S3 bucket %q: %w", name, err)
			}
			m := map[string]string{}
			for _, t := range tags.TagSet {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			out = appendTagged(out, Resource{Kind: KindBucket, ID: name, Created: aws.ToTime(b.CreationDate), Tags: m})
		}
	}
	return out, nil
}

// s3RegionFor sends a bucket call to the bucket's own region when S3 reported it.
func s3RegionFor(region *string) func(*s3.Options) {
	return func(o *s3.Options) {
		if r := aws.ToString(region); r != "" {
			o.Region = r
		}
	}
}

func appendTagged(out []Resource, r Resource) []Resource {
	if _, ok := r.Tags[config.OwnerTagKey]; ok {
		return append(out, r)
	}
	return out
}

// Delete deletes rs in order; "not found" counts as deleted. It goes on after a failure and reports them all.
func (s *Sweeper) Delete(ctx context.Context, rs []Resource) error {
	var errs []error
	for _, r := range ordered(slices.Clone(rs)) {
		var err error
		switch r.Kind {
		case KindRole:
			err = s.deleteRole(ctx, r.ID)
		case KindProvider:
			_, err = s.iam.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(r.ID)})
		case KindBucket:
			err = s.deleteBucket(ctx, r.ID)
		default:
			err = fmt.Errorf("unknown kind")
		}
		if err != nil && !awsclient.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// deleteRole detaches and deletes the role's policies first: IAM refuses to delete a role that has any.
func (s *Sweeper) deleteRole(ctx context.Context, name string) error {
	attached := iam.NewListAttachedRolePoliciesPaginator(s.iam, &iam.ListAttachedRolePoliciesInput{RoleName: &name})
	for attached.HasMorePages() {
		page, err := attached.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, p := range page.AttachedPolicies {
			if _, err := s.iam.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: &name, PolicyArn: p.PolicyArn}); err != nil && !awsclient.IsNotFound(err) {
				return err
			}
		}
	}
	inline := iam.NewListRolePoliciesPaginator(s.iam, &iam.ListRolePoliciesInput{RoleName: &name})
	for inline.HasMorePages() {
		page, err := inline.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, p := range page.PolicyNames {
			if _, err := s.iam.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &name, PolicyName: aws.String(p)}); err != nil && !awsclient.IsNotFound(err) {
				return err
			}
		}
	}
	_, err := s.iam.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: &name})
	return err
}

// deleteBucket empties the bucket (every version) and deletes it.
func (s *Sweeper) deleteBucket(ctx context.Context, name string) error {
	versions := s3.NewListObjectVersionsPaginator(s.s3, &s3.ListObjectVersionsInput{Bucket: &name})
	for versions.HasMorePages() {
		page, err := versions.NextPage(ctx)
		if err != nil {
			return err
		}
		var ids []s3types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, s3types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, s3types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			continue
		}
		out, err := s.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &name, Delete: &s3types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return err
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete object %q: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	_, err := s.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &name})
	return err
}
