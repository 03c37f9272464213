package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/doctor"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
)

// doctor and status judge ownership with apply's own check: a provider retagged for another cluster fails doctor's
// "owned by irsa" line and stops status with the error apply gives. doctor also reports an SSE-KMS default on the
// issuer bucket.
func TestDoctorAndStatusShareApplysOwnershipCheck(t *testing.T) {
	ctx := context.Background()
	c := clients(t)
	e := newEnv(t)
	e.mustRun("apply")
	doctorLine := func(name string) (doctor.Check, int) {
		t.Helper()
		code, out, errOut := e.run("doctor", "-o", "json")
		var rep doctor.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("doctor -o json: %v\n%s%s", err, out, errOut)
		}
		for _, ch := range rep.Checks {
			if ch.Name == name {
				return ch, code
			}
		}
		t.Fatalf("doctor has no %q line:\n%s", name, out)
		return doctor.Check{}, code
	}
	if ch, _ := doctorLine("owned by irsa"); !ch.OK {
		t.Errorf("doctor after apply: %+v", ch)
	}

	account, _ := c.AccountID(ctx)
	arn := provider.ARN("aws", account, e.issuer)
	if _, err := c.IAM.TagOpenIDConnectProvider(ctx, &iam.TagOpenIDConnectProviderInput{OpenIDConnectProviderArn: &arn,
		Tags: []iamtypes.Tag{{Key: aws.String(config.OwnerTagKey), Value: aws.String("someone-else")}}}); err != nil {
		t.Fatal(err)
	}
	want := "is not owned by irsa cluster \"" + e.cluster + "\""
	ch, code := doctorLine("owned by irsa")
	if ch.OK || code != 1 || !strings.Contains(ch.Message, "IAM OIDC provider") || !strings.Contains(ch.Message, want) {
		t.Errorf("doctor with the provider tagged for another cluster: exit %d, %+v", code, ch)
	}
	if code, out, errOut := e.run("status"); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("status with the provider tagged for another cluster: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := e.run("plan"); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("plan with the provider tagged for another cluster: exit %d\n%s%s", code, out, errOut)
	}

	if _, err := c.S3.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: &e.bucket, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
		Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAwsKms}}}}}); err != nil {
		t.Fatal(err)
	}
	if ch, _ := doctorLine("bucket encryption"); !ch.Info || !strings.Contains(ch.Message, "aws:kms") {
		t.Errorf("doctor on a bucket with an SSE-KMS default: %+v", ch)
	}
	// The provider is someone else's now: teardown leaves it (and says so).
	out := e.mustRun("teardown", "--yes", "--aws-only")
	if _, err := c.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: &arn}); err != nil {
		t.Errorf("teardown deleted a provider tagged for another cluster: %v\n%s", err, out)
	}
	_, _ = c.IAM.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: &arn})
}
