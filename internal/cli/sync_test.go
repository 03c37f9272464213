package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-anywhere/irsa/internal/kubeapiserver"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/doctor"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/jwkssync"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
)

// TestSyncAndPredecessorKeys runs apply, sync and doctor against a real kube-apiserver and moto. The issuer already
// publishes a predecessor cluster's key (blue/green: the same irsa cluster name, bucket and roles): apply merges the
// new cluster's key in and keeps the predecessor's; a JWKS that lost the apiserver's key is caught by doctor and
// repaired by sync; sync --retire removes the predecessor's key, and refuses the key the apiserver signs with.
func TestSyncAndPredecessorKeys(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cluster := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external"}
	ctx := context.Background()
	c := clients(t)
	kidOf := func(path string) string {
		pub, err := keys.LoadPublicKeys(path)
		if err != nil {
			t.Fatal(err)
		}
		kid, err := keys.KeyID(pub[0])
		if err != nil {
			t.Fatal(err)
		}
		return kid
	}
	served, own := kidOf(kube.ServiceAccountKeyFile), kidOf(keys.PairIn(e.keyDir).PublicKeyPath)
	predecessor, _ := rsa.GenerateKey(rand.Reader, 2048)
	predKID, _ := keys.KeyID(predecessor.Public())
	published := func() []string {
		t.Helper()
		_, body := anonymousGet(t, e.issuer+"/keys.json")
		kids, err := documents.PublishedKIDs(body)
		if err != nil {
			t.Fatalf("published JWKS: %v\n%s", err, body)
		}
		if bytes.Contains(body, []byte(`"d"`)) {
			t.Errorf("published JWKS carries a private field:\n%s", body)
		}
		return kids
	}
	put := func(ks ...any) {
		t.Helper()
		var set jose.JSONWebKeySet
		for _, k := range ks {
			kid, _ := keys.KeyID(k)
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		body, _ := json.Marshal(set)
		if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("keys.json"), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	doctorLines := func() map[string]doctor.Check {
		t.Helper()
		_, out, errOut := e.run(append([]string{"doctor", "-o", "json"}, cluster...)...)
		var rep doctor.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("doctor -o json: %v\n%s%s", err, out, errOut)
		}
		lines := map[string]doctor.Check{}
		for _, c := range rep.Checks {
			lines[c.Name] = c
		}
		return lines
	}
	sameKIDs := func(what string, got []string, want ...string) {
		t.Helper()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: published kids %v, want %v", what, got, want)
		}
	}

	// The predecessor published its key first (a bucket irsa made for this cluster name).
	e.mustRun(append([]string{"apply", "--only", "issuer"}, cluster...)...)
	put(predecessor.Public())
	e.mustRun(append([]string{"apply", "--only", "issuer"}, cluster...)...)
	sameKIDs("apply over a predecessor's JWKS", published(), predKID, served, own)

	// Someone replaced the JWKS with one that lacks the apiserver's key: doctor says so, sync repairs it.
	put(predecessor.Public())
	if l := doctorLines()["signing keys published"]; l.OK || !strings.Contains(l.Message, served) || !strings.Contains(l.Fix, "irsa sync") {
		t.Errorf("doctor with the apiserver's key unpublished: %+v", l)
	}
	code, out, errOut := e.run(append([]string{"sync", "--dry-run"}, cluster...)...)
	if code != 2 || !strings.Contains(out, "adds ") || !strings.Contains(out, served) {
		t.Errorf("sync --dry-run: exit %d, want 2 and the kid it adds\n%s%s", code, out, errOut)
	}
	sameKIDs("after sync --dry-run", published(), predKID)
	e.mustRun(append([]string{"sync"}, cluster...)...)
	sameKIDs("after sync", published(), predKID, served, own)
	lines := doctorLines()
	if l := lines["signing keys published"]; !l.OK {
		t.Errorf("doctor after sync: %+v", l)
	}
	if l := lines["retained keys"]; !l.Info || !strings.Contains(l.Message, predKID) {
		t.Errorf("doctor does not list the retained predecessor key: %+v", l)
	}
	if code, out, _ := e.run(append([]string{"sync", "-o", "json"}, cluster...)...); code != 0 || !strings.Contains(out, `"changed": false`) {
		t.Errorf("second sync: exit %d, want no change\n%s", code, out)
	}

	// Retiring: the key the apiserver signs with is refused before any write; the predecessor's asks first.
	code, _, errOut = e.run(append([]string{"sync", "--retire", served, "--yes"}, cluster...)...)
	if code == 0 || !strings.Contains(errOut, "--retire "+served+": the cluster still serves this key") {
		t.Errorf("sync --retire of the served key: exit %d\n%s", code, errOut)
	}
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("refused retire wrote: %v", m)
	}
	code, _, errOut = e.run(append([]string{"sync", "--retire", predKID}, cluster...)...)
	if code == 0 || !strings.Contains(errOut, "run again with --yes") {
		t.Errorf("sync --retire without a terminal and without --yes: exit %d\n%s", code, errOut)
	}
	out = e.mustRun(append([]string{"sync", "--retire", predKID, "--yes"}, cluster...)...)
	if !strings.Contains(out, "retires "+predKID) {
		t.Errorf("sync --retire report does not name the retired kid:\n%s", out)
	}
	sameKIDs("after sync --retire", published(), served, own)
	// The key directory's key stays listed: published, but this apiserver (external) was never given it.
	if l := doctorLines()["retained keys"]; strings.Contains(l.Message, predKID) {
		t.Errorf("doctor still lists the retired key: %+v", l)
	}
}

