package bindings

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
)

// Sources of a listed binding.
const (
	// SourceConfig: irsa.yaml (or the flags) lists it.
	SourceConfig = "config"
	// SourceAWS: a role irsa made for the cluster (under its IAM path) is tagged with the ServiceAccount.
	SourceAWS = "aws"
	// SourceCluster: irsa annotated the ServiceAccount (config.AnnotatedByIrsa).
	SourceCluster = "cluster"
)

// CheckOK is the value of a check that passed.
const CheckOK = "ok"

// Listed is one binding as `irsa bindings` shows it: where it was found, its role, and whether the ServiceAccount's
// annotation, the role and its trust policy agree.
type Listed struct {
	ServiceAccount string   `json:"serviceAccount"`
	Sources        []string `json:"sources"`
	Role           Role     `json:"role"`
	// TrustedProviders are the IAM OIDC providers through which the role's trust policy admits this ServiceAccount's
	// tokens with its audience (evaluated as STS does, pipeline/trust).
	TrustedProviders []string `json:"trustedProviders"`
	Checks           Checks   `json:"checks"`
	// Agree is true when every check that ran passed.
	Agree bool `json:"agree"`
}

// Role is the IAM side of a listed binding.
type Role struct {
	ARN string `json:"arn"`
	// OwnedByIrsa is false for a role bound with roleARN, of which irsa manages only its trust statements.
	OwnedByIrsa bool `json:"ownedByIrsa"`
	// OtherCluster names the irsa cluster whose role this is, when it is another cluster's (one role, several
	// clusters): irsa only checks it.
	OtherCluster string `json:"otherCluster,omitempty"`
	Exists       bool   `json:"exists"`
	// Policies are the managed policies attached to the role.
	Policies []string `json:"policies"`
	// InlinePolicies are the names of its inline policies.
	InlinePolicies      []string `json:"inlinePolicies"`
	PermissionsBoundary string   `json:"permissionsBoundary,omitempty"`
}

// Checks say, each "ok" or a sentence, whether the ServiceAccount is annotated with the role, whether the role is as
// the binding wants it, and whether its trust policy admits the ServiceAccount through the cluster's provider.
type Checks struct {
	ServiceAccount string `json:"serviceAccount"`
	Role           string `json:"role"`
	Trust          string `json:"trust"`
}

