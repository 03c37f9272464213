package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// bind --ack SERVICE binds the ACK controller's chart ServiceAccount with its recommended policy, and a binding with
// ack: SERVICE in irsa.yaml does the same on apply; the two name the same binding, so bind --ack with the file replaces
// the file's binding instead of adding a second one.
func TestBindACK(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cluster := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external"}
	e.mustRun(append([]string{"apply", "--only", "issuer,provider"}, cluster...)...)
	ctx := context.Background()
	c := clients(t)
	roleARN := func(ns, sa string) string {
		return "arn:aws:iam::123456789012:role/irsa/" + e.cluster + "/" + config.RoleNameFor(e.cluster, ns, sa)
	}
	check := func(ns, sa, policy string) {
		t.Helper()
		got, err := kube.Client.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ServiceAccount %s/%s: %v", ns, sa, err)
		}
		if a := got.Annotations[config.RoleARNAnnotation]; a != roleARN(ns, sa) {
			t.Errorf("%s/%s role annotation %q, want %q", ns, sa, a, roleARN(ns, sa))
		}
		att, err := c.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(config.RoleNameFor(e.cluster, ns, sa))})
		if err != nil {
			t.Fatal(err)
		}
		if len(att.AttachedPolicies) != 1 || aws.ToString(att.AttachedPolicies[0].PolicyArn) != policy {
			t.Errorf("%s/%s attached policies: %+v, want %s", ns, sa, att.AttachedPolicies, policy)
		}
	}

	// The chart would have made the ServiceAccounts; here irsa makes them.
	out := e.mustRun(append([]string{"bind", "--ack", "s3", "--create-service-account"}, cluster...)...)
	if want := "ack-system/ack-s3-controller is bound to " + roleARN("ack-system", "ack-s3-controller"); !strings.Contains(out, want) {
		t.Errorf("bind --ack s3 output:\n%s\nwant %q", out, want)
	}
	check("ack-system", "ack-s3-controller", "arn:aws:iam::aws:policy/AmazonS3FullAccess")

	// A controller installed outside the chart's defaults, with a narrower policy.
	e.mustRun(append([]string{"bind", "platform/s3-ctrl", "--ack", "s3", "--create-service-account", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}, cluster...)...)
	check("platform", "s3-ctrl", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")

	file := filepath.Join(t.TempDir(), "irsa.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: "+config.APIVersion+"\nkind: "+config.Kind+"\nbindings:\n- {ack: sqs, createServiceAccount: true}\n- ack: s3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun(append([]string{"apply", "-f", file, "--only", "bindings"}, cluster...)...)
	check("ack-system", "ack-sqs-controller", "arn:aws:iam::aws:policy/AmazonSQSFullAccess")
	out = e.mustRun(append([]string{"bind", "--ack", "s3", "-f", file}, cluster...)...)
	check("ack-system", "ack-s3-controller", "arn:aws:iam::aws:policy/AmazonS3FullAccess")
	if strings.Contains(out, "note:") {
		t.Errorf("bind --ack s3 -f with ack: s3 in the file says the file does not list it:\n%s", out)
	}
}
