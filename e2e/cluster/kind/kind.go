// Package kind is the e2e Cluster backend for machines with Docker: a kind cluster created through the kind Go
// library (sigs.k8s.io/kind) from the configuration `irsa kind-config` writes (pipeline/kindconfig), so its
// apiserver issues tokens for the irsa issuer from the start. Images are loaded from tarballs into every node,
// logs are exported the way `kind export logs` does, and the cluster is deleted unless asked to keep it.
//
// Pods reach the AWS backend over kind's Docker network (Network): the container backends join it
// (e2e/aws/localstack, Options.Network).
package kind

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"

	"github.com/irsa-anywhere/irsa/e2e/framework"
	"github.com/irsa-anywhere/irsa/pipeline/kindconfig"
)

const (
	// Network is the Docker network kind puts its nodes on. kind uses an existing network of that name as it is.
	Network = "kind"
	// DefaultNodeImage is kind v0.33.0's node image (Kubernetes v1.37.0), pinned by digest.
	DefaultNodeImage = kindconfig.DefaultNodeImage
	// DefaultWaitForReady bounds the wait for the control plane to become ready.
	DefaultWaitForReady = 5 * time.Minute
)

// Options describe the cluster to create.
type Options struct {
	// Name is the kind cluster name; required.
	Name string
	// Config is what `irsa kind-config` takes: issuer URL, audience, node image, workers. Its Name is set to Name.
	Config kindconfig.Options
	// KubeconfigPath is where the admin kubeconfig is written; empty means a file in a new temporary directory.
	KubeconfigPath string
	// Keep leaves the cluster running on Delete (KEEP=1), for debugging.
	Keep bool
	// WaitForReady defaults to DefaultWaitForReady.
	WaitForReady time.Duration
	// Logger receives kind's progress lines; nil discards them.
	Logger *slog.Logger
}

// Cluster is a running kind cluster. It implements framework.Cluster.
type Cluster struct {
	provider   *cluster.Provider
	name       string
	kubeconfig string
	tempDir    string
	keep       bool
}

var _ framework.Cluster = (*Cluster)(nil)

// Validate checks o before anything is created.
func (o Options) Validate() error {
	if o.Name == "" {
		return errors.New("kind cluster: no name")
	}
	c := o.Config
	c.Name = o.Name
	if err := c.Validate(); err != nil {
		return fmt.Errorf("kind cluster %q: %w", o.Name, err)
	}
	return nil
}

// RawConfig is the kind v1alpha4 configuration Create passes to kind.
func (o Options) RawConfig() ([]byte, error) {
	c := o.Config
	c.Name = o.Name
	cfg, err := kindconfig.Generate(c)
	if err != nil {
		return nil, fmt.Errorf("kind cluster %q: generate config: %w", o.Name, err)
	}
	return cfg, nil
}

// Create creates the cluster and waits for its control plane. kind removes a half-created cluster itself.
func Create(ctx context.Context, o Options) (_ *Cluster, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	raw, err := o.RawConfig()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create kind cluster %q: %w", o.Name, err)
	}
	c := &Cluster{
		provider:   cluster.NewProvider(cluster.ProviderWithDocker(), cluster.ProviderWithLogger(newLogger(o.Logger))),
		name:       o.Name,
		kubeconfig: o.KubeconfigPath,
		keep:       o.Keep,
	}
	if c.kubeconfig == "" {
		if c.tempDir, err = os.MkdirTemp("", "irsa-e2e-kind-"); err != nil {
			return nil, fmt.Errorf("kind cluster %q: kubeconfig directory: %w", o.Name, err)
		}
		c.kubeconfig = filepath.Join(c.tempDir, "kubeconfig")
	}
	wait := o.WaitForReady
	if wait == 0 {
		wait = DefaultWaitForReady
	}
	// The kind library takes no context: a cancelled ctx is noticed between steps only.
	if err := c.provider.Create(o.Name,
		cluster.CreateWithRawConfig(raw),
		cluster.CreateWithKubeconfigPath(c.kubeconfig),
		cluster.CreateWithWaitForReady(wait),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	); err != nil {
		if c.tempDir != "" {
			_ = os.RemoveAll(c.tempDir)
		}
		return nil, fmt.Errorf("create kind cluster %q: %w", o.Name, err)
	}
	return c, nil
}

// Name is the kind cluster name.
func (c *Cluster) Name() string { return c.name }

// Type is irsa's --cluster-type for kind.
func (c *Cluster) Type() string { return "kind" }

// Kubeconfig is the admin kubeconfig written by kind.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// LoadImages imports each OCI/Docker image tarball into the containerd of every node, as `kind load
// image-archive` does.
func (c *Cluster) LoadImages(ctx context.Context, tarballs ...string) error {
	nodes, err := c.provider.ListInternalNodes(c.name)
	if err != nil {
		return fmt.Errorf("list nodes of kind cluster %q: %w", c.name, err)
	}
	if len(nodes) == 0 {
		return fmt.Errorf("kind cluster %q has no nodes", c.name)
	}
	for _, tarball := range tarballs {
		for _, n := range nodes {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("load %s into kind cluster %q: %w", tarball, c.name, err)
			}
			if err := loadArchive(n, tarball); err != nil {
				return fmt.Errorf("load %s into node %s: %w", tarball, n.String(), err)
			}
		}
	}
	return nil
}

func loadArchive(n nodes.Node, tarball string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	return nodeutils.LoadImageArchive(n, f)
}

// CollectLogs exports the cluster's logs (journal, kubelet, containerd, pods) into dir, like `kind export logs`.
func (c *Cluster) CollectLogs(ctx context.Context, dir string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("export logs of kind cluster %q: %w", c.name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export logs of kind cluster %q: %w", c.name, err)
	}
	if err := c.provider.CollectLogs(c.name, dir); err != nil {
		return fmt.Errorf("export logs of kind cluster %q to %s: %w", c.name, dir, err)
	}
	return nil
}

// Delete deletes the cluster and its kubeconfig entry, unless the cluster is kept.
func (c *Cluster) Delete(ctx context.Context) error {
	if c.keep {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete kind cluster %q: %w", c.name, err)
	}
	if err := c.provider.Delete(c.name, c.kubeconfig); err != nil {
		return fmt.Errorf("delete kind cluster %q: %w", c.name, err)
	}
	if c.tempDir != "" {
		if err := os.RemoveAll(c.tempDir); err != nil {
			return fmt.Errorf("remove %s: %w", c.tempDir, err)
		}
	}
	return nil
}