// List finds the bindings of the cluster: configured ones, roles irsa made for the cluster (their ServiceAccount tag),
// and, when client is not nil, ServiceAccounts irsa annotated (which also finds the existing roles bound with a role
// ARN). It reads only. For a configured binding the role check is its plan (any change apply would make is a
// disagreement); for a found one, whose wanted state nobody declared, the role must exist and be irsa's.
func List(ctx context.Context, m *roles.Manager, configured []config.Binding, client kubernetes.Interface) ([]Listed, error) {
	type entry struct {
		b       config.Binding
		sources []string
	}
	entries := map[string]*entry{}
	add := func(b config.Binding, source string) {
		key := b.Namespace + "/" + b.ServiceAccount
		if e, ok := entries[key]; ok {
			if !slices.Contains(e.sources, source) {
				e.sources = append(e.sources, source)
			}
			return
		}
		entries[key] = &entry{b: b, sources: []string{source}}
	}
	for _, b := range configured {
		add(b, SourceConfig)
	}
	owned, err := m.Owned(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range owned {
		b, err := m.BindingOf(ctx, name)
		if err != nil {
			return nil, err
		}
		add(b, SourceAWS)
	}
	if client != nil {
		found, err := AnnotatedServiceAccounts(ctx, client, m.ClusterName)
		if err != nil {
			return nil, err
		}
		for _, b := range found {
			add(b, SourceCluster)
		}
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []Listed{}
	for _, k := range keys {
		e := entries[k]
		l, err := describe(ctx, m, e.b, slices.Contains(e.sources, SourceConfig), client)
		if err != nil {
			return nil, err
		}
		l.Sources = e.sources
		out = append(out, l)
	}
	return out, nil
}

// AnnotatedServiceAccounts lists the ServiceAccounts irsa annotated with a role (config.AnnotatedByIrsa lists
// eks.amazonaws.com/role-arn), as bindings: a role under the cluster's IAM path by name, any other by its ARN (a role
// irsa does not own).
func AnnotatedServiceAccounts(ctx context.Context, client kubernetes.Interface, cluster string) ([]config.Binding, error) {
	list, err := client.CoreV1().ServiceAccounts(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list ServiceAccounts: %w", err)
	}
	var out []config.Binding
	for _, sa := range list.Items {
		set := strings.Split(sa.Annotations[config.AnnotatedByIrsa], ",")
		roleARN := sa.Annotations[config.RoleARNAnnotation]
		if !slices.Contains(set, config.RoleARNAnnotation) || roleARN == "" {
			continue
		}
		b := config.Binding{Namespace: sa.Namespace, ServiceAccount: sa.Name}
		path, name := config.SplitRoleARN(roleARN)
		b.RoleName = name
		if path != roles.Path(cluster) {
			b.RoleARN = roleARN
		}
		out = append(out, b)
	}
	return out, nil
}

// annotatedLister finds the bindings irsa left on a cluster's ServiceAccounts.
type annotatedLister interface {
	Annotated(ctx context.Context) ([]config.Binding, error)
}

// Annotated lists the ServiceAccounts irsa annotated with a role (AnnotatedServiceAccounts).
func (s *ClusterServiceAccounts) Annotated(ctx context.Context) ([]config.Binding, error) {
	return AnnotatedServiceAccounts(ctx, s.Client, s.ClusterName)
}

func describe(ctx context.Context, m *roles.Manager, b config.Binding, configured bool, client kubernetes.Interface) (Listed, error) {
	l := Listed{ServiceAccount: b.Namespace + "/" + b.ServiceAccount, TrustedProviders: []string{}}
	arn, err := m.RoleARN(ctx, b)
	if err != nil {
		return l, err
	}
	l.Role = Role{ARN: arn, OwnedByIrsa: b.RoleARN == "", Policies: []string{}, InlinePolicies: []string{}}
	if roles.OtherClusterRole(arn, m.ClusterName) {
		path, _ := config.SplitRoleARN(arn)
		l.Role.OtherCluster = strings.Trim(strings.TrimPrefix(path, config.IrsaRolePathPrefix), "/")
	}
	l.Checks.ServiceAccount = serviceAccountCheck(ctx, client, b, arn)
	out, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &b.RoleName})
	switch {
	case awsclient.IsNotFound(err):
		l.Checks.Role = fmt.Sprintf("IAM role %s does not exist", b.RoleName)
		l.Checks.Trust = "no role"
		return l, nil
	case err != nil:
		return l, fmt.Errorf("read IAM role %q: %w", b.RoleName, err)
	}
	l.Role.Exists = true
	if pb := out.Role.PermissionsBoundary; pb != nil {
		l.Role.PermissionsBoundary = aws.ToString(pb.PermissionsBoundaryArn)
	}
	if err := rolePolicies(ctx, m.IAM, b.RoleName, &l.Role); err != nil {
		return l, err
	}
	l.Checks.Role, l.Checks.Trust = CheckOK, CheckOK
	if err := m.CheckOwned(ctx, b); err != nil {
		l.Checks.Role = err.Error()
	} else if configured {
		changes, err := m.Plan(ctx, b)
		if err != nil {
			l.Checks.Role = err.Error()
		}
		var role, trusts []string
		for _, c := range changes {
			if c.Kind == "iam-role" && (c.Detail == "trust policy" || strings.HasPrefix(c.Detail, "irsa's trust statements")) {
				trusts = append(trusts, "differs from the binding's (irsa apply rewrites it)")
				continue
			}
			role = append(role, strings.TrimSpace(fmt.Sprintf("%s %s %s", c.Action, c.Kind, c.Detail)))
		}
		if len(role) > 0 {
			l.Checks.Role = "differs from the binding: " + strings.Join(role, "; ")
		}
		if len(trusts) > 0 {
			l.Checks.Trust = trusts[0]
		}
	}
	doc, _ := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	providers, err := m.Providers(ctx, b)
	if err != nil {
		return l, err
	}
	// A binding found in AWS or on the cluster carries no trustProviders: the other providers its role's trust
	// policy names are listed too when they admit the ServiceAccount (one role for several clusters).
	for _, arn := range federatedProviders(doc) {
		if !slices.ContainsFunc(providers, func(p roles.Provider) bool { return p.ARN == arn }) {
			if _, hostPath, ok := strings.Cut(arn, ":oidc-provider/"); ok {
				providers = append(providers, roles.Provider{ARN: arn, HostPath: hostPath})
			}
		}
	}
	audience := b.Audience
	if audience == "" {
		audience = m.Audience
	}
	for i, p := range providers {
		if ok, reason := roles.Admits(doc, p, b.Namespace, b.ServiceAccount, audience); ok {
			l.TrustedProviders = append(l.TrustedProviders, p.ARN)
		} else if i == 0 {
			l.Checks.Trust = fmt.Sprintf("does not admit %s's tokens from this cluster's provider: %s", l.ServiceAccount, reason)
		} else if l.Checks.Trust == CheckOK {
			l.Checks.Trust = fmt.Sprintf("does not admit %s's tokens from %s: %s", l.ServiceAccount, p.ARN, reason)
		}
	}
	l.Agree = l.Checks.Role == CheckOK && l.Checks.Trust == CheckOK && (l.Checks.ServiceAccount == CheckOK || client == nil)
	return l, nil
}

