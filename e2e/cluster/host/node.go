package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// setupNetwork creates the node's network namespace and the veth pair: HostIP on the host side, NodeIP on the
// node's eth0, a route for the service range (kube-proxy's DNAT needs one) and no default route, so nothing in
// the node can reach beyond the host's end of the pair.
func (c *Cluster) setupNetwork(ctx context.Context) error {
	ns, hv, nsPath := c.st.NetNS, c.st.HostVeth, c.NetNSPath()
	if out, err := run(ctx, "", "ip", "-o", "addr", "show", "to", HostIP+"/32"); err == nil && strings.TrimSpace(out) != "" {
		return fmt.Errorf("address %s is already on this machine: %s", HostIP, strings.TrimSpace(out))
	}
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", hv, "type", "veth", "peer", "name", hv + "n"},
		{"ip", "link", "set", hv + "n", "netns", ns},
		{"ip", "addr", "add", fmt.Sprintf("%s/%d", HostIP, linkPrefix), "dev", hv},
		{"ip", "link", "set", hv, "up"},
	}
	inNS := [][]string{
		{"ip", "link", "set", hv + "n", "name", "eth0"},
		{"ip", "addr", "add", fmt.Sprintf("%s/%d", NodeIP, linkPrefix), "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "link", "set", "lo", "up"},
		{"ip", "route", "add", ServiceCIDR, "dev", "eth0", "src", NodeIP},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"},
	}
	for i, s := range steps {
		if _, err := run(ctx, "", s...); err != nil {
			return err
		}
		if i == 0 {
			if err := c.st.save(); err != nil {
				return err
			}
		}
	}
	for _, s := range inNS {
		if _, err := run(ctx, nsPath, s...); err != nil {
			return err
		}
	}
	for i, p := range c.opts.Peers {
		if err := c.linkPeer(ctx, i, p); err != nil {
			return err
		}
	}
	return nil
}

// linkPeer connects the node to a peer namespace with a veth pair: the node routes the peer's address over it,
// the peer routes the pod range and the node IP back. The pair goes when either namespace is deleted.
func (c *Cluster) linkPeer(ctx context.Context, i int, p Peer) error {
	nodeEnd, peerEnd := fmt.Sprintf("%sp%d", c.st.HostVeth, i), fmt.Sprintf("%sq%d", c.st.HostVeth, i)
	nodeIP, peerIP := fmt.Sprintf("%s%d", peerNet, 4*i+1), fmt.Sprintf("%s%d", peerNet, 4*i+2)
	peerPath := "/run/netns/" + p.NetNS
	steps := []struct {
		ns   string
		argv []string
	}{
		{"", []string{"ip", "link", "add", nodeEnd, "type", "veth", "peer", "name", peerEnd}},
		{"", []string{"ip", "link", "set", nodeEnd, "netns", c.st.NetNS}},
		{"", []string{"ip", "link", "set", peerEnd, "netns", p.NetNS}},
		{c.NetNSPath(), []string{"ip", "addr", "add", nodeIP + "/30", "dev", nodeEnd}},
		{c.NetNSPath(), []string{"ip", "link", "set", nodeEnd, "up"}},
		{c.NetNSPath(), []string{"ip", "route", "add", p.Address + "/32", "via", peerIP}},
		{peerPath, []string{"ip", "addr", "add", peerIP + "/30", "dev", peerEnd}},
		{peerPath, []string{"ip", "link", "set", peerEnd, "up"}},
		{peerPath, []string{"ip", "route", "replace", PodCIDR, "via", nodeIP}},
		{peerPath, []string{"ip", "route", "replace", NodeIP + "/32", "via", nodeIP}},
	}
	for _, s := range steps {
		if _, err := run(ctx, s.ns, s.argv...); err != nil {
			return fmt.Errorf("link node to peer %s (%s): %w", p.NetNS, p.Address, err)
		}
	}
	return nil
}

