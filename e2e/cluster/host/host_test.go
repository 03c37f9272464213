//go:build e2e

package host_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-anywhere/irsa/e2e/aws/moto"
	"github.com/irsa-anywhere/irsa/e2e/cluster/host"
	"github.com/irsa-anywhere/irsa/e2e/images"
)

// TestHostClusterSmoke brings up moto (behind the strict STS gate) in a namespace of its own and the host cluster
// linked to it, runs a bridged pod that reaches the gate and moto over HTTPS and the apiserver through its
// service IP, tears everything down and checks nothing is left.
// Run: go test -tags e2e -v -timeout 30m ./e2e/cluster/host/ (as root, after hack/e2e/install-deps.sh).
func TestHostClusterSmoke(t *testing.T) {
	ctx := context.Background()
	var report []string
	timed := func(name string, start time.Time) {
		report = append(report, fmt.Sprintf("%-32s %8.1fs", name, time.Since(start).Seconds()))
	}
	defer func() { t.Logf("timing report:\n%s", strings.Join(report, "\n")) }()

	root, err := images.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, filepath.Join(root, "hack", "build-kubernetes.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("hack/build-kubernetes.sh: %v\n%s", err, out)
	}
	cached := "cached"
	if strings.Contains(string(out), " built in ") {
		cached = "built"
	}
	timed("binaries ("+cached+")", start)

	start = time.Now()
	imgs, err := images.Build(ctx, images.Options{}, append(images.ClusterNames(), images.HTTPGet, images.Irsa, images.Webhook)...)
	if err != nil {
		t.Fatal(err)
	}
	// The cluster images go in with Up; the others later through LoadImages, as the scenario loads its own.
	var tarballs, later []string
	nCached := 0
	for _, img := range imgs {
		if slices.Contains(images.ClusterNames(), img.Name) {
			tarballs = append(tarballs, img.Tarball)
		} else {
			later = append(later, img.Tarball)
		}
		if img.Cached {
			nCached++
		}
	}
	timed(fmt.Sprintf("image build (%d/%d cached)", nCached, len(imgs)), start)

	// AWS first, as e2e/backends starts it: moto and the strict STS gate in a namespace of their own; the node
	// links to it.
	start = time.Now()
	aws, err := moto.Start(ctx, moto.Options{Sandbox: true, STSGate: true})
	if aws != nil {
		t.Cleanup(func() { _ = aws.Close(ctx) })
	}
	if err != nil {
		t.Fatal(err)
	}
	timed("moto + gate up", start)
	peer, ok := host.PeerOf(aws)
	if !ok {
		t.Fatalf("moto started with Sandbox is not a host.Peer: netns %q", aws.NetNS())
	}

	start = time.Now()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	c, upErr := host.Up(ctx, host.Options{Images: tarballs, Logger: logger, Peers: []host.Peer{peer}})
	deleted := false
	t.Cleanup(func() {
		if t.Failed() {
			dir := filepath.Join(os.TempDir(), "irsa-e2e-artifacts", t.Name())
			if err := c.CollectLogs(ctx, dir); err != nil {
				t.Logf("collect logs: %v", err)
			}
			t.Logf("cluster logs in %s", dir)
		}
		if !deleted {
			if err := c.Delete(ctx); err != nil {
				t.Errorf("delete: %v", err)
			}
		}
	})
	if upErr != nil {
		t.Fatal(upErr)
	}
	timed("cluster up (total)", start)
	for _, p := range c.Timings() {
		report = append(report, fmt.Sprintf("  %-30s %8.1fs", p.Name, p.Duration.Seconds()))
	}

	start = time.Now()
	if err := c.LoadImages(ctx, later...); err != nil {
		t.Fatal(err)
	}
	timed("load httpget, irsa, webhook", start)

	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	ca, err := os.ReadFile(aws.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, err = cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "moto-ca"}, Data: map[string]string{"ca.pem": string(ca)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	apiserver := "https://" + host.APIServerServiceIP + ":443/version"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "httpget"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "httpget", Image: images.HTTPGetRef, ImagePullPolicy: corev1.PullNever,
				Args: []string{"-ca", "/moto/ca.pem", "-ca", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
					aws.PodEndpoint() + "/moto-api/", aws.MotoURL() + "/moto-api/", apiserver},
				VolumeMounts: []corev1.VolumeMount{{Name: "moto-ca", MountPath: "/moto"}},
			}},
			Volumes: []corev1.Volume{{Name: "moto-ca", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "moto-ca"}},
			}}},
		},
	}
	phase, logs := runPod(ctx, t, cs, pod)
	if phase != corev1.PodSucceeded {
		t.Fatalf("pod httpget: phase %s, want Succeeded; logs:\n%s", phase, logs)
	}
	for _, want := range []string{"GET " + aws.PodEndpoint() + "/moto-api/: 200", "GET " + aws.MotoURL() + "/moto-api/: 200", "GET " + apiserver + ": 200"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("pod logs lack %q:\n%s", want, logs)
		}
	}
	t.Logf("pod output:\n%s", logs)
	timed("pod run (create→Succeeded)", start)

	// The scenario's own images start as the kubelet runs them (irsa as its nonroot image user).
	start = time.Now()
	for _, tc := range []struct{ name, image string }{{"irsa", images.IrsaRef}, {"webhook", images.WebhookRef}} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: tc.name},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
				Name: tc.name, Image: tc.image, ImagePullPolicy: corev1.PullNever, Args: []string{"--help"},
			}}},
		}
		if phase, logs := runPod(ctx, t, cs, p); phase != corev1.PodSucceeded {
			t.Errorf("pod %s (%s --help): phase %s, want Succeeded; logs:\n%s", tc.name, tc.image, phase, logs)
		}
	}
	timed("irsa + webhook pods", start)

	// The apiserver stage's path: the kubelet restarts kube-apiserver when its manifest changes (written to a
	// temporary file and renamed, as the node pod does).
	start = time.Now()
	restartAPIServer(ctx, t, rc)
	timed("apiserver restart (edit→ready)", start)

	logDir := t.TempDir()
	if err := c.CollectLogs(ctx, logDir); err != nil {
		t.Errorf("collect logs: %v", err)
	}
	for _, pattern := range []string{"node/kubelet.log", "node/containerd.log", "node/kube-proxy.log", "config/kubeadm.yaml",
		"manifests/kube-apiserver.yaml", "pods/kube-system_kube-apiserver-*/kube-apiserver/*.log", "pods/default_httpget_*/httpget/*.log"} {
		if m, _ := filepath.Glob(filepath.Join(logDir, pattern)); len(m) == 0 {
			t.Errorf("collected logs lack %s", pattern)
		}
	}

	// Teardown, then look for anything left behind.
	motoPID, motoNetNS, workDir, netns := aws.PID(), aws.NetNS(), c.WorkDir(), c.NetNS()
	start = time.Now()
	if err := aws.Close(ctx); err != nil {
		t.Errorf("close moto: %v", err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatalf("delete: %v", err)
	}
	deleted = true
	timed("teardown", start)
	if _, err := os.Stat("/run/netns/" + netns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network namespace %s still there: %v", netns, err)
	}
	if _, err := os.Stat("/run/netns/" + motoNetNS); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("moto's network namespace %s still there: %v", motoNetNS, err)
	}
	if entries, _ := filepath.Glob("/run/netns/cni-*"); len(entries) > 0 {
		t.Errorf("pod network namespaces left: %v", entries)
	}
	if _, err := os.Stat("/proc/" + fmt.Sprint(motoPID)); err == nil {
		t.Errorf("moto_server (pid %d) still running", motoPID)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, workDir) || strings.Contains(line, "/var/lib/kubelet") || strings.Contains(line, "/run/netns/cni-") {
			t.Errorf("mount left: %s", line)
		}
	}
	for _, p := range []string{workDir, "/etc/kubernetes/admin.conf", "/var/lib/kubelet/config.yaml", "/sys/fs/cgroup/pids/kubepods",
		"/sys/fs/cgroup/memory/kubepods", "/sys/fs/cgroup/unified/kubepods", "/run/containerd/s"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Delete", p)
		}
	}
	if states, _ := filepath.Glob(filepath.Join(host.StateDir, "*.state.json")); len(states) > 0 {
		t.Errorf("state files left: %v", states)
	}
	if out, _ := exec.Command("ps", "-eo", "pid,args").Output(); strings.Contains(string(out), workDir) {
		t.Errorf("processes mentioning %s still run:\n%s", workDir, out)
	}
}

