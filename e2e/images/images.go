// Package images builds, without a registry or a daemon, every image the host e2e cluster runs: the control plane
// under the names and tags kubeadm v1.37.2 expects, pause, the pod identity webhook, irsa and a small HTTPS probe.
// Each is a static binary on an empty base (internal/ociimage), written as a tarball under a cache directory and
// rebuilt only when its binary or spec changes.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/irsa-anywhere/irsa/internal/ociimage"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
)

// KubernetesVersion is the version of the control-plane binaries and image tags.
const KubernetesVersion = "v1.37.2"

// Image names accepted by Build.
const (
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	KubeProxy             = "kube-proxy"
	Etcd                  = "etcd"
	Pause                 = "pause"
	Webhook               = "pod-identity-webhook"
	Irsa                  = "irsa"
	HTTPGet               = "httpget"
)

// Refs kubeadm v1.37.2 expects (`kubeadm config images list`) and the refs of our own images.
const (
	PauseRef   = "registry.k8s.io/pause:3.10.2"
	EtcdRef    = "registry.k8s.io/etcd:3.7.0-0"
	HTTPGetRef = "irsa.local/e2e/httpget:v1"
	// IrsaRef and WebhookRef are e2e-only names under a registry that does not exist: irsa gets them with --image,
	// --verify-image and --webhook-image. Built under the default names, a scenario would pass on a cluster that
	// never pulled a default, which is how a default pointing nowhere went unnoticed.
	IrsaRef    = "irsa.local/e2e/irsa:e2e"
	WebhookRef = "irsa.local/e2e/amazon-eks-pod-identity-webhook:e2e"
)

// ClusterNames are the images the host node runs: kubeadm's control plane, etcd and pause. kube-proxy runs as a
// host process there (kubeadm's kube-proxy addon is skipped), so its image is not among them.
func ClusterNames() []string {
	return []string{KubeAPIServer, KubeControllerManager, KubeScheduler, Etcd, Pause}
}

// AllNames are every image this package builds: ClusterNames, kube-proxy (for nodes that run it as kubeadm's
// DaemonSet) and the images the IRSA scenario runs.
func AllNames() []string {
	return append(ClusterNames(), KubeProxy, Webhook, Irsa, HTTPGet)
}

// Options says where binaries come from and where images go.
type Options struct {
	// CacheDir holds the tarballs and the Go binaries built for them; default $IRSA_CACHE/images, else
	// ~/.cache/irsa/images.
	CacheDir string
	// BinDir holds kube-*, etcd and amazon-eks-pod-identity-webhook from hack/build-kubernetes.sh; default
	// $IRSA_CACHE/bin/k8s-v1.37.2.
	BinDir string
	// RepoRoot is the irsa repository, for the pause, httpget and irsa main packages; default: found from the
	// working directory by looking for go.mod upwards.
	RepoRoot string
}

// Image is a built image tarball.
type Image struct {
	Name    string
	Ref     string
	Tarball string
	// Cached is true when the tarball was already up to date.
	Cached bool
}

func (o Options) withDefaults() (Options, error) {
	cache := os.Getenv("IRSA_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return o, fmt.Errorf("find cache dir: %w", err)
		}
		cache = filepath.Join(home, ".cache", "irsa")
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(cache, "images")
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join(cache, "bin", "k8s-"+KubernetesVersion)
	}
	if o.RepoRoot == "" {
		root, err := RepoRoot()
		if err != nil {
			return o, err
		}
		o.RepoRoot = root
	}
	return o, nil
}

// RepoRoot finds the irsa repository root from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/irsa-anywhere/irsa\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find repository root: no go.mod of github.com/irsa-anywhere/irsa above %s", dir)
		}
	}
}

// Build builds the named images (AllNames when none are given) and returns their tarballs in the same order.
func Build(ctx context.Context, opts Options, names ...string) ([]Image, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		names = AllNames()
	}
	specs := make([]ociimage.Spec, len(names))
	for i, n := range names {
		if specs[i], err = spec(ctx, opts, n); err != nil {
			return nil, err
		}
	}
	out := make([]Image, len(names))
	for i, s := range specs {
		img := Image{Name: names[i], Ref: s.Ref, Tarball: filepath.Join(opts.CacheDir, names[i]+".tar")}
		key, err := cacheKey(s)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.Ref, err)
		}
		keyFile := img.Tarball + ".key"
		if b, err := os.ReadFile(keyFile); err == nil && string(b) == key {
			if _, err := os.Stat(img.Tarball); err == nil {
				img.Cached = true
				out[i] = img
				continue
			}
		}
		if err := ociimage.WriteTarball(img.Tarball, s); err != nil {
			return nil, err
		}
		if err := os.WriteFile(keyFile, []byte(key), 0o644); err != nil {
			return nil, fmt.Errorf("image %s: write cache key: %w", s.Ref, err)
		}
		out[i] = img
	}
	return out, nil
}

