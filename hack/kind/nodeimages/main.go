// Command nodeimages writes the image tarballs that hack/kind/build-node.sh bakes into irsa's kind node image, so a
// kind cluster starts without pulling anything: kube-apiserver, kube-controller-manager, kube-scheduler, etcd and
// pause as e2e/images builds them for the host cluster, and kube-proxy with the iptables binaries it runs. kind runs
// kube-proxy as kubeadm's DaemonSet, which execs iptables inside its own container; those binaries and their
// libraries are copied from the node's Debian rootfs.
//
//	go run ./hack/kind/nodeimages -rootfs DIR -o DIR
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/irsa-anywhere/irsa/e2e/images"
	"github.com/irsa-anywhere/irsa/internal/ociimage"
)

// iptablesMulti is the multi-call binary behind every iptables command (nft backend, Debian's default); it picks
// the command from the name it runs as.
const iptablesMulti = "/usr/sbin/xtables-nft-multi"

// iptablesCommands are the names kube-proxy runs.
var iptablesCommands = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nodeimages:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nodeimages", flag.ContinueOnError)
	rootfs := fs.String("rootfs", "", "the node's Debian rootfs, with iptables installed (required)")
	out := fs.String("o", "", "directory to write the image tarballs into (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rootfs == "" || *out == "" {
		return fmt.Errorf("-rootfs %q and -o %q are both required", *rootfs, *out)
	}
	if _, err := os.Stat(filepath.Join(*rootfs, iptablesMulti)); err != nil {
		return fmt.Errorf("rootfs %s has no %s: %w", *rootfs, iptablesMulti, err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	imgs, err := images.Build(ctx, images.Options{}, images.ClusterNames()...)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if err := copyFile(img.Tarball, filepath.Join(*out, img.Name+".tar")); err != nil {
			return fmt.Errorf("image %s: %w", img.Ref, err)
		}
		fmt.Printf("%s %s\n", img.Ref, filepath.Join(*out, img.Name+".tar"))
	}
	spec, err := kubeProxy(ctx, *rootfs)
	if err != nil {
		return err
	}
	dst := filepath.Join(*out, images.KubeProxy+".tar")
	if err := ociimage.WriteTarball(dst, spec); err != nil {
		return err
	}
	fmt.Printf("%s %s\n", spec.Ref, dst)
	return nil
}

// kubeProxy is the kube-proxy image under the name kubeadm's DaemonSet runs, with iptables from rootfs.
func kubeProxy(ctx context.Context, rootfs string) (ociimage.Spec, error) {
	cache := os.Getenv("IRSA_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ociimage.Spec{}, err
		}
		cache = filepath.Join(home, ".cache", "irsa")
	}
	bin := filepath.Join(cache, "bin", "k8s-"+images.KubernetesVersion, "kube-proxy")
	if _, err := os.Stat(bin); err != nil {
		return ociimage.Spec{}, fmt.Errorf("kube-proxy binary missing: run hack/build-kubernetes.sh: %w", err)
	}
	files := []ociimage.File{{Path: "/usr/local/bin/kube-proxy", Source: bin}}

	extDir, err := inRootfs(ctx, rootfs, "readlink", "-f", "/usr/lib/x86_64-linux-gnu/xtables")
	if err != nil {
		return ociimage.Spec{}, err
	}
	exts, err := filepath.Glob(filepath.Join(rootfs, extDir, "*.so"))
	if err != nil {
		return ociimage.Spec{}, err
	}
	objects := []string{iptablesMulti}
	for _, e := range exts {
		p := path.Join(extDir, filepath.Base(e))
		objects = append(objects, p)
		files = append(files, ociimage.File{Path: p, Source: e, Mode: 0o644})
	}
	libs := map[string]bool{}
	for _, o := range objects {
		deps, err := sharedLibraries(ctx, rootfs, o)
		if err != nil {
			return ociimage.Spec{}, err
		}
		for _, d := range deps {
			libs[d] = true
		}
	}
	for _, l := range slices.Sorted(func(yield func(string) bool) {
		for l := range libs {
			if !yield(l) {
				return
			}
		}
	}) {
		real, err := inRootfs(ctx, rootfs, "readlink", "-f", l)
		if err != nil {
			return ociimage.Spec{}, err
		}
		files = append(files, ociimage.File{Path: l, Source: filepath.Join(rootfs, real), Mode: 0o755})
	}
	for _, c := range iptablesCommands {
		files = append(files, ociimage.File{Path: "/usr/sbin/" + c, Source: filepath.Join(rootfs, iptablesMulti)})
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc/protocols")); err == nil {
		files = append(files, ociimage.File{Path: "/etc/protocols", Source: filepath.Join(rootfs, "etc/protocols"), Mode: 0o644})
	}
	return ociimage.Spec{
		Ref:        "registry.k8s.io/kube-proxy:" + images.KubernetesVersion,
		Files:      files,
		Entrypoint: []string{"/usr/local/bin/kube-proxy"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}, nil
}

// sharedLibraries lists the paths ldd reports for object inside rootfs.
func sharedLibraries(ctx context.Context, rootfs, object string) ([]string, error) {
	out, err := inRootfs(ctx, rootfs, "ldd", object)
	if err != nil {
		return nil, err
	}
	libs, err := parseLDD(out)
	if err != nil {
		return nil, fmt.Errorf("libraries of %s in %s: %w", object, rootfs, err)
	}
	return libs, nil
}

// parseLDD reads ldd's output: "libx.so.1 => /path/libx.so.1 (0x...)" for a library found by name, "/path (0x...)"
// for the dynamic loader; the vDSO has no path and is skipped. A library ldd could not find is an error: the image
// would not run.
func parseLDD(out string) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("ldd: %s not found", f[0])
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, sc.Err()
}

// inRootfs runs a command chrooted into rootfs: symlinks there (merged /usr, /lib64) are absolute.
func inRootfs(ctx context.Context, rootfs string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "chroot", append([]string{rootfs}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("chroot %s %s: %w: %s", rootfs, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
