//go:build e2e

package scenario

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/pipeline/ack"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/bindings"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// The ACK step's names: the Bucket resource in the cluster and the bucket it asks for.
const (
	ackBucketResource = "irsa-e2e-ack"
	ackBucketName     = "irsa-e2e-ack-bucket"
)

var (
	crdGVR    = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	bucketGVR = schema.GroupVersionResource{Group: "s3.services.k8s.aws", Version: "v1alpha1", Resource: "buckets"}
	// manifestGVRs are the kinds of the manifests ACK's module ships that the step applies.
	manifestGVRs = map[string]schema.GroupVersionResource{
		"CustomResourceDefinition": crdGVR,
		"ClusterRole":              {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
		"ClusterRoleBinding":       {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	}
)

// ackRuns says whether the ACK step runs: on the host cluster against moto behind the strict STS gate (the
// controller's image is built here and loaded into the node), in one signing-key mode, the runbook's (generate).
func ackRuns(e *Env, signingKey string) bool {
	return signingKey == "generate" && e.Selection.Cluster == "host" && e.Selection.AWS == "moto"
}

// runACK is the runbook's second consumer of IRSA: the real ACK S3 controller (hack/build-ack.sh, built from its Go
// module), bound with `irsa bind --ack s3`, running with nothing but the web identity the webhook injects, turns a
// Bucket resource created in the cluster into a bucket in the emulator. Its only STS endpoint is the strict gate, so
// the bucket exists only if the gate accepted the controller's token for the role irsa made; deleting the resource
// removes the bucket again.
func runACK(ctx context.Context, t *testing.T, e *Env, irsa func(t *testing.T, phase string, args ...string) Result) {
	k := e.Kube
	ctl, err := ack.Lookup("s3")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	build := exec.CommandContext(ctx, filepath.Join(e.root, "hack", "build-ack.sh"))
	var stdout, stderr bytes.Buffer
	build.Stdout, build.Stderr = &stdout, &stderr
	if err := build.Run(); err != nil {
		t.Fatalf("hack/build-ack.sh: %v\n%s", err, stderr.String())
	}
	what := "cached"
	if strings.Contains(stderr.String(), " built in ") {
		what = "built"
	}
	e.Time("ack-s3-controller build ("+what+")", start)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := lines[len(lines)-1]
	ref, err := os.ReadFile(filepath.Join(dir, "image.ref"))
	if err != nil {
		t.Fatal(err)
	}
	image := strings.TrimSpace(string(ref))
	start = time.Now()
	if err := e.Backends.Cluster.LoadImages(ctx, filepath.Join(dir, "image.tar")); err != nil {
		t.Fatal(err)
	}
	e.Time("load ack-s3-controller image", start)

	dyn, err := dynamic.NewForConfig(e.Rest)
	if err != nil {
		t.Fatal(err)
	}
	var applied []*unstructured.Unstructured
	t.Cleanup(func() {
		ctx := context.WithoutCancel(ctx)
		// The chart's namespace with everything in it (the controller, its ServiceAccount), gone before teardown runs.
		_ = k.CoreV1().Namespaces().Delete(ctx, ctl.Namespace, metav1.DeleteOptions{})
		if err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := k.CoreV1().Namespaces().Get(ctx, ctl.Namespace, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		}); err != nil {
			t.Errorf("namespace %s still there: %v", ctl.Namespace, err)
		}
		for i := len(applied) - 1; i >= 0; i-- {
			_ = dyn.Resource(manifestGVRs[applied[i].GetKind()]).Delete(ctx, applied[i].GetName(), metav1.DeleteOptions{})
		}
	})
	// The CRDs and the controller's ClusterRole and binding as ACK's module ships them (hack/build-ack.sh copied them
	// out of the module cache).
	files, _ := filepath.Glob(filepath.Join(dir, "crds", "*.yaml"))
	rbac, _ := filepath.Glob(filepath.Join(dir, "rbac", "*.yaml"))
	for _, f := range append(files, rbac...) {
		objs, err := applyManifest(ctx, dyn, f)
		applied = append(applied, objs...)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		crd, err := dyn.Resource(crdGVR).Get(ctx, bucketGVR.Resource+"."+bucketGVR.Group, metav1.GetOptions{})
		return err == nil && hasCondition(crd, "Established", "True"), nil
	}); err != nil {
		t.Fatalf("CRD buckets.s3.services.k8s.aws not established: %v", err)
	}

	// The namespace and ServiceAccount as the controller's Helm chart makes them (serviceAccount.create: true), before
	// irsa binds it: bind annotates an existing ServiceAccount.
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ctl.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: ctl.ServiceAccount, Namespace: ctl.Namespace}}
	if _, err := k.CoreV1().ServiceAccounts(ctl.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	r := irsa(t, "irsa bind --ack s3", "bind", "--ack", "s3")
	sa, err = k.CoreV1().ServiceAccounts(ctl.Namespace).Get(ctx, ctl.ServiceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roleARN := sa.Annotations[config.RoleARNAnnotation]
	if roleARN == "" || !strings.Contains(r.Stdout, ctl.Namespace+"/"+ctl.ServiceAccount+" is bound to "+roleARN) {
		t.Fatalf("bind --ack s3 did not annotate %s/%s (annotation %q)\n%s", ctl.Namespace, ctl.ServiceAccount, roleARN, r)
	}
	if err := bindings.WaitInjected(ctx, k, ctl.Namespace, ctl.ServiceAccount, roleARN, 2*time.Minute); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	if err := runACKController(ctx, e, ctl, image); err != nil {
		t.Fatal(err)
	}
	pod := waitPod(ctx, t, e, ctl.Namespace, "app="+ctl.ServiceAccount)
	if v := envOf(pod, "AWS_ROLE_ARN"); v != roleARN {
		t.Fatalf("controller pod %s has AWS_ROLE_ARN %q, want %q (the webhook did not inject the web identity)", pod.Name, v, roleARN)
	}
	e.Time("ack controller running", start)

	start = time.Now()
	// The encryption S3 gives every new bucket since January 2023 (SSE-S3, AES256), spelled out: moto 5.2.1 gives
	// none, and the controller's read of a bucket (hook.go addPutFieldsToSpec) dereferences GetBucketEncryption's
	// answer, which real S3 always has, and panics on moto's ServerSideEncryptionConfigurationNotFoundError.
	sse := map[string]any{"applyServerSideEncryptionByDefault": map[string]any{"sseAlgorithm": "AES256"}, "bucketKeyEnabled": false}
	bucket := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": bucketGVR.Group + "/" + bucketGVR.Version, "kind": "Bucket",
		"metadata": map[string]any{"name": ackBucketResource, "namespace": "default"},
		"spec":     map[string]any{"name": ackBucketName, "encryption": map[string]any{"rules": []any{sse}}},
	}}
	if _, err := dyn.Resource(bucketGVR).Namespace("default").Create(ctx, bucket, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(bucketGVR).Namespace("default").Delete(context.WithoutCancel(ctx), ackBucketResource, metav1.DeleteOptions{})
	})
	s3c := emulatorS3(ctx, t, e)
	exists := func(ctx context.Context) (bool, error) {
		_, err := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: strPtr(ackBucketName)})
		return err == nil, nil
	}
	if err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 4*time.Minute, true, exists); err != nil {
		t.Fatalf("bucket %s never appeared in the emulator: %v\nBucket resource: %s\ncontroller logs:\n%s", ackBucketName, err,
			resourceStatus(ctx, dyn), controllerLogs(ctx, e, pod))
	}
	e.Time("ack: Bucket -> bucket in moto", start)
	if err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		b, err := dyn.Resource(bucketGVR).Namespace("default").Get(ctx, ackBucketResource, metav1.GetOptions{})
		return err == nil && hasCondition(b, "ACK.ResourceSynced", "True"), nil
	}); err != nil {
		t.Errorf("Bucket resource never reported ACK.ResourceSynced=True: %v\n%s\ncontroller logs:\n%s", err, resourceStatus(ctx, dyn), controllerLogs(ctx, e, pod))
	}
	t.Logf("Bucket resource: %s", resourceStatus(ctx, dyn))

	start = time.Now()
	if err := dyn.Resource(bucketGVR).Namespace("default").Delete(ctx, ackBucketResource, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ok, _ := exists(ctx)
		return !ok, nil
	}); err != nil {
		t.Errorf("bucket %s still in the emulator after its Bucket resource was deleted: %v\ncontroller logs:\n%s", ackBucketName, err, controllerLogs(ctx, e, pod))
	}
	e.Time("ack: Bucket deleted -> bucket gone", start)
}

