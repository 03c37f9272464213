// Package roles is the AWS half of the bindings stage: one IAM role per bound ServiceAccount, whose trust policy admits
// exactly that ServiceAccount's tokens with the audience, through the cluster's OIDC provider.
package roles

import (
	"bytes"
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
	hp := documents.HostPath(issuerURL)
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect":    "Allow",
			"Principal": map[string]any{"Federated": providerARN},
			"Action":    "sts:AssumeRoleWithWebIdentity",
			"Condition": map[string]any{"StringEquals": map[string]string{
				hp + ":sub": Subject(namespace, serviceAccount),
				hp + ":aud": audience,
			}},
		}},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
	return buf.String()
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
	account, err := m.AccountID(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("arn:%s:iam::%s:role%s%s", m.Partition, account, Path(m.ClusterName), b.RoleName), nil
}

type rolePlan struct {
	exists                  bool
	trust                   string
	setTrust                bool
	attach, detach          []string
	putInline, deleteInline bool
	changes                 []stage.Change
}

func (m *Manager) tags(b config.Binding) []iamtypes.Tag {
	return []iamtypes.Tag{
		{Key: aws.String(config.OwnerTagKey), Value: aws.String(m.ClusterName)},
		{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
		{Key: aws.String(ServiceAccountTagKey), Value: aws.String(b.Namespace + "/" + b.ServiceAccount)},
	}
}

func (m *Manager) diff(ctx context.Context, b config.Binding) (*rolePlan, error) {
	providerARN, err := m.ProviderARN(ctx)
	if err != nil {
		return nil, err
	}
	audience := m.Audience
	if b.Audience != "" {
		audience = b.Audience
	}
	p := &rolePlan{trust: TrustPolicy(providerARN, m.IssuerURL, b.Namespace, b.ServiceAccount, audience)}
	out, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &b.RoleName})
	if awsclient.IsNotFound(err) {
		p.changes = append(p.changes, stage.Change{Action: stage.Create, Kind: "iam-role", Name: b.RoleName, Detail: "trusts " + Subject(b.Namespace, b.ServiceAccount)})
		for _, a := range sorted(b.PolicyARNs) {
			p.attach = append(p.attach, a)
			p.changes = append(p.changes, stage.Change{Action: stage.Create, Kind: "iam-role-policy-attachment", Name: b.RoleName, Detail: a})
		}
		if b.InlinePolicy != "" {
			p.putInline = true
			p.changes = append(p.changes, stage.Change{Action: stage.Create, Kind: "iam-role-inline-policy", Name: b.RoleName + "/" + InlinePolicyName})
		}
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IAM role %q: %w", b.RoleName, err)
	}
	p.exists = true
	if err := m.checkOwner(out.Role, b); err != nil {
		return nil, err
	}
	have, _ := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	if !documents.SameJSON(have, p.trust) {
		p.setTrust = true
		p.changes = append(p.changes, stage.Change{Action: stage.Update, Kind: "iam-role", Name: b.RoleName, Detail: "trust policy"})
	}
	attached, err := m.attached(ctx, b.RoleName)
	if err != nil {
		return nil, err
	}
	for _, a := range sorted(b.PolicyARNs) {
		if !slices.Contains(attached, a) {
			p.attach = append(p.attach, a)
			p.changes = append(p.changes, stage.Change{Action: stage.Create, Kind: "iam-role-policy-attachment", Name: b.RoleName, Detail: a})
		}
	}
	for _, a := range attached {
		if !slices.Contains(b.PolicyARNs, a) {
			p.detach = append(p.detach, a)
			p.changes = append(p.changes, stage.Change{Action: stage.Delete, Kind: "iam-role-policy-attachment", Name: b.RoleName, Detail: a})
		}
	}
	inline, err := m.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: &b.RoleName})
	if err != nil {
		return nil, fmt.Errorf("list inline policies of IAM role %q: %w", b.RoleName, err)
	}
	hasInline := slices.Contains(inline.PolicyNames, InlinePolicyName)
	switch {
	case b.InlinePolicy != "" && !hasInline:
		p.putInline = true
		p.changes = append(p.changes, stage.Change{Action: stage.Create, Kind: "iam-role-inline-policy", Name: b.RoleName + "/" + InlinePolicyName})
	case b.InlinePolicy != "":
		cur, err := m.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: &b.RoleName, PolicyName: aws.String(InlinePolicyName)})
		if err != nil {
			return nil, fmt.Errorf("read inline policy of IAM role %q: %w", b.RoleName, err)
		}
		doc, _ := url.QueryUnescape(aws.ToString(cur.PolicyDocument))
		if !documents.SameJSON(doc, b.InlinePolicy) {
			p.putInline = true
			p.changes = append(p.changes, stage.Change{Action: stage.Update, Kind: "iam-role-inline-policy", Name: b.RoleName + "/" + InlinePolicyName})
		}
	case hasInline:
		p.deleteInline = true
		p.changes = append(p.changes, stage.Change{Action: stage.Delete, Kind: "iam-role-inline-policy", Name: b.RoleName + "/" + InlinePolicyName})
	}
	return p, nil
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
	return p.changes, nil
}

