package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
)

// rotate-key refuses, before any write, what it cannot rotate: a cluster whose key irsa does not install, the
// cluster's own key, an EKS Anywhere cluster (the plan says what the user does there). The rotation itself needs a
// kubelet to run the node pods: the e2e scenario runs it on a kubeadm node (TestIRSA/.../rotate-key).
func TestRotateKeyRefusals(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"external cluster", []string{"rotate-key", "stage", "--cluster-type", "external", "--signing-key", "generate"}, "cluster type external: irsa rotates the key only where it installs it"},
		{"eks anywhere", []string{"rotate-key", "stage", "--cluster-type", "eks-anywhere", "--signing-key", "cluster"}, "run `irsa sync --retire KID`"},
		{"cluster's own key", []string{"rotate-key", "promote", "--cluster-type", "kubeadm", "--signing-key", "cluster"}, "rotate-key rotates the key irsa keeps in a key directory"},
		{"key file", []string{"rotate-key", "retire", "--cluster-type", "kubeadm", "--signing-key", e.keyDir + "/sa-signer.key"}, "give the new file to --signing-key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.run(append(tc.args, "--kubeconfig", kube.Kubeconfig)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("irsa %v: exit %d, want %q\n%s%s", tc.args, code, tc.want, out, errOut)
			}
			if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
				t.Errorf("refused rotate-key wrote: %v", m)
			}
		})
	}
}

// TestRotateKeyReadsTheClusterForRetire gives a real kube-apiserver the objects a kubeadm control plane shows (a
// control-plane Node, its kube-apiserver mirror pod with irsa's flags, a running pod with a projected token): there is
// no kubelet, so no step is applied, but every decision before the first write is made from them, as on a real node.
func TestRotateKeyReadsTheClusterForRetire(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	ctx := context.Background()
	c := kube.Client
	kidOf := func(path string) string {
		pub, err := keys.LoadPublicKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := keys.KeyID(pub[0])
		return kid
	}
	// The apiserver's own key plays irsa's previous key; the key directory's is the current one.
	previous, current := kidOf(kube.ServiceAccountKeyFile), kidOf(keys.PairIn(e.keyDir).PublicKeyPath)
	for _, ns := range []string{"kube-system"} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, sa := range []string{"kube-system/default", "default/app"} {
		ns, name, _ := strings.Cut(sa, "/")
		if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp1", Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pki := "/etc/kubernetes/pki/"
	mirror := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-cp1", Namespace: "kube-system", Annotations: map[string]string{manifest.SigningKeyAnnotation: current}},
		Spec: corev1.PodSpec{NodeName: "cp1", AutomountServiceAccountToken: new(bool), Containers: []corev1.Container{{Name: "kube-apiserver", Image: "registry.k8s.io/kube-apiserver:v1.37.2", Command: []string{
			"kube-apiserver", "--api-audiences=sts.amazonaws.com", "--service-account-issuer=" + e.issuer,
			"--service-account-key-file=" + pki + "sa.pub", "--service-account-key-file=" + pki + "irsa-sa-" + previous[:16] + ".pub",
			"--service-account-key-file=" + pki + "irsa-sa-" + current[:16] + ".pub", "--service-account-max-token-expiration=48h",
			"--service-account-signing-key-file=" + pki + "irsa-sa-" + current[:16] + ".key",
		}}}},
	}
	if _, err := c.CoreV1().Pods("kube-system").Create(ctx, mirror, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	day := int64(86400)
	app, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"},
		Spec: corev1.PodSpec{ServiceAccountName: "app", NodeName: "cp1", Containers: []corev1.Container{{Name: "app", Image: "app"}},
			Volumes: []corev1.Volume{{Name: "aws-iam-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "sts.amazonaws.com", ExpirationSeconds: &day, Path: "token"}}}}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app.Status.Phase = corev1.PodRunning
	if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, app, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "kubeadm", "--signing-key", "generate"}
	e.mustRun(append([]string{"apply", "--only", "issuer"}, flags...)...)

	code, out, errOut := e.run(append([]string{"rotate-key", "retire", "--dry-run"}, flags...)...)
	for _, want := range []string{"current key: " + current, "previous key(s): " + previous, "retire time: ", "pod default/app",
		// The ServiceAccount admission plugin gave the pod its kube-api-access token (3607 s, extended to the 48h max),
		// which outlives the day-long STS token (replaced after 19h12m10s).
		"expirationSeconds 3607s) lives 48h0m0s (extended", "replaces it after 24h0m10s", "at most 48h0m0s (--service-account-max-token-expiration)"} {
		if code != 2 || !strings.Contains(out, want) {
			t.Errorf("rotate-key retire --dry-run: exit %d, want 2 and %q\n%s%s", code, want, out, errOut)
		}
	}
	code, _, errOut = e.run(append([]string{"rotate-key", "retire", "--yes"}, flags...)...)
	if code == 0 || !strings.Contains(errOut, "rotate-key retire: not before ") || !strings.Contains(errOut, "--force") {
		t.Errorf("rotate-key retire before the retire time: exit %d\n%s", code, errOut)
	}
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("refused retire wrote: %v", m)
	}
	if out := e.mustRun(append([]string{"rotate-key", "promote"}, flags...)...); !strings.Contains(out, "nothing to promote") {
		t.Errorf("promote with no staged key:\n%s", out)
	}
	// A node still signing with another key: retiring "the others" could retire the key it signs with. (The step
	// waits for a mirror pod the kubelet has not replaced yet; none will be here.)
	defer func(d time.Duration) { setup.MirrorSettle = d }(setup.MirrorSettle)
	setup.MirrorSettle = time.Second
	mirror, _ = c.CoreV1().Pods("kube-system").Get(ctx, "kube-apiserver-cp1", metav1.GetOptions{})
	mirror.Annotations[manifest.SigningKeyAnnotation] = previous
	if _, err := c.CoreV1().Pods("kube-system").Update(ctx, mirror, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = e.run(append([]string{"rotate-key", "retire", "--force", "--yes"}, flags...)...)
	if code == 0 || !strings.Contains(errOut, "the apiserver on cp1 does not sign with the current key") {
		t.Errorf("rotate-key retire with a node signing with another key: exit %d\n%s", code, errOut)
	}
	// A staged key that is not published and accepted is not promoted.
	if _, _, err := keys.StageNext(e.keyDir, nil, ""); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = e.run(append([]string{"rotate-key", "promote"}, flags...)...)
	if code == 0 || !strings.Contains(errOut, "is not published in") {
		t.Errorf("promote of a key not staged: exit %d\n%s", code, errOut)
	}
	code, _, errOut = e.run(append([]string{"rotate-key", "retire", "--force", "--yes"}, flags...)...)
	if code == 0 || !strings.Contains(errOut, "is not promoted yet") {
		t.Errorf("retire with a staged key: exit %d\n%s", code, errOut)
	}
}