// runACKController deploys the controller as its Helm chart does (ServiceAccount, flags), pointed at the emulator:
// --aws-endpoint-url for S3, AWS_ENDPOINT_URL_STS (read by aws-sdk-go-v2's web identity provider) for STS, both the
// strict gate, and SSL_CERT_FILE for the emulator's CA: the controller gives the SDK its own *http.Client, with which
// the SDK refuses AWS_CA_BUNDLE, so the CA joins Go's system roots instead.
func runACKController(ctx context.Context, e *Env, ctl ack.Controller, image string) error {
	aws := e.Backends.AWS
	ca, err := os.ReadFile(aws.CAFile())
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ack-ca", Namespace: ctl.Namespace}, Data: map[string]string{"ca.pem": string(ca)}}
	if _, err := e.Kube.CoreV1().ConfigMaps(ctl.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	labels := map[string]string{"app": ctl.ServiceAccount}
	one, fsGroup := int32(1), int64(65532)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: ctl.ServiceAccount, Namespace: ctl.Namespace}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			ServiceAccountName: ctl.ServiceAccount,
			SecurityContext:    &corev1.PodSecurityContext{FSGroup: &fsGroup},
			Containers: []corev1.Container{{
				Name: "controller", Image: image, ImagePullPolicy: corev1.PullNever,
				Args: []string{"--aws-region", aws.Region(), "--aws-endpoint-url", aws.PodEndpoint(), "--enable-carm=false",
					"--log-level", "debug", "--deletion-policy", "delete", "--metrics-addr", "127.0.0.1:8080", "--healthz-addr", "127.0.0.1:8081"},
				Env: []corev1.EnvVar{
					{Name: "ACK_SYSTEM_NAMESPACE", Value: ctl.Namespace},
					{Name: "AWS_ENDPOINT_URL_STS", Value: aws.PodEndpoint()},
					{Name: "SSL_CERT_FILE", Value: "/etc/irsa-ca/ca.pem"},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "ca", MountPath: "/etc/irsa-ca"}},
			}},
			Volumes: []corev1.Volume{{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "ack-ca"}}}}},
		}},
	}}
	_, err = e.Kube.AppsV1().Deployments(ctl.Namespace).Create(ctx, d, metav1.CreateOptions{})
	return err
}

