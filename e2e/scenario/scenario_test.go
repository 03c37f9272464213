//go:build e2e

package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-anywhere/irsa/e2e/images"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/bindings"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/heal"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/verify"
)

// TestIRSA is the whole flow on a real cluster against an AWS backend: apply, a workload that assumes its role and
// lists S3, a workload that must not, verify, doctor, an idempotent re-apply and a clean teardown. On kubeadm it runs
// twice: with the cluster's own signing key, and with a keypair irsa generates and installs on the node (the
// runbook's way).
// Run: make e2e (as root; E2E_CLUSTER=host|kind, E2E_AWS=moto|localstack|aws, KEEP=1 to keep the cluster).
func TestIRSA(t *testing.T) {
	modes := []string{"cluster"}
	if sel := os.Getenv("E2E_CLUSTER"); sel == "" || sel == "host" {
		modes = append(modes, "generate")
	}
	for _, mode := range modes {
		if !t.Run("signing-key="+mode, func(t *testing.T) { runScenario(t, mode) }) {
			return
		}
	}
	if cloudFrontSelected() && !t.Run("signing-key=cluster,hosting=cloudfront", runCloudFrontScenario) { // e2e/scenario/cloudfront_test.go
		return
	}
}

func runScenario(t *testing.T, signingKey string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	artifacts := os.Getenv("E2E_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(os.TempDir(), "irsa-e2e-artifacts")
	}

	e, err := Start(ctx, os.Getenv, log)
	t.Cleanup(func() {
		if t.Failed() {
			dir := filepath.Join(artifacts, time.Now().UTC().Format("20060102T150405"))
			if err := e.CollectLogs(context.WithoutCancel(ctx), dir); err != nil {
				t.Logf("collect logs: %v", err)
			} else {
				t.Logf("cluster logs saved in %s", dir)
			}
		}
		if err := e.Close(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("tear down backends: %v", err)
		}
		t.Logf("timing report (%s):\n%s", e.Selection, e.TimingReport())
	})
	if err != nil {
		t.Fatalf("start %s: %v", e.Selection, err)
	}
	e.ExtraFlags = []string{"--signing-key", signingKey}
	if signingKey == "generate" {
		e.ExtraFlags = append(e.ExtraFlags, "--key-dir", t.TempDir())
	}
	k := e.Kube
	originalIssuer, err := apiserver.ServedIssuer(ctx, k)
	if err != nil {
		t.Fatalf("served issuer before apply: %v", err)
	}

	mustIrsa := func(t *testing.T, phase string, args ...string) Result {
		t.Helper()
		r := e.Run(ctx, args...)
		e.Time(phase, time.Now().Add(-r.Duration))
		if r.Code != 0 {
			t.Fatalf("%s", r)
		}
		return r
	}
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	// A workload that runs before irsa touches the cluster, with a token bound to its pod.
	var oldToken string
	step("pod before apply", func(t *testing.T) {
		createSA(ctx, t, e, "default", "before")
		pod := sleeperPod("before", "before")
		p, err := k.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitPodRunning(ctx, t, e, "default", p.Name)
		exp := int64(3600)
		tr, err := k.CoreV1().ServiceAccounts("default").CreateToken(ctx, "before", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &exp, BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oldToken = tr.Status.Token
	})

	step("apply", func(t *testing.T) {
		r := mustIrsa(t, "irsa apply (all stages)", "apply", "-v=1") // -v=1: the verify stage's steps, timed
		t.Logf("%s%s", r.Stderr, r.Stdout)
		for _, s := range []string{"keys", "issuer", "provider", "apiserver", "webhook", "bindings", "verify"} {
			if !strings.Contains(r.Stderr, "✓ "+s) { // progress is on stderr
				t.Errorf("apply output has no ✓ line for stage %s", s)
			}
		}
		served, err := apiserver.ServedIssuer(ctx, k)
		if err != nil || served != e.IssuerURL {
			t.Errorf("served issuer after apply %q (%v), want %q", served, err, e.IssuerURL)
		}
	})

	step("old token still authenticates", func(t *testing.T) {
		tr, err := k.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: oldToken}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Status.Authenticated || tr.Status.User.Username != "system:serviceaccount:default:before" {
			t.Errorf("token minted before apply: authenticated=%v user=%q error=%q", tr.Status.Authenticated, tr.Status.User.Username, tr.Status.Error)
		}
		p, err := k.CoreV1().Pods("default").Get(ctx, "before", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod created before apply: %v, phase %v", err, p.Status.Phase)
		}
	})

	var roleARN string
	step("bind and run a workload", func(t *testing.T) {
		r := mustIrsa(t, "irsa bind", "bind", "default/s3-echoer", "--create-service-account", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
		sa, err := k.CoreV1().ServiceAccounts("default").Get(ctx, "s3-echoer", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		roleARN = sa.Annotations[config.RoleARNAnnotation]
		if roleARN == "" || !strings.Contains(r.Stdout, roleARN) {
			t.Fatalf("service account not annotated with the role (annotation %q)\n%s", roleARN, r)
		}
		start := time.Now()
		pod, logs, ok := runProbeJob(ctx, t, e, "s3-echoer", "s3-echoer")
		e.Time("workload job (create→complete)", start)
		if !ok {
			t.Fatalf("job with default/s3-echoer failed; logs:\n%s", logs)
		}
		rep := verify.Evaluate(pod, logs, verify.Expect{RoleARN: roleARN, Audience: config.DefaultAudience, Bucket: e.Bucket, Container: "probe"})
		if !rep.Pass {
			t.Errorf("workload pod: %s\n%s", strings.Join(rep.Failed(), ", "), rep.Text())
		}
		t.Logf("workload output:\n%s", logs)
	})

	step("a service account outside the trust policy is refused", func(t *testing.T) {
		createSA(ctx, t, e, "default", "intruder", config.RoleARNAnnotation, roleARN)
		_, logs, ok := runProbeJob(ctx, t, e, "intruder", "intruder")
		if ok {
			t.Fatalf("default/intruder assumed %s; logs:\n%s", roleARN, logs)
		}
		if !strings.Contains(logs, "AccessDenied") {
			t.Errorf("default/intruder failed without AccessDenied; logs:\n%s", logs)
		}
	})

	step("verify and doctor", func(t *testing.T) {
		r := mustIrsa(t, "irsa verify", "verify")
		if !strings.Contains(r.Stdout, "PASS") {
			t.Errorf("verify did not report PASS:\n%s", r)
		}
		d := e.Run(ctx, "doctor", "default/s3-echoer")
		if d.Code != 0 || strings.Contains(d.Stdout, "✗") {
			t.Errorf("doctor is not all ✓:\n%s", d)
		}
		t.Logf("doctor:\n%s", d.Stdout)
	})

	// heal: the webhook's grace period covers a ServiceAccount created together with its Deployment; a Deployment
	// whose pods started before their ServiceAccount was bound is found by doctor --pods and restarted by heal.
	step("heal", func(t *testing.T) {
		t.Cleanup(func() {
			for _, d := range []string{"together", "late"} {
				_ = k.AppsV1().Deployments("default").Delete(context.WithoutCancel(ctx), d, metav1.DeleteOptions{})
			}
			_ = k.CoreV1().ServiceAccounts("default").Delete(context.WithoutCancel(ctx), "together", metav1.DeleteOptions{})
		})
		createSA(ctx, t, e, "default", "together", config.RoleARNAnnotation, roleARN)
		createDeployment(ctx, t, e, "together", "together")
		if p := waitDeploymentPod(ctx, t, e, "together"); len(heal.Missing(p, roleARN)) != 0 {
			t.Errorf("pod %s created together with its ServiceAccount lacks %v", p.Name, heal.Missing(p, roleARN))
		}

		createSA(ctx, t, e, "default", "late")
		createDeployment(ctx, t, e, "late", "late")
		waitDeploymentPod(ctx, t, e, "late")
		mustIrsa(t, "irsa bind (late)", "bind", "default/late", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
		d := e.Run(ctx, "doctor", "--pods")
		if d.Code != 1 || !strings.Contains(d.Stdout, "✗ pod default/late-") || !strings.Contains(d.Stdout, "owner Deployment default/late") {
			t.Errorf("doctor --pods does not report the pod of default/late:\n%s", d)
		}
		h := mustIrsa(t, "irsa heal", "heal", "--yes")
		if !strings.Contains(h.Stdout, "~ restarted Deployment default/late") {
			t.Errorf("heal did not restart default/late:\n%s", h)
		}
		err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
			findings, _, err := heal.Find(ctx, k)
			return err == nil && len(findings) == 0, nil
		})
		if err != nil {
			t.Errorf("pods still without the web identity after heal: %v", err)
		}
		if d := e.Run(ctx, "doctor", "--pods"); d.Code != 0 {
			t.Errorf("doctor --pods after heal:\n%s", d)
		}
	})

	if up, ok := e.Backends.Cluster.(controlPlaneUpgrader); ok {
		step("kubeadm-upgrade keeps the issuer", func(t *testing.T) { kubeadmUpgrade(ctx, t, e, up, originalIssuer, oldToken, roleARN) })
	}

	step("second apply changes nothing", func(t *testing.T) {
		r := mustIrsa(t, "irsa apply (no-op)", "apply", "-o", "json")
		var rep struct {
			Changed bool
			Stages  []struct {
				Name    string
				Skipped string
				Changes []json.RawMessage
			}
			Calls struct {
				AWSWrites     []string
				ClusterWrites []string
			}
		}
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatalf("apply -o json: %v\n%s", err, r)
		}
		if rep.Changed {
			t.Errorf("second apply changed something:\n%s", r.Stdout)
		}
		if len(rep.Calls.AWSWrites)+len(rep.Calls.ClusterWrites) > 0 {
			t.Errorf("second apply wrote: AWS %v, cluster %v", rep.Calls.AWSWrites, rep.Calls.ClusterWrites)
		}
		for _, s := range rep.Stages {
			if s.Name == "verify" && s.Skipped == "" {
				t.Errorf("second apply ran the verify Job although nothing changed:\n%s", r.Stdout)
			}
		}
		if p := e.Run(ctx, "plan"); p.Code != 0 {
			t.Errorf("plan after apply: %s", p)
		}
	})

	step("teardown", func(t *testing.T) {
		r := mustIrsa(t, "irsa teardown", "teardown", "--yes")
		t.Logf("%s%s", r.Stderr, r.Stdout)
		served, err := apiserver.ServedIssuer(ctx, k)
		if err != nil || served != originalIssuer {
			t.Errorf("served issuer after teardown %q (%v), want the original %q", served, err, originalIssuer)
		}
		checkNoIrsaObjects(ctx, t, e)
		checkNoOwnedAWS(ctx, t, e)
	})
}

