// Package target resolves, once and before any stage runs, everything one irsa run acts on: from the configuration
// (irsa.yaml with flags laid over it), the files it names and read-only AWS calls, it derives every fact the stages
// share (issuer URL and host path, object keys, provider ARN, condition-key prefix, role names and ARNs, the signing
// key, images) and checks every input that can be checked without writing. Stages get a *Target and derive nothing
// themselves, so two stages cannot disagree about, say, the provider ARN, and a bad input is refused before the
// first write.
package target

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
)

// Target is a resolved, validated run.
type Target struct {
	// Config is the validated configuration, defaults filled in, role names resolved.
	Config *config.Config

	ClusterName string
	Region      string
	Partition   string
	AccountID   string

	Issuer Issuer
	// ProviderARN is the IAM OIDC provider's ARN: arn:PARTITION:iam::ACCOUNT:oidc-provider/HOSTPATH.
	ProviderARN string
	// Audience is the token audience and the provider's client ID.
	Audience string

	// SigningKey says which key the apiserver signs with.
	SigningKey SigningKey
	// Bindings are the configuration's bindings with their role names and ARNs resolved.
	Bindings []Binding
}

// Issuer is where the issuer's documents are published and how IAM and STS name it.
type Issuer struct {
	// URL is the issuer: https://HOST[/PATH], no trailing slash; tokens carry it byte for byte as iss. Empty while
	// it is not known (Pending).
	URL string
	// HostPath is URL without its scheme: the IAM provider's name and the prefix of trust-policy condition keys
	// (HOSTPATH:sub, HOSTPATH:aud).
	HostPath string
	// Bucket holds the documents, under DiscoveryKey and JWKSKey.
	Bucket                string
	DiscoveryKey, JWKSKey string
	// JWKSURL is where the discovery document says the keys are.
	JWKSURL string
	// Hosting is config.HostingS3Public or config.HostingCloudFront; Domain is the cloudfront issuer's own domain.
	Hosting, Domain string
}

// Binding is one binding with what it resolves to in IAM.
type Binding struct {
	config.Binding
	// RoleARN is the role's ARN: arn:PARTITION:iam::ACCOUNT:role/irsa/CLUSTER/ROLENAME.
	RoleARN string
	// Subject is the token subject the trust policy admits: system:serviceaccount:NAMESPACE:NAME.
	Subject string
	// Providers are the IAM OIDC providers the role trusts: the cluster's own, then the binding's trustProviders.
	Providers []roles.Provider
}

// AWS is what Resolve asks of AWS, read-only.
type AWS interface {
	AccountID(ctx context.Context) (string, error)
	// PolicyExists reports whether a managed policy exists (iam:GetPolicy).
	PolicyExists(ctx context.Context, policyARN string) (bool, error)
	// AttachedPoliciesPerRoleQuota is the account's quota of managed policies attached to one role
	// (iam:GetAccountSummary AttachedPoliciesPerRoleQuota; 10 by default, raisable to 20).
	AttachedPoliciesPerRoleQuota(ctx context.Context) (int, error)
	// OIDCProviderClientIDs reads an IAM OIDC provider's client IDs (iam:GetOpenIDConnectProvider); found is false
	// when there is no such provider.
	OIDCProviderClientIDs(ctx context.Context, providerARN string) (clientIDs []string, found bool, err error)
	// Role reads a role's ARN and trust policy (iam:GetRole); found is false when there is no such role.
	Role(ctx context.Context, name string) (roleARN, trustPolicy string, found bool, err error)
	// TrustPolicyLengthQuota is the account's "Role trust policy length" quota in characters, and where the value
	// came from (Service Quotas, or IAM's default when it holds none or does not answer).
	TrustPolicyLengthQuota(ctx context.Context) (limit int, source string)
}

// Resolve validates cfg (already laid over by flags and defaulted) and derives the target. Every check that can run
// without writing runs here: values, files (keys), and what AWS answers read-only (the account, that managed policies
// exist, the attached-policy quota). Errors name the value and the rule, and are joined so one run lists them all.
func Resolve(ctx context.Context, cfg *config.Config, a AWS) (*Target, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Target{
		Config: cfg, ClusterName: cfg.ClusterName, Region: cfg.Region, Partition: awsclient.Partition(cfg.Region),
		Audience: cfg.Audience,
	}
	t.Issuer = Issuer{Bucket: cfg.Bucket, Hosting: cfg.Issuer.Hosting, Domain: cfg.Issuer.Domain}
	t.SetIssuerURL(cfg.IssuerURL)

	var errs []error
	sk, err := resolveSigningKey(cfg)
	errs = append(errs, err)
	t.SigningKey = sk
	errs = append(errs, checkPublicKeyFiles(cfg.PublicKeyFiles))
	errs = append(errs, checkRoleNames(cfg))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}

	account, err := a.AccountID(ctx)
	if err != nil {
		return nil, err
	}
	t.AccountID = account
	t.SetIssuerURL(t.Issuer.URL) // the provider ARN, now that the account is known
	if err := checkPolicies(ctx, t.Partition, cfg.Bindings, a); err != nil {
		return nil, err
	}
	for _, b := range cfg.Bindings {
		t.Bindings = append(t.Bindings, t.Binding(b))
	}
	if err := checkRoleOptions(ctx, t, a); err != nil {
		return nil, err
	}
	return t, nil
}

