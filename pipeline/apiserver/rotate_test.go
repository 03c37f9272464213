package apiserver

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/node"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// TestKubeadmRotationPasses checks what the rotate-key steps run on a three-node control plane whose apiservers
// sign with irsa's key: stage (AcceptOnly) makes every node accept the new key and none sign with it, and leaves
// kubeadm-config alone; promote signs with it after every node accepts it; retire (RetireOtherKeys) runs the patch
// with --retire-other-keys. The node pods are recorded instead of run (no kubelet here).
func TestKubeadmRotationPasses(t *testing.T) {
	t.Parallel()
	srv := kubeapiserver.Start(t, patchedOptions)
	ctx := t.Context()
	// The apiservers sign with key A (the golden case's), and the new key is the test apiserver's own, so that
	// the served JWKS has it.
	if _, err := srv.Client.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	signingA := readFile(t, "manifest/testdata/manifest/kubeadm-second-patch-signing-key/input.yaml")
	for _, n := range []string{"cp-a", "cp-b", "cp-c"} {
		createNode(t, srv.Client, n, "")
		createMirrorPod(t, srv.Client, n, signingA)
	}
	newKey, err := os.ReadFile(srv.ServiceAccountSigningKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.ParsePrivateKey(newKey)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := keys.KeyID(signer.Public())
	var ran []string
	record := func(_ context.Context, nodeName, op string, _ *keySecret, _ time.Duration, extra ...string) (node.Result, error) {
		ran = append(ran, strings.TrimSpace(op+" "+nodeName+" "+strings.Join(extra, " ")))
		return node.Result{Changed: true, Manifest: DefaultManifestPath, Issuers: []string{testIssuer, kubeadmIssuer}, KeyID: kid}, nil
	}
	run := func(opts Options) ([]string, error) {
		t.Helper()
		opts.ClusterType, opts.IssuerURL, opts.Audience, opts.SigningKey, opts.Timeout = ClusterKubeadm, testIssuer, config.DefaultAudience, newKey, 5*time.Second
		s := newStage(t, srv.Client, srv.Config, opts)
		s.runNode = record
		ran = nil
		plan, err := s.Plan(ctx)
		if err != nil {
			return nil, err
		}
		if opts.AcceptOnly && (len(plan) != 3 || slices.ContainsFunc(plan, func(c stage.Change) bool { return c.Kind == "kubeadm-config" })) {
			t.Errorf("stage plan = %+v, want the three nodes and no kubeadm-config change", plan)
		}
		_, err = s.Apply(ctx)
		return ran, err
	}

	got, err := run(Options{AcceptOnly: true})
	if err != nil {
		t.Fatalf("stage: %v", err)
	}
	if want := "patch-apiserver cp-a --accept-only; patch-apiserver cp-b --accept-only; patch-apiserver cp-c --accept-only"; strings.Join(got, "; ") != want {
		t.Errorf("stage ran\n  %s\nwant\n  %s", strings.Join(got, "; "), want)
	}
	got, _ = run(Options{})
	if want := "patch-apiserver cp-a --accept-only; patch-apiserver cp-b --accept-only; patch-apiserver cp-c --accept-only; patch-apiserver cp-a; patch-apiserver cp-b; patch-apiserver cp-c"; strings.Join(got, "; ") != want {
		t.Errorf("promote ran (mirror pods not yet accepting: every node accepts before any signs)\n  %s\nwant\n  %s", strings.Join(got, "; "), want)
	}
	got, _ = run(Options{RetireOtherKeys: true})
	if len(got) != 6 || got[3] != "patch-apiserver cp-a --retire-other-keys" {
		t.Errorf("retire ran %v, want the patch pass with --retire-other-keys", got)
	}
	if _, err := New(srv.Client, srv.Config, Options{IssuerURL: testIssuer, Audience: config.DefaultAudience, AcceptOnly: true}); err == nil {
		t.Error("New with AcceptOnly and no signing key: no error")
	}
}
