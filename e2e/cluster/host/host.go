// Package host is the e2e harness's "host" cluster: a real single-node Kubernetes bootstrapped by kubeadm on this
// machine, without Docker, systemd or a registry. The node is a network namespace (veth pair to the host, no
// default route) running Debian's containerd with a private config, a kubelet started by hand with the files kubeadm
// writes, and kube-proxy as a host process; images are built locally (e2e/images) and imported. Everything it
// starts or mounts is recorded in a state file, so Delete, or the next Up after a crash, removes all of it.
//
// One host cluster runs on a machine at a time (kubeadm's /etc/kubernetes is machine-wide): Up waits for a lock.
package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/irsa-anywhere/irsa/e2e/framework"
)

//go:embed templates
var templates embed.FS

// Network of the node. The addresses are private and exist only on the veth pair between the host and the node's
// network namespace; the pod and service ranges exist only inside that namespace.
const (
	HostIP      = "10.250.250.1"
	NodeIP      = "10.250.250.2"
	linkPrefix  = 30
	PodCIDR     = "10.244.0.0/16"
	PodSubnet   = "10.244.0.0/24"
	ServiceCIDR = "10.96.0.0/12"
	// APIServerServiceIP is the kubernetes Service's ClusterIP, which pods use to reach the apiserver.
	APIServerServiceIP = "10.96.0.1"
	// KubernetesVersion is the version of the binaries and of the kubeadm configuration.
	KubernetesVersion = "v1.37.2"
	netnsPrefix       = "irsa-e2e-"
	// peerNet is split into /30 links to peers: .4i+1 on the node, .4i+2 in peer i's namespace.
	peerNet   = "10.250.252."
	maxPeers  = 8
	cniBinDir = "/usr/lib/cni"
)

// Options configures Up. Zero values are the defaults.
type Options struct {
	// Name is the cluster name (kubeadm's clusterName, irsa's --cluster-name); default "irsa-e2e".
	Name string
	// WorkDir holds containerd's root and state, etcd's data, configs and logs; default /var/lib/irsa-e2e/<Name>.
	WorkDir string
	// BinDir holds kubeadm, kubelet and kube-proxy from hack/build-kubernetes.sh;
	// default $IRSA_CACHE/bin/k8s-v1.37.2 or ~/.cache/irsa/bin/k8s-v1.37.2.
	BinDir string
	// Images are image tarballs imported before kubeadm init; they must include the control plane, etcd and pause
	// images kubeadm expects (e2e/images.ClusterNames).
	Images []string
	// Logger receives progress lines; default: discarded.
	Logger *slog.Logger
	// Peers are network namespaces the node gets a direct link to, so that the node and every pod reach each
	// peer's Address (the AWS emulator's sandbox: PeerOf(backend)).
	Peers []Peer
	// APIServerGracePeriod is kube-apiserver's terminationGracePeriodSeconds, set with a kubeadm patch. An
	// apiserver whose manifest changes stops listening at once but only exits when the kubelet kills it at the end
	// of this period (it waits for open connections), so a restart takes the period plus ~11 s, and at least the
	// kubelet's fixed 10-15 s retry of a static pod waiting for its predecessor. Zero means 5 s (restart ~15-17 s);
	// -1 leaves kubeadm's default, 30 s (restart ~43 s), as on users' clusters.
	APIServerGracePeriod int64
	// LockTimeout is how long Up waits for another host cluster on this machine to go; default 10 minutes.
	LockTimeout time.Duration
}

// Peer is a network namespace with an address the node must reach.
type Peer struct {
	// NetNS is the namespace's name under /run/netns.
	NetNS string
	// Address is an IP in that namespace.
	Address string
}

// Networked is implemented by backends that live in a network namespace of their own, such as e2e/aws/moto
// started with Sandbox.
type Networked interface {
	NetNS() string
	Address() string
}

// PeerOf returns the Peer for a backend in a namespace of its own; false when v is not one (real AWS, moto on
// loopback).
func PeerOf(v any) (Peer, bool) {
	n, ok := v.(Networked)
	if !ok || n.NetNS() == "" {
		return Peer{}, false
	}
	return Peer{NetNS: n.NetNS(), Address: n.Address()}, true
}

// Phase is one timed step of Up or Delete.
type Phase struct {
	Name     string
	Duration time.Duration
}

