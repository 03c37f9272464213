package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/bindings"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/verify"
)

// TestRealWebhookMutatesPods runs amazon-eks-pod-identity-webhook v0.6.17 (built by hack/build-kubernetes.sh) as a
// process with the flags and TLS material the stage deploys, registered with the stage's webhook settings, and
// checks that pods the real apiserver stores come out the way verify expects. There is no kubelet or kube-proxy, so
// the registration points at the process by URL instead of through the Service; the serving certificate is issued
// by the stage's CA with 127.0.0.1 added for that reason.
func TestRealWebhookMutatesPods(t *testing.T) {
	bin := filepath.Join(kubeapiserver.BinDir(), "amazon-eks-pod-identity-webhook")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: run hack/build-kubernetes.sh (or set IRSA_K8S_BIN)", err)
	}
	srv := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	c := srv.Client
	st := newStage(t, c, nil)
	if _, err := st.Apply(ctx); err != nil {
		t.Fatal(err)
	}

	// Serving certificate from the stage's CA, valid for the loopback address too.
	caSecret, err := c.CoreV1().Secrets(config.WebhookNamespace).Get(ctx, config.WebhookName+"-ca", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey, err := parseCA(caSecret.Data["ca.crt"], caSecret.Data["ca.key"])
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := issueServing(ca, caKey, ServingDNSNames(config.WebhookName, config.WebhookNamespace), time.Now(), time.Hour, net.ParseIP("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The deployed container's command, with the process's own files and ports.
	d, err := c.AppsV1().Deployments(config.WebhookNamespace).Get(ctx, config.WebhookName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port, metricsPort := freePort(t), freePort(t)
	var args []string
	for _, a := range d.Spec.Template.Spec.Containers[0].Command[1:] {
		switch {
		case strings.HasPrefix(a, "--tls-cert="):
			a = "--tls-cert=" + certFile
		case strings.HasPrefix(a, "--tls-key="):
			a = "--tls-key=" + keyFile
		case strings.HasPrefix(a, "--port="):
			a = "--port=" + strconv.Itoa(port)
		case strings.HasPrefix(a, "--metrics-port="):
			a = "--metrics-port=" + strconv.Itoa(metricsPort)
		}
		args = append(args, a)
	}
	args = append(args, "--kubeconfig="+srv.Kubeconfig)
	logFile, err := os.Create(filepath.Join(dir, "webhook.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
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
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("webhook log:\n%s", b)
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	poll(t, 30*time.Second, "webhook /healthz", func() bool {
		select {
		case <-exited:
			t.Fatalf("webhook exited: %v", cmd.ProcessState)
		default:
		}
		resp, err := hc.Get("https://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// Register it by URL with everything else as the stage registered it.
	mwc, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "irsa-"+config.WebhookName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/mutate"
	byURL := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "test-by-url"}, Webhooks: mwc.Webhooks}
	byURL.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: mwc.Webhooks[0].ClientConfig.CABundle}
	if err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, mwc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, byURL, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	roleARN := "arn:aws:iam::123456789012:role/irsa/test/app"
	// The webhook namespace first: once the informer has the default one, it has this one too.
	for _, ns := range []string{config.WebhookNamespace, "default"} {
		if _, err := bindings.BindServiceAccount(ctx, c, bindings.Binding{Namespace: ns, ServiceAccount: "app", RoleARN: roleARN}); err != nil {
			t.Fatal(err)
		}
	}
	// The webhook learns about ServiceAccounts through an informer: retry until it has seen the annotation.
	var stored *corev1.Pod
	poll(t, 30*time.Second, "a mutated pod", func() bool {
		p, err := createPod(ctx, c, "default")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Spec.Containers[0].Env) > 0 {
			stored = p
			return true
		}
		_ = c.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		return false
	})
	stored.Status.Phase = corev1.PodSucceeded
	r := verify.Evaluate(stored, "", verify.Expect{RoleARN: roleARN, Audience: config.DefaultAudience, Bucket: "b", Container: "verify"})
	for _, ch := range r.Checks {
		if (ch.Name == verify.CheckInjectedEnv || ch.Name == verify.CheckTokenVolume) && !ch.OK {
			t.Errorf("%s: %s", ch.Name, ch.Detail)
		}
	}
	env := map[string]string{}
	for _, e := range stored.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["AWS_REGION"] != "us-east-1" || env["AWS_STS_REGIONAL_ENDPOINTS"] != "regional" {
		t.Errorf("env = %v", env)
	}

	// A ServiceAccount and a pod created back to back, as one `kubectl apply` does: the grace period makes the
	// webhook wait for the ServiceAccount instead of admitting the pod without credentials.
	// Twenty such pairs at once. On loopback the informer wins this race even without the grace period (20 of 20
	// mutated with 0s, measured), so this proves that the grace period keeps injection working, not that it closes
	// the race; the flag itself is pinned by TestRenderedLookupGracePeriod and the e2e "heal" subtest.
	var wg sync.WaitGroup
	for i := range 20 {
		sa := "fresh-" + strconv.Itoa(i)
		wg.Go(func() {
			if _, err := bindings.BindServiceAccount(ctx, c, bindings.Binding{Namespace: "default", ServiceAccount: sa, RoleARN: roleARN}); err != nil {
				t.Error(err)
				return
			}
			p, err := createPodOf(ctx, c, "default", sa)
			if err != nil {
				t.Error(err)
				return
			}
			if len(p.Spec.Containers[0].Env) == 0 {
				t.Errorf("pod of %s created right after its ServiceAccount was not mutated", sa)
			}
		})
	}
	wg.Wait()

	// The webhook's own namespace is excluded: a pod there is never sent to it.
	p, err := createPod(ctx, c, config.WebhookNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.Containers[0].Env) != 0 {
		t.Errorf("pod in %s was mutated: %v", config.WebhookNamespace, p.Spec.Containers[0].Env)
	}
}

func createPod(ctx context.Context, c kubernetes.Interface, ns string) (*corev1.Pod, error) {
	return createPodOf(ctx, c, ns, "app")
}

func createPodOf(ctx context.Context, c kubernetes.Interface, ns, sa string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "verify-", Namespace: ns},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "verify", Image: "example.com/verify:v1"}},
		},
	}
	return c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
}

func poll(t *testing.T, timeout time.Duration, what string, done func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return done(), nil
	})
	if err != nil {
		t.Fatalf("no %s after %s", what, timeout)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
