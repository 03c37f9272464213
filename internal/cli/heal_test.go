package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/bindings"
	"github.com/irsa-anywhere/irsa/pipeline/heal"
)

// heal against a real kube-apiserver: a Deployment's pod and a bare pod of a bound ServiceAccount without the web
// identity (made by hand: no controller-manager or kubelet runs). Without a terminal heal needs --yes and changes
// nothing; with it the Deployment is restarted and the bare pod reported.
func TestHeal(t *testing.T) {
	kube := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	c := kube.Client
	if _, err := bindings.BindServiceAccount(ctx, c, bindings.Binding{Namespace: "apps", ServiceAccount: "app", RoleARN: "arn:aws:iam::123456789012:role/app"}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	spec := corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "example.com/c:v1"}}}
	dep, err := c.AppsV1().Deployments("apps").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	for name, owner := range map[string][]metav1.OwnerReference{
		"web-1": {{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: &yes}},
		"bare":  nil,
	} {
		// A Deployment owning a pod directly stands for Deployment → ReplicaSet → pod here: Find reports the
		// controller named in the pod's ownerReferences.
		p, err := c.CoreV1().Pods("apps").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owner}, Spec: spec}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		if _, err := c.CoreV1().Pods("apps").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), append([]string{"heal", "--kubeconfig", kube.Kubeconfig}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	restartedAt := func() string {
		d, err := c.AppsV1().Deployments("apps").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d.Spec.Template.Annotations[heal.RestartedAtAnnotation]
	}

	if code, out, errOut := run(); code != 1 || !strings.Contains(errOut, "run again with --yes") || !strings.Contains(errOut, "Deployment apps/web") {
		t.Errorf("heal without --yes: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if v := restartedAt(); v != "" {
		t.Errorf("unconfirmed heal restarted the Deployment (%s=%s)", heal.RestartedAtAnnotation, v)
	}
	code, out, errOut := run("--yes")
	if code != 0 || !strings.Contains(out, "~ restarted Deployment apps/web") || !strings.Contains(out, "! apps/bare lacks AWS_ROLE_ARN") || !strings.Contains(out, "bare pod") {
		t.Errorf("heal --yes: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if restartedAt() == "" {
		t.Errorf("heal --yes did not set %s on the Deployment's template", heal.RestartedAtAnnotation)
	}
	if _, err := c.CoreV1().Pods("apps").Get(ctx, "bare", metav1.GetOptions{}); err != nil {
		t.Errorf("heal touched the bare pod: %v", err)
	}
}