func createSA(ctx context.Context, t *testing.T, e *Env, ns, name string, annotations ...string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{}}}
	for i := 0; i+1 < len(annotations); i += 2 {
		sa.Annotations[annotations[i]] = annotations[i+1]
	}
	if _, err := e.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func createDeployment(ctx context.Context, t *testing.T, e *Env, name, sa string) {
	t.Helper()
	labels := map[string]string{"irsa-e2e": name}
	one := int32(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: sleeperPod(name, sa).Spec},
	}}
	if _, err := e.Kube.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitDeploymentPod returns the Deployment's running pod.
func waitDeploymentPod(ctx context.Context, t *testing.T, e *Env, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := e.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "irsa-e2e=" + name})
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
		t.Fatalf("no running pod of deployment default/%s: %v", name, err)
	}
	return pod
}

func sleeperPod(name, sa string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{
			Name: "pause", Image: "registry.k8s.io/pause:3.10.2", ImagePullPolicy: corev1.PullIfNotPresent,
		}}},
	}
}

func waitPodRunning(ctx context.Context, t *testing.T, e *Env, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := e.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not running: %v", ns, name, err)
	}
}

// runProbeJob runs `irsa probe` (sts get-caller-identity + s3 ls) as a Job with the ServiceAccount and returns the
// stored pod, its logs and whether the Job succeeded.
func runProbeJob(ctx context.Context, t *testing.T, e *Env, name, sa string) (*corev1.Pod, string, bool) {
	t.Helper()
	aws := e.Backends.AWS
	var env []corev1.EnvVar
	var mounts []corev1.VolumeMount
	var volumes []corev1.Volume
	if ep := aws.PodEndpoint(); ep != "" {
		env = append(env, corev1.EnvVar{Name: "AWS_ENDPOINT_URL_STS", Value: ep}, corev1.EnvVar{Name: "AWS_ENDPOINT_URL_S3", Value: ep})
	}
	if aws.CAFile() != "" {
		ca, err := os.ReadFile(aws.CAFile())
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name + "-ca", Namespace: "default"}, Data: map[string]string{"ca.pem": string(ca)}}
		if _, err := e.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		env = append(env, corev1.EnvVar{Name: "AWS_CA_BUNDLE", Value: "/etc/irsa-ca/ca.pem"})
		mounts = append(mounts, corev1.VolumeMount{Name: "ca", MountPath: "/etc/irsa-ca"})
		volumes = append(volumes, corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name + "-ca"}}}})
	}
	if arn := saRole(ctx, t, e, sa); arn != "" {
		if err := bindings.WaitInjected(ctx, e.Kube, "default", sa, arn, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	backoff, fsGroup := int32(0), int64(65532)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.JobSpec{BackoffLimit: &backoff, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"irsa-e2e": name}},
			Spec: corev1.PodSpec{
				ServiceAccountName: sa, RestartPolicy: corev1.RestartPolicyNever,
				SecurityContext: &corev1.PodSecurityContext{FSGroup: &fsGroup},
				Containers: []corev1.Container{{Name: "probe", Image: images.IrsaRef, ImagePullPolicy: corev1.PullIfNotPresent,
					Command: verify.ProbeCommand, Env: env, VolumeMounts: mounts}},
				Volumes: volumes,
			},
		}},
	}
	if _, err := e.Kube.BatchV1().Jobs("default").Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var done, ok bool
	err := wait.PollUntilContextTimeout(ctx, time.Second, 4*time.Minute, true, func(ctx context.Context) (bool, error) {
		j, err := e.Kube.BatchV1().Jobs("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range j.Status.Conditions {
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
				done, ok = true, c.Type == batchv1.JobComplete
			}
		}
		return done, nil
	})
	pods, perr := e.Kube.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "irsa-e2e=" + name})
	if perr != nil || len(pods.Items) == 0 {
		t.Fatalf("job %s: no pod (%v); wait: %v", name, perr, err)
	}
	pod := &pods.Items[0]
	logs := podLogs(ctx, e, pod)
	if err != nil {
		t.Fatalf("job %s did not finish: %v; pod phase %s; logs:\n%s", name, err, pod.Status.Phase, logs)
	}
	return pod, logs, ok
}