func (c *Cluster) startContainerd(ctx context.Context) error {
	dir := filepath.Join(c.opts.WorkDir, "containerd")
	cfg := filepath.Join(dir, "config.toml")
	err := writeTemplate(cfg, "containerd.toml", map[string]string{
		"Dir": dir, "Socket": c.st.CRISocket, "PauseImage": "registry.k8s.io/pause:3.10.2",
		"CNIBinDir": cniBinDir, "CNIConfDir": filepath.Join(c.opts.WorkDir, "cni", "net.d"),
	})
	if err != nil {
		return err
	}
	// The CNI config is in place before the kubelet starts, so the node turns Ready as soon as it registers.
	err = writeTemplate(filepath.Join(c.opts.WorkDir, "cni", "net.d", "10-irsa-e2e.conflist"), "cni.conflist", map[string]string{
		"IPAMDir": filepath.Join(c.opts.WorkDir, "cni", "ipam"), "PodSubnet": PodSubnet,
	})
	if err != nil {
		return err
	}
	p, err := startInNetNS(c.NetNSPath(), c.logDir(), "containerd", nil, "containerd", "--config", cfg)
	if err != nil {
		return err
	}
	c.st.Procs = append(c.st.Procs, p)
	if err := c.st.save(); err != nil {
		return err
	}
	return poll(ctx, 30*time.Second, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("containerd exited; see %s", filepath.Join(c.logDir(), "containerd.log"))
		}
		_, err := run(ctx, "", "ctr", "--address", c.st.CRISocket, "version")
		return err == nil, nil
	})
}

func (c *Cluster) logDir() string { return filepath.Join(c.opts.WorkDir, "logs") }

func (c *Cluster) nodeName() string { return c.opts.Name + "-control-plane" }

// kubeadmInit runs the phases that write certificates, kubeconfigs and the kubelet's files, starts the kubelet
// with those files (kubeadm would ask systemd), runs the rest of init, restarts the kubelet once to pick up the
// rotated client certificate (kubelet-finalize) and starts kube-proxy.
func (c *Cluster) kubeadmInit(ctx context.Context) error {
	patches := filepath.Join(c.opts.WorkDir, "kubeadm-patches")
	if err := os.MkdirAll(patches, 0o755); err != nil {
		return err
	}
	if c.opts.APIServerGracePeriod > 0 {
		patch := fmt.Sprintf("spec:\n  terminationGracePeriodSeconds: %d\n", c.opts.APIServerGracePeriod)
		if err := os.WriteFile(filepath.Join(patches, "kube-apiserver+strategic.yaml"), []byte(patch), 0o644); err != nil {
			return err
		}
	}
	cfg := filepath.Join(c.opts.WorkDir, "kubeadm.yaml")
	err := writeTemplate(cfg, "kubeadm.yaml", map[string]string{
		"Name": c.opts.Name, "NodeName": c.nodeName(), "NodeIP": NodeIP, "CRISocket": c.st.CRISocket,
		"KubernetesVersion": KubernetesVersion, "PodCIDR": PodCIDR, "ServiceCIDR": ServiceCIDR,
		"EtcdDir": filepath.Join(c.opts.WorkDir, "etcd"), "PatchesDir": patches,
	})
	if err != nil {
		return err
	}
	kubeadm := filepath.Join(c.opts.BinDir, "kubeadm")
	logf, err := os.OpenFile(filepath.Join(c.logDir(), "kubeadm.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	kubeadmRun := func(args ...string) error {
		out, err := run(ctx, c.NetNSPath(), append([]string{kubeadm}, args...)...)
		fmt.Fprintf(logf, "$ kubeadm %s\n%s\n", strings.Join(args, " "), out)
		if err != nil {
			return fmt.Errorf("kubeadm %s: %w", args[0], err)
		}
		return nil
	}
	for _, ph := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}, {"kubelet-start"}} {
		if err := kubeadmRun(append(append([]string{"init", "phase"}, ph...), "--config", cfg)...); err != nil {
			return err
		}
	}
	if err := c.startKubelet(); err != nil {
		return err
	}
	if err := kubeadmRun("init", "--config", cfg); err != nil {
		return fmt.Errorf("%w%s", err, c.exitedProcs())
	}
	if err := c.restartKubelet(); err != nil {
		return err
	}
	return c.startKubeProxy()
}