// Ensure creates or updates the role for b.
func (m *Manager) Ensure(ctx context.Context, b config.Binding) ([]stage.Change, error) {
	p, err := m.diff(ctx, b)
	if err != nil || len(p.changes) == 0 {
		return nil, err
	}
	role := b.RoleName
	if !p.exists {
		_, err := m.IAM.CreateRole(ctx, &iam.CreateRoleInput{
			RoleName: &role, Path: aws.String(Path(m.ClusterName)), AssumeRolePolicyDocument: &p.trust,
			Description: aws.String(fmt.Sprintf("IRSA role of %s/%s in cluster %s, managed by irsa", b.Namespace, b.ServiceAccount, m.ClusterName)),
			Tags:        m.tags(b),
		})
		if awsclient.ErrorCode(err) == "EntityAlreadyExists" {
			// Missing a moment ago: the SDK retried a create whose response was lost, or another run made it. Adopt
			// it only if it is this binding's (diff checks the tags and path the create set), and finish it.
			created := p.changes
			if p, err = m.diff(ctx, b); err != nil {
				return nil, fmt.Errorf("create IAM role %q: it appeared meanwhile: %w", role, err)
			}
			p.changes = created
		} else if err != nil {
			return nil, fmt.Errorf("create IAM role %q: %w", role, err)
		}
	}
	if p.setTrust {
		if _, err := m.IAM.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &role, PolicyDocument: &p.trust}); err != nil {
			return nil, fmt.Errorf("update trust policy of IAM role %q: %w", role, err)
		}
	}
	for _, a := range p.attach {
		if _, err := m.IAM.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: &role, PolicyArn: aws.String(a)}); err != nil {
			return nil, fmt.Errorf("attach policy %q to IAM role %q: %w", a, role, err)
		}
	}
	for _, a := range p.detach {
		if _, err := m.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: &role, PolicyArn: aws.String(a)}); err != nil && !awsclient.IsNotFound(err) {
			return nil, fmt.Errorf("detach policy %q from IAM role %q: %w", a, role, err)
		}
	}
	if p.putInline {
		if _, err := m.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &role, PolicyName: aws.String(InlinePolicyName), PolicyDocument: aws.String(b.InlinePolicy)}); err != nil {
			return nil, fmt.Errorf("put inline policy on IAM role %q: %w", role, err)
		}
	}
	if p.deleteInline {
		if _, err := m.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &role, PolicyName: aws.String(InlinePolicyName)}); err != nil && !awsclient.IsNotFound(err) {
			return nil, fmt.Errorf("delete inline policy of IAM role %q: %w", role, err)
		}
	}
	return p.changes, nil
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

// Owned lists the names of the roles irsa made for this cluster, found under the cluster's IAM path.
func (m *Manager) Owned(ctx context.Context) ([]string, error) {
	var names []string
	p := iam.NewListRolesPaginator(m.IAM, &iam.ListRolesInput{PathPrefix: aws.String(Path(m.ClusterName))})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list IAM roles under path %q: %w", Path(m.ClusterName), err)
		}
		for _, r := range page.Roles {
			names = append(names, aws.ToString(r.RoleName))
		}
	}
	sort.Strings(names)
	return names, nil
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
