package roles

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
	"github.com/irsa-anywhere/irsa/pipeline/trust"
)

// A binding with a RoleARN binds a role irsa does not own (eksctl's --attach-role-arn). irsa adds its own trust
// statements to it, one per provider, each named by a Sid that starts with BindingSid, and unbind removes exactly
// those; the role itself, its other statements, its policies, boundary and tags are never changed or deleted.

// A role under another irsa cluster's IAM path (/irsa/OTHER/) is managed whole by that cluster, whose binding lists
// this cluster's provider in its trustProviders (one role, several clusters). Bound here with its ARN, it is only
// checked, never changed: its trust policy must already admit the ServiceAccount through this cluster's provider, and
// irsa sets the annotation.

// OtherClusterRole says whether roleARN is a role irsa made for a cluster other than cluster.
func OtherClusterRole(roleARN, cluster string) bool {
	path, _ := config.SplitRoleARN(roleARN)
	return strings.HasPrefix(path, config.IrsaRolePathPrefix) && path != Path(cluster)
}

// Admits evaluates doc, a trust policy, the way STS does (pipeline/trust) for a token of NAMESPACE/NAME with audience
// through provider p; reason says why not.
func Admits(doc string, p Provider, namespace, serviceAccount, audience string) (bool, string) {
	d, err := trust.EvaluateTrustPolicy(doc, trust.Request{Principal: p.ARN, Action: trust.ActionAssumeRoleWithWebIdentity, Context: map[string][]string{
		p.HostPath + ":sub": {Subject(namespace, serviceAccount)}, p.HostPath + ":aud": {audience},
	}})
	if err != nil {
		return false, err.Error()
	}
	return d.Allowed, d.Reason
}

// CheckOtherClusterRole returns an error naming the way out when doc, the trust policy of another irsa cluster's role,
// does not admit the ServiceAccount's tokens through own, this cluster's provider.
func CheckOtherClusterRole(roleARN, doc string, own Provider, namespace, serviceAccount, audience string) error {
	if ok, reason := Admits(doc, own, namespace, serviceAccount, audience); !ok {
		path, _ := config.SplitRoleARN(roleARN)
		other := strings.TrimSuffix(strings.TrimPrefix(path, config.IrsaRolePathPrefix), "/")
		return fmt.Errorf("role %s is irsa cluster %q's, and its trust policy does not admit %s's tokens from this cluster's provider (%s): in cluster %q, add %s to the binding's trustProviders and run irsa apply there", roleARN, other, Subject(namespace, serviceAccount), reason, other, own.ARN)
	}
	return nil
}

// ErrNoSuchRole is wrapped by errors about a --role-arn role that does not exist.
var ErrNoSuchRole = errors.New("IAM role does not exist")

// ExistingTrust reads the trust policy of the existing role b binds and checks that the role is the one b.RoleARN
// names (the same name under another path is another ARN).
func (m *Manager) ExistingTrust(ctx context.Context, b config.Binding) (string, error) {
	out, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &b.RoleName})
	if awsclient.IsNotFound(err) {
		return "", fmt.Errorf("IAM role %q (role ARN %s): create it first, or leave out the role ARN and irsa makes a role: %w", b.RoleName, b.RoleARN, ErrNoSuchRole)
	}
	if err != nil {
		return "", fmt.Errorf("read IAM role %q: %w", b.RoleName, err)
	}
	if got := aws.ToString(out.Role.Arn); got != b.RoleARN {
		return "", fmt.Errorf("IAM role %q has ARN %s, not %s: fix the role ARN", b.RoleName, got, b.RoleARN)
	}
	doc, _ := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	return doc, nil
}

// WantedTrust is the trust policy the existing role b binds should have: its current one with irsa's statements for b
// in place of any it had.
func (m *Manager) WantedTrust(ctx context.Context, b config.Binding, current string) (string, bool, error) {
	providers, err := m.Providers(ctx, b)
	if err != nil {
		return "", false, err
	}
	merged, changed, err := MergeBindingTrust(m.ClusterName, current, providers, b.Namespace, b.ServiceAccount, m.audience(b))
	if err != nil {
		return "", false, fmt.Errorf("IAM role %q: %w", b.RoleName, err)
	}
	return merged, changed, nil
}

// MergeBindingTrust is current, the trust policy of a role irsa does not own, with the statements of the binding
// NAMESPACE/NAME of cluster (StatementsFor) in place of those it had.
func MergeBindingTrust(cluster, current string, providers []Provider, namespace, serviceAccount, audience string) (string, bool, error) {
	want := StatementsFor(cluster, providers, namespace, serviceAccount, audience)
	return MergeTrust(current, BindingSid(cluster, namespace, serviceAccount), want)
}

func (m *Manager) diffExisting(ctx context.Context, b config.Binding) (*rolePlan, error) {
	current, err := m.ExistingTrust(ctx, b)
	if err != nil {
		return nil, err
	}
	if OtherClusterRole(b.RoleARN, m.ClusterName) {
		providers, err := m.Providers(ctx, b)
		if err != nil {
			return nil, err
		}
		if err := CheckOtherClusterRole(b.RoleARN, current, providers[0], b.Namespace, b.ServiceAccount, m.audience(b)); err != nil {
			return nil, err
		}
		return &rolePlan{exists: true, trust: current}, nil
	}
	merged, changed, err := m.WantedTrust(ctx, b, current)
	if err != nil {
		return nil, err
	}
	p := &rolePlan{exists: true, trust: merged}
	if changed {
		role := b.RoleName
		p.add(stage.Change{Action: stage.Update, Kind: "iam-role", Name: role, Detail: "irsa's trust statements for " + Subject(b.Namespace, b.ServiceAccount)}, func(ctx context.Context) error {
			if _, err := m.IAM.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &role, PolicyDocument: &merged}); err != nil {
				return fmt.Errorf("update trust policy of IAM role %q: %w", role, err)
			}
			return nil
		})
	}
	return p, nil
}

// removeExisting takes irsa's statements for b off the existing role b binds; a missing role or statement is already
// removed. It refuses to leave the role with no statement at all, which IAM would reject.
func (m *Manager) removeExisting(ctx context.Context, b config.Binding) ([]stage.Change, error) {
	if OtherClusterRole(b.RoleARN, m.ClusterName) {
		return nil, nil // that cluster's; irsa added nothing to it
	}
	role := b.RoleName
	out, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &role})
	if awsclient.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IAM role %q: %w", role, err)
	}
	doc, _ := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	merged, changed, err := MergeTrust(doc, BindingSid(m.ClusterName, b.Namespace, b.ServiceAccount), nil)
	if err != nil {
		return nil, fmt.Errorf("IAM role %q: %w", role, err)
	}
	if !changed {
		return nil, nil
	}
	if t, _ := parseTrust(merged); t == nil || len(t.statements) == 0 {
		return nil, fmt.Errorf("IAM role %q: removing irsa's trust statements for %s would leave no statement, and IAM refuses an empty trust policy: add a statement of your own to the role, or delete the role yourself", role, Subject(b.Namespace, b.ServiceAccount))
	}
	if _, err := m.IAM.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &role, PolicyDocument: &merged}); err != nil {
		return nil, fmt.Errorf("update trust policy of IAM role %q: %w", role, err)
	}
	return []stage.Change{{Action: stage.Delete, Kind: "iam-role-trust-statement", Name: role, Detail: Subject(b.Namespace, b.ServiceAccount)}}, nil
}
