package doctor

import (
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
)

// TestKubeadmConfigLine runs the check against a real kube-apiserver holding a control-plane node, its patched
// mirror pod (no kubelet here: created as the kubelet would) and kubeadm-config before and after irsa updated it.
func TestKubeadmConfigLine(t *testing.T) {
	srv := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	c := srv.Client
	line := func() Check {
		d := &doctor{in: Inputs{Cluster: c}, rep: &Report{}}
		d.kubeadmConfig(ctx)
		if len(d.rep.Checks) != 1 {
			t.Fatalf("checks = %+v, want one line", d.rep.Checks)
		}
		return d.rep.Checks[0]
	}
	// Not a kubeadm cluster: no line at all.
	d := &doctor{in: Inputs{Cluster: c}, rep: &Report{}}
	if d.kubeadmConfig(ctx); len(d.rep.Checks) != 0 {
		t.Errorf("without kubeadm-config: %+v, want no line", d.rep.Checks)
	}

	const cases = "../apiserver/manifest/testdata/"
	patched, _, err := manifest.Patch(read(t, cases+"inputs/kubeadm.yaml"), manifest.PatchOptions{IssuerURL: "https://irsa-demo-oidc.s3.eu-west-1.amazonaws.com/prod-1", Audience: "sts.amazonaws.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp-1", Labels: map[string]string{apiserver.ControlPlaneLabel: ""}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := manifest.Parse(patched)
	if err != nil {
		t.Fatal(err)
	}
	pod.Name, pod.Spec.NodeName = "kube-apiserver-cp-1", "cp-1"
	if _, err := c.CoreV1().Pods("kube-system").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: manifest.KubeadmConfigName, Namespace: "kube-system"},
		Data: map[string]string{manifest.ClusterConfigurationKey: string(read(t, cases+"kubeadm-config/defaults-first-patch/input.yaml"))}}
	if cm, err = c.CoreV1().ConfigMaps("kube-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Patched manifest, kubeadm-config as kubeadm wrote it: an upgrade would drop irsa's issuer.
	if l := line(); l.OK || !strings.Contains(l.Message, "kubeadm upgrade would change the apiserver") || !strings.Contains(l.Fix, "irsa apply --only apiserver") {
		t.Errorf("stale kubeadm-config: %+v", l)
	}
	cm.Data[manifest.ClusterConfigurationKey] = string(read(t, cases+"kubeadm-config/defaults-first-patch/expected.yaml"))
	if _, err := c.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if l := line(); !l.OK || !strings.Contains(l.Message, "kubeadm-config matches the running apiserver on 1 control-plane node") {
		t.Errorf("updated kubeadm-config: %+v", l)
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
