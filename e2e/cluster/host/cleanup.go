package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Delete implements framework.Cluster: it stops the node and removes everything Up made: processes (by PID),
// containers, mounts, network namespaces, directories, cgroups and the state file. It is safe to call on a
// Cluster whose Up failed, and twice.
func (c *Cluster) Delete(ctx context.Context) error {
	if c == nil || c.st == nil {
		if c != nil {
			c.lock.release()
		}
		return nil
	}
	err := c.phase("teardown", func() error { return teardown(ctx, c.st, c.log) })
	// On failure the state file stays: the next Up (or Down) finishes the job, so the lock can go either way.
	c.lock.release()
	if err == nil {
		c.st = nil
	}
	return err
}

// CleanStale tears down the nodes of earlier runs that did not call Delete (crashed or killed tests), as recorded
// in StateDir. Up calls it after taking the lock, so it never touches a running cluster.
func CleanStale(ctx context.Context, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	states, err := loadStates()
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range states {
		log.Info("cleaning up a host cluster left by an earlier run", "name", s.Name, "state", s.file)
		errs = append(errs, teardown(ctx, s, log))
	}
	return errors.Join(errs...)
}

func teardown(ctx context.Context, s *state, log *slog.Logger) error {
	var errs []error
	note := func(err error) {
		if err != nil {
			log.Warn("teardown", "error", err)
			errs = append(errs, err)
		}
	}
	nsPath := "/run/netns/" + s.NetNS
	_, nsErr := os.Stat(nsPath)
	nsExists := nsErr == nil

	// 1. The kubelet first, so it restarts nothing while the rest goes; kube-proxy with it.
	for _, name := range []string{"kube-proxy", "kubelet"} {
		for _, p := range s.Procs {
			if p.Name == name {
				note(p.stop(10 * time.Second))
			}
		}
	}
	// 2. kubeadm reset removes the pods through the CRI while containerd still runs, and kubeadm's files.
	if ctrd := s.proc("containerd"); ctrd != nil && ctrd.alive() && nsExists {
		rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		out, err := run(rctx, nsPath, s.KubeadmBin, "reset", "-f", "--cri-socket", "unix://"+s.CRISocket)
		cancel()
		_ = os.WriteFile(filepath.Join(s.WorkDir, "logs", "kubeadm-reset.log"), []byte(out), 0o644)
		if err != nil {
			log.Warn("kubeadm reset failed; removing its files directly", "error", err)
		}
	}
	for _, p := range s.Procs {
		note(p.stop(15 * time.Second))
	}
	// 3. Whatever still runs in the node's namespace (runc shims, host-network containers, an emulator a test
	// started there) and in the pods' cgroups.
	if nsExists {
		pids, err := pidsInNetNS(nsPath)
		note(err)
		note(killPIDs(pids, 10*time.Second))
	}
	for _, cg := range s.Cgroups {
		note(killCgroup(cg))
	}
	// 4. Mounts: kubelet volumes, containerd rootfs and shm, pods' network namespaces.
	newNetNS := s.newEntries("/run/netns")
	roots := []string{s.WorkDir, "/var/lib/kubelet"}
	for _, n := range newNetNS {
		if strings.HasPrefix(filepath.Base(n), "cni-") {
			roots = append(roots, n)
		}
	}
	mounts, err := mountsUnder(roots...)
	note(err)
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			note(fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	// 5. Network namespaces (the veth pair goes with the node's), then the host side if it survived.
	for _, n := range newNetNS {
		if strings.HasPrefix(filepath.Base(n), "cni-") {
			_, err := run(ctx, "", "ip", "netns", "delete", filepath.Base(n))
			note(err)
		}
	}
	if nsExists {
		_, err := run(ctx, "", "ip", "netns", "delete", s.NetNS)
		note(err)
	}
	if _, err := os.Stat("/sys/class/net/" + s.HostVeth); err == nil {
		// Deleting the namespace removes the pair, asynchronously: only a veth that is still there is an error.
		if out, err := run(ctx, "", "ip", "link", "delete", s.HostVeth); err != nil && !strings.Contains(out, "Cannot find device") {
			note(err)
		}
	}
	// 6. Cgroups the kubelet made, deepest first.
	for _, cg := range s.Cgroups {
		note(removeCgroupTree(cg))
	}
	// 7. Files.
	// Shim sockets: /run/containerd/s is shared by every containerd 1.6 on the machine (Docker's too), so only
	// sockets that appeared during this run and that nothing listens on any more go, and the dirs only when empty.
	for _, e := range s.newEntries("/run/containerd/s") {
		if !socketLive(e) {
			note(os.Remove(e))
		}
	}
	for _, d := range []string{"/run/containerd/s", "/run/containerd"} {
		if contains(s.Created, d) {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENOTEMPTY) {
				note(fmt.Errorf("remove %s: %w", d, err))
			}
		}
	}
	for _, d := range globalDirs {
		if d == "/run/netns" || strings.HasPrefix(d, "/run/containerd") {
			continue
		}
		if contains(s.Created, d) {
			note(os.RemoveAll(d))
			continue
		}
		for _, e := range s.newEntries(d) {
			note(os.RemoveAll(e))
		}
	}
	if s.WorkDir != "" && s.WorkDir != "/" {
		note(os.RemoveAll(s.WorkDir))
	}
	if len(errs) > 0 {
		return fmt.Errorf("teardown of host cluster %q (state %s kept for the next run): %w", s.Name, s.file, errors.Join(errs...))
	}
	if err := os.Remove(s.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// socketLive is true when something accepts connections on the unix socket at path.
func socketLive(path string) bool {
	conn, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func (s *state) proc(name string) *proc {
	for _, p := range s.Procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// killCgroup kills every process in a cgroup tree (cgroup v1 controller dir or v2 dir).
func killCgroup(root string) error {
	var pids []int
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					pids = append(pids, pid)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list processes in cgroup %s: %w", root, err)
	}
	return killPIDs(pids, 10*time.Second)
}

// removeCgroupTree removes a cgroup directory and its children, deepest first (rmdir, never RemoveAll: cgroupfs
// files can't be unlinked).
func removeCgroupTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		var lastErr error
		for i := 0; i < 20; i++ {
			lastErr = syscall.Rmdir(d)
			if lastErr == nil || errors.Is(lastErr, syscall.ENOENT) {
				lastErr = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if lastErr != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, lastErr))
		}
	}
	return errors.Join(errs...)
}