// Binding resolves one binding (the role name must be set, as config.Defaults sets it).
func (t *Target) Binding(b config.Binding) Binding {
	return Binding{
		Binding: b,
		RoleARN: cmp.Or(b.RoleARN, roles.ARN(t.Partition, t.AccountID, t.ClusterName, b.RoleName)),
		Subject: roles.Subject(b.Namespace, b.ServiceAccount),
	}
}

// checkRoleNames refuses two bindings that would share one IAM role: the second would rewrite the first one's trust
// policy and permissions. Bindings of one existing role (roleARN) may share it: each manages only its own statements.
func checkRoleNames(cfg *config.Config) error {
	by := map[string]string{}
	existing := map[string]string{}
	var errs []error
	for _, b := range cfg.Bindings {
		ref := b.Namespace + "/" + b.ServiceAccount
		if other, ok := by[b.RoleName]; ok && (b.RoleARN == "" || existing[b.RoleName] != b.RoleARN) {
			errs = append(errs, fmt.Errorf("bindings %q and %q both map to IAM role %q: one role serves one service account; set roleName on one of them", other, ref, b.RoleName))
			continue
		}
		by[b.RoleName] = ref
		existing[b.RoleName] = b.RoleARN
	}
	return errors.Join(errs...)
}

// checkPolicies asks IAM, read-only, whether every managed policy exists and whether a binding attaches more policies
// than the account allows on one role.
func checkPolicies(ctx context.Context, partition string, bindings []config.Binding, a AWS) error {
	var errs []error
	seen := map[string]bool{}
	quota := 0
	for _, b := range bindings {
		ref := b.Namespace + "/" + b.ServiceAccount
		// The quota is at least the default, so only a binding above it needs the account's own figure.
		if len(b.PolicyARNs) > DefaultAttachedPoliciesPerRoleQuota && quota == 0 {
			q, err := a.AttachedPoliciesPerRoleQuota(ctx)
			if err != nil {
				return err
			}
			quota = q
		}
		if quota > 0 && len(b.PolicyARNs) > quota {
			errs = append(errs, fmt.Errorf("binding %q: %d managed policies, but this account allows %d per role (IAM quota AttachedPoliciesPerRoleQuota): combine them, or use an inline policy", ref, len(b.PolicyARNs), quota))
		}
		for _, p := range b.PolicyARNs {
			parsed, err := arn.Parse(p)
			if err == nil && parsed.Partition != partition {
				errs = append(errs, fmt.Errorf("binding %q: policy ARN %q is in partition %q, but the region is in %q", ref, p, parsed.Partition, partition))
				continue
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			ok, err := a.PolicyExists(ctx, p)
			if err != nil {
				return fmt.Errorf("binding %q: look up policy %q: %w", ref, p, err)
			}
			if !ok {
				errs = append(errs, fmt.Errorf("binding %q: policy %q does not exist (iam:GetPolicy answered NoSuchEntity): check the name and the account", ref, p))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return nil
}

// IAMReader answers Resolve's questions with read-only IAM and STS calls.
type IAMReader struct {
	Clients *awsclient.Clients
}

// AccountID implements AWS.
func (r IAMReader) AccountID(ctx context.Context) (string, error) { return r.Clients.AccountID(ctx) }

// PolicyExists implements AWS.
func (r IAMReader) PolicyExists(ctx context.Context, policyARN string) (bool, error) {
	_, err := r.Clients.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(policyARN)})
	switch {
	case err == nil:
		return true, nil
	case awsclient.IsNotFound(err):
		return false, nil
	}
	return false, err
}

// DefaultAttachedPoliciesPerRoleQuota is IAM's default quota of managed policies per role.
const DefaultAttachedPoliciesPerRoleQuota = 10

// AttachedPoliciesPerRoleQuota implements AWS. An account summary without the quota (some emulators) gives the
// default.
func (r IAMReader) AttachedPoliciesPerRoleQuota(ctx context.Context) (int, error) {
	out, err := r.Clients.IAM.GetAccountSummary(ctx, &iam.GetAccountSummaryInput{})
	if err != nil {
		return 0, fmt.Errorf("read IAM account summary (quotas): %w", err)
	}
	if q, ok := out.SummaryMap["AttachedPoliciesPerRoleQuota"]; ok && q > 0 {
		return int(q), nil
	}
	return DefaultAttachedPoliciesPerRoleQuota, nil
}