// startKubelet runs the kubelet the way kubeadm's systemd drop-in does.
func (c *Cluster) startKubelet() error {
	b, err := os.ReadFile("/var/lib/kubelet/kubeadm-flags.env")
	if err != nil {
		return fmt.Errorf("read kubelet flags written by kubeadm: %w", err)
	}
	args := []string{filepath.Join(c.opts.BinDir, "kubelet"),
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml"}
	args = append(args, parseKubeadmFlags(string(b))...)
	p, err := startInNetNS(c.NetNSPath(), c.logDir(), "kubelet", nil, args...)
	if err != nil {
		return err
	}
	c.st.Procs = append(c.st.Procs, p)
	return c.st.save()
}

// parseKubeadmFlags returns the flags in kubeadm-flags.env: KUBELET_KUBEADM_ARGS="--a=b --c=d".
func parseKubeadmFlags(env string) []string {
	for _, line := range strings.Split(env, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "KUBELET_KUBEADM_ARGS="); ok {
			return strings.Fields(strings.Trim(v, `"'`))
		}
	}
	return nil
}

func (c *Cluster) restartKubelet() error {
	var kept []*proc
	for _, p := range c.st.Procs {
		if p.Name == "kubelet" {
			if err := p.stop(10 * time.Second); err != nil {
				return err
			}
			continue
		}
		kept = append(kept, p)
	}
	c.st.Procs = kept
	return c.startKubelet()
}

func (c *Cluster) startKubeProxy() error {
	cfg := filepath.Join(c.opts.WorkDir, "kube-proxy.yaml")
	err := writeTemplate(cfg, "kube-proxy.yaml", map[string]string{"PodCIDR": PodCIDR, "NodeName": c.nodeName(), "NodeIP": NodeIP})
	if err != nil {
		return err
	}
	p, err := startInNetNS(c.NetNSPath(), c.logDir(), "kube-proxy", nil, filepath.Join(c.opts.BinDir, "kube-proxy"), "--config", cfg)
	if err != nil {
		return err
	}
	c.st.Procs = append(c.st.Procs, p)
	if err := c.st.save(); err != nil {
		return err
	}
	// The kubeconfig for callers; admin.conf's server is already https://NodeIP:6443 (controlPlaneEndpoint).
	b, err := os.ReadFile("/etc/kubernetes/admin.conf")
	if err != nil {
		return err
	}
	return os.WriteFile(c.kubeconfig, b, 0o600)
}

// waitReady waits for what a test needs before it creates its first pod.
func (c *Cluster) waitReady(ctx context.Context) error {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", c.kubeconfig, err)
	}
	rc.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	// Running, not Ready: after the kubelet restart each static pod's startup probe waits its 10 s initial delay
	// again, and nothing a test does first needs that; the apiserver answering, the default ServiceAccount (the
	// controller-manager works) and kube-proxy's rule are checked directly.
	wantPods := map[string]bool{"etcd": true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true}
	var last string
	err = poll(ctx, 3*time.Minute, func() (bool, error) {
		if msg := c.exitedProcs(); msg != "" {
			return false, errors.New("node process died" + msg)
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, c.nodeName(), metav1.GetOptions{})
		if err != nil {
			last = "node: " + err.Error()
			return false, nil
		}
		if !nodeReady(node) {
			last = "node not Ready"
			return false, nil
		}
		pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "tier=control-plane"})
		if err != nil {
			last = "pods: " + err.Error()
			return false, nil
		}
		running := 0
		for _, p := range pods.Items {
			if wantPods[p.Labels["component"]] && p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running < len(wantPods) {
			last = fmt.Sprintf("%d of %d control-plane pods running", running, len(wantPods))
			return false, nil
		}
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			last = "default service account: " + err.Error()
			return false, nil
		}
		out, err := run(ctx, c.NetNSPath(), "iptables-save", "-t", "nat")
		if err != nil || !strings.Contains(out, "-d "+APIServerServiceIP+"/32") {
			last = "kube-proxy has no rule for " + APIServerServiceIP
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for node %s: %w (last: %s)", c.nodeName(), err, last)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// poll calls f every 200ms until it returns true or an error, or the timeout or ctx ends.
func poll(ctx context.Context, timeout time.Duration, f func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %s: %w", timeout, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