// CollectLogs implements framework.Cluster: it copies the node's process logs (containerd, kubelet, kube-proxy,
// kubeadm), the kubeadm and component configs and every pod's container logs from /var/log/pods into dir.
func (c *Cluster) CollectLogs(ctx context.Context, dir string) error {
	var errs []error
	errs = append(errs, copyTree(c.logDir(), filepath.Join(dir, "node")))
	for _, f := range []string{"kubeadm.yaml", "kube-proxy.yaml", "containerd/config.toml"} {
		errs = append(errs, copyFile(filepath.Join(c.opts.WorkDir, f), filepath.Join(dir, "config", filepath.Base(f))))
	}
	errs = append(errs, copyTree("/etc/kubernetes/manifests", filepath.Join(dir, "manifests")))
	errs = append(errs, copyTree("/var/log/pods", filepath.Join(dir, "pods")))
	return errors.Join(errs...)
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// Down tears down any host cluster an earlier process left running (hack/e2e/hostcluster up, a crashed test),
// waiting for the lock so it never pulls a node from under a running test.
func Down(ctx context.Context, log *slog.Logger) error {
	l, err := acquireLock(time.Now().Add(10*time.Minute), nil)
	if err != nil {
		return err
	}
	defer l.release()
	return CleanStale(ctx, log)
}
