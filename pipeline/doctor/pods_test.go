package doctor

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/bindings"
)

// doctor --pods against a real kube-apiserver: one ✓ line while every pod has the web identity, one ✗ line per pod
// that lacks it, naming its owner and what to do.
func TestPodChecks(t *testing.T) {
	srv := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	c := srv.Client
	run := func() []Check {
		d := &doctor{in: Inputs{Cluster: c, Pods: true}, rep: &Report{}}
		d.podChecks(ctx)
		return d.rep.Checks
	}
	if _, err := bindings.BindServiceAccount(ctx, c, bindings.Binding{Namespace: "apps", ServiceAccount: "app", RoleARN: "arn:aws:iam::123456789012:role/app"}); err != nil {
		t.Fatal(err)
	}
	if checks := run(); len(checks) != 1 || !checks[0].OK || !strings.Contains(checks[0].Message, "all 0 running pod(s)") {
		t.Errorf("no pods: %+v", checks)
	}
	// A pod the webhook missed (no webhook runs here); its status set by hand, as no kubelet runs either.
	p, err := c.CoreV1().Pods("apps").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "missed"},
		Spec: corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "example.com/c:v1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	if _, err := c.CoreV1().Pods("apps").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	checks := run()
	if len(checks) != 1 || checks[0].OK || checks[0].Name != "pod apps/missed" || !strings.Contains(checks[0].Message, "owner Pod apps/missed: lacks AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE") ||
		!strings.Contains(checks[0].Fix, "bare pod") {
		t.Errorf("missed pod: %+v", checks)
	}
}
