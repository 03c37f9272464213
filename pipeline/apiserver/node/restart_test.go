package node

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/internal/testpki"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// TestRunNodeRestartsTheRealAPIServer runs the node subcommand's body (Run with LocalCheck) against a real
// kube-apiserver started from the static pod manifest by a stand-in for the kubelet: it restarts the process with
// the manifest's command whenever the file changes. This is the node pod's whole job except the container around
// it: patch, wait for the restarted apiserver to serve the new issuer with a token issued before, undo a change
// that does not verify in time, restore.
func TestRunNodeRestartsTheRealAPIServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	etcdURL := startEtcd(t, dir)
	pki := writeTestPKI(t, dir)
	port := freeTestPort(t)

	manifestPath := filepath.Join(dir, "manifests", "kube-apiserver.yaml")
	writeTestManifest(t, manifestPath, etcdURL, port, pki)
	kubelet := startFakeKubelet(t, manifestPath, dir)

	cfg := &rest.Config{Host: "https://127.0.0.1:" + strconv.Itoa(port), Timeout: 10 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{CAFile: pki.ca, CertFile: pki.adminCert, KeyFile: pki.adminKey}}
	client := kubernetes.NewForConfigOrDie(cfg)
	waitIssuer(t, client, kubeadmIssuer, 90*time.Second)

	// The node pod's own token, issued before the patch (kubeadm's issuer).
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "irsa-test"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ServiceAccounts("irsa-test").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "irsa-node"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := client.CoreV1().ServiceAccounts("irsa-test").CreateToken(ctx, "irsa-node", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{ManifestPath: manifestPath, StateDir: filepath.Join(dir, "irsa"), PKIDir: filepath.Join(dir, "pki"),
		IssuerURL: testIssuer, Audience: config.DefaultAudience}
	check := func(timeout time.Duration) func(context.Context, Expectation) error {
		c, err := NewLocalCheck(readFile(t, manifestPath), timeout)
		if err != nil {
			t.Fatal(err)
		}
		c.CAFile, c.TokenFile, c.Interval = pki.ca, tokenFile, 200*time.Millisecond
		return c.Verify
	}

	// Accept only (first pass on a multi-node control plane): the first issuer stays, so the check must see the
	// apiserver restart before it passes.
	opts.Verify = check(2 * time.Minute)
	opts.AcceptOnly = true
	start := time.Now()
	var out bytes.Buffer
	if err := Run(ctx, PatchCommand, opts, 0, &out); err != nil {
		t.Fatalf("accept-only patch after %d apiserver starts: %v\n%s\napiserver log:\n%s", kubelet.starts(), err, out.String(), kubelet.logTail())
	}
	if kubelet.starts() != 2 {
		t.Errorf("accept-only patch verified after %d apiserver starts, want 2 (the check must wait for the restart)", kubelet.starts())
	}
	t.Logf("accept-only patch verified after %s", time.Since(start).Round(time.Millisecond))
	if got, _ := servedIssuer(ctx, client); got != kubeadmIssuer {
		t.Errorf("served issuer after accept-only patch %q, want %q", got, kubeadmIssuer)
	}

	// Patch: the restarted apiserver serves the irsa issuer and still accepts the token issued before.
	opts.AcceptOnly = false
	start = time.Now()
	out.Reset()
	if err := Run(ctx, PatchCommand, opts, 0, &out); err != nil {
		t.Fatalf("patch: %v\n%s\napiserver log:\n%s", err, out.String(), kubelet.logTail())
	}
	t.Logf("patch verified on the restarted apiserver after %s (%d apiserver starts)", time.Since(start).Round(time.Millisecond), kubelet.starts())
	if got, _ := servedIssuer(ctx, client); got != testIssuer {
		t.Errorf("served issuer after patch %q", got)
	}

	// A change that does not verify in time is undone: the apiserver comes back with the previous manifest.
	patched := readFile(t, manifestPath)
	opts.IssuerURL = "https://oidc.example.com/never-verified"
	opts.Verify = check(time.Millisecond)
	out.Reset()
	err = Run(ctx, PatchCommand, opts, 0, &out)
	res, perr := LastResult(out.Bytes())
	if err == nil || perr != nil || !res.RolledBack {
		t.Fatalf("patch that cannot verify: err=%v result=%+v (%v); want a rollback", err, res, perr)
	}
	if got := readFile(t, manifestPath); !bytes.Equal(got, patched) {
		t.Errorf("manifest not rolled back")
	}
	waitIssuer(t, client, testIssuer, 90*time.Second)

	// Restore in two passes: demote (original issuer first, irsa still accepted), then remove; the second pass
	// keeps the first issuer, so it too must wait for the restart.
	opts.Verify = check(2 * time.Minute)
	opts.KeepAccepting = true
	start = time.Now()
	out.Reset()
	if err := Run(ctx, RestoreCommand, opts, 0, &out); err != nil {
		t.Fatalf("demote: %v\n%s", err, out.String())
	}
	if got, _ := servedIssuer(ctx, client); got != kubeadmIssuer {
		t.Errorf("served issuer after demote %q", got)
	}
	opts.KeepAccepting = false
	startsBefore := kubelet.starts()
	out.Reset()
	if err := Run(ctx, RestoreCommand, opts, 0, &out); err != nil {
		t.Fatalf("restore: %v\n%s", err, out.String())
	}
	t.Logf("demote and restore verified after %s", time.Since(start).Round(time.Millisecond))
	if kubelet.starts() != startsBefore+1 {
		t.Errorf("restore verified after %d apiserver starts, want one more than %d", kubelet.starts(), startsBefore)
	}
	if got, _ := servedIssuer(ctx, client); got != kubeadmIssuer {
		t.Errorf("served issuer after restore %q", got)
	}

	// With a provided key: the apiserver signs with it and serves both keys; the pre-patch token still verifies.
	opts.IssuerURL = testIssuer
	opts.SigningKeyFile = filepath.Join(dir, "irsa-signing.key")
	if err := os.WriteFile(opts.SigningKeyFile, testpki.ECKeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.Verify = check(2 * time.Minute)
	out.Reset()
	if err := Run(ctx, PatchCommand, opts, 0, &out); err != nil {
		t.Fatalf("patch with a key: %v\n%s\napiserver log:\n%s", err, out.String(), kubelet.logTail())
	}
	res, err = LastResult(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	_, _, clusterKid, _ := ParseSigningKey(readFile(t, pki.saKey))
	var kids []string
	for _, k := range keys.Keys {
		kids = append(kids, k.KeyID)
	}
	if len(kids) != 2 || !slices.Contains(kids, res.KeyID) || !slices.Contains(kids, clusterKid) {
		t.Errorf("served kids %q, want irsa's %q and the cluster's %q", kids, res.KeyID, clusterKid)
	}
	tr, err = client.CoreV1().ServiceAccounts("irsa-test").CreateToken(ctx, "irsa-node", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if header := tokenHeader(t, tr.Status.Token); header["kid"] != res.KeyID || header["alg"] != "ES256" {
		t.Errorf("new token header %v, want kid %q and ES256", header, res.KeyID)
	}
	out.Reset()
	if err := Run(ctx, RestoreCommand, opts, 0, &out); err != nil {
		t.Fatalf("restore after the key patch: %v\n%s", err, out.String())
	}
	if left, _ := filepath.Glob(filepath.Join(opts.PKIDir, "irsa-*")); len(left) != 0 {
		t.Errorf("irsa key files left after restore: %q", left)
	}
}

func tokenHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

type testPKI struct{ ca, servingCert, servingKey, adminCert, adminKey, saPub, saKey string }

// writeTestPKI writes a CA, the apiserver's serving certificate (127.0.0.1), an admin client certificate and the
// service account key pair.
func writeTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	p := testPKI{}
	ca, err := testpki.NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p.ca = write("ca.pem", ca.PEM)
	issue := func(name string, subject pkix.Name, usage x509.ExtKeyUsage, hosts ...string) (string, string) {
		certPEM, keyPEM, err := ca.Issue(subject, hosts, usage)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", certPEM), write(name+"-key.pem", keyPEM)
	}
	p.servingCert, p.servingKey = issue("serving", pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, "127.0.0.1", "kubernetes")
	p.adminCert, p.adminKey = issue("admin", pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth)
	saPEM := testpki.RSAKeyPEM(t)
	p.saKey = filepath.Join(dir, "sa.key")
	if err := os.WriteFile(p.saKey, saPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, pub, _, err := ParseSigningKey(saPEM)
	if err != nil {
		t.Fatal(err)
	}
	p.saPub = filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(p.saPub, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeTestManifest writes a kubeadm-like static pod whose flags run on loopback.
func writeTestManifest(t *testing.T, path, etcdURL string, port int, p testPKI) {
	t.Helper()
	pod := corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver", Namespace: "kube-system",
			Annotations: map[string]string{advertiseEndpoint: "127.0.0.1:" + strconv.Itoa(port)}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  manifest.ContainerName,
			Image: "registry.k8s.io/kube-apiserver:" + kubeapiserver.KubernetesVersion,
			Command: []string{"kube-apiserver",
				"--advertise-address=127.0.0.1",
				"--authorization-mode=Node,RBAC",
				"--bind-address=127.0.0.1",
				"--cert-dir=" + filepath.Join(filepath.Dir(path), "..", "apiserver-certs"),
				"--client-ca-file=" + p.ca,
				"--endpoint-reconciler-type=none",
				"--etcd-servers=" + etcdURL,
				"--secure-port=" + strconv.Itoa(port),
				"--service-account-issuer=" + kubeadmIssuer,
				"--service-account-key-file=" + p.saPub,
				"--service-account-signing-key-file=" + p.saKey,
				"--service-cluster-ip-range=10.96.0.0/12",
				"--tls-cert-file=" + p.servingCert,
				"--tls-private-key-file=" + p.servingKey,
			},
		}}},
	}
	b, err := yaml.Marshal(&pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeKubelet runs the manifest's kube-apiserver command and restarts it when the file changes, as the kubelet
// does with a static pod (without the container).
type fakeKubelet struct {
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	count   int
	logPath string
}

func startFakeKubelet(t *testing.T, manifestPath, dir string) *fakeKubelet {
	t.Helper()
	k := &fakeKubelet{logPath: filepath.Join(dir, "kube-apiserver.log")}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var running []byte
		for {
			if b, err := os.ReadFile(manifestPath); err == nil && !bytes.Equal(b, running) {
				running = b
				began := time.Now()
				k.stop()
				// The kubelet takes seconds to recreate the container (tens with kubeadm's grace period); one
				// second is enough for the check to see the apiserver gone.
				time.Sleep(time.Second)
				if err := k.start(b); err != nil {
					t.Errorf("fake kubelet: %v", err)
					return
				}
				t.Logf("fake kubelet: manifest changed, apiserver restarted (start %d, stop took %s)", k.starts(), time.Since(began).Round(time.Millisecond))
			}
			select {
			case <-stop:
				k.stop()
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-stopped })
	return k
}

func (k *fakeKubelet) start(content []byte) error {
	pod, err := manifest.Parse(content)
	if err != nil {
		return err
	}
	c, err := manifest.Container(pod)
	if err != nil {
		return err
	}
	log, err := os.OpenFile(k.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(kubeapiserver.BinDir(), "kube-apiserver"), c.Command[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start kube-apiserver from %s (build it with hack/build-kubernetes.sh): %w", kubeapiserver.BinDir(), err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	k.mu.Lock()
	k.cmd, k.done = cmd, done
	k.count++
	k.mu.Unlock()
	return nil
}

func (k *fakeKubelet) stop() {
	k.mu.Lock()
	cmd, done := k.cmd, k.done
	k.cmd = nil
	k.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (k *fakeKubelet) starts() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.count
}

func (k *fakeKubelet) logTail() string {
	b, _ := os.ReadFile(k.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func startEtcd(t *testing.T, dir string) string {
	t.Helper()
	clientURL := "http://127.0.0.1:" + strconv.Itoa(freeTestPort(t))
	peerURL := "http://127.0.0.1:" + strconv.Itoa(freeTestPort(t))
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(kubeapiserver.BinDir(), "etcd"),
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	// etcd reads ETCD_* variables as flags.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd from %s (build it with hack/build-kubernetes.sh): %v", kubeapiserver.BinDir(), err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	var last error
	err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(clientURL + "/health")
		if last = err; err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("etcd on %s not healthy: %v (last: %v)", clientURL, err, last)
	}
	return clientURL
}

// kubeadmIssuer is the issuer kubeadm configures, the one the test manifest starts with.
const kubeadmIssuer = "https://kubernetes.default.svc.cluster.local"

func waitIssuer(t *testing.T, client kubernetes.Interface, want string, timeout time.Duration) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		got, err := servedIssuer(ctx, client)
		last = fmt.Sprintf("%q %v", got, err)
		return err == nil && got == want, nil
	})
	if err != nil {
		t.Fatalf("apiserver did not serve %q within %s; last %s", want, timeout, last)
	}
}

// servedIssuer is the issuer of the apiserver's discovery document.
func servedIssuer(ctx context.Context, client kubernetes.Interface) (string, error) {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath(DiscoveryPath).DoRaw(ctx)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	err = json.Unmarshal(raw, &doc)
	return doc.Issuer, err
}

func freeTestPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
