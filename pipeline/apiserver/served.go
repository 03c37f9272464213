package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver/node"
)

// Cluster types: how the apiserver is configured.
const (
	ClusterKubeadm     = "kubeadm"
	ClusterKind        = "kind"
	ClusterEKSAnywhere = "eks-anywhere"
	ClusterExternal    = "external"
)

// ClusterTypes lists the valid cluster types.
var ClusterTypes = []string{ClusterKubeadm, ClusterKind, ClusterEKSAnywhere, ClusterExternal}

// Paths the apiserver serves its OIDC documents at (ServiceAccountIssuerDiscovery).
const (
	DiscoveryPath = node.DiscoveryPath
	JWKSPath      = "/openid/v1/jwks"
)

// ServedIssuer returns the issuer in the apiserver's OIDC discovery document: the first --service-account-issuer,
// the iss claim of the tokens it issues now.
func ServedIssuer(ctx context.Context, client kubernetes.Interface) (string, error) {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath(DiscoveryPath).DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("get %s from the apiserver: %w", DiscoveryPath, explain(err))
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", fmt.Errorf("decode %s %q: %w", DiscoveryPath, truncate(raw), err)
	}
	if doc.Issuer == "" {
		return "", fmt.Errorf("%s %q: no issuer", DiscoveryPath, truncate(raw))
	}
	return doc.Issuer, nil
}

// ServedKeys returns the public keys the apiserver verifies service account tokens with, as it serves them at
// /openid/v1/jwks (kid = base64url SHA-256 of the key's PKIX DER). The issuer must publish every one of them.
func ServedKeys(ctx context.Context, client kubernetes.Interface) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	raw, err := client.CoreV1().RESTClient().Get().AbsPath(JWKSPath).DoRaw(ctx)
	if err != nil {
		return set, fmt.Errorf("get %s from the apiserver: %w", JWKSPath, explain(err))
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return set, fmt.Errorf("decode %s %q: %w", JWKSPath, truncate(raw), err)
	}
	if len(set.Keys) == 0 {
		return set, fmt.Errorf("%s: the apiserver serves no keys", JWKSPath)
	}
	for _, k := range set.Keys {
		if k.KeyID == "" || !k.Valid() || !k.IsPublic() {
			return set, fmt.Errorf("%s: key %q is not a valid public key with a kid", JWKSPath, k.KeyID)
		}
	}
	return set, nil
}

// DetectClusterType guesses how the cluster's apiserver is configured:
//   - kind: a node's providerID starts with kind://;
//   - eks-anywhere: the cluster serves the anywhere.eks.amazonaws.com Cluster API (a management cluster; a
//     workload cluster managed from elsewhere looks like kubeadm, and its nodes would be reverted by the EKS
//     Anywhere controller: pass --cluster-type eks-anywhere with the management cluster's kubeconfig);
//   - kubeadm: kube-system/kubeadm-config exists;
//   - external: anything else (managed control planes, hand-built clusters).
func DetectClusterType(ctx context.Context, client kubernetes.Interface) (string, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 100})
	if err != nil {
		return "", fmt.Errorf("detect cluster type: list nodes: %w (or pass --cluster-type)", explain(err))
	}
	for _, n := range nodes.Items {
		if strings.HasPrefix(n.Spec.ProviderID, "kind://") {
			return ClusterKind, nil
		}
	}
	resources, err := client.Discovery().ServerResourcesForGroupVersion(eksaGroupVersion)
	switch {
	case err == nil:
		for _, r := range resources.APIResources {
			if r.Name == eksaResource {
				return ClusterEKSAnywhere, nil
			}
		}
	case apierrors.IsNotFound(err):
	default:
		return "", fmt.Errorf("detect cluster type: discover %s: %w (or pass --cluster-type)", eksaGroupVersion, explain(err))
	}
	_, err = client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	switch {
	case err == nil:
		return ClusterKubeadm, nil
	case apierrors.IsNotFound(err):
		return ClusterExternal, nil
	default:
		return "", fmt.Errorf("detect cluster type: get configmap kube-system/kubeadm-config: %w (or pass --cluster-type)", explain(err))
	}
}

// explain adds what to do to the errors users meet most.
func explain(err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: the kubeconfig's user lacks the permission (irsa's apiserver stage needs get/list nodes, create/get/delete pods, pods/log and secrets in kube-system, and the OIDC discovery endpoints; a cluster-admin kubeconfig has them)", err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: the apiserver rejected the kubeconfig's credentials", err)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return fmt.Errorf("%w: is the cluster reachable with this kubeconfig?", err)
	}
	return err
}

func truncate(b []byte) string {
	const limit = 200
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}
