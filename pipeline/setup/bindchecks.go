package setup

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// CheckProvider fails when the IAM OIDC provider of the target's issuer does not exist, or does not list audience
// (empty: the target's audience) as a client ID: a role bound now would trust a provider STS cannot find, or tokens
// for an audience STS refuses (AWS IAM, "Create an OpenID Connect (OIDC) identity provider": the client ID is the aud
// STS accepts), and every AssumeRoleWithWebIdentity would fail with InvalidIdentityToken. It only reads, so bind runs
// it before its first write.
func (e *Env) CheckProvider(ctx context.Context, audience string) error {
	arn := e.Target.ProviderARN
	out, err := e.AWS.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &arn})
	switch {
	case awsclient.IsNotFound(err):
		return fmt.Errorf("IAM OIDC provider %s does not exist: run `irsa apply` first (it publishes issuer %s and trusts it in IAM), then bind", arn, e.Target.Issuer.URL)
	case err != nil:
		return fmt.Errorf("read IAM OIDC provider %s: %w", arn, err)
	}
	aud := cmp.Or(audience, e.Target.Audience)
	if !slices.Contains(out.ClientIDList, aud) {
		return fmt.Errorf("IAM OIDC provider %s lists client IDs %v, not audience %q: STS would refuse the tokens; put the binding with `audience: %s` in irsa.yaml and run `irsa apply` (it lists every binding's audience on the provider), or add it with `aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn %s --client-id %s`",
			arn, out.ClientIDList, aud, aud, arn, aud)
	}
	return nil
}

// UnbindSummary lists, one line each, what unbinding b removes: its role when it exists, and, with a cluster, the
// annotations irsa set on its ServiceAccount (or the ServiceAccount itself, when irsa created it). Empty when there is
// nothing left to remove. It only reads.
func (e *Env) UnbindSummary(ctx context.Context, b config.Binding) ([]string, error) {
	var out []string
	role, err := e.AWS.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &b.RoleName})
	switch {
	case awsclient.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("read IAM role %q: %w", b.RoleName, err)
	case b.RoleARN != "":
		// A role irsa does not own keeps everything but irsa's own trust statements (roles.Manager.Remove).
		if s := existingRoleSummary(e, b, role.Role); s != "" {
			out = append(out, s)
		}
	default:
		out = append(out, "IAM role "+*role.Role.Arn)
	}
	if e.Cluster == nil {
		return out, nil
	}
	ref := b.Namespace + "/" + b.ServiceAccount
	sa, err := e.Cluster.Client.CoreV1().ServiceAccounts(b.Namespace).Get(ctx, b.ServiceAccount, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("get service account %s: %w", ref, err)
	case createdByIrsa(sa):
		out = append(out, fmt.Sprintf("ServiceAccount %s, which irsa created (pods started afterwards get no AWS credentials)", ref))
	case sa.Annotations[config.AnnotatedByIrsa] != "":
		out = append(out, fmt.Sprintf("the annotations irsa set on ServiceAccount %s (%s; pods started afterwards get no AWS credentials)", ref, sa.Annotations[config.AnnotatedByIrsa]))
	}
	return out, nil
}

func createdByIrsa(sa *corev1.ServiceAccount) bool {
	return sa.Labels[config.ManagedByTagKey] == config.ManagedByValue
}
