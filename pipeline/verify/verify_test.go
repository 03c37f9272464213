package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// The lead's IAM half plugs in as is.
var _ Roles = (*roles.Manager)(nil)

// recordingRoles stands in for the IAM half (pipeline/roles, tested against moto there): this package only needs
// the role's ARN and to see that the role is created before and removed after the run.
type recordingRoles struct {
	mu      sync.Mutex
	ensured []config.Binding
	removed []string
}

func (r *recordingRoles) Ensure(_ context.Context, b config.Binding) ([]stage.Change, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ensured = append(r.ensured, b)
	return []stage.Change{{Action: stage.Create, Kind: "iam-role", Name: b.RoleName}}, nil
}

func (r *recordingRoles) RoleARN(_ context.Context, b config.Binding) (string, error) {
	return "arn:aws:iam::123456789012:role/irsa/test/" + b.RoleName, nil
}

func (r *recordingRoles) Remove(_ context.Context, b config.Binding) ([]stage.Change, error) {
	name := b.RoleName
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, name)
	return []stage.Change{{Action: stage.Delete, Kind: "iam-role", Name: name}}, nil
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	roles := &recordingRoles{}
	cases := map[string]Options{
		"no cluster":          {Bucket: "b"},
		"no bucket":           {ClusterName: "test"},
		"webhook namespace":   {ClusterName: "test", Bucket: "b", Namespace: config.WebhookNamespace},
		"bad service account": {ClusterName: "test", Bucket: "b", ServiceAccount: "Not Valid"},
		"bad pull secret":     {ClusterName: "test", Bucket: "b", ImagePullSecrets: []string{"Mirror_Creds"}},
	}
	for name, o := range cases {
		if _, err := New(nil, roles, o, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New(nil, nil, Options{ClusterName: "test", Bucket: "b"}, nil); err == nil {
		t.Error("no roles backend: no error")
	}
}

func waitForPod(t *testing.T, c kubernetes.Interface, ns string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: config.ManagedByTagKey + "=" + config.ManagedByValue})
		if last = err; err != nil || len(pods.Items) != 1 {
			return false, nil
		}
		pod = &pods.Items[0]
		return true, nil
	})
	if err != nil {
		t.Fatalf("no verify pod appeared: %v (last: %v)", err, last)
	}
	return pod
}

