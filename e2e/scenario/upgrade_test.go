//go:build e2e

package scenario

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/verify"
)

// controlPlaneUpgrader is a cluster that can run what `kubeadm upgrade` does to its control plane (e2e/cluster/host).
type controlPlaneUpgrader interface {
	UpgradeControlPlane(ctx context.Context) (string, error)
}

// kubeadmUpgrade is the kubeadm-upgrade subtest: after irsa apply, kubeadm writes the apiserver manifest again from
// kube-system/kubeadm-config, as `kubeadm upgrade` does (kubernetes/kubeadm#2157 is what that used to lose). The
// rewritten manifest must keep irsa's issuer first and the cluster's own issuer accepted, tokens minted before keep
// authenticating, a workload keeps assuming its role through the strict STS gate, and plan and doctor see nothing
// to do. The scenario's later steps then check that a second apply writes nothing and that teardown restores the
// original issuer from a manifest that carries no irsa record.
func kubeadmUpgrade(ctx context.Context, t *testing.T, e *Env, up controlPlaneUpgrader, originalIssuer, oldToken, roleARN string) {
	start := time.Now()
	out, err := up.UpgradeControlPlane(ctx)
	e.Time("kubeadm upgrade node phase control-plane", start)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("kubeadm upgrade node phase control-plane:\n%s", out)

	b, err := os.ReadFile(apiserver.DefaultManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := manifest.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pod.Annotations[manifest.RecordAnnotation]; ok {
		t.Errorf("the manifest kubeadm wrote carries irsa's record: kubeadm did not rewrite it")
	}
	issuers, err := manifest.Issuers(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(issuers) == 0 || issuers[0] != e.IssuerURL || !slices.Contains(issuers, originalIssuer) {
		t.Errorf("after kubeadm upgrade the manifest has --service-account-issuer %v; want %s first and %s kept", issuers, e.IssuerURL, originalIssuer)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		served, err := apiserver.ServedIssuer(ctx, e.Kube)
		return err == nil && served == e.IssuerURL, nil
	})
	if err != nil {
		t.Fatalf("the apiserver kubeadm wrote does not serve %s: %v", e.IssuerURL, err)
	}
	e.Time("kubeadm upgrade → irsa issuer served", start)

	tr, err := e.Kube.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: oldToken}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Status.Authenticated {
		t.Errorf("a token minted before apply no longer authenticates after kubeadm upgrade: %q", tr.Status.Error)
	}

	pod2, logs, ok := runProbeJob(ctx, t, e, "after-upgrade", "s3-echoer")
	if !ok {
		t.Fatalf("workload after kubeadm upgrade failed; logs:\n%s", logs)
	}
	if rep := verify.Evaluate(pod2, logs, verify.Expect{RoleARN: roleARN, Audience: config.DefaultAudience, Bucket: e.Bucket, Container: "probe"}); !rep.Pass {
		t.Errorf("workload after kubeadm upgrade: %s\n%s", strings.Join(rep.Failed(), ", "), rep.Text())
	}

	if p := e.Run(ctx, "plan"); p.Code != 0 {
		t.Errorf("plan after kubeadm upgrade wants changes:\n%s", p)
	}
	d := e.Run(ctx, "doctor", "default/s3-echoer")
	if d.Code != 0 || strings.Contains(d.Stdout, "✗") || !strings.Contains(d.Stdout, "kubeadm-config") {
		t.Errorf("doctor after kubeadm upgrade is not all ✓ with a kubeadm-config line:\n%s", d)
	}
}
