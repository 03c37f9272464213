package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// UpgradeControlPlane runs what `kubeadm upgrade` does to this node's control plane: `kubeadm upgrade node phase
// control-plane`, which writes the static pod manifests again from the ClusterConfiguration stored in
// kube-system/kubeadm-config (every flag set only in a manifest is lost, kubernetes/kubeadm#2157) and waits for the
// kubelet to run the components it changed. The binaries stay at KubernetesVersion: the manifests are what an
// upgrade rewrites, the version is not what the e2e tests. Certificates are not renewed, etcd is not touched, and
// the node's kubeadm patches (the apiserver's grace period) apply as they did at init. Output goes to
// logs/kubeadm.log and is returned.
func (c *Cluster) UpgradeControlPlane(ctx context.Context) (string, error) {
	kubeadm := filepath.Join(c.opts.BinDir, "kubeadm")
	args := []string{"upgrade", "node", "phase", "control-plane", "--etcd-upgrade=false", "--certificate-renewal=false",
		"--patches", filepath.Join(c.opts.WorkDir, "kubeadm-patches"), "--v=1"}
	out, err := run(ctx, c.NetNSPath(), append([]string{kubeadm}, args...)...)
	if f, ferr := os.OpenFile(filepath.Join(c.logDir(), "kubeadm.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); ferr == nil {
		fmt.Fprintf(f, "$ kubeadm %s\n%s\n", strings.Join(args, " "), out)
		f.Close()
	}
	if err != nil {
		return out, fmt.Errorf("kubeadm upgrade node phase control-plane: %w", err)
	}
	return out, nil
}