// federatedProviders returns the IAM OIDC provider ARNs a trust policy's statements name as Principal.Federated, in
// order, each once; none for a document that is not a policy.
func federatedProviders(doc string) []string {
	var p struct {
		Statement []struct {
			Principal struct {
				Federated any
			}
		}
	}
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return nil
	}
	var out []string
	for _, st := range p.Statement {
		var arns []string
		switch f := st.Principal.Federated.(type) {
		case string:
			arns = []string{f}
		case []any:
			for _, v := range f {
				if s, ok := v.(string); ok {
					arns = append(arns, s)
				}
			}
		}
		for _, a := range arns {
			if strings.Contains(a, ":oidc-provider/") && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// NoClusterCheck is the ServiceAccount check without a cluster.
const NoClusterCheck = "not checked: no cluster"

func serviceAccountCheck(ctx context.Context, client kubernetes.Interface, b config.Binding, roleARN string) string {
	if client == nil {
		return NoClusterCheck
	}
	sa, err := client.CoreV1().ServiceAccounts(b.Namespace).Get(ctx, b.ServiceAccount, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "the ServiceAccount does not exist"
	case err != nil:
		return fmt.Sprintf("cannot read the ServiceAccount: %v", err)
	}
	switch got := sa.Annotations[config.RoleARNAnnotation]; got {
	case roleARN:
		return CheckOK
	case "":
		return "not annotated with " + config.RoleARNAnnotation
	default:
		return fmt.Sprintf("annotated with another role: %s", got)
	}
}

func rolePolicies(ctx context.Context, c *iam.Client, role string, r *Role) error {
	p := iam.NewListAttachedRolePoliciesPaginator(c, &iam.ListAttachedRolePoliciesInput{RoleName: &role})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list policies attached to IAM role %q: %w", role, err)
		}
		for _, a := range page.AttachedPolicies {
			r.Policies = append(r.Policies, aws.ToString(a.PolicyArn))
		}
	}
	inline, err := c.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: &role})
	if err != nil {
		return fmt.Errorf("list inline policies of IAM role %q: %w", role, err)
	}
	r.InlinePolicies = append(r.InlinePolicies, inline.PolicyNames...)
	sort.Strings(r.Policies)
	sort.Strings(r.InlinePolicies)
	return nil
}
