package cli

import (
	"context"
	"crypto"
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// clusterClients reach the target cluster.
type clusterClients struct {
	rest   *rest.Config
	client kubernetes.Interface
}

// loadCluster returns nil, without error, when no kubeconfig is given and none exists at the default places: irsa
// then does the AWS side only. An explicit kubeconfig that cannot be read is an error.
func loadCluster(_ context.Context, cfg *config.Config) (*clusterClients, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		if _, err := os.Stat(cfg.Kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %q: %w", cfg.Kubeconfig, err)
		}
		rules.ExplicitPath = cfg.Kubeconfig
	} else {
		found := false
		for _, p := range rules.Precedence {
			if _, err := os.Stat(p); err == nil {
				found = true
			}
		}
		if !found {
			return nil, nil
		}
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.UserAgent = "irsa"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("build Kubernetes client for %s: %w", rc.Host, err)
	}
	return &clusterClients{rest: rc, client: client}, nil
}

// servedKeys reads the keys the apiserver serves at /openid/v1/jwks.
func (c *clusterClients) servedKeys(ctx context.Context) ([]crypto.PublicKey, error) {
	body, err := c.client.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET %s/openid/v1/jwks: %w", c.rest.Host, err)
	}
	return documents.ParseJWKS(body)
}

func (c *clusterClients) serviceAccounts() roles.ServiceAccounts { return nil }

func (c *clusterClients) stages(a *app) []stage.Stage {
	return []stage.Stage{skipped(stage.APIServer), skipped(stage.Webhook), skipped(stage.Verify)}
}
