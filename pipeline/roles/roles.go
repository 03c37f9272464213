// Package roles is the AWS half of the bindings stage: one IAM role per bound ServiceAccount, whose trust policy admits
// exactly that ServiceAccount's tokens with the audience, through the cluster's OIDC provider.
package roles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// InlinePolicyName names the one inline policy irsa manages on a role.
const InlinePolicyName = "irsa-inline"

// ServiceAccountTagKey tags a role with the NAMESPACE/NAME it is bound to.
const ServiceAccountTagKey = "irsa.irsa-anywhere.io/service-account"

// Path is the IAM path of the cluster's roles, so teardown lists them without reading every role in the account.
func Path(cluster string) string { return "/irsa/" + cluster + "/" }

// Subject is the sub claim of a ServiceAccount's tokens.
func Subject(namespace, serviceAccount string) string {
	return "system:serviceaccount:" + namespace + ":" + serviceAccount
}

// TrustPolicy admits AssumeRoleWithWebIdentity from the provider for tokens whose sub is the ServiceAccount and whose
// aud is the audience. Both conditions: without the aud check any audience the cluster issues would do.
func TrustPolicy(providerARN, issuerURL, namespace, serviceAccount, audience string) string {
	return TrustPolicyFor([]Provider{{ARN: providerARN, HostPath: documents.HostPath(issuerURL)}}, namespace, serviceAccount, audience)
}

// Manager creates, updates and deletes the roles of one cluster.
type Manager struct {
	IAM         *iam.Client
	ClusterName string
	IssuerURL   string
	Audience    string
	// ProviderARN returns the ARN of the cluster's OIDC provider.
	ProviderARN func(ctx context.Context) (string, error)
	// AccountID returns the account, for role ARNs.
	AccountID func(ctx context.Context) (string, error)
	Partition string
}

// RoleARN is the ARN the role for b has (or will have).
func (m *Manager) RoleARN(ctx context.Context, b config.Binding) (string, error) {
	if b.RoleARN != "" {
		return b.RoleARN, nil
	}
	account, err := m.AccountID(ctx)
	if err != nil {
		return "", err
	}
	return ARN(m.Partition, account, m.ClusterName, b.RoleName), nil
}

// ARN is the ARN of the role roleName that irsa makes for cluster: arn:PARTITION:iam::ACCOUNT:role/irsa/CLUSTER/NAME.
func ARN(partition, account, cluster, roleName string) string {
	return fmt.Sprintf("arn:%s:iam::%s:role%s%s", partition, account, Path(cluster), roleName)
}

// MaxSessionDuration is the maximum session, in seconds, of every irsa role: IAM's default. A role with another value
// has drifted.
const MaxSessionDuration = 3600

// step is one change to a role and the call that makes it.
type step struct {
	change stage.Change
	do     func(ctx context.Context) error
}

type rolePlan struct {
	exists bool
	trust  string
	steps  []step
}

func (p *rolePlan) add(c stage.Change, do func(ctx context.Context) error) {
	p.steps = append(p.steps, step{c, do})
}

func (p *rolePlan) changes() []stage.Change {
	var out []stage.Change
	for _, s := range p.steps {
		out = append(out, s.change)
	}
	return out
}

