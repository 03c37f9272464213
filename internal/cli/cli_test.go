package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/documents"
	"github.com/irsa-anywhere/irsa/pipeline/keys"
	"github.com/irsa-anywhere/irsa/pipeline/roles"
	"github.com/irsa-anywhere/irsa/pipeline/setup"
)

var moto *motoserver.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "irsa-cli-test-")
	if err != nil {
		panic(err)
	}
	moto, err = motoserver.StartProcess(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "irsa cli tests need moto_server:", err)
		os.Exit(1)
	}
	os.Setenv("AWS_ACCESS_KEY_ID", "testing")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	os.Setenv("AWS_CA_BUNDLE", moto.CAFile)
	os.Unsetenv("AWS_PROFILE")
	// No ~/.kube/config: AWS-only runs unless a test gives a kubeconfig. The caches found through $HOME stay where
	// they are.
	home, _ := os.UserHomeDir()
	if os.Getenv("IRSA_CACHE") == "" {
		os.Setenv("IRSA_CACHE", filepath.Join(home, ".cache", "irsa"))
	}
	os.Unsetenv("KUBECONFIG")
	os.Setenv("HOME", dir)
	stdinIsTerminal = func() bool { return false } // go test's stdin may be a terminal
	code := m.Run()
	moto.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

var seq atomic.Int64

// env is one test's cluster: its own name and bucket in the shared moto, and a keypair.
type env struct {
	t       testing.TB
	cluster string
	bucket  string
	keyDir  string
	issuer  string
	// endpoint is the AWS endpoint the commands use: moto, or a fault proxy in front of it.
	endpoint string
	last     *setup.Env
}

func newEnv(t testing.TB) *env {
	t.Helper()
	n := seq.Add(1)
	e := &env{t: t, cluster: fmt.Sprintf("c%d", n), bucket: fmt.Sprintf("irsa-test-%d", n), keyDir: t.TempDir(), endpoint: moto.URL}
	e.issuer = moto.URL + "/" + e.bucket
	if _, _, err := keys.Generate(e.keyDir, false); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) flags() []string {
	return []string{"--cluster-name", e.cluster, "--region", "eu-west-1", "--bucket", e.bucket, "--aws-endpoint-url", e.endpoint, "--key-dir", e.keyDir}
}