// Cluster is a running host cluster. It implements framework.Cluster.
type Cluster struct {
	opts       Options
	st         *state
	lock       *lock
	kubeconfig string
	mu         sync.Mutex
	timings    []Phase
	log        *slog.Logger
}

var _ framework.Cluster = (*Cluster)(nil)

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = "irsa-e2e"
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join(StateDir, o.Name)
	}
	if o.BinDir == "" {
		cache := os.Getenv("IRSA_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return o, fmt.Errorf("find cache dir: %w", err)
			}
			cache = filepath.Join(home, ".cache", "irsa")
		}
		o.BinDir = filepath.Join(cache, "bin", "k8s-"+KubernetesVersion)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.APIServerGracePeriod == 0 {
		o.APIServerGracePeriod = 5
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 10 * time.Minute
	}
	return o, nil
}

// validate checks everything Up needs before it changes anything.
func (o Options) validate() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("the host cluster needs root (network namespaces, mounts, kubelet)"))
	}
	if !validName(o.Name) {
		errs = append(errs, fmt.Errorf("cluster name %q: want 1-20 characters of a-z, 0-9 and '-'", o.Name))
	}
	if !filepath.IsAbs(o.WorkDir) || filepath.Clean(o.WorkDir) == "/" {
		errs = append(errs, fmt.Errorf("work dir %q must be an absolute path below /", o.WorkDir))
	}
	for _, b := range []string{"kubeadm", "kubelet", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			errs = append(errs, fmt.Errorf("%s missing in %s: run hack/build-kubernetes.sh", b, o.BinDir))
		}
	}
	for _, t := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "ip", "iptables", "iptables-save", "conntrack", "mount"} {
		if _, err := exec.LookPath(t); err != nil {
			errs = append(errs, fmt.Errorf("%s not found: run hack/e2e/install-deps.sh", t))
		}
	}
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		errs = append(errs, fmt.Errorf("CNI bridge plugin missing in %s: run hack/e2e/install-deps.sh", cniBinDir))
	}
	if len(o.Images) == 0 {
		errs = append(errs, errors.New("no image tarballs: build them with e2e/images.Build (ClusterNames)"))
	}
	for _, img := range o.Images {
		if _, err := os.Stat(img); err != nil {
			errs = append(errs, fmt.Errorf("image tarball %s: %w", img, err))
		}
	}
	if len(o.Peers) > maxPeers {
		errs = append(errs, fmt.Errorf("%d peers: at most %d", len(o.Peers), maxPeers))
	}
	for _, p := range o.Peers {
		if _, err := os.Stat("/run/netns/" + p.NetNS); p.NetNS == "" || err != nil {
			errs = append(errs, fmt.Errorf("peer network namespace %q: not found under /run/netns", p.NetNS))
		}
		if ip := net.ParseIP(p.Address); ip == nil || ip.To4() == nil {
			errs = append(errs, fmt.Errorf("peer %s address %q: want an IPv4 address", p.NetNS, p.Address))
		}
	}
	return errors.Join(errs...)
}