// ownershipTags are the tags irsa puts on every role it makes (config.OwnershipTagCount of them), before the binding's
// own tags.
func (m *Manager) ownershipTags(b config.Binding) []iamtypes.Tag {
	return []iamtypes.Tag{
		{Key: aws.String(config.OwnerTagKey), Value: aws.String(m.ClusterName)},
		{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
		{Key: aws.String(ServiceAccountTagKey), Value: aws.String(b.Namespace + "/" + b.ServiceAccount)},
	}
}

func (m *Manager) tags(b config.Binding) []iamtypes.Tag {
	out := m.ownershipTags(b)
	for _, k := range sortedKeys(b.Tags) {
		out = append(out, iamtypes.Tag{Key: aws.String(k), Value: aws.String(b.Tags[k])})
	}
	return out
}

// Providers are the IAM OIDC providers b's role trusts: the cluster's own, then b's trustProviders in order.
func (m *Manager) Providers(ctx context.Context, b config.Binding) ([]Provider, error) {
	own, err := m.ProviderARN(ctx)
	if err != nil {
		return nil, err
	}
	out := []Provider{{ARN: own, HostPath: documents.HostPath(m.IssuerURL)}}
	if len(b.TrustProviders) == 0 {
		return out, nil
	}
	account, err := m.AccountID(ctx)
	if err != nil {
		return nil, err
	}
	for _, ref := range b.TrustProviders {
		p, err := ProviderFor(m.Partition, account, ref)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// audience is the token audience b's role trusts.
func (m *Manager) audience(b config.Binding) string {
	if b.Audience != "" {
		return b.Audience
	}
	return m.Audience
}

// TrustPolicy is the trust policy of the role irsa makes for b.
func (m *Manager) TrustPolicy(ctx context.Context, b config.Binding) (string, error) {
	providers, err := m.Providers(ctx, b)
	if err != nil {
		return "", err
	}
	return TrustPolicyFor(providers, b.Namespace, b.ServiceAccount, m.audience(b)), nil
}

func (m *Manager) diff(ctx context.Context, b config.Binding) (*rolePlan, error) {
	if b.RoleARN != "" {
		return m.diffExisting(ctx, b)
	}
	trust, err := m.TrustPolicy(ctx, b)
	if err != nil {
		return nil, err
	}
	role := b.RoleName
	p := &rolePlan{trust: trust}
	attach := func(a string) {
		p.add(stage.Change{Action: stage.Create, Kind: "iam-role-policy-attachment", Name: role, Detail: a}, func(ctx context.Context) error {
			if _, err := m.IAM.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: &role, PolicyArn: aws.String(a)}); err != nil {
				return fmt.Errorf("attach policy %q to IAM role %q: %w", a, role, err)
			}
			return nil
		})
	}
	putInline := func(action stage.Action) {
		p.add(stage.Change{Action: action, Kind: "iam-role-inline-policy", Name: role + "/" + InlinePolicyName}, func(ctx context.Context) error {
			if _, err := m.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &role, PolicyName: aws.String(InlinePolicyName), PolicyDocument: aws.String(b.InlinePolicy)}); err != nil {
				return fmt.Errorf("put inline policy on IAM role %q: %w", role, err)
			}
			return nil
		})
	}
	out, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &role})
	if awsclient.IsNotFound(err) {
		p.add(stage.Change{Action: stage.Create, Kind: "iam-role", Name: role, Detail: "trusts " + Subject(b.Namespace, b.ServiceAccount)}, func(ctx context.Context) error {
			return m.create(ctx, b, p)
		})
		for _, a := range sorted(b.PolicyARNs) {
			attach(a)
		}
		if b.InlinePolicy != "" {
			putInline(stage.Create)
		}
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IAM role %q: %w", role, err)
	}
	p.exists = true
	if err := m.checkOwner(out.Role, b); err != nil {
		return nil, err
	}
	have, _ := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	if !documents.SameJSON(have, p.trust) {
		p.add(stage.Change{Action: stage.Update, Kind: "iam-role", Name: role, Detail: "trust policy"}, func(ctx context.Context) error {
			if _, err := m.IAM.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &role, PolicyDocument: &p.trust}); err != nil {
				return fmt.Errorf("update trust policy of IAM role %q: %w", role, err)
			}
			return nil
		})
	}
	// The permissions boundary is the binding's, or none; another maximum session duration is drift.
	m.diffBoundary(p, role, out.Role, b.PermissionsBoundary)
	m.diffTags(p, role, out.Role.Tags, b.Tags)
	if d := aws.ToInt32(out.Role.MaxSessionDuration); d != 0 && d != MaxSessionDuration {
		p.add(stage.Change{Action: stage.Update, Kind: "iam-role", Name: role, Detail: fmt.Sprintf("max session duration %ds -> %ds", d, MaxSessionDuration)}, func(ctx context.Context) error {
			if _, err := m.IAM.UpdateRole(ctx, &iam.UpdateRoleInput{RoleName: &role, MaxSessionDuration: aws.Int32(MaxSessionDuration)}); err != nil {
				return fmt.Errorf("set max session duration of IAM role %q: %w", role, err)
			}
			return nil
		})
	}
	attached, err := m.attached(ctx, role)
	if err != nil {
		return nil, err
	}
	for _, a := range sorted(b.PolicyARNs) {
		if !slices.Contains(attached, a) {
			attach(a)
		}
	}
	for _, a := range attached {
		if !slices.Contains(b.PolicyARNs, a) {
			p.add(stage.Change{Action: stage.Delete, Kind: "iam-role-policy-attachment", Name: role, Detail: a}, func(ctx context.Context) error {
				if _, err := m.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: &role, PolicyArn: aws.String(a)}); err != nil && !awsclient.IsNotFound(err) {
					return fmt.Errorf("detach policy %q from IAM role %q: %w", a, role, err)
				}
				return nil
			})
		}
	}
	inline, err := m.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: &role})
	if err != nil {
		return nil, fmt.Errorf("list inline policies of IAM role %q: %w", role, err)
	}
	hasInline := slices.Contains(inline.PolicyNames, InlinePolicyName)
	switch {
	case b.InlinePolicy != "" && !hasInline:
		putInline(stage.Create)
	case b.InlinePolicy != "":
		cur, err := m.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: &role, PolicyName: aws.String(InlinePolicyName)})
		if err != nil {
			return nil, fmt.Errorf("read inline policy of IAM role %q: %w", role, err)
		}
		doc, _ := url.QueryUnescape(aws.ToString(cur.PolicyDocument))
		if !documents.SameJSON(doc, b.InlinePolicy) {
			putInline(stage.Update)
		}
	}
	// Every inline policy but irsa's own (when wanted) is drift: the role grants what the binding says, nothing more.
	for _, n := range sorted(inline.PolicyNames) {
		if n == InlinePolicyName && b.InlinePolicy != "" {
			continue
		}
		p.add(stage.Change{Action: stage.Delete, Kind: "iam-role-inline-policy", Name: role + "/" + n}, func(ctx context.Context) error {
			if _, err := m.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &role, PolicyName: aws.String(n)}); err != nil && !awsclient.IsNotFound(err) {
				return fmt.Errorf("delete inline policy %q of IAM role %q: %w", n, role, err)
			}
			return nil
		})
	}
	return p, nil
}