// run runs irsa with args plus the env's flags and returns the exit code, stdout and stderr.
func (e *env) run(args ...string) (int, string, string) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	testHook = func(env *setup.Env) { e.last = env }
	defer func() { testHook = nil }()
	// The environment's flags go after the command (flags belong to the commands that use them).
	full := append(append(append([]string{}, args[:1]...), e.flags()...), args[1:]...)
	code := Main(context.Background(), full, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(args...)
	if code != 0 {
		e.t.Fatalf("irsa %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func clients(t *testing.T) *awsclient.Clients {
	t.Helper()
	ca, err := os.ReadFile(moto.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := awsclient.New(context.Background(), awsclient.Options{Region: "eu-west-1", EndpointURL: moto.URL, CABundle: ca,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func anonymousGet(t *testing.T, rawURL string) (int, []byte) {
	t.Helper()
	resp, err := moto.HTTPClient.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func TestApplyPublishesIssuerAndTrustsIt(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("apply")
	if !strings.Contains(out, "Apply: ") {
		t.Errorf("apply output has no summary:\n%s", out)
	}

	// Both documents are readable anonymously and parse.
	code, body := anonymousGet(t, e.issuer+"/.well-known/openid-configuration")
	if code != 200 {
		t.Fatalf("anonymous GET discovery: status %d, body %s", code, body)
	}
	var disc documents.Discovery
	if err := json.Unmarshal(body, &disc); err != nil {
		t.Fatalf("discovery document: %v", err)
	}
	if disc.Issuer != e.issuer || disc.JWKSURI != e.issuer+"/keys.json" {
		t.Errorf("discovery issuer %q jwks_uri %q, want %q and %q/keys.json", disc.Issuer, disc.JWKSURI, e.issuer, e.issuer)
	}
	code, body = anonymousGet(t, disc.JWKSURI)
	if code != 200 {
		t.Fatalf("anonymous GET JWKS: status %d", code)
	}
	published, err := documents.ParseJWKS(body)
	if err != nil || len(published) != 1 {
		t.Fatalf("JWKS: %d keys, err %v", len(published), err)
	}
	var set struct{ Keys []struct{ Kid string } }
	_ = json.Unmarshal(body, &set)
	if want := opensslKID(t, keys.PairIn(e.keyDir).PublicKeyPath); set.Keys[0].Kid != want {
		t.Errorf("published kid %q, want %q", set.Keys[0].Kid, want)
	}

	// Anything else in the bucket stays private.
	c := clients(t)
	if _, err := c.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("secret.txt"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	if code, _ := anonymousGet(t, e.issuer+"/secret.txt"); code != 403 {
		t.Errorf("anonymous GET of a third object: status %d, want 403", code)
	}
	// moto answers anonymous ListObjects with 200 whatever the policy says (real S3 denies it), so the listing is
	// checked on the policy itself: it grants s3:GetObject on the two documents and nothing else.
	pol, err := c.S3.GetBucketPolicy(context.Background(), &s3.GetBucketPolicyInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Statement []struct {
			Effect, Action string
			Principal      any
			Resource       []string
		}
	}
	if err := json.Unmarshal([]byte(aws.ToString(pol.Policy)), &policy); err != nil {
		t.Fatalf("bucket policy: %v", err)
	}
	wantRes := []string{"arn:aws:s3:::" + e.bucket + "/.well-known/openid-configuration", "arn:aws:s3:::" + e.bucket + "/keys.json"}
	if len(policy.Statement) != 1 || policy.Statement[0].Action != "s3:GetObject" || policy.Statement[0].Effect != "Allow" ||
		!slices.Equal(policy.Statement[0].Resource, wantRes) {
		t.Errorf("bucket policy grants more than GetObject on the two documents: %s", aws.ToString(pol.Policy))
	}

	// The provider has the issuer URL and the audience.
	account, _ := c.AccountID(context.Background())
	prov, err := c.IAM.GetOpenIDConnectProvider(context.Background(), &iam.GetOpenIDConnectProviderInput{
		OpenIDConnectProviderArn: aws.String(fmt.Sprintf("arn:aws:iam::%s:oidc-provider/%s", account, strings.TrimPrefix(e.issuer, "https://")))})
	if err != nil {
		t.Fatalf("provider: %v", err)
	}
	if u := aws.ToString(prov.Url); strings.TrimPrefix(u, "https://") != strings.TrimPrefix(e.issuer, "https://") {
		t.Errorf("provider URL %q, want %q", u, e.issuer)
	}
	if !slices.Equal(prov.ClientIDList, []string{config.DefaultAudience}) {
		t.Errorf("provider client IDs %v, want [%s]", prov.ClientIDList, config.DefaultAudience)
	}
}

// opensslKID computes the kid with openssl, independently of irsa's code: base64url(SHA-256(DER of the
// SubjectPublicKeyInfo)), unpadded — what kube-apiserver puts in token headers.
func opensslKID(t *testing.T, pubPEM string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "openssl pkey -pubin -in '"+pubPEM+"' -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\\n'").Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestBindWritesExactTrustPolicy(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply")
	out := e.mustRun("bind", "default/s3-echoer", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
	if !strings.Contains(out, "default/s3-echoer is bound to arn:aws:iam::") {
		t.Errorf("bind output:\n%s", out)
	}
	c := clients(t)
	role, err := c.IAM.GetRole(context.Background(), &iam.GetRoleInput{RoleName: aws.String("irsa-" + e.cluster + "-default-s3-echoer")})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
	var got map[string]any
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	account, _ := c.AccountID(context.Background())
	hp := strings.TrimPrefix(e.issuer, "https://")
	want := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Effect":    "Allow",
			"Principal": map[string]any{"Federated": "arn:aws:iam::" + account + ":oidc-provider/" + hp},
			"Action":    "sts:AssumeRoleWithWebIdentity",
			"Condition": map[string]any{"StringEquals": map[string]any{
				hp + ":sub": "system:serviceaccount:default:s3-echoer",
				hp + ":aud": "sts.amazonaws.com",
			}},
		}},
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("trust policy\n got %s\nwant %s", gb, wb)
	}
	att, _ := c.IAM.ListAttachedRolePolicies(context.Background(), &iam.ListAttachedRolePoliciesInput{RoleName: role.Role.RoleName})
	if len(att.AttachedPolicies) != 1 || aws.ToString(att.AttachedPolicies[0].PolicyArn) != "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess" {
		t.Errorf("attached policies: %+v", att.AttachedPolicies)
	}

	// unbind names the role it removes; a second unbind has nothing to remove, so it asks nothing (no --yes on a
	// non-terminal) and succeeds.
	code, _, errOut := e.run("unbind", "default/s3-echoer")
	if code != 1 || !strings.Contains(errOut, "IAM role "+aws.ToString(role.Role.Arn)) || !strings.Contains(errOut, "--yes") {
		t.Errorf("unbind without --yes: exit %d, want 1 naming the role and --yes\n%s", code, errOut)
	}
	e.mustRun("unbind", "default/s3-echoer", "--yes")
	if out := e.mustRun("unbind", "default/s3-echoer"); !strings.Contains(out, "default/s3-echoer is not bound") {
		t.Errorf("second unbind:\n%s", out)
	}
	if w := e.last.AWS.Calls.Mutating(); len(w) > 0 {
		t.Errorf("second unbind wrote: %v", w)
	}
}

func TestSecondApplyChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply")
	e.mustRun("bind", "default/app", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
	cfgFile := filepath.Join(t.TempDir(), "irsa.yaml")
	os.WriteFile(cfgFile, []byte("bindings:\n- namespace: default\n  serviceAccount: app\n  policyARNs: [arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess]\n"), 0o644)
	e.mustRun("apply", "-f", cfgFile)

	out := e.mustRun("apply", "-f", cfgFile)
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("second apply made mutating AWS calls: %v\n%s", m, out)
	}
	// 13: the account, the managed policy, the role (3), the provider, the bucket's tags (the lock's check and the
	// issuer stage's), its public access block and policy, the two documents and the published JWKS the keys are
	// merged into.
	if n := e.last.AWS.Calls.Reads(); n > 13 {
		t.Errorf("second apply made %d read calls, want at most 13: %v", n, e.last.AWS.Calls.Snapshot())
	}
	if code, out, errOut := e.run("plan", "-f", cfgFile); code != 0 {
		t.Errorf("plan after apply: exit %d, want 0\n%s%s", code, out, errOut)
	}
}

func TestPlanExitsTwoAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	code, out, errOut := e.run("plan")
	if code != 2 {
		t.Fatalf("plan on nothing: exit %d, want 2\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "+ s3-bucket "+e.bucket) || !strings.Contains(out, "+ iam-oidc-provider") {
		t.Errorf("plan output lacks the bucket or provider:\n%s", out)
	}
	if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
		t.Errorf("plan made mutating calls: %v", m)
	}
	if _, err := clients(t).S3.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
		t.Errorf("plan created the bucket (HeadBucket err %v)", err)
	}
}

func TestJSONOutputIsAReport(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("apply", "-o", "json")
	var rep struct {
		Mode   string
		Stages []struct {
			Name    string
			Changes []struct{ Action, Kind, Name string }
		}
		Changed bool
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("apply -o json is not JSON: %v\n%s", err, out)
	}
	if rep.Mode != "apply" || !rep.Changed || len(rep.Stages) != 7 {
		t.Errorf("report: %+v", rep)
	}
}

func TestOnlyRunsTheNamedStages(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("apply", "--only", "issuer")
	if strings.Contains(out, "provider") {
		t.Errorf("--only issuer ran the provider stage:\n%s", out)
	}
	if code, _, errOut := e.run("apply", "--only", "issuer,nope"); code != 1 || !strings.Contains(errOut, `stage "nope": unknown`) {
		t.Errorf("--only nope: exit %d, stderr %q", code, errOut)
	}
}

func TestTeardownRemovesOwnedAndKeepsForeign(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	ctx := context.Background()
	// Someone else's bucket and role, not tagged as ours.
	foreignBucket := e.bucket + "-foreign"
	if _, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &foreignBucket,
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}}); err != nil {
		t.Fatal(err)
	}
	foreignRole := "foreign-" + e.cluster
	if _, err := c.IAM.CreateRole(ctx, &iam.CreateRoleInput{RoleName: &foreignRole, Path: aws.String(roles.Path(e.cluster)),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("apply")
	e.mustRun("bind", "default/app", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
	c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("extra"), Body: strings.NewReader("x")})

	// The bucket holds an object irsa did not write: teardown keeps it (and the object), says so, and --force removes
	// it.
	out := e.mustRun("teardown", "--yes", "--aws-only")
	if !strings.Contains(out, "= s3-bucket "+e.bucket) || !strings.Contains(out, "(extra)") {
		t.Errorf("teardown does not report the kept bucket:\n%s", out)
	}
	objs, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &e.bucket})
	if err != nil || len(objs.Contents) != 1 || aws.ToString(objs.Contents[0].Key) != "extra" {
		t.Errorf("after teardown without --force the bucket should hold only the object irsa did not write: %v %v", objs, err)
	}
	e.mustRun("teardown", "--yes", "--aws-only", "--force")
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
		t.Errorf("owned bucket still there after teardown --force (err %v)", err)
	}
	if _, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("irsa-" + e.cluster + "-default-app")}); !awsclient.IsNotFound(err) {
		t.Errorf("owned role still there after teardown (err %v)", err)
	}
	provs, _ := c.IAM.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
	for _, p := range provs.OpenIDConnectProviderList {
		if strings.HasSuffix(aws.ToString(p.Arn), "/"+e.bucket) {
			t.Errorf("provider %s still there after teardown", aws.ToString(p.Arn))
		}
	}
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &foreignBucket}); err != nil {
		t.Errorf("teardown touched a foreign bucket: %v", err)
	}
	if _, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &foreignRole}); err != nil {
		t.Errorf("teardown touched a foreign role: %v", err)
	}
	// A second teardown finds nothing and succeeds.
	e.mustRun("teardown", "--yes", "--aws-only")
}

