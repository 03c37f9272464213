package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/internal/faultproxy"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

// withProxy points e's commands at a fault proxy in front of moto. The issuer URL stays moto's, so the state is the
// same as a clean run's.
func withProxy(t *testing.T, e *env) *faultproxy.Proxy {
	p := faultproxy.Start(t, moto.URL, moto.CertFile, moto.KeyFile, moto.CAPool)
	e.endpoint = p.URL
	return p
}

func bucketTags(t *testing.T, c *awsclient.Clients, bucket string) map[string]string {
	t.Helper()
	out, err := c.S3.GetBucketTagging(context.Background(), &s3.GetBucketTaggingInput{Bucket: &bucket})
	if err != nil {
		t.Fatalf("tags of bucket %s: %v", bucket, err)
	}
	tags := map[string]string{}
	for _, tg := range out.TagSet {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return tags
}

// A lost response to a create (the request reached AWS, the answer never came back, the SDK retried) must not stop
// the run: the object is adopted and completed, and the end state is a clean apply's (plan finds nothing to change).
func TestLostCreateResponsesConverge(t *testing.T) {
	cases := []struct {
		name   string
		region string
		drop   func(e *env) faultproxy.Match
		bind   bool
	}{
		// Outside us-east-1 the retry gets 409 BucketAlreadyOwnedByYou.
		{name: "CreateBucket eu-west-1", region: "eu-west-1", drop: func(e *env) faultproxy.Match { return faultproxy.CreateBucket(e.bucket) }},
		// In us-east-1 the retry gets 200, and the run goes on to tag the bucket.
		{name: "CreateBucket us-east-1", region: "us-east-1", drop: func(e *env) faultproxy.Match { return faultproxy.CreateBucket(e.bucket) }},
		{name: "CreateOpenIDConnectProvider", region: "eu-west-1", drop: func(*env) faultproxy.Match { return faultproxy.IAMAction("CreateOpenIDConnectProvider") }},
		{name: "CreateRole", region: "eu-west-1", bind: true, drop: func(*env) faultproxy.Match { return faultproxy.IAMAction("CreateRole") }},
		{name: "PutBucketTagging", region: "eu-west-1", drop: func(e *env) faultproxy.Match {
			return func(r faultproxy.Request) bool { return r.Method == "PUT" && strings.HasPrefix(r.RawQuery, "tagging") }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := withProxy(t, e)
			p.DropResponse(tc.drop(e), 1)
			region := []string{"--region", tc.region}
			if tc.bind {
				e.mustRun(append([]string{"apply"}, region...)...)
				out := e.mustRun(append([]string{"bind", "default/app", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}, region...)...)
				again := e.mustRun(append([]string{"bind", "default/app", "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}, region...)...)
				if strings.Contains(again, "  +") || strings.Contains(again, "  ~") {
					t.Errorf("bind after a lost CreateRole response left work undone:\nfirst:\n%s\nsecond:\n%s", out, again)
				}
			} else {
				e.mustRun(append([]string{"apply"}, region...)...)
			}
			if p.Dropped() != 1 {
				t.Fatalf("the proxy dropped %d responses, want 1: the fault never happened", p.Dropped())
			}
			if code, out, errOut := e.run(append([]string{"plan"}, region...)...); code != 0 {
				t.Errorf("after a lost %s response, plan: exit %d, want 0 (state differs from a clean apply's)\n%s%s", tc.name, code, out, errOut)
			}
			c := clients(t)
			if got := bucketTags(t, c, e.bucket); got[config.OwnerTagKey] != e.cluster || got[config.ManagedByTagKey] != config.ManagedByValue {
				t.Errorf("bucket tags %v", got)
			}
			e.mustRun(append([]string{"teardown", "--yes", "--aws-only"}, region...)...)
			if _, err := c.S3.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
				t.Errorf("teardown left the bucket (err %v)", err)
			}
			if tc.bind {
				if _, err := c.IAM.GetRole(context.Background(), &iam.GetRoleInput{RoleName: aws.String("irsa-" + e.cluster + "-default-app")}); !awsclient.IsNotFound(err) {
					t.Errorf("teardown left the role (err %v)", err)
				}
			}
		})
	}
}

// An untagged bucket left by a run killed between CreateBucket and PutBucketTagging is adopted when this account owns
// it and it is empty with no policy; one holding an object, carrying a policy or tagged for another cluster is not,
// and apply changes nothing in it.
func TestUntaggedBucketAdoption(t *testing.T) {
	ctx := context.Background()
	c := clients(t)
	create := func(t *testing.T, bucket string) {
		if _, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket,
			CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("empty untagged is adopted", func(t *testing.T) {
		e := newEnv(t)
		create(t, e.bucket)
		e.mustRun("apply")
		if got := bucketTags(t, c, e.bucket); got[config.OwnerTagKey] != e.cluster {
			t.Errorf("adopted bucket tags %v", got)
		}
		if code, out, errOut := e.run("plan"); code != 0 {
			t.Errorf("plan after adoption: exit %d\n%s%s", code, out, errOut)
		}
	})
	decoys := map[string]func(t *testing.T, bucket string){
		"holds an object": func(t *testing.T, bucket string) {
			if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("theirs"), Body: strings.NewReader("x")}); err != nil {
				t.Fatal(err)
			}
		},
		"has a bucket policy": func(t *testing.T, bucket string) {
			pol := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"Theirs","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::%s/x"}]}`, bucket)
			if _, err := c.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: &pol}); err != nil {
				t.Fatal(err)
			}
		},
		"tagged for another cluster": func(t *testing.T, bucket string) {
			if _, err := c.S3.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: &bucket, Tagging: &s3types.Tagging{TagSet: []s3types.Tag{
				{Key: aws.String(config.OwnerTagKey), Value: aws.String("someone-else")}}}}); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, decorate := range decoys {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			create(t, e.bucket)
			decorate(t, e.bucket)
			code, _, errOut := e.run("apply")
			if code != 1 || !strings.Contains(errOut, "exists but is not owned by irsa cluster") {
				t.Errorf("apply on a bucket that %s: exit %d, stderr %s", name, code, errOut)
			}
			if m := e.last.AWS.Calls.Mutating(); len(m) != 0 {
				t.Errorf("apply on a bucket that %s made mutating calls %v", name, m)
			}
			e.mustRun("teardown", "--yes", "--aws-only")
			if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &e.bucket}); err != nil {
				t.Errorf("teardown deleted a bucket that %s: %v", name, err)
			}
		})
	}
}

// Teardown empties a versioned bucket of every version and delete marker of irsa's documents, and deletes it.
func TestTeardownVersionedBucket(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	ctx := context.Background()
	e.mustRun("apply")
	if _, err := c.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &e.bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	// A delete marker and a second version of the JWKS.
	if _, err := c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("keys.json")}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("apply")
	vs, err := c.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &e.bucket})
	if err != nil || len(vs.Versions) < 3 || len(vs.DeleteMarkers) < 1 {
		t.Fatalf("setup: want >= 3 versions and a delete marker, got %d and %d (%v)", len(vs.Versions), len(vs.DeleteMarkers), err)
	}
	e.mustRun("teardown", "--yes", "--aws-only")
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &e.bucket}); !awsclient.IsNotFound(err) {
		t.Errorf("versioned bucket still there after teardown (err %v)", err)
	}
}

// On a versioned bucket that also holds someone's object (the adopted-bucket case: irsa wrote only its documents),
// teardown deletes irsa's documents with all their versions and nothing else, and keeps the bucket.
func TestTeardownKeepsWhatIrsaDidNotWrite(t *testing.T) {
	e := newEnv(t)
	c := clients(t)
	ctx := context.Background()
	e.mustRun("apply")
	if _, err := c.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &e.bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"v1", "v2"} {
		if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.bucket, Key: aws.String("theirs/data"), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	out := e.mustRun("teardown", "--yes", "--aws-only")
	if !strings.Contains(out, "(theirs/data)") {
		t.Errorf("teardown does not report what it kept:\n%s", out)
	}
	vs, err := c.S3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.DeleteMarkers) != 0 || len(vs.Versions) != 2 {
		t.Errorf("after teardown: %d versions, %d delete markers; want only the 2 versions of theirs/data", len(vs.Versions), len(vs.DeleteMarkers))
	}
	for _, v := range vs.Versions {
		if aws.ToString(v.Key) != "theirs/data" {
			t.Errorf("teardown left irsa's %s (version %s)", aws.ToString(v.Key), aws.ToString(v.VersionId))
		}
	}
}

func putBucketPolicy(r faultproxy.Request) bool {
	return r.Method == "PUT" && strings.HasPrefix(r.RawQuery, "policy")
}

// issuerChanges reads the issuer stage's changes and error from a JSON report.
func issuerChanges(t *testing.T, out string) (kinds []string, errText string) {
	t.Helper()
	var rep struct {
		Stages []struct {
			Name    string
			Changes []struct{ Action, Kind string }
			Error   string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	for _, s := range rep.Stages {
		if s.Name == "issuer" {
			for _, c := range s.Changes {
				kinds = append(kinds, c.Action+" "+c.Kind)
			}
			return kinds, s.Error
		}
	}
	return nil, ""
}

// A stage that fails halfway reports what it changed before the failure, in text and JSON; a re-run converges.
func TestFailedRunReportsWhatItChanged(t *testing.T) {
	e := newEnv(t)
	p := withProxy(t, e)
	p.Fail(putBucketPolicy, 1, 400, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>MalformedPolicy</Code><Message>injected by the test</Message></Error>`)
	code, out, errOut := e.run("apply", "-o", "json")
	if code != 1 {
		t.Fatalf("apply with a refused PutBucketPolicy: exit %d\n%s%s", code, out, errOut)
	}
	kinds, errText := issuerChanges(t, out)
	if !slices.Equal(kinds, []string{"create s3-bucket", "create s3-public-access-block"}) || !strings.Contains(errText, "MalformedPolicy") {
		t.Errorf("failed run's issuer report: changes %v, error %q; want the bucket and its public access block, and the error", kinds, errText)
	}
	e.mustRun("apply")
	if code, out, errOut := e.run("plan"); code != 0 {
		t.Errorf("plan after the re-run: exit %d\n%s%s", code, out, errOut)
	}
}