func validName(n string) bool {
	if len(n) == 0 || len(n) > 20 || n[0] == '-' || n[len(n)-1] == '-' {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Up brings up a single-node kubeadm cluster and waits until the node is Ready, the control-plane pods run,
// kube-proxy routes the apiserver's service IP and the default ServiceAccount exists.
//
// Up returns a non-nil *Cluster even when it fails half-way: register `defer c.Delete(ctx)` (and CollectLogs on
// failure) before checking the error, so a half-started node still goes away.
func Up(ctx context.Context, opts Options) (*Cluster, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("host cluster %q: %w", opts.Name, err)
	}
	c := &Cluster{opts: opts, log: opts.Logger}
	c.kubeconfig = filepath.Join(opts.WorkDir, "kubeconfig")
	err = c.up(ctx)
	if err != nil {
		err = fmt.Errorf("host cluster %q up: %w (logs in %s)", opts.Name, err, filepath.Join(opts.WorkDir, "logs"))
	}
	return c, err
}

func (c *Cluster) phase(name string, f func() error) error {
	start := time.Now()
	c.log.Info("start " + name)
	err := f()
	d := time.Since(start)
	c.mu.Lock()
	c.timings = append(c.timings, Phase{Name: name, Duration: d})
	c.mu.Unlock()
	if err != nil {
		c.log.Error(name+" failed", "duration", d.Round(time.Millisecond), "error", err)
		return err
	}
	c.log.Info("done "+name, "duration", d.Round(time.Millisecond))
	return nil
}

func (c *Cluster) up(ctx context.Context) error {
	o := c.opts
	err := c.phase("lock", func() error {
		var err error
		c.lock, err = acquireLock(time.Now().Add(o.LockTimeout), func() {
			c.log.Info("waiting for another host cluster on this machine to go", "lock", filepath.Join(StateDir, "lock"))
		})
		return err
	})
	if err != nil {
		return err
	}
	if err := c.phase("clean stale runs", func() error { return CleanStale(ctx, c.log) }); err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(o.Name))
	c.st = &state{
		Name: o.Name, NetNS: netnsPrefix + o.Name, HostVeth: "ie2e" + hex.EncodeToString(sum[:])[:8],
		WorkDir: o.WorkDir, CRISocket: filepath.Join(o.WorkDir, "containerd", "containerd.sock"),
		KubeadmBin: filepath.Join(o.BinDir, "kubeadm"), file: stateFile(o.Name),
	}
	if _, err := os.Stat("/etc/kubernetes/admin.conf"); err == nil {
		return errors.New("/etc/kubernetes/admin.conf exists but no host cluster state claims it: this machine runs " +
			"another Kubernetes node; remove it (kubeadm reset -f) before running the host cluster")
	}
	c.st.recordBaseline()
	if err := c.st.save(); err != nil {
		return err
	}
	for _, d := range []string{"logs", "containerd", "cni/net.d", "cni/ipam", "etcd"} {
		if err := os.MkdirAll(filepath.Join(o.WorkDir, d), 0o755); err != nil {
			return err
		}
	}
	if err := c.phase("network namespace", func() error { return c.setupNetwork(ctx) }); err != nil {
		return err
	}
	if err := c.phase("containerd", func() error { return c.startContainerd(ctx) }); err != nil {
		return err
	}
	if err := c.phase("import images", func() error { return c.LoadImages(ctx, o.Images...) }); err != nil {
		return err
	}
	if err := c.phase("kubeadm init", func() error { return c.kubeadmInit(ctx) }); err != nil {
		return err
	}
	return c.phase("wait ready", func() error { return c.waitReady(ctx) })
}

// Name implements framework.Cluster.
func (c *Cluster) Name() string { return c.opts.Name }

// Type implements framework.Cluster: the node is plain kubeadm.
func (c *Cluster) Type() string { return "kubeadm" }

// Kubeconfig implements framework.Cluster: an admin kubeconfig whose server is https://NodeIP:6443, reachable
// from the host through the veth pair.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// NetNS is the name of the node's network namespace (under /run/netns).
func (c *Cluster) NetNS() string { return c.st.NetNS }

// NetNSPath is the node's network namespace for `nsenter --net=`.
func (c *Cluster) NetNSPath() string { return "/run/netns/" + c.st.NetNS }

// NodeIP is the node's address: reachable from the host and from every pod.
func (c *Cluster) NodeIP() string { return NodeIP }

// WorkDir holds the node's configs, data and logs.
func (c *Cluster) WorkDir() string { return c.opts.WorkDir }

// Timings are the durations of Up's (and Delete's) phases so far, in order.
func (c *Cluster) Timings() []Phase {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Phase(nil), c.timings...)
}

// LoadImages implements framework.Cluster: it imports image tarballs into containerd's k8s.io namespace.
func (c *Cluster) LoadImages(ctx context.Context, tarballs ...string) error {
	errs := make([]error, len(tarballs))
	var wg sync.WaitGroup
	for i, t := range tarballs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := run(ctx, "", "ctr", "--address", c.st.CRISocket, "-n", "k8s.io", "images", "import", t); err != nil {
				errs[i] = fmt.Errorf("import image tarball %s: %w", t, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func render(name string, data any) ([]byte, error) {
	t, err := template.ParseFS(templates, "templates/"+name)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Option("missingkey=error").Execute(&b, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}

func writeTemplate(path, name string, data any) error {
	b, err := render(name, data)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// trace returns a short description of which processes of the node have exited, for error messages.
func (c *Cluster) exitedProcs() string {
	var names []string
	for _, p := range c.st.Procs {
		if p.exited() {
			names = append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " (exited: " + strings.Join(names, ", ") + ")"
}
