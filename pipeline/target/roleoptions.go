package target

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
)

// checkRoleOptions resolves, read-only, what a binding's role options name in AWS and refuses before any write what
// IAM would refuse or what would not work: another cluster's provider that does not exist, is in another account, or
// does not list the audience; a permissions boundary that does not exist; a role ARN in another account or of no
// role; and a trust policy longer than the account's "Role trust policy length" quota.
func checkRoleOptions(ctx context.Context, t *Target, a AWS) error {
	var errs []error
	quota := quotaLookup{a: a}
	for i := range t.Bindings {
		b := &t.Bindings[i]
		ref := b.Namespace + "/" + b.ServiceAccount
		audience := cmp.Or(b.Audience, t.Audience)
		b.Providers = []roles.Provider{{ARN: t.ProviderARN, HostPath: t.Issuer.HostPath}}
		for _, p := range b.TrustProviders {
			rp, err := roles.ProviderFor(t.Partition, t.AccountID, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("binding %q: %w", ref, err))
				continue
			}
			if err := checkTrustProvider(ctx, t, a, rp, p, audience); err != nil {
				errs = append(errs, fmt.Errorf("binding %q: %w", ref, err))
				continue
			}
			b.Providers = append(b.Providers, rp)
		}
		if pb := b.PermissionsBoundary; pb != "" {
			if err := checkBoundary(ctx, t, a, pb); err != nil {
				errs = append(errs, fmt.Errorf("binding %q: %w", ref, err))
			}
		}
		doc := roles.TrustPolicyFor(b.Providers, b.Namespace, b.ServiceAccount, audience)
		if b.Binding.RoleARN != "" {
			merged, err := existingTrust(ctx, t, a, b.Binding, audience)
			if err != nil {
				errs = append(errs, fmt.Errorf("binding %q: %w", ref, err))
				continue
			}
			doc = merged
		}
		if err := quota.check(ctx, ref, b.RoleName, doc, len(b.Providers)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return nil
}

// checkTrustProvider checks another cluster's provider: in this account (STS looks the provider up in the role's
// account), not this cluster's own (always trusted), existing, and listing the audience as a client ID (else STS
// refuses the tokens with InvalidIdentityToken).
func checkTrustProvider(ctx context.Context, t *Target, a AWS, p roles.Provider, ref, audience string) error {
	parsed, _ := arn.Parse(p.ARN)
	switch {
	case parsed.Partition != t.Partition:
		return fmt.Errorf("trust provider %q is in partition %q, but the region is in %q", ref, parsed.Partition, t.Partition)
	case parsed.AccountID != t.AccountID:
		return fmt.Errorf("trust provider %q is in account %s, but the role is in %s: a role trusts only OIDC providers of its own account; create the other cluster's provider in %s (irsa apply with this account's credentials)", ref, parsed.AccountID, t.AccountID, t.AccountID)
	case p.ARN == t.ProviderARN:
		return fmt.Errorf("trust provider %q is this cluster's own provider, which the role always trusts: leave it out", ref)
	}
	clientIDs, found, err := a.OIDCProviderClientIDs(ctx, p.ARN)
	switch {
	case err != nil:
		return fmt.Errorf("look up trust provider %q: %w", ref, err)
	case !found:
		return fmt.Errorf("trust provider %s does not exist (iam:GetOpenIDConnectProvider answered NoSuchEntity): run irsa apply for that cluster first, or check the ARN or issuer URL", p.ARN)
	case !slices.Contains(clientIDs, audience):
		return fmt.Errorf("trust provider %s does not list the audience %q as a client ID (it lists %s), so STS would refuse its tokens: give that cluster the same audience", p.ARN, audience, strings.Join(clientIDs, ", "))
	}
	return nil
}

// checkBoundary checks that a permissions boundary policy exists in the region's partition.
func checkBoundary(ctx context.Context, t *Target, a AWS, policyARN string) error {
	if parsed, err := arn.Parse(policyARN); err == nil && parsed.Partition != t.Partition {
		return fmt.Errorf("permissions boundary %q is in partition %q, but the region is in %q", policyARN, parsed.Partition, t.Partition)
	}
	ok, err := a.PolicyExists(ctx, policyARN)
	if err != nil {
		return fmt.Errorf("look up permissions boundary %q: %w", policyARN, err)
	}
	if !ok {
		return fmt.Errorf("permissions boundary %q does not exist (iam:GetPolicy answered NoSuchEntity): check the name and the account", policyARN)
	}
	return nil
}

// existingTrust reads the role a binding with a role ARN binds and returns its trust policy with irsa's statements
// merged in, the document apply would write.
func existingTrust(ctx context.Context, t *Target, a AWS, b config.Binding, audience string) (string, error) {
	parsed, _ := arn.Parse(b.RoleARN)
	if path, _ := config.SplitRoleARN(b.RoleARN); path == roles.Path(t.ClusterName) {
		return "", fmt.Errorf("role ARN %q is one of the roles irsa makes for this cluster: bind with --role-name instead", b.RoleARN)
	}
	if parsed.AccountID != t.AccountID || parsed.Partition != t.Partition {
		return "", fmt.Errorf("role ARN %q is not in account %s (partition %s), the account of these credentials: irsa can bind only a role it can update", b.RoleARN, t.AccountID, t.Partition)
	}
	gotARN, doc, found, err := a.Role(ctx, b.RoleName)
	switch {
	case err != nil:
		return "", fmt.Errorf("read IAM role %q: %w", b.RoleName, err)
	case !found:
		return "", fmt.Errorf("role ARN %q: no such role (iam:GetRole answered NoSuchEntity): create it first, or leave out the role ARN and irsa makes one (to unbind after the role was deleted, leave out --role-arn: only the annotations are left to remove)", b.RoleARN)
	case gotARN != b.RoleARN:
		return "", fmt.Errorf("role ARN %q: the role %q is %s: fix the path in the ARN", b.RoleARN, b.RoleName, gotARN)
	}
	providers := []roles.Provider{{ARN: t.ProviderARN, HostPath: t.Issuer.HostPath}}
	if roles.OtherClusterRole(b.RoleARN, t.ClusterName) {
		if len(b.TrustProviders) > 0 {
			return "", fmt.Errorf("role ARN %q is another irsa cluster's role, which that cluster manages: list the providers in its binding there, not here", b.RoleARN)
		}
		return doc, roles.CheckOtherClusterRole(b.RoleARN, doc, providers[0], b.Namespace, b.ServiceAccount, audience)
	}
	for _, p := range b.TrustProviders {
		rp, err := roles.ProviderFor(t.Partition, t.AccountID, p)
		if err != nil {
			return "", err
		}
		providers = append(providers, rp)
	}
	merged, _, err := roles.MergeBindingTrust(t.ClusterName, doc, providers, b.Namespace, b.ServiceAccount, audience)
	if err != nil {
		return "", fmt.Errorf("role ARN %q: %w", b.RoleARN, err)
	}
	return merged, nil
}

// quotaLookup asks for the account's trust policy length quota at most once, and only when a policy is longer than
// IAM's default (the quota is never below it).
type quotaLookup struct {
	a      AWS
	asked  bool
	limit  int
	source string
}

func (q *quotaLookup) check(ctx context.Context, ref, role, doc string, providers int) error {
	size := roles.PolicySize(doc)
	if size <= roles.DefaultTrustPolicyLength {
		return nil
	}
	if size > roles.MaxTrustPolicyLength {
		return fmt.Errorf("binding %q: the trust policy of IAM role %q is %d characters (without white space, as IAM counts), over the %d that IAM allows even with a raised quota (%d trusted providers): trust fewer clusters with this role (split them across bindings with their own roles)", ref, role, size, roles.MaxTrustPolicyLength, providers)
	}
	if !q.asked {
		q.limit, q.source = q.a.TrustPolicyLengthQuota(ctx)
		q.asked = true
	}
	if size > q.limit {
		return fmt.Errorf("binding %q: the trust policy of IAM role %q is %d characters (without white space, as IAM counts), over this account's limit of %d (IAM quota \"Role trust policy length\", %s; %s): request an increase of quota %s (service iam, up to %d) in Service Quotas in us-east-1, or trust fewer clusters with this role (%d providers now; split them across bindings with their own roles)", ref, role, size, q.limit, roles.TrustPolicyLengthQuotaCode, q.source, roles.TrustPolicyLengthQuotaCode, roles.MaxTrustPolicyLength, providers)
	}
	return nil
}

// OIDCProviderClientIDs implements AWS.
func (r IAMReader) OIDCProviderClientIDs(ctx context.Context, providerARN string) ([]string, bool, error) {
	out, err := r.Clients.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(providerARN)})
	switch {
	case awsclient.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return out.ClientIDList, true, nil
}