// Ctrl-C (the context cancelled) mid-apply exits 130, the report lists what was changed before it, and a re-run
// converges.
func TestInterruptExits130(t *testing.T) {
	e := newEnv(t)
	p := withProxy(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.OnRequest(putBucketPolicy, cancel)
	var out, errOut bytes.Buffer
	full := append(append([]string{"apply"}, e.flags()...), "-o", "json")
	if code := Main(ctx, full, &out, &errOut); code != ExitInterrupted {
		t.Fatalf("interrupted apply: exit %d, want %d\n%s%s", code, ExitInterrupted, out.String(), errOut.String())
	}
	// Under -o json the error is one JSON object on stderr.
	if !strings.Contains(errOut.String(), `"message": "interrupted: `) || !strings.Contains(errOut.String(), `"exitCode": 130`) {
		t.Errorf("stderr does not say the run was interrupted:\n%s", errOut.String())
	}
	if kinds, _ := issuerChanges(t, out.String()); !slices.Contains(kinds, "create s3-bucket") {
		t.Errorf("interrupted run's report does not list the bucket it created: %v", kinds)
	}
	e.mustRun("apply")
	if code, o, eo := e.run("plan"); code != 0 {
		t.Errorf("plan after the re-run: exit %d\n%s%s", code, o, eo)
	}
}

func writeConfig(t *testing.T) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "irsa.yaml")
	if err := os.WriteFile(cfg, []byte("bindings:\n- namespace: default\n  serviceAccount: app\n  policyARNs: [arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}
