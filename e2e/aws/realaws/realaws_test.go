package realaws

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
)

func TestNewRefusedWithoutOptIn(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "0", "true", "yes", " 1"} {
		t.Run("value "+v, func(t *testing.T) {
			t.Parallel()
			_, err := New(context.Background(), Options{Getenv: func(k string) string {
				if k == OptInEnv {
					return v
				}
				return ""
			}})
			if err == nil {
				t.Fatalf("New with %s=%q succeeded; it must refuse", OptInEnv, v)
			}
			for _, want := range []string{"refused", OptInEnv, `"1"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestNewRejectsForeignRunID(t *testing.T) {
	t.Parallel()
	_, err := New(context.Background(), Options{RunID: "prod", Getenv: func(string) string { return "1" }})
	if err == nil || !strings.Contains(err.Error(), `run ID "prod"`) {
		t.Fatalf("New with run ID prod = %v, want an error naming it", err)
	}
}

func TestNewRunID(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 21, 40, 5, 0, time.UTC)
	a, err := NewRunID(at)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewRunID(at)
	if !regexp.MustCompile(`^irsa-e2e-20261125t214005-[0-9a-f]{6}$`).MatchString(a) {
		t.Errorf("NewRunID = %q", a)
	}
	if a == b {
		t.Errorf("two run IDs at the same second are equal: %q", a)
	}
}

// The selection is checked on fake listings: real AWS cannot be reached from the build machines, and moto sets
// every creation time to now. TestSweeperOnMoto runs listing and deletion against a real moto_server.
func TestStale(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tags := func(owner string) map[string]string {
		return map[string]string{config.OwnerTagKey: owner, config.ManagedByTagKey: config.ManagedByValue}
	}
	listing := []Resource{
		{Kind: KindBucket, ID: "old-bucket", Created: now.Add(-7 * time.Hour), Tags: tags("irsa-e2e-a")},
		{Kind: KindRole, ID: "old-role", Created: now.Add(-7 * time.Hour), Tags: tags("irsa-e2e-a")},
		{Kind: KindProvider, ID: "arn:aws:iam::1:oidc-provider/old", Created: now.Add(-30 * time.Hour), Tags: tags("irsa-e2e-b")},
		{Kind: KindRole, ID: "young-role", Created: now.Add(-5 * time.Hour), Tags: tags("irsa-e2e-c")},
		{Kind: KindRole, ID: "just-at-limit", Created: now.Add(-6 * time.Hour), Tags: tags("irsa-e2e-c")},
		{Kind: KindRole, ID: "current-run", Created: now.Add(-9 * time.Hour), Tags: tags("irsa-e2e-now")},
		{Kind: KindRole, ID: "user-cluster", Created: now.Add(-90 * 24 * time.Hour), Tags: tags("prod")},
		{Kind: KindRole, ID: "not-managed", Created: now.Add(-90 * 24 * time.Hour), Tags: map[string]string{config.OwnerTagKey: "irsa-e2e-a"}},
		{Kind: KindRole, ID: "managed-no-owner", Created: now.Add(-90 * 24 * time.Hour), Tags: map[string]string{config.ManagedByTagKey: config.ManagedByValue}},
		{Kind: KindBucket, ID: "untagged", Created: now.Add(-90 * 24 * time.Hour)},
	}
	cases := []struct {
		name    string
		maxAge  time.Duration
		current string
		want    []string
	}{
		{"six hours", 6 * time.Hour, "irsa-e2e-now", []string{"iam-role old-role", "iam-oidc-provider arn:aws:iam::1:oidc-provider/old", "s3-bucket old-bucket"}},
		{"one hour", time.Hour, "irsa-e2e-now", []string{"iam-role just-at-limit", "iam-role old-role", "iam-role young-role", "iam-oidc-provider arn:aws:iam::1:oidc-provider/old", "s3-bucket old-bucket"}},
		{"a day", 24 * time.Hour, "irsa-e2e-now", []string{"iam-oidc-provider arn:aws:iam::1:oidc-provider/old"}},
		{"current run is never swept", 0, "irsa-e2e-now", []string{"iam-role just-at-limit", "iam-role old-role", "iam-role young-role", "iam-oidc-provider arn:aws:iam::1:oidc-provider/old", "s3-bucket old-bucket"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, r := range Stale(listing, now, tc.maxAge, tc.current) {
				got = append(got, r.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Stale =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	var owned []string
	for _, r := range Owned(listing, "irsa-e2e-a") {
		owned = append(owned, r.String())
	}
	if want := "iam-role old-role\ns3-bucket old-bucket"; strings.Join(owned, "\n") != want {
		t.Errorf("Owned(irsa-e2e-a) =\n%s\nwant\n%s", strings.Join(owned, "\n"), want)
	}
}

// TestSweeperOnMoto lists and deletes through the real SDK calls against moto_server: New sweeps an earlier run's
// leftovers, Close deletes this run's, and nothing else is touched.
func TestSweeperOnMoto(t *testing.T) {
	srv := motoserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	caPEM, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	clientOpts := awsclient.Options{
		Region:      "us-east-1",
		EndpointURL: srv.URL,
		CABundle:    caPEM,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
	c, err := awsclient.New(ctx, clientOpts)
	if err != nil {
		t.Fatal(err)
	}
	owner := func(run string) []iamtypes.Tag {
		return []iamtypes.Tag{
			{Key: aws.String(config.OwnerTagKey), Value: aws.String(run)},
			{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
		}
	}
	const earlier, current = "irsa-e2e-earlier", "irsa-e2e-current"
	seedRun := func(run string) {
		t.Helper()
		trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"x"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`
		role := run + "-role"
		if _, err := c.IAM.CreateRole(ctx, &iam.CreateRoleInput{RoleName: &role, AssumeRolePolicyDocument: &trust, Tags: owner(run)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.IAM.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: &role, PolicyArn: aws.String("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &role, PolicyName: aws.String("inline"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.IAM.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
			Url: aws.String("https://issuer.example/" + run), ClientIDList: []string{config.DefaultAudience}, Tags: owner(run),
			ThumbprintList: []string{strings.Repeat("a", 40)},
		}); err != nil {
			t.Fatal(err)
		}
		bucket := run + "-issuer"
		if _, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(config.JWKSKey), Body: strings.NewReader("{}")}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.S3.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: &bucket, Tagging: &s3types.Tagging{TagSet: []s3types.Tag{
			{Key: aws.String(config.OwnerTagKey), Value: aws.String(run)},
			{Key: aws.String(config.ManagedByTagKey), Value: aws.String(config.ManagedByValue)},
		}}}); err != nil {
			t.Fatal(err)
		}
	}
	seedRun(earlier)
	seedRun(current)
	// Not the sweeper's: a user's cluster and an untagged role and bucket.
	seedRun("prod")
	trust := `{"Version":"2012-10-17","Statement":[]}`
	if _, err := c.IAM.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("untagged"), AssumeRolePolicyDocument: &trust}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("untagged-bucket")}); err != nil {
		t.Fatal(err)
	}

	remaining := func() string {
		t.Helper()
		rs, err := NewSweeper(c).List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var ids []string
		for _, r := range ordered(rs) {
			ids = append(ids, r.String())
		}
		return strings.Join(ids, "\n")
	}
	if got, want := remaining(), strings.Join([]string{
		"iam-role irsa-e2e-current-role", "iam-role irsa-e2e-earlier-role", "iam-role prod-role",
		"iam-oidc-provider arn:aws:iam::123456789012:oidc-provider/issuer.example/irsa-e2e-current",
		"iam-oidc-provider arn:aws:iam::123456789012:oidc-provider/issuer.example/irsa-e2e-earlier",
		"iam-oidc-provider arn:aws:iam::123456789012:oidc-provider/issuer.example/prod",
		"s3-bucket irsa-e2e-current-issuer", "s3-bucket irsa-e2e-earlier-issuer", "s3-bucket prod-issuer",
	}, "\n"); got != want {
		t.Fatalf("List =\n%s\nwant\n%s", got, want)
	}

	// Seven hours later (moto stamps creation with the real clock), a run sweeps what is not its own.
	b, err := New(ctx, Options{
		RunID:  current,
		Getenv: func(string) string { return "1" },
		Now:    func() time.Time { return time.Now().Add(7 * time.Hour) },
		Client: clientOpts,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if len(b.Swept) != 3 {
		t.Errorf("swept %v, want the earlier run's role, provider and bucket", b.Swept)
	}
	if got, want := remaining(), strings.Join([]string{
		"iam-role irsa-e2e-current-role", "iam-role prod-role",
		"iam-oidc-provider arn:aws:iam::123456789012:oidc-provider/issuer.example/irsa-e2e-current",
		"iam-oidc-provider arn:aws:iam::123456789012:oidc-provider/issuer.example/prod",
		"s3-bucket irsa-e2e-current-issuer", "s3-bucket prod-issuer",
	}, "\n"); got != want {
		t.Fatalf("after New's sweep =\n%s\nwant\n%s", got, want)
	}

	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := remaining(), strings.Join([]string{
		"iam-role prod-role",
		"iam-oidc-provider arn:aws:iam::123456789012:oidc-provider/issuer.example/prod",
		"s3-bucket prod-issuer",
	}, "\n"); got != want {
		t.Fatalf("after Close =\n%s\nwant\n%s", got, want)
	}
	if _, err := c.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("untagged")}); err != nil {
		t.Errorf("untagged role: %v", err)
	}
	if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("untagged-bucket")}); err != nil {
		t.Errorf("untagged bucket: %v", err)
	}
	// A second Close finds nothing and succeeds.
	if err := b.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