// Role implements AWS.
func (r IAMReader) Role(ctx context.Context, name string) (roleARN, trustPolicy string, found bool, err error) {
	out, err := r.Clients.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	switch {
	case awsclient.IsNotFound(err):
		return "", "", false, nil
	case err != nil:
		return "", "", false, err
	}
	doc, _ := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	return aws.ToString(out.Role.Arn), doc, true, nil
}

// quotaRegion is where Service Quotas holds IAM's (global) quotas for a partition.
func quotaRegion(partition string) string {
	switch partition {
	case "aws-cn":
		return "cn-north-1"
	case "aws-us-gov":
		return "us-gov-west-1"
	}
	return "us-east-1"
}

// TrustPolicyLengthQuota implements AWS: the account's "Role trust policy length" from Service Quotas
// (GetServiceQuota iam/L-C07B4B0D). Without an applied value (NoSuchResourceException: the account has the default)
// or without an answer (no permission, no endpoint), it is IAM's default, and source says which.
func (r IAMReader) TrustPolicyLengthQuota(ctx context.Context) (limit int, source string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sq := servicequotas.NewFromConfig(r.Clients.Config, func(o *servicequotas.Options) {
		o.Region = quotaRegion(awsclient.Partition(r.Clients.Config.Region))
		o.RetryMaxAttempts = 2
	})
	out, err := sq.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("iam"), QuotaCode: aws.String(roles.TrustPolicyLengthQuotaCode)})
	switch {
	case err == nil && out.Quota != nil && aws.ToFloat64(out.Quota.Value) >= roles.DefaultTrustPolicyLength:
		return int(aws.ToFloat64(out.Quota.Value)), "this account's value, read from Service Quotas"
	case awsclient.ErrorCode(err) == "NoSuchResourceException":
		return roles.DefaultTrustPolicyLength, "IAM's default: Service Quotas holds no other value for this account"
	case err != nil:
		return roles.DefaultTrustPolicyLength, fmt.Sprintf("IAM's default, assumed because Service Quotas did not answer: %v", err)
	}
	return roles.DefaultTrustPolicyLength, "IAM's default: Service Quotas answered without a value"
}
