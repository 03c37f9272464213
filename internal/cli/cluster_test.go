package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// A cluster irsa cannot use stops apply with an error that names the cluster and what went wrong, before anything
// is created in AWS.
func TestApplyWithUnusableCluster(t *testing.T) {
	kube := kubeapiserver.Start(t, kubeapiserver.Options{})
	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	data, err := os.ReadFile(kube.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(unreachable, []byte(strings.ReplaceAll(string(data), kube.URL, "https://127.0.0.1:1")), 0o600)
	cases := []struct {
		name, kubeconfig, want string
	}{
		{"unreachable", unreachable, "127.0.0.1:1"},
		{"forbidden", kube.UserKubeconfig(t, "nobody"), "the kubeconfig's user lacks the permission"},
		{"missing file", "/nonexistent/kubeconfig", `kubeconfig "/nonexistent/kubeconfig"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			code, out, errOut := e.run("apply", "--kubeconfig", tc.kubeconfig, "--cluster-type", "external")
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("apply with a %s cluster: exit %d, want 1 with %q\nstdout: %s\nstderr: %s", tc.name, code, tc.want, out, errOut)
			}
			if _, err := clients(t).S3.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
				t.Errorf("apply with a %s cluster created the bucket (HeadBucket: %v)", tc.name, err)
			}
		})
	}
}

func TestStatusReportsSyncAndDrift(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply")
	if out := e.mustRun("status"); !strings.Contains(out, "state:    in sync") || !strings.Contains(out, "issuer:   "+e.issuer) {
		t.Errorf("status after apply:\n%s", out)
	}
	clients(t).S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: strPtr("keys.json")})
	// Drift exits 2, as plan does with changes to make; -o json reports it and exits the same.
	if code, out, _ := e.run("status"); code != 2 || !strings.Contains(out, "drifted") || !strings.Contains(out, "+ s3-object "+e.bucket+"/keys.json") {
		t.Errorf("status after deleting keys.json: exit %d, want 2\n%s", code, out)
	}
	if code, out, errOut := e.run("status", "-o", "json"); code != 2 || !strings.Contains(out, `"inSync": false`) || errOut != "" {
		t.Errorf("status -o json after deleting keys.json: exit %d, want 2 and no error object\n%s\n%s", code, out, errOut)
	}
}

func strPtr(s string) *string { return &s }

// bind on a cluster refuses a missing ServiceAccount (a typo must not make a new one) before any write; with
// --create-service-account it creates it and sets the webhook's annotations; unbind removes only those.
func TestBindAnnotatesServiceAccount(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cluster := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external"}
	e.mustRun(append([]string{"apply", "--only", "issuer,provider"}, cluster...)...)
	bindArgs := append([]string{"bind", "team-a/app", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
		"--sts-regional-endpoints", "true", "--token-expiration", "1h"}, cluster...)
	code, _, errOut := e.run(bindArgs...)
	if code != 1 || !strings.Contains(errOut, "service account team-a/app") || !strings.Contains(errOut, "--create-service-account") {
		t.Errorf("bind of a missing service account: exit %d, want 1 naming team-a/app and --create-service-account\n%s", code, errOut)
	}
	if w := e.last.AWS.Calls.Mutating(); len(w) > 0 {
		t.Errorf("bind of a missing service account wrote to AWS: %v", w)
	}
	if _, err := kube.Client.CoreV1().Namespaces().Get(context.Background(), "team-a", metav1.GetOptions{}); err == nil {
		t.Errorf("bind of a missing service account created namespace team-a")
	}
	// The same rule for irsa.yaml's bindings: apply refuses before its first write.
	cfg := filepath.Join(t.TempDir(), "irsa.yaml")
	os.WriteFile(cfg, []byte("bindings:\n- {namespace: team-b, serviceAccount: typo, policyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]}\n"), 0o600)
	code, _, errOut = e.run(append([]string{"apply", "-f", cfg}, cluster...)...)
	if code != 1 || !strings.Contains(errOut, "service account team-b/typo") || !strings.Contains(errOut, "createServiceAccount: true") {
		t.Errorf("apply with a binding of a missing service account: exit %d\n%s", code, errOut)
	}
	if w := e.last.AWS.Calls.Mutating(); len(w) > 0 {
		t.Errorf("apply with a binding of a missing service account wrote to AWS: %v", w)
	}
	e.mustRun(append(bindArgs, "--create-service-account")...)
	ctx := context.Background()
	sa, err := kube.Client.CoreV1().ServiceAccounts("team-a").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		config.RoleARNAnnotation:         "arn:aws:iam::123456789012:role/irsa/" + e.cluster + "/irsa-" + e.cluster + "-team-a-app",
		config.STSRegionalAnnotation:     "true",
		config.TokenExpirationAnnotation: "3600",
	}
	for k, v := range want {
		if sa.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, sa.Annotations[k], v)
		}
	}
	e.mustRun(append([]string{"unbind", "team-a/app", "--yes"}, cluster...)...)
	if _, err := kube.Client.CoreV1().ServiceAccounts("team-a").Get(ctx, "app", metav1.GetOptions{}); err == nil {
		t.Errorf("unbind left the ServiceAccount irsa created")
	}
	if code, _, errOut := e.run(append([]string{"bind", "team-a/app", "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess", "--token-expiration", "5m"}, cluster...)...); code != 1 || !strings.Contains(errOut, `token expiration "5m": must be a duration from 10m to 48h`) {
		t.Errorf("bind --token-expiration 5m: exit %d, %s", code, errOut)
	}
}
