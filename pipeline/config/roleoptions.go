package config

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// The options of a binding that shape its IAM role beyond the policies: other clusters' providers in the trust
// policy, a permissions boundary, role tags, and an existing role to bind instead of one irsa makes. These are the
// options eksctl's create iamserviceaccount offers (--permissions-boundary, --tags, --attach-role-arn).

var (
	// tagRE is IAM's Tag pattern for keys (one or more) and values (zero or more) (IAM API reference, Tag).
	tagRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	// rolePathRE is IAM's role path: "/" or "/SEGMENTS/" of printable ASCII (IAM API reference, CreateRole Path).
	rolePathRE = regexp.MustCompile(`^/([\x21-\x7E]*/)?$`)
)

// Tag limits of IAM (IAM API reference, Tag; IAM User Guide, "Tagging IAM resources": at most 50 tags per role, keys
// unique regardless of case, the aws: prefix reserved).
const (
	MaxTagKeyLength   = 128
	MaxTagValueLength = 256
	MaxRoleTags       = 50
	// OwnershipTagCount is how many tags irsa itself puts on a role it makes (cluster, managed-by, service account):
	// they count against MaxRoleTags.
	OwnershipTagCount = 3
	// ReservedTagPrefix is the prefix of irsa's own tag keys; a binding's tags cannot use it.
	ReservedTagPrefix = "irsa.irsa-anywhere.io/"
)

// ValidateTags checks a binding's role tags against IAM's tag rules: keys of 1-128 and values of 0-256 characters from
// IAM's tag character set, no aws: prefix (reserved by AWS), no key that differs from another only in case (IAM
// treats them as one), none of irsa's own keys, and at most MaxRoleTags-OwnershipTagCount of them.
func ValidateTags(tags map[string]string) error {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	if max := MaxRoleTags - OwnershipTagCount; len(tags) > max {
		errs = append(errs, fmt.Errorf("%d tags: IAM allows %d per role and irsa's ownership tags take %d, so at most %d", len(tags), MaxRoleTags, OwnershipTagCount, max))
	}
	seen := map[string]string{}
	for _, k := range keys {
		v := tags[k]
		lower := strings.ToLower(k)
		switch {
		case k == "" || utf8.RuneCountInString(k) > MaxTagKeyLength:
			errs = append(errs, fmt.Errorf("tag key %q: must be 1-%d characters (IAM tag rules)", k, MaxTagKeyLength))
		case !tagRE.MatchString(k):
			errs = append(errs, fmt.Errorf("tag key %q: may use only letters, digits, spaces and _ . : / = + - @ (IAM tag rules)", k))
		case strings.HasPrefix(lower, "aws:"):
			errs = append(errs, fmt.Errorf("tag key %q: the aws: prefix is reserved for AWS", k))
		case strings.HasPrefix(lower, ReservedTagPrefix) || lower == strings.ToLower(ManagedByTagKey):
			errs = append(errs, fmt.Errorf("tag key %q: irsa sets this key itself to mark the roles it owns", k))
		case seen[lower] != "":
			errs = append(errs, fmt.Errorf("tag keys %q and %q differ only in case: IAM treats them as one key", seen[lower], k))
		}
		seen[lower] = k
		switch {
		case utf8.RuneCountInString(v) > MaxTagValueLength:
			errs = append(errs, fmt.Errorf("tag %q: value of %d characters, IAM allows at most %d", k, utf8.RuneCountInString(v), MaxTagValueLength))
		case !tagRE.MatchString(v):
			errs = append(errs, fmt.Errorf("tag %q: value %q may use only letters, digits, spaces and _ . : / = + - @ (IAM tag rules)", k, v))
		}
	}
	return errors.Join(errs...)
}

// ParseTag splits a --tag KEY=VALUE (the value may be empty, and may contain '=').
func ParseTag(kv string) (key, value string, err error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return "", "", fmt.Errorf("--tag %q: must be KEY=VALUE", kv)
	}
	return k, v, nil
}

