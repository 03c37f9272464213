package roles

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// A binding with a RoleARN binds a role irsa does not own (eksctl's --attach-role-arn). irsa adds its own trust
// statements to it, one per provider, each named by a Sid that starts with BindingSid, and unbind removes exactly
// those; the role itself, its other statements, its policies, boundary and tags are never changed or deleted.

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