func saRole(ctx context.Context, t *testing.T, e *Env, sa string) string {
	t.Helper()
	s, err := e.Kube.CoreV1().ServiceAccounts("default").Get(ctx, sa, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Annotations[config.RoleARNAnnotation]
}

func podLogs(ctx context.Context, e *Env, pod *corev1.Pod) string {
	rc, err := e.Kube.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		return fmt.Sprintf("(logs: %v)", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// checkNoIrsaObjects finds nothing labelled as irsa's in the cluster.
func checkNoIrsaObjects(ctx context.Context, t *testing.T, e *Env) {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: config.ManagedByTagKey + "=" + config.ManagedByValue}
	k := e.Kube
	count := func(kind string, n int, err error) {
		if err != nil {
			t.Errorf("list %s: %v", kind, err)
		} else if n > 0 {
			t.Errorf("%d %s labelled %s=%s left after teardown", n, kind, config.ManagedByTagKey, config.ManagedByValue)
		}
	}
	ns, err := k.CoreV1().Namespaces().List(ctx, sel)
	count("namespaces", len(ns.Items), err)
	sas, err := k.CoreV1().ServiceAccounts("").List(ctx, sel)
	count("serviceaccounts", len(sas.Items), err)
	deps, err := k.AppsV1().Deployments("").List(ctx, sel)
	count("deployments", len(deps.Items), err)
	secs, err := k.CoreV1().Secrets("").List(ctx, sel)
	count("secrets", len(secs.Items), err)
	mwc, err := k.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, sel)
	count("mutatingwebhookconfigurations", len(mwc.Items), err)
	crs, err := k.RbacV1().ClusterRoles().List(ctx, sel)
	count("clusterroles", len(crs.Items), err)
	pods, err := k.CoreV1().Pods("").List(ctx, sel)
	count("pods", len(pods.Items), err)
	sa, err := k.CoreV1().ServiceAccounts("default").Get(ctx, "s3-echoer", metav1.GetOptions{})
	if err == nil {
		if v, ok := sa.Annotations[config.RoleARNAnnotation]; ok {
			t.Errorf("default/s3-echoer still annotated %s=%s", config.RoleARNAnnotation, v)
		}
	}
}

// checkNoOwnedAWS finds no bucket, provider or role of the cluster left in AWS.
func checkNoOwnedAWS(ctx context.Context, t *testing.T, e *Env) {
	t.Helper()
	b := e.Backends.AWS
	var ca []byte
	if b.CAFile() != "" {
		ca, _ = os.ReadFile(b.CAFile())
	}
	opts := awsclient.Options{Region: b.Region(), EndpointURL: b.Endpoint(), CABundle: ca}
	if b.Endpoint() != "" {
		opts.Credentials = credentials.NewStaticCredentialsProvider("testing", "testing", "")
	}
	c, err := awsclient.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &e.Bucket}); !awsclient.IsNotFound(err) {
		t.Errorf("bucket %s still exists after teardown (HeadBucket: %v)", e.Bucket, err)
	}
	r, err := c.IAM.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String(roles.Path(e.ClusterName))})
	if err != nil {
		t.Errorf("list roles: %v", err)
	} else if len(r.Roles) > 0 {
		t.Errorf("%d roles left under %s", len(r.Roles), roles.Path(e.ClusterName))
	}
	p, err := c.IAM.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
	if err != nil {
		t.Errorf("list providers: %v", err)
	}
	for _, pr := range p.OpenIDConnectProviderList {
		if strings.HasSuffix(aws.ToString(pr.Arn), strings.TrimPrefix(e.IssuerURL, "https://")) {
			t.Errorf("provider %s left after teardown", aws.ToString(pr.Arn))
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