func TestStageAgainstAPIServer(t *testing.T) {
	// No webhook runs here, so pods are never mutated: don't wait long for an injection that cannot come.
	injectionTimeout = 2 * time.Second
	srv := kubeapiserver.Start(t, kubeapiserver.Options{})
	ctx := t.Context()
	c := srv.Client
	roleName := config.RoleNameFor("test", DefaultNamespace, DefaultServiceAccount)
	roleARN := "arn:aws:iam::123456789012:role/irsa/test/" + roleName

	// No kubelet runs here, so the pod never starts: the run ends at its deadline with a FAIL report, and with
	// --keep everything it made stays for inspection.
	t.Run("pod that never runs: FAIL report, kept objects, then delete", func(t *testing.T) {
		roles := &recordingRoles{}
		st, err := New(c, roles, Options{ClusterName: "test", Bucket: "irsa-test-issuer", Timeout: 2 * time.Second, Keep: true,
			ImagePullSecrets: []string{"mirror-creds"}, STSEndpoint: "https://10.0.0.1:4566", S3Endpoint: "https://10.0.0.1:4566", CABundle: []byte("-----BEGIN CERTIFICATE-----\n...\n")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Apply(ctx)
		if err == nil || !strings.Contains(err.Error(), "verify: FAIL: "+CheckPod) {
			t.Fatalf("apply err = %v, want FAIL", err)
		}
		r := st.Report()
		if r == nil || r.Pass || !strings.Contains(r.Checks[0].Detail, "did not finish") || r.Pod == "" {
			t.Fatalf("report = %+v", r)
		}
		if len(roles.ensured) != 1 || roles.ensured[0].RoleName != roleName || !slices.Equal(roles.ensured[0].PolicyARNs, []string{S3ReadOnlyPolicyARN}) {
			t.Errorf("ensured roles = %+v", roles.ensured)
		}
		if len(roles.removed) != 0 {
			t.Errorf("role removed despite keep: %v", roles.removed)
		}

		sa, err := c.CoreV1().ServiceAccounts(DefaultNamespace).Get(ctx, DefaultServiceAccount, metav1.GetOptions{})
		if err != nil || sa.Annotations[config.RoleARNAnnotation] != roleARN {
			t.Fatalf("service account = %+v, %v", sa, err)
		}
		pod := waitForPod(t, c, DefaultNamespace)
		spec := pod.Spec
		ctr := spec.Containers[0]
		if spec.ServiceAccountName != DefaultServiceAccount || ctr.Image != config.DefaultVerifyImage || !slices.Equal(ctr.Command, DefaultCommand) ||
			spec.ActiveDeadlineSeconds == nil || *spec.ActiveDeadlineSeconds != 2 || spec.RestartPolicy != corev1.RestartPolicyNever ||
			len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "mirror-creds" {
			t.Errorf("pod = %+v", pod.Spec)
		}
		env := map[string]string{}
		for _, e := range ctr.Env {
			env[e.Name] = e.Value
		}
		if env["AWS_ENDPOINT_URL_STS"] != "https://10.0.0.1:4566" || env["AWS_ENDPOINT_URL_S3"] != "https://10.0.0.1:4566" || env["AWS_CA_BUNDLE"] != CAMountPath+"/ca.pem" {
			t.Errorf("env = %v", env)
		}
		if _, err := c.CoreV1().ConfigMaps(DefaultNamespace).Get(ctx, DefaultServiceAccount+"-ca", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
		if !strings.Contains(r.Text(), "FAIL") {
			t.Errorf("text = %s", r.Text())
		}

		changes, err := st.Delete(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kinds := []string{}
		for _, ch := range changes {
			kinds = append(kinds, ch.Kind)
		}
		if !slices.Equal(kinds, []string{"pod", "configmap", "serviceaccount", "iam-role"}) {
			t.Errorf("delete = %+v", changes)
		}
		if _, err := c.CoreV1().ServiceAccounts(DefaultNamespace).Get(ctx, DefaultServiceAccount, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("service account still there: %v", err)
		}
		if changes, err := st.Delete(ctx); err != nil || len(changes) != 1 {
			t.Errorf("second delete = %+v, %v; want only the (idempotent) role removal", changes, err)
		}
	})

	// The webhook's and the kubelet's parts played by the test (neither runs in this test; the e2e runs both): the
	// pod is created as the webhook would have mutated it, then marked succeeded.
	t.Run("completed pod: PASS report and cleanup", func(t *testing.T) {
		roles := &recordingRoles{}
		st, err := New(c, roles, Options{ClusterName: "test", Bucket: "irsa-test-issuer", Timeout: time.Minute}, nil)
		if err != nil {
			t.Fatal(err)
		}
		st.podLogs = func(_ context.Context, ns, pod, container string) (string, error) {
			if container != ContainerName {
				return "", fmt.Errorf("logs of container %q", container)
			}
			return fmt.Sprintf("{\n    \"UserId\": \"AROAEXAMPLE:s1\",\n    \"Account\": \"123456789012\",\n    \"Arn\": \"arn:aws:sts::123456789012:assumed-role/%s/s1\"\n}\n2026-11-25 21:40:00 irsa-test-issuer\n", roleName), nil
		}
		mutated := readPod(t, "pod-mutated.yaml")
		st.createPod = func(ctx context.Context, want *corev1.Pod) (*corev1.Pod, error) {
			pod := want.DeepCopy()
			pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, mutated.Spec.Containers[0].Env...)
			pod.Spec.Containers[0].Env[3].Value = roleARN
			pod.Spec.Volumes = append(pod.Spec.Volumes, mutated.Spec.Volumes[0])
			pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, mutated.Spec.Containers[0].VolumeMounts[1:]...)
			return c.CoreV1().Pods(want.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		}
		type result struct {
			changes []stage.Change
			err     error
		}
		done := make(chan result, 1)
		go func() {
			ch, err := st.Apply(ctx)
			done <- result{ch, err}
		}()

		pod := waitForPod(t, c, DefaultNamespace)
		pod.Status = mutated.Status
		if _, err := c.CoreV1().Pods(DefaultNamespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}

		res := <-done
		if res.err != nil {
			t.Fatalf("apply: %v\n%s", res.err, st.Report().Text())
		}
		r := st.Report()
		if !r.Pass || r.CallerARN == "" || r.Logs != "" || len(r.Events) != 0 {
			t.Errorf("report = %+v", r)
		}
		if !slices.Equal(roles.removed, []string{roleName}) {
			t.Errorf("removed roles = %v", roles.removed)
		}
		if pods, _ := c.CoreV1().Pods(DefaultNamespace).List(ctx, metav1.ListOptions{}); len(pods.Items) != 0 {
			t.Errorf("pods left: %d", len(pods.Items))
		}
	})
}
