//go:build e2e

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestContainerdImports imports a tarball into a private containerd (its own root, state and socket under a temp
// dir, CRI off) with `ctr images import`, which unpacks it, as the e2e cluster does. Needs containerd and ctr
// (hack/e2e/install-deps.sh) and root.
func TestContainerdImports(t *testing.T) {
	for _, b := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s not found: run hack/e2e/install-deps.sh", b)
		}
	}
	dir, err := os.MkdirTemp("", "irsa-image-ctr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "containerd.sock")
	cfg := filepath.Join(dir, "config.toml")
	conf := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command("containerd", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		// Unpacked snapshots may leave overlay mounts under root; containerd unmounts them on shutdown.
	})
	ctr := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := ctr("version"); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("containerd exited:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not ready:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	bin := filepath.Join(dir, "probe")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "image.tar")
	const ref = "ghcr.io/irsa-anywhere/irsa:v0.1.0"
	if err := run([]string{"-ref", ref, "-binary", bin, "-path", "/usr/local/bin/irsa", "-o", tarball}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out, err := ctr("images", "import", tarball); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	out, err := ctr("images", "ls", "-q")
	if err != nil || !strings.Contains(out, ref) {
		t.Fatalf("ctr images ls = %q, %v; want %s", out, err, ref)
	}
	if out, err := ctr("images", "check"); err != nil || !strings.Contains(out, "complete") {
		t.Errorf("ctr images check = %q, %v", out, err)
	}
}
