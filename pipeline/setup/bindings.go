package setup

import (
	"context"

	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/pipeline/bindings"
)

// ListBindings lists the cluster's bindings with their checks (bindings.List): configured, found in AWS and, with a
// cluster, found on its ServiceAccounts.
func (e *Env) ListBindings(ctx context.Context) ([]bindings.Listed, error) {
	var client kubernetes.Interface
	if e.Cluster != nil {
		client = e.Cluster.Client
	}
	return bindings.List(ctx, e.RoleManager(), e.Target.Config.Bindings, client)
}