// create makes the role. A create that meets the role already there (the SDK retried a create whose response was lost,
// or another run made it) adopts it only if it is this binding's (checkOwner: the tags and path the create sets), and
// brings it to what is wanted.
func (m *Manager) create(ctx context.Context, b config.Binding, p *rolePlan) error {
	role := b.RoleName
	_, err := m.IAM.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: &role, Path: aws.String(Path(m.ClusterName)), AssumeRolePolicyDocument: &p.trust,
		Description: aws.String(fmt.Sprintf("IRSA role of %s/%s in cluster %s, managed by irsa", b.Namespace, b.ServiceAccount, m.ClusterName)),
		Tags:        m.tags(b), MaxSessionDuration: aws.Int32(MaxSessionDuration),
		PermissionsBoundary: nonEmpty(b.PermissionsBoundary),
	})
	if awsclient.ErrorCode(err) != "EntityAlreadyExists" {
		if err != nil {
			return fmt.Errorf("create IAM role %q: %w", role, err)
		}
		return nil
	}
	now, err := m.diff(ctx, b)
	if err != nil {
		return fmt.Errorf("create IAM role %q: it appeared meanwhile: %w", role, err)
	}
	for _, s := range now.steps {
		if err := s.do(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) attached(ctx context.Context, role string) ([]string, error) {
	var arns []string
	p := iam.NewListAttachedRolePoliciesPaginator(m.IAM, &iam.ListAttachedRolePoliciesInput{RoleName: &role})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list policies attached to IAM role %q: %w", role, err)
		}
		for _, a := range page.AttachedPolicies {
			arns = append(arns, aws.ToString(a.PolicyArn))
		}
	}
	return arns, nil
}

// Plan lists what Ensure would change for b.
func (m *Manager) Plan(ctx context.Context, b config.Binding) ([]stage.Change, error) {
	p, err := m.diff(ctx, b)
	if err != nil {
		return nil, err
	}
	return p.changes(), nil
}

// Ensure creates or updates the role for b. When a change fails, it returns those already made with the error.
func (m *Manager) Ensure(ctx context.Context, b config.Binding) ([]stage.Change, error) {
	p, err := m.diff(ctx, b)
	if err != nil {
		return nil, err
	}
	changes := p.changes()
	for i, s := range p.steps {
		if err := s.do(ctx); err != nil {
			return changes[:i], err
		}
	}
	return changes, nil
}

// ErrNotOwned is wrapped by errors about a role that exists but is not irsa's for this binding: another cluster's,
// nobody's, or the role of another ServiceAccount. Such a role is never rewritten or deleted.
var ErrNotOwned = errors.New("IAM role not owned by this binding")

// checkOwner accepts role only when apply may manage it for b: tagged for this cluster, under the cluster's IAM path and
// tagged with b's NAMESPACE/NAME. The last check is what stops one ServiceAccount's bind, unbind or teardown (or a
// --role-name pointing at another binding's role) from rewriting or deleting a role that serves another.
func (m *Manager) checkOwner(role *iamtypes.Role, b config.Binding) error {
	name := aws.ToString(role.RoleName)
	if !ownedBy(role.Tags, m.ClusterName) {
		return fmt.Errorf("IAM role %q exists but is not owned by irsa cluster %q (no tag %s=%s): pass --role-name with another name: %w", name, m.ClusterName, config.OwnerTagKey, m.ClusterName, ErrNotOwned)
	}
	if aws.ToString(role.Path) != Path(m.ClusterName) {
		return fmt.Errorf("IAM role %q has path %q, want %q: IAM paths are immutable; delete the role or pick another --role-name: %w", name, aws.ToString(role.Path), Path(m.ClusterName), ErrNotOwned)
	}
	want := b.Namespace + "/" + b.ServiceAccount
	if got := tagValue(role.Tags, ServiceAccountTagKey); got != want {
		return fmt.Errorf("IAM role %q serves service account %q (tag %s), not %q: one role serves one service account; pass --role-name with another name: %w", name, got, ServiceAccountTagKey, want, ErrNotOwned)
	}
	return nil
}