func TestRefusesForeignBucket(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	if _, err := c.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &e.bucket,
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}}); err != nil {
		t.Fatal(err)
	}
	// An empty untagged bucket of this account would be adopted; one holding someone's object is not.
	if _, err := c.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("theirs"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := e.run("apply")
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("bucket %q exists but is not owned by irsa cluster %q", e.bucket, e.cluster)) {
		t.Errorf("apply on a foreign bucket: exit %d, stderr %s", code, errOut)
	}
	objs, _ := c.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &e.bucket})
	if len(objs.Contents) != 1 {
		t.Errorf("apply changed the objects of a foreign bucket: %d objects, want 1", len(objs.Contents))
	}
}

func TestMissingCredentials(t *testing.T) {
	e := newEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	code, _, errOut := e.run("apply")
	if code != 1 || !strings.Contains(errOut, "no AWS credentials found") {
		t.Errorf("apply without credentials: exit %d, stderr %s", code, errOut)
	}
}

// us-east-1 is the one region whose CreateBucket must not carry a LocationConstraint.
func TestApplyInUSEast1(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply", "--region", "us-east-1")
	c := clients(t)
	loc, err := c.S3.GetBucketLocation(context.Background(), &s3.GetBucketLocationInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if loc.LocationConstraint != "" {
		t.Errorf("bucket location %q, want us-east-1's empty constraint", loc.LocationConstraint)
	}
	if code, _ := anonymousGet(t, e.issuer+"/keys.json"); code != 200 {
		t.Errorf("anonymous GET keys.json: %d", code)
	}
}

// Teardown cannot strand a live cluster: without a cluster it refuses to remove the issuer and provider unless told
// the cluster is gone, and without a terminal it refuses unless --yes; either way nothing is removed.
func TestTeardownRefusals(t *testing.T) {
	e := newEnv(t)
	e.mustRun("apply")
	e.mustRun("bind", "default/app", "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess") // for unbind to refuse to remove
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no cluster", []string{"teardown", "--yes"}, "give --kubeconfig so the apiserver gets its original issuer back first, or --aws-only"},
		{"no terminal", []string{"teardown", "--aws-only"}, "stdin is not a terminal, so irsa cannot ask: run again with --yes"},
		{"unbind no terminal", []string{"unbind", "default/app"}, "run again with --yes"},
	}
	for _, tc := range cases {
		code, out, errOut := e.run(tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want 1 with %q\nstdout: %s\nstderr: %s", tc.name, code, tc.want, out, errOut)
		}
		if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
			t.Errorf("%s: refused teardown made mutating calls %v", tc.name, m)
		}
	}
	if code, out, errOut := e.run("plan"); code != 0 {
		t.Errorf("after refused teardowns, plan: exit %d (something was removed)\n%s%s", code, out, errOut)
	}
	// On a terminal, the answer decides.
	stdinIsTerminal = func() bool { return true }
	defer func() { stdinIsTerminal = func() bool { return false }; stdin = os.Stdin }()
	stdin = strings.NewReader("no\n")
	if code, _, errOut := e.run("teardown", "--aws-only"); code != 1 || !strings.Contains(errOut, "not confirmed, nothing was changed") {
		t.Errorf("teardown answered no: exit %d\n%s", code, errOut)
	}
	stdin = strings.NewReader("yes\n")
	e.mustRun("teardown", "--aws-only")
	if _, err := clients(t).S3.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
		t.Errorf("confirmed teardown left the bucket (err %v)", err)
	}
}