func restartAPIServer(ctx context.Context, t *testing.T, rc *rest.Config) {
	t.Helper()
	const manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "    - --allow-privileged=true\n", "    - --allow-privileged=true\n    - --v=2\n", 1)
	if edited == string(b) {
		t.Fatalf("%s has no --allow-privileged=true line to add a flag after", manifest)
	}
	tmp := "/etc/kubernetes/kube-apiserver.yaml.tmp"
	if err := os.WriteFile(tmp, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, manifest); err != nil {
		t.Fatal(err)
	}
	quick := rest.CopyConfig(rc)
	quick.Timeout = 2 * time.Second
	client := kubernetes.NewForConfigOrDie(quick).Discovery().RESTClient()
	ready := func() bool {
		body, err := client.Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok"
	}
	wait := func(what string, d time.Duration, want bool) {
		deadline := time.Now().Add(d)
		for ready() != want {
			if time.Now().After(deadline) {
				t.Fatalf("kube-apiserver after the manifest edit: not %s within %s", what, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("stopped", 30*time.Second, false)
	wait("ready again", 2*time.Minute, true)
}

// runPod creates pod in default and waits (up to 2 minutes) until it ends; it returns the phase and the logs.
func runPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, pod *corev1.Pod) (corev1.PodPhase, []byte) {
	t.Helper()
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	var phase corev1.PodPhase
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil {
			phase = p.Status.Phase
			if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, err := cs.CoreV1().Pods("default").GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		logs = []byte("(no logs: " + err.Error() + ")")
	}
	return phase, logs
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
