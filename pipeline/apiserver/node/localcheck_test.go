package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

func TestLocalCheck(t *testing.T) {
	t.Parallel()
	// A real apiserver that serves testIssuer first and keeps kubeadm's, as a patched node's does.
	srv := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: testIssuer, ExtraIssuers: []string{kubeadmIssuer}, APIAudiences: []string{kubeadmIssuer, config.DefaultAudience}})
	ctx := t.Context()
	if _, err := srv.Client.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "irsa-node"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := srv.Client.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "irsa-node", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	good := LocalCheck{URL: srv.URL, CAFile: srv.CAFile, TokenFile: token, Timeout: 30 * time.Second, Interval: 100 * time.Millisecond}
	if err := good.Verify(ctx, Expectation{Issuer: testIssuer}); err != nil {
		t.Errorf("Verify of the served issuer: %v", err)
	}
	// After a restore, the pod's token may name an issuer the apiserver dropped: 401, then /readyz decides.
	rejected := good
	rejected.TokenFile = filepath.Join(dir, "rejected-token")
	if err := os.WriteFile(rejected.TokenFile, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rejected.Verify(ctx, Expectation{Issuer: kubeadmIssuer, Restoring: true}); err != nil {
		t.Errorf("Verify while restoring with a rejected token: %v", err)
	}

	// Failures end at the deadline (5s: long enough for a loaded machine to see at least one answer) with what was
	// observed last.
	failures := []struct {
		name   string
		check  LocalCheck
		expect Expectation
		want   string
	}{
		{"another issuer", good, Expectation{Issuer: "https://oidc.example.com/other"}, `last observed: issuer "` + testIssuer + `"`},
		{"rejected token while patching", rejected, Expectation{Issuer: testIssuer}, "last observed: HTTP 401"},
		{"same issuer, no restart", good, Expectation{Issuer: testIssuer, SameIssuer: true}, "no restart seen yet"},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			f.check.Timeout = 5 * time.Second
			if err := f.check.Verify(ctx, f.expect); err == nil || !strings.Contains(err.Error(), f.want) {
				t.Errorf("Verify: %v; want an error containing %q", err, f.want)
			}
		})
	}

	// The local endpoint comes from the manifest.
	for name, want := range map[string]string{"kubeadm.yaml": "https://192.168.56.10:6443", "eks-anywhere.yaml": "https://172.18.0.7:6443", "hand-written.yaml": "https://127.0.0.1:6443"} {
		c, err := NewLocalCheck(readFile(t, "../manifest/testdata/inputs/"+name), time.Minute)
		if err != nil || c.URL != want {
			t.Errorf("NewLocalCheck(%s) = %q, %v; want %q", name, c.URL, err, want)
		}
	}
}