// spec describes the named image, building its Go binary first when it is one of ours.
func spec(ctx context.Context, o Options, name string) (ociimage.Spec, error) {
	bin := func(file string) (string, error) {
		p := filepath.Join(o.BinDir, file)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("image %s: binary %s missing: run hack/build-kubernetes.sh: %w", name, p, err)
		}
		return p, nil
	}
	switch name {
	case KubeAPIServer, KubeControllerManager, KubeScheduler, KubeProxy, Etcd:
		p, err := bin(name)
		if err != nil {
			return ociimage.Spec{}, err
		}
		ref := "registry.k8s.io/" + name + ":" + KubernetesVersion
		if name == Etcd {
			ref = EtcdRef
		}
		target := "/usr/local/bin/" + name
		return ociimage.Spec{Ref: ref, Files: []ociimage.File{{Path: target, Source: p}}, Entrypoint: []string{target}}, nil
	case Webhook:
		p, err := bin("amazon-eks-pod-identity-webhook")
		if err != nil {
			return ociimage.Spec{}, err
		}
		// Same layout as the upstream image: the deployment runs /webhook.
		return ociimage.Spec{Ref: WebhookRef, Files: []ociimage.File{{Path: "/webhook", Source: p}}, Entrypoint: []string{"/webhook"}}, nil
	case Pause:
		p, err := goBuild(ctx, o, "./e2e/images/pause", "pause")
		if err != nil {
			return ociimage.Spec{}, err
		}
		return ociimage.Spec{Ref: PauseRef, Files: []ociimage.File{{Path: "/pause", Source: p}}, Entrypoint: []string{"/pause"}, User: "65535:65535"}, nil
	case HTTPGet:
		p, err := goBuild(ctx, o, "./e2e/images/httpget", "httpget")
		if err != nil {
			return ociimage.Spec{}, err
		}
		return ociimage.Spec{Ref: HTTPGetRef, Files: []ociimage.File{{Path: "/usr/local/bin/httpget", Source: p}}, Entrypoint: []string{"/usr/local/bin/httpget"}, User: "65532:65532"}, nil
	case Irsa:
		p, err := goBuild(ctx, o, "./cmd/irsa", "irsa")
		if err != nil {
			return ociimage.Spec{}, err
		}
		// The node pod runs apiserver.BinaryPath (/usr/local/bin/irsa) as root by its own securityContext; the verify Job runs
		// the probe subcommand as the image's user, nonroot like `make image`'s.
		return ociimage.Spec{Ref: IrsaRef, Files: []ociimage.File{{Path: apiserver.BinaryPath, Source: p}}, Entrypoint: []string{apiserver.BinaryPath}, User: "65532:65532"}, nil
	}
	return ociimage.Spec{}, fmt.Errorf("unknown image %q: want one of %s", name, strings.Join(AllNames(), ", "))
}

// goBuild builds a static binary of pkg (relative to the repository root) into the cache dir.
func goBuild(ctx context.Context, o Options, pkg, out string) (string, error) {
	dst := filepath.Join(o.CacheDir, "bin", out)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", dst, pkg)
	cmd.Dir = o.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", pkg, o.RepoRoot, err, b)
	}
	return dst, nil
}

// cacheKey is a hash of the spec with every source file replaced by its content hash.
func cacheKey(s ociimage.Spec) (string, error) {
	h := sha256.New()
	files := s.Files
	s.Files = nil
	if err := json.NewEncoder(h).Encode(s); err != nil {
		return "", err
	}
	for _, f := range files {
		fmt.Fprintf(h, "%s %o %x\n", f.Path, f.Mode, f.Data)
		if f.Source == "" {
			continue
		}
		src, err := os.Open(f.Source)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, src)
		src.Close()
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", f.Source, err)
		}
	}
	return "v1 " + hex.EncodeToString(h.Sum(nil)), nil
}