// TestSyncInstall checks what `irsa sync --install` makes (no kubelet here, so the CronJob never runs: the e2e has
// the kubelet) and runs the job's command, `irsa sync-job`, from here against the same apiserver and moto.
func TestSyncInstall(t *testing.T) {
	e := newEnv(t)
	kube := kubeapiserver.Start(t, kubeapiserver.Options{Issuer: e.issuer})
	cluster := []string{"--kubeconfig", kube.Kubeconfig, "--cluster-type", "external", "--pod-aws-endpoint-url", "https://aws.example:4566", "--pod-ca-bundle", moto.CAFile}
	ctx := context.Background()
	c := clients(t)
	e.mustRun(append([]string{"apply", "--only", "issuer,provider"}, cluster...)...)
	if code, _, errOut := e.run(append([]string{"sync", "--install"}, cluster...)...); code == 0 || !strings.Contains(errOut, "run `irsa apply` first") {
		t.Errorf("sync --install without the webhook's namespace: exit %d\n%s", code, errOut)
	}
	if _, err := kube.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: config.WebhookNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun(append([]string{"sync", "--install", "--schedule", "*/5 * * * *"}, cluster...)...)
	sa, err := kube.Client.CoreV1().ServiceAccounts(config.WebhookNamespace).Get(ctx, jwkssync.ServiceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	roleARN := sa.Annotations[config.RoleARNAnnotation]
	roleName := roleARN[strings.LastIndex(roleARN, "/")+1:]
	policies, err := c.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: &roleName})
	if err != nil || len(policies.PolicyNames) != 1 {
		t.Fatalf("role %s inline policies: %v, %v", roleName, policies, err)
	}
	attached, _ := c.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: &roleName})
	if len(attached.AttachedPolicies) != 0 {
		t.Errorf("sync role has attached policies %v, want only the inline PutObject", attached.AttachedPolicies)
	}
	doc, err := c.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: &roleName, PolicyName: &policies.PolicyNames[0]})
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := url.QueryUnescape(aws.ToString(doc.PolicyDocument))
	if want := jwkssync.PutPolicy("aws", e.bucket, "keys.json"); !documents.SameJSON(policy, want) {
		t.Errorf("sync role policy %s, want %s", policy, want)
	}
	cj, err := kube.Client.BatchV1().CronJobs(config.WebhookNamespace).Get(ctx, jwkssync.CronJobName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	cmd := strings.Join(pod.Containers[0].Command, " ")
	if cj.Spec.Schedule != "*/5 * * * *" || pod.ServiceAccountName != jwkssync.ServiceAccount || !strings.Contains(cmd, "sync-job --issuer-url "+e.issuer) ||
		!strings.Contains(cmd, "--aws-endpoint-url https://aws.example:4566") || !strings.Contains(fmt.Sprint(pod.Containers[0].Env), "AWS_ENDPOINT_URL_STS") {
		t.Errorf("CronJob: schedule %q, SA %q, command %s, env %v", cj.Spec.Schedule, pod.ServiceAccountName, cmd, pod.Containers[0].Env)
	}
	if again := e.mustRun(append([]string{"sync", "--install", "--schedule", "*/5 * * * *", "-o", "json"}, cluster...)...); !strings.Contains(again, `"changes": []`) {
		t.Errorf("second sync --install changed something:\n%s", again)
	}

	// The job: the JWKS lost the apiserver's key; sync-job puts it back and keeps what was published.
	predecessor, _ := rsa.GenerateKey(rand.Reader, 2048)
	predKID, _ := keys.KeyID(predecessor.Public())
	var set jose.JSONWebKeySet
	set.Keys = append(set.Keys, jose.JSONWebKey{Key: predecessor.Public(), KeyID: predKID, Algorithm: "RS256", Use: "sig"})
	body, _ := json.Marshal(set)
	if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("keys.json"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	job := []string{"sync-job", "--kubeconfig", kube.Kubeconfig, "--issuer-url", e.issuer, "--bucket", e.bucket, "--jwks-key", "keys.json",
		"--region", "eu-west-1", "--aws-endpoint-url", moto.URL, "--ca-bundle", moto.CAFile}
	var stdout, stderr bytes.Buffer
	if code := Main(ctx, job, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "published key(s)") {
		t.Fatalf("sync-job: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	_, got := anonymousGet(t, e.issuer+"/keys.json")
	kids, _ := documents.PublishedKIDs(got)
	pub, _ := keys.LoadPublicKeys(kube.ServiceAccountKeyFile)
	served, _ := keys.KeyID(pub[0])
	if !slices.Contains(kids, served) || !slices.Contains(kids, predKID) {
		t.Errorf("after sync-job the JWKS has %v, want the served %s and the kept %s", kids, served, predKID)
	}
	stdout.Reset()
	if code := Main(ctx, job, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "publishes every key") {
		t.Errorf("second sync-job: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}