// ValidateTrustProvider checks one entry of a binding's trustProviders: an IAM OIDC provider ARN,
// arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST[/PATH], or an issuer URL, https://HOST[/PATH]. Both name the issuer,
// which obeys ValidateIssuerURL's rules.
func ValidateTrustProvider(ref string) error {
	bad := fmt.Errorf("trust provider %q: must be an IAM OIDC provider ARN (arn:aws:iam::123456789012:oidc-provider/HOST/PATH) or an issuer URL (https://HOST/PATH)", ref)
	issuer := ref
	if strings.HasPrefix(ref, "arn:") {
		a, err := arn.Parse(ref)
		hostPath, ok := strings.CutPrefix(a.Resource, "oidc-provider/")
		if err != nil || !strings.HasPrefix(a.Partition, "aws") || a.Service != "iam" || a.Region != "" || !accountIDRE.MatchString(a.AccountID) || !ok || hostPath == "" {
			return bad
		}
		issuer = "https://" + hostPath
	} else if !strings.HasPrefix(ref, "https://") {
		return bad
	}
	if err := ValidateIssuerURL(issuer); err != nil {
		return fmt.Errorf("trust provider %q: %w", ref, err)
	}
	return nil
}

// SplitRoleARN returns the path and name of a role ARN, arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME; path is "/" when
// the ARN has none.
func SplitRoleARN(roleARN string) (path, name string) {
	a, err := arn.Parse(roleARN)
	if err != nil {
		return "", ""
	}
	rest, ok := strings.CutPrefix(a.Resource, "role/")
	if !ok {
		return "", ""
	}
	i := strings.LastIndex(rest, "/")
	return "/" + rest[:i+1], rest[i+1:]
}

// IrsaRolePathPrefix is the start of the IAM path of every role irsa makes (roles.Path): /irsa/CLUSTER/.
const IrsaRolePathPrefix = "/irsa/"

// ValidateRoleARN checks the ARN of an existing role to bind: arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME with IAM's
// name and path rules. (That it is not one of this cluster's own roles is checked with the target, which knows the
// cluster.)
func ValidateRoleARN(roleARN string) error {
	a, err := arn.Parse(roleARN)
	path, name := SplitRoleARN(roleARN)
	if err != nil || !strings.HasPrefix(a.Partition, "aws") || a.Service != "iam" || a.Region != "" || !accountIDRE.MatchString(a.AccountID) ||
		name == "" || !rolePathRE.MatchString(path) || len(path) > 512 {
		return fmt.Errorf("role ARN %q: must look like arn:aws:iam::123456789012:role/NAME or arn:aws:iam::123456789012:role/PATH/NAME", roleARN)
	}
	if err := ValidateRoleName(name); err != nil {
		return fmt.Errorf("role ARN %q: %w", roleARN, err)
	}
	return nil
}

// validateRoleOptions checks the trust providers, boundary, tags and role ARN of b, and that a binding of an
// existing role asks for nothing irsa would have to change on that role besides its own trust statements.
func (b Binding) validateRoleOptions() error {
	var errs []error
	seen := map[string]bool{}
	for _, p := range b.TrustProviders {
		if err := ValidateTrustProvider(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[p] {
			errs = append(errs, fmt.Errorf("trust provider %q: listed twice", p))
		}
		seen[p] = true
	}
	if b.PermissionsBoundary != "" {
		if err := ValidatePolicyARN(b.PermissionsBoundary); err != nil {
			errs = append(errs, fmt.Errorf("permissions boundary: %w", err))
		}
	}
	if err := ValidateTags(b.Tags); err != nil {
		errs = append(errs, err)
	}
	if b.RoleARN != "" {
		if err := ValidateRoleARN(b.RoleARN); err != nil {
			errs = append(errs, err)
		} else if _, name := SplitRoleARN(b.RoleARN); b.RoleName != "" && b.RoleName != name {
			errs = append(errs, fmt.Errorf("role name %q and role ARN %q: give one of them", b.RoleName, b.RoleARN))
		}
		var managed []string
		if len(b.PolicyARNs) > 0 {
			managed = append(managed, "policyARNs")
		}
		if b.InlinePolicy != "" {
			managed = append(managed, "inlinePolicy")
		}
		if b.PermissionsBoundary != "" {
			managed = append(managed, "permissionsBoundary")
		}
		if len(b.Tags) > 0 {
			managed = append(managed, "tags")
		}
		if len(managed) > 0 {
			errs = append(errs, fmt.Errorf("role ARN %q is a role irsa does not own: irsa changes only its own trust statements on it, so %s cannot be set; give the role its policies yourself", b.RoleARN, strings.Join(managed, ", ")))
		}
	}
	return errors.Join(errs...)
}