// kind-config reads the issuer settings from irsa.yaml, as the README's kind quick start runs it, and takes the
// region from the environment like every other command.
func TestKindConfigFromFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "irsa.yaml")
	os.WriteFile(cfg, []byte("apiVersion: irsa.irsa-anywhere.io/v1alpha1\nkind: Config\nclusterName: demo\nregion: eu-west-1\nbucket: demo-oidc\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"kind-config", "-f", cfg, "--name", "demo"}, &out, &errOut); code != 0 {
		t.Fatalf("kind-config -f: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "service-account-issuer: https://demo-oidc.s3.eu-west-1.amazonaws.com") {
		t.Errorf("kind config lacks the bucket's issuer:\n%s", out.String())
	}
	t.Setenv("AWS_REGION", "eu-west-2")
	out.Reset()
	if code := Main(context.Background(), []string{"kind-config", "--bucket", "demo-oidc"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "demo-oidc.s3.eu-west-2.amazonaws.com") {
		t.Errorf("kind-config with $AWS_REGION: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if code := Main(context.Background(), []string{"kind-config", "--bucket", "Demo", "--region", "eu-west-1"}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), `bucket name "Demo"`) {
		t.Errorf("kind-config with a bad bucket: exit %d\n%s", code, errOut.String())
	}
	// -o json prints the same document as JSON.
	out.Reset()
	if code := Main(context.Background(), []string{"kind-config", "-f", cfg, "-o", "json"}, &out, &errOut); code != 0 {
		t.Fatalf("kind-config -o json: exit %d\n%s", code, errOut.String())
	}
	var doc struct {
		Kind                 string
		KubeadmConfigPatches []string `json:"kubeadmConfigPatches"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc.Kind != "Cluster" || !strings.Contains(strings.Join(doc.KubeadmConfigPatches, ""), "https://demo-oidc.s3.eu-west-1.amazonaws.com") {
		t.Errorf("kind-config -o json: %v\n%s", err, out.String())
	}
}

// A failed run does not end with a summary that reads as success.
func TestFailedRunSaysSo(t *testing.T) {
	e := newEnv(t)
	// The bucket exists (a first apply would make it only after a plan passes, and this plan fails: nothing made).
	// The issuer's documents are republished for the new URL, then the provider stage cannot reach the issuer host
	// for its thumbprint.
	e.mustRun("apply", "--only", "issuer")
	code, out, errOut := e.run("apply", "--issuer-url", "https://127.0.0.1:1/"+e.bucket)
	if code == 0 || strings.Contains(out, "Apply: ") || !strings.Contains(out, "Apply failed after 1 change(s)") {
		t.Errorf("failed apply: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
