package heal

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/bindings"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

const roleARN = "arn:aws:iam::123456789012:role/irsa/test/app"

// TestFindAndRestart runs against a real kube-apiserver. No controller-manager or kubelet runs there, so the
// ReplicaSet and the pods a controller would make are created by hand with the ownerReferences controllers set,
// and the pods' status is set to Running.
func TestFindAndRestart(t *testing.T) {
	srv := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	c := srv.Client
	if _, err := bindings.BindServiceAccount(ctx, c, bindings.Binding{Namespace: "apps", ServiceAccount: "app", RoleARN: roleARN}); err != nil {
		t.Fatal(err)
	}
	// A ServiceAccount irsa did not bind: its pods are not irsa's business.
	if _, err := c.CoreV1().ServiceAccounts("apps").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "x"}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
		ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "example.com/c:v1"}}}}
	dep, err := c.AppsV1().Deployments("apps").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.AppsV1().ReplicaSets("apps").Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d9c", OwnerReferences: []metav1.OwnerReference{controllerRef("apps/v1", KindDeployment, dep.Name, dep.UID)}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sts, err := c.AppsV1().StatefulSets("apps").Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := c.AppsV1().DaemonSets("apps").Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	jobTemplate := *template.DeepCopy()
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	jobTemplate.Labels = nil
	job, err := c.BatchV1().Jobs("apps").Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "batch"}, Spec: batchv1.JobSpec{Template: jobTemplate}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	injected := func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "AWS_ROLE_ARN", Value: roleARN}, {Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Value: config.TokenMountPath + "/" + config.TokenFile}}
		exp := int64(86400)
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: config.TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: config.DefaultAudience, ExpirationSeconds: &exp, Path: config.TokenFile}}}}}})
	}
	for _, p := range []struct {
		name  string
		owner *metav1.OwnerReference
		sa    string
		mod   func(*corev1.Pod)
	}{
		{name: "web-5d9c-a", owner: ptr(controllerRef("apps/v1", KindReplicaSet, rs.Name, rs.UID)), sa: "app"},
		{name: "web-5d9c-b", owner: ptr(controllerRef("apps/v1", KindReplicaSet, rs.Name, rs.UID)), sa: "app"},
		{name: "db-0", owner: ptr(controllerRef("apps/v1", KindStatefulSet, sts.Name, sts.UID)), sa: "app"},
		{name: "agent-x1", owner: ptr(controllerRef("apps/v1", KindDaemonSet, ds.Name, ds.UID)), sa: "app"},
		{name: "batch-q2", owner: ptr(controllerRef("batch/v1", KindJob, job.Name, job.UID)), sa: "app"},
		{name: "bare", sa: "app"},
		{name: "stale-role", sa: "app", mod: func(p *corev1.Pod) {
			injected(p)
			p.Spec.Containers[0].Env[0].Value = "arn:aws:iam::123456789012:role/old"
		}},
		{name: "healthy", sa: "app", mod: injected},
		{name: "sidecar-skipped", sa: "app", mod: func(p *corev1.Pod) {
			injected(p)
			p.Annotations = map[string]string{skipContainersAnnotation: "sidecar"}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "example.com/s:v1"})
		}},
		{name: "not-bound", sa: "other"},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "apps"}, Spec: *template.Spec.DeepCopy()}
		pod.Spec.ServiceAccountName = p.sa
		if p.owner != nil {
			pod.OwnerReferences = []metav1.OwnerReference{*p.owner}
		}
		if p.mod != nil {
			p.mod(pod)
		}
		createRunning(t, c, pod)
	}

	findings, checked, err := Find(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if checked != 9 {
		t.Errorf("checked %d pods, want the 9 of the bound ServiceAccount", checked)
	}
	got := map[string]Finding{}
	for _, f := range findings {
		got[strings.TrimPrefix(f.Pod, "apps/")] = f
	}
	want := map[string]Owner{
		"web-5d9c-a": {KindDeployment, "apps", "web"}, "web-5d9c-b": {KindDeployment, "apps", "web"},
		"db-0": {KindStatefulSet, "apps", "db"}, "agent-x1": {KindDaemonSet, "apps", "agent"},
		"batch-q2": {KindJob, "apps", "batch"}, "bare": {KindPod, "apps", "bare"}, "stale-role": {KindPod, "apps", "stale-role"},
	}
	if len(got) != len(want) {
		t.Errorf("findings for %v, want %v", keys(got), keys(want))
	}
	for pod, owner := range want {
		if got[pod].Owner != owner {
			t.Errorf("%s: owner %v, want %v", pod, got[pod].Owner, owner)
		}
	}
	if m := got["bare"].Missing; !slices.Equal(m, []string{"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "projected token volume aws-iam-token"}) {
		t.Errorf("bare pod missing %q", m)
	}
	if m := got["stale-role"].Missing; len(m) != 1 || !strings.Contains(m[0], "the ServiceAccount now says "+roleARN) {
		t.Errorf("stale-role missing %q", m)
	}

	now := time.Date(2026, 11, 30, 3, 20, 0, 0, time.UTC)
	res, err := Restart(ctx, c, findings, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Owner{{KindDaemonSet, "apps", "agent"}, {KindStatefulSet, "apps", "db"}, {KindDeployment, "apps", "web"}}; !slices.Equal(sorted(res.Restarted), want) {
		t.Errorf("restarted %v, want %v (each once)", res.Restarted, want)
	}
	if len(res.Untouched) != 3 {
		t.Errorf("untouched %+v, want the Job's pod and the two bare pods", res.Untouched)
	}
	d, _ := c.AppsV1().Deployments("apps").Get(ctx, "web", metav1.GetOptions{})
	s, _ := c.AppsV1().StatefulSets("apps").Get(ctx, "db", metav1.GetOptions{})
	a, _ := c.AppsV1().DaemonSets("apps").Get(ctx, "agent", metav1.GetOptions{})
	for kind, ann := range map[string]map[string]string{"deployment": d.Spec.Template.Annotations, "statefulset": s.Spec.Template.Annotations, "daemonset": a.Spec.Template.Annotations} {
		if ann[RestartedAtAnnotation] != "2026-11-30T03:20:00Z" {
			t.Errorf("%s template annotations %v, want %s set as kubectl rollout restart does", kind, ann, RestartedAtAnnotation)
		}
	}
	for _, name := range []string{"bare", "stale-role"} {
		if _, err := c.CoreV1().Pods("apps").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("bare pod %s touched: %v", name, err)
		}
	}
}

func controllerRef(apiVersion, kind, name string, uid types.UID) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &yes}
}

func ptr[T any](v T) *T { return &v }

func createRunning(t *testing.T, c kubernetes.Interface, pod *corev1.Pod) {
	t.Helper()
	ctx := t.Context()
	created, err := c.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	created.Status.Phase = corev1.PodRunning
	if _, err := c.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func sorted(o []Owner) []Owner {
	o = slices.Clone(o)
	slices.SortFunc(o, func(a, b Owner) int { return strings.Compare(a.Name, b.Name) })
	return o
}
