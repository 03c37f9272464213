package probe_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/irsa-anywhere/irsa/internal/motoserver"
	"github.com/irsa-anywhere/irsa/pipeline/probe"
	"github.com/irsa-anywhere/irsa/pipeline/verify"
)

// The probe runs as a pod would: web identity from the environment, endpoints and CA bundle for the emulator, and no
// other credentials anywhere. moto accepts any web identity token, so this checks the wiring and the output format;
// the trust checks are the STS gate's and the e2e's business.
func TestRunAgainstMoto(t *testing.T) {
	moto := motoserver.Start(t)
	ctx := t.Context()

	admin := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(moto.URL), UsePathStyle: true, HTTPClient: moto.HTTPClient,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	for _, b := range []string{"irsa-test-issuer", "team-data"} {
		if _, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), 0o600); err != nil {
		t.Fatal(err)
	}
	roleARN := "arn:aws:iam::123456789012:role/irsa/test/irsa-test-default-irsa-verify"
	for k, v := range map[string]string{
		"AWS_ROLE_ARN": roleARN, "AWS_WEB_IDENTITY_TOKEN_FILE": token, "AWS_REGION": "us-east-1",
		"AWS_ENDPOINT_URL_STS": moto.URL, "AWS_ENDPOINT_URL_S3": moto.URL, "AWS_CA_BUNDLE": moto.CAFile,
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_ENDPOINT_URL": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}

	var out bytes.Buffer
	if err := probe.Run(ctx, &out); err != nil {
		t.Fatalf("probe: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "{\n    \"UserId\": ") {
		t.Errorf("output does not start like aws-cli's:\n%s", out.String())
	}
	parsed, err := verify.ParseOutput(out.String())
	if err != nil {
		t.Fatal(err)
	}
	prefix, _ := verify.AssumedRoleARN(roleARN)
	if !strings.HasPrefix(parsed.Arn, prefix+"/") {
		t.Errorf("caller %s, want a session of %s", parsed.Arn, prefix)
	}
	if !slices.Contains(parsed.Buckets, "irsa-test-issuer") || len(parsed.Buckets) != 2 {
		t.Errorf("buckets = %v", parsed.Buckets)
	}
}

func TestRunFailsWithoutCredentials(t *testing.T) {
	moto := motoserver.Start(t)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_REGION": "us-east-1",
		"AWS_ENDPOINT_URL_STS": moto.URL, "AWS_ENDPOINT_URL_S3": moto.URL, "AWS_CA_BUNDLE": moto.CAFile,
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_ENDPOINT_URL": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		// No instance metadata on this machine or any test's: never try it.
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	err := probe.Run(t.Context(), &out)
	if err == nil || !strings.Contains(err.Error(), "AWS_ROLE_ARN is not set: the pod identity webhook did not inject") {
		t.Errorf("err = %v, want the missing web identity named", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q before failing", out.String())
	}
}