// CheckOwned returns nil when b's role is missing or irsa owns it for b, and an error wrapping ErrNotOwned when it
// exists and apply would refuse to manage it.
func (m *Manager) CheckOwned(ctx context.Context, b config.Binding) error {
	if b.RoleARN != "" {
		return nil // irsa touches only its own trust statements on such a role
	}
	out, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &b.RoleName})
	if awsclient.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read IAM role %q: %w", b.RoleName, err)
	}
	return m.checkOwner(out.Role, b)
}

// Remove deletes b's role if irsa owns it for b (checkOwner); a missing role is already removed. A role apply would
// refuse to manage is left alone with an error wrapping ErrNotOwned.
func (m *Manager) Remove(ctx context.Context, b config.Binding) ([]stage.Change, error) {
	if b.RoleARN != "" {
		return m.removeExisting(ctx, b)
	}
	roleName := b.RoleName
	out, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &roleName})
	if awsclient.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IAM role %q: %w", roleName, err)
	}
	if err := m.checkOwner(out.Role, b); err != nil {
		return nil, err
	}
	attached, err := m.attached(ctx, roleName)
	if err != nil {
		return nil, err
	}
	for _, a := range attached {
		if _, err := m.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: &roleName, PolicyArn: aws.String(a)}); err != nil && !awsclient.IsNotFound(err) {
			return nil, fmt.Errorf("detach policy %q from IAM role %q: %w", a, roleName, err)
		}
	}
	inline, err := m.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: &roleName})
	if err != nil && !awsclient.IsNotFound(err) {
		return nil, fmt.Errorf("list inline policies of IAM role %q: %w", roleName, err)
	}
	if inline != nil {
		for _, n := range inline.PolicyNames {
			if _, err := m.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &roleName, PolicyName: aws.String(n)}); err != nil && !awsclient.IsNotFound(err) {
				return nil, fmt.Errorf("delete inline policy %q of IAM role %q: %w", n, roleName, err)
			}
		}
	}
	if _, err := m.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: &roleName}); err != nil && !awsclient.IsNotFound(err) {
		return nil, fmt.Errorf("delete IAM role %q: %w", roleName, err)
	}
	return []stage.Change{{Action: stage.Delete, Kind: "iam-role", Name: roleName}}, nil
}

// TrustedAudiences lists the audiences (the :aud condition) that the cluster's roles trust, read from the trust
// policies ListRoles returns for the cluster's IAM path.
func (m *Manager) TrustedAudiences(ctx context.Context) ([]string, error) {
	var auds []string
	err := m.eachRole(ctx, func(r iamtypes.Role) {
		doc, _ := url.QueryUnescape(aws.ToString(r.AssumeRolePolicyDocument))
		var policy struct {
			Statement []struct {
				Condition map[string]map[string]any
			}
		}
		if json.Unmarshal([]byte(doc), &policy) != nil {
			return
		}
		for _, st := range policy.Statement {
			for k, v := range st.Condition["StringEquals"] {
				if a, ok := v.(string); ok && strings.HasSuffix(k, ":aud") && !slices.Contains(auds, a) {
					auds = append(auds, a)
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(auds)
	return auds, nil
}

// Owned lists the names of the roles irsa made for this cluster, found under the cluster's IAM path.
func (m *Manager) Owned(ctx context.Context) ([]string, error) {
	var names []string
	if err := m.eachRole(ctx, func(r iamtypes.Role) { names = append(names, aws.ToString(r.RoleName)) }); err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// eachRole calls f for every role under the cluster's IAM path, page by page.
func (m *Manager) eachRole(ctx context.Context, f func(iamtypes.Role)) error {
	p := iam.NewListRolesPaginator(m.IAM, &iam.ListRolesInput{PathPrefix: aws.String(Path(m.ClusterName))})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list IAM roles under path %q: %w", Path(m.ClusterName), err)
		}
		for _, r := range page.Roles {
			f(r)
		}
	}
	return nil
}

func ownedBy(tags []iamtypes.Tag, cluster string) bool {
	return tagValue(tags, config.OwnerTagKey) == cluster
}

func tagValue(tags []iamtypes.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// BindingOf rebuilds the binding of a role irsa made, from its service account tag.
func (m *Manager) BindingOf(ctx context.Context, roleName string) (config.Binding, error) {
	b := config.Binding{RoleName: roleName}
	out, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &roleName})
	if awsclient.IsNotFound(err) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("read IAM role %q: %w", roleName, err)
	}
	b.Namespace, b.ServiceAccount, _ = strings.Cut(tagValue(out.Role.Tags, ServiceAccountTagKey), "/")
	return b, nil
}