// applyManifest server-side applies every document of a YAML file whose kind is in manifestGVRs.
func applyManifest(ctx context.Context, dyn dynamic.Interface, path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split("\n"+string(data), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		gvr, ok := manifestGVRs[obj.GetKind()]
		if !ok {
			return out, fmt.Errorf("%s: kind %q: not one the ACK step applies", path, obj.GetKind())
		}
		if _, err := dyn.Resource(gvr).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "irsa-e2e", Force: true}); err != nil {
			return out, fmt.Errorf("apply %s %s from %s: %w", obj.GetKind(), obj.GetName(), path, err)
		}
		out = append(out, obj)
	}
	return out, nil
}

func hasCondition(obj *unstructured.Unstructured, typ, status string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["status"] == status {
			return true
		}
	}
	return false
}

func resourceStatus(ctx context.Context, dyn dynamic.Interface) string {
	b, err := dyn.Resource(bucketGVR).Namespace("default").Get(ctx, ackBucketResource, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	s, _ := yaml.Marshal(b.Object["status"])
	return string(s)
}

// waitPod returns the running pod matching selector in ns.
func waitPod(ctx context.Context, t *testing.T, e *Env, ns, selector string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		for i := range pods.Items {
			if pods.Items[i].Status.Phase == corev1.PodRunning && pods.Items[i].DeletionTimestamp == nil {
				pod = &pods.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		pods, _ := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		var logs []string
		for i := range pods.Items {
			logs = append(logs, fmt.Sprintf("pod %s (%s):\n%s", pods.Items[i].Name, pods.Items[i].Status.Phase, controllerLogs(ctx, e, &pods.Items[i])))
		}
		t.Fatalf("no running pod %s in %s: %v\n%s", selector, ns, err, strings.Join(logs, "\n"))
	}
	return pod
}

// controllerLogs are a pod's logs, or why they could not be read.
func controllerLogs(ctx context.Context, e *Env, pod *corev1.Pod) string {
	b, err := e.Kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("(logs: %v)", err)
	}
	return string(b)
}

func envOf(pod *corev1.Pod, name string) string {
	for _, c := range pod.Spec.Containers {
		for _, v := range c.Env {
			if v.Name == name {
				return v.Value
			}
		}
	}
	return ""
}

// emulatorS3 is an S3 client of the emulator as the test machine reaches it.
func emulatorS3(ctx context.Context, t *testing.T, e *Env) *s3.Client {
	t.Helper()
	b := e.Backends.AWS
	ca, err := os.ReadFile(b.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	c, err := awsclient.New(ctx, awsclient.Options{Region: b.Region(), EndpointURL: b.Endpoint(), CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		t.Fatal(err)
	}
	return c.S3
}

func strPtr(s string) *string { return &s }
