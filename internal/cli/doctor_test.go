package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/doctor"
)

// TestDoctor runs irsa doctor against a real kube-apiserver whose issuer is published in moto. There is no kubelet,
// so the webhook cannot run: its lines fail, and every other line is checked for real. Then each link of the chain is
// broken in turn and the matching line must fail.
func TestDoctor(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cluster := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external"}
	apply := func() {
		t.Helper()
		e.mustRun(append([]string{"apply", "--only", "issuer,provider,bindings"}, cluster...)...)
		e.mustRun(append([]string{"bind", "default/app", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", "--create-service-account"}, cluster...)...)
	}
	runDoctor := func(ref string, extra ...string) map[string]doctor.Check {
		t.Helper()
		code, out, errOut := e.run(append(append([]string{"doctor", ref, "-o", "json"}, cluster...), extra...)...)
		var rep doctor.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("doctor -o json: exit %d, %v\n%s%s", code, err, out, errOut)
		}
		if rep.OK == (code != 0) {
			t.Errorf("doctor exit %d with ok=%v", code, rep.OK)
		}
		checks := map[string]doctor.Check{}
		for _, c := range rep.Checks {
			checks[c.Name] = c
		}
		return checks
	}
	apply()

	checks := runDoctor("default/app")
	for _, name := range []string{"apiserver issuer", "published documents", "signing keys published", "bucket not listable",
		"IAM provider", "service account", "role trust policy", "token accepted"} {
		if c, ok := checks[name]; !ok || !c.OK {
			t.Errorf("healthy setup: %q = %+v, want ✓", name, c)
		}
	}
	// No kubelet here, so no webhook: its lines fail, and say what to do.
	if c := checks["webhook"]; c.OK || !strings.Contains(c.Fix, "irsa apply --only webhook") {
		t.Errorf("webhook line without a webhook: %+v", c)
	}

	ctx := context.Background()
	c := clients(t)
	account, _ := c.AccountID(ctx)
	providerARN := "arn:aws:iam::" + account + ":oidc-provider/" + strings.TrimPrefix(e.issuer, "https://")
	cases := []struct {
		name   string
		ref    string
		extra  []string
		break_ func(t *testing.T)
		check  string
		want   string
	}{
		{"JWKS missing", "default/app", nil, func(t *testing.T) {
			c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("keys.json")})
		}, "published documents", "404"},
		{"discovery private", "default/app", nil, func(t *testing.T) {
			c.S3.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: &e.bucket})
		}, "published documents", "403"},
		{"provider missing", "default/app", nil, func(t *testing.T) {
			c.IAM.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: &providerARN})
		}, "IAM provider", "NoSuchEntity"},
		// The webhook projects tokens for an audience the provider does not list.
		{"audience not a client ID", "default/app", []string{"--audience", "other.example.com"}, func(t *testing.T) {}, "IAM provider", `lack the webhook's audience "other.example.com"`},
		{"service account of another role", "default/other", nil, func(t *testing.T) {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default", Annotations: map[string]string{
				config.RoleARNAnnotation: "arn:aws:iam::" + account + ":role/irsa/" + e.cluster + "/irsa-" + e.cluster + "-default-app"}}}
			if _, err := kube.Client.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "role trust policy", "does not admit default/other"},
		{"unannotated service account", "default/plain", nil, func(t *testing.T) {
			kube.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "default"}}, metav1.CreateOptions{})
		}, "service account", "has no eks.amazonaws.com/role-arn annotation"},
		{"foreign key published", "default/app", nil, func(t *testing.T) {
			e.mustRun("apply", "--only", "issuer") // no cluster: publishes the test's own keypair instead of the apiserver's
		}, "signing keys published", "the published JWKS lacks"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.break_(t)
			got := runDoctor(tc.ref, tc.extra...)[tc.check]
			if got.OK || !strings.Contains(got.Message, tc.want) || got.Fix == "" {
				t.Errorf("%s: line %q = %+v, want ✗ with %q and a fix", tc.name, tc.check, got, tc.want)
			}
			apply()
		})
	}
}
