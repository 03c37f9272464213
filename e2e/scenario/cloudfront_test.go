//go:build e2e

package scenario

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cf "github.com/aws/aws-sdk-go-v2/service/cloudfront"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/issuer/cloudfront"
	"github.com/irsa-anywhere/irsa/pipeline/verify"
)

// cloudFrontSelected says whether the cloudfront run applies: the host kubeadm cluster and moto, whose CloudFront
// API the strict CloudFront stand-in reads.
func cloudFrontSelected() bool {
	c, a := os.Getenv("E2E_CLUSTER"), os.Getenv("E2E_AWS")
	return (c == "" || c == "host") && (a == "" || a == "moto")
}

// runCloudFrontScenario is the scenario with the issuer behind CloudFront: apply makes the private bucket, the
// origin access control, the distribution and the provider for the distribution's URL, the apiserver issues tokens
// for it, and a pod assumes its role through the strict STS gate, which fetches the issuer's documents through the
// strict CloudFront stand-in (it serves them only as the distribution may read them from the private bucket). A
// second apply changes nothing; teardown leaves nothing of irsa's.
func runCloudFrontScenario(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	getenv := func(k string) string {
		if k == "E2E_ISSUER_HOSTING" {
			return config.HostingCloudFront
		}
		return os.Getenv(k)
	}
	e, err := Start(ctx, getenv, log)
	t.Cleanup(func() {
		if t.Failed() {
			dir := filepath.Join(os.TempDir(), "irsa-e2e-artifacts", time.Now().UTC().Format("20060102T150405")+"-cloudfront")
			if err := e.CollectLogs(context.WithoutCancel(ctx), dir); err == nil {
				t.Logf("cluster logs saved in %s", dir)
			}
		}
		if err := e.Close(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("tear down backends: %v", err)
		}
		t.Logf("timing report (%s, cloudfront):\n%s", e.Selection, e.TimingReport())
	})
	if err != nil {
		t.Fatalf("start %s: %v", e.Selection, err)
	}
	e.ExtraFlags = []string{"--signing-key", "cluster"}
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
	c := e2eClients(ctx, t, e)

	step("apply", func(t *testing.T) {
		r := mustIrsa(t, "irsa apply, cloudfront (all stages)", "apply", "-v=1")
		t.Logf("%s%s", r.Stderr, r.Stdout)
		for _, want := range []string{"+ cloudfront-origin-access-control", "+ cloudfront-distribution", "✓ verify"} {
			if !strings.Contains(r.Stdout+r.Stderr, want) {
				t.Errorf("apply output lacks %q", want)
			}
		}
		e.IssuerURL = cloudFrontIssuer(ctx, t, c, e.ClusterName)
		served, err := apiserver.ServedIssuer(ctx, k)
		if err != nil || served != e.IssuerURL {
			t.Errorf("served issuer after apply %q (%v), want the distribution's %q", served, err, e.IssuerURL)
		}
	})

	step("bind and run a workload", func(t *testing.T) {
		mustIrsa(t, "irsa bind (cloudfront)", "bind", "default/s3-echoer", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", "--create-service-account")
		roleARN := saRole(ctx, t, e, "s3-echoer")
		start := time.Now()
		pod, logs, ok := runProbeJob(ctx, t, e, "s3-echoer", "s3-echoer")
		e.Time("workload job, cloudfront (create→complete)", start)
		if !ok {
			t.Fatalf("job with default/s3-echoer failed; logs:\n%s", logs)
		}
		rep := verify.Evaluate(pod, logs, verify.Expect{RoleARN: roleARN, Audience: config.DefaultAudience, Bucket: e.Bucket, Container: "probe"})
		if !rep.Pass {
			t.Errorf("workload pod: %s\n%s", strings.Join(rep.Failed(), ", "), rep.Text())
		}
		_ = k.BatchV1().Jobs("default").Delete(context.WithoutCancel(ctx), "s3-echoer", metav1.DeleteOptions{})
	})

	step("second apply changes nothing", func(t *testing.T) {
		r := mustIrsa(t, "irsa apply, cloudfront (no-op)", "apply", "-o", "json")
		var rep struct {
			Changed bool
			Calls   struct{ AWSWrites, ClusterWrites []string }
		}
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatalf("apply -o json: %v\n%s", err, r)
		}
		if rep.Changed || len(rep.Calls.AWSWrites)+len(rep.Calls.ClusterWrites) > 0 {
			t.Errorf("second apply changed something or wrote: AWS %v, cluster %v\n%s", rep.Calls.AWSWrites, rep.Calls.ClusterWrites, r.Stdout)
		}
		if p := e.Run(ctx, "plan"); p.Code != 0 {
			t.Errorf("plan after apply: %s", p)
		}
	})

	step("teardown", func(t *testing.T) {
		r := mustIrsa(t, "irsa teardown, cloudfront", "teardown", "--yes")
		t.Logf("%s%s", r.Stderr, r.Stdout)
		served, err := apiserver.ServedIssuer(ctx, k)
		if err != nil || served != originalIssuer {
			t.Errorf("served issuer after teardown %q (%v), want the original %q", served, err, originalIssuer)
		}
		checkNoIrsaObjects(ctx, t, e)
		checkNoOwnedAWS(ctx, t, e)
		if u := cloudFrontIssuerOrEmpty(ctx, t, c, e.ClusterName); u != "" {
			t.Errorf("distribution %s left after teardown", u)
		}
		oacs, err := c.CloudFront.ListOriginAccessControls(ctx, &cf.ListOriginAccessControlsInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range oacs.OriginAccessControlList.Items {
			if aws.ToString(o.Name) == cloudfront.OACName(e.ClusterName, e.Bucket) {
				t.Errorf("origin access control %s left after teardown", aws.ToString(o.Name))
			}
		}
	})
}

// e2eClients are AWS clients to the scenario's backend (moto).
func e2eClients(ctx context.Context, t *testing.T, e *Env) *awsclient.Clients {
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
	return c
}

// cloudFrontIssuer is https://DOMAIN of the distribution tagged for cluster.
func cloudFrontIssuer(ctx context.Context, t *testing.T, c *awsclient.Clients, cluster string) string {
	t.Helper()
	u := cloudFrontIssuerOrEmpty(ctx, t, c, cluster)
	if u == "" {
		t.Fatalf("no CloudFront distribution tagged for cluster %s", cluster)
	}
	return u
}

func cloudFrontIssuerOrEmpty(ctx context.Context, t *testing.T, c *awsclient.Clients, cluster string) string {
	t.Helper()
	list, err := c.CloudFront.ListDistributions(ctx, &cf.ListDistributionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if list.DistributionList == nil {
		return ""
	}
	for _, d := range list.DistributionList.Items {
		tags, err := c.CloudFront.ListTagsForResource(ctx, &cf.ListTagsForResourceInput{Resource: d.ARN})
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range tags.Tags.Items {
			if aws.ToString(tg.Key) == config.OwnerTagKey && aws.ToString(tg.Value) == cluster {
				return "https://" + aws.ToString(d.DomainName)
			}
		}
	}
	return ""
}
