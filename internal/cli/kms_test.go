package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// A bucket whose default encryption is SSE-KMS: irsa writes its documents with SSE-S3 anyway (STS reads them
// anonymously, and S3 refuses anonymous GETs of KMS-encrypted objects), says so in the plan, and a document someone
// rewrote with a KMS key, same content, is drift that plan shows and apply repairs. Change detection compares content,
// so it does not depend on the ETag being an MD5 (it is not for KMS-encrypted objects).
func TestKMSEncryptedDocumentsAreDriftAndRepaired(t *testing.T) {
	ctx := context.Background()
	c := clients(t)
	e := newEnv(t)
	if _, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &e.bucket,
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.S3.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: &e.bucket, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
		Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAwsKms}}}}}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := e.run("plan")
	if code != 2 || !strings.Contains(out, "bucket default encryption aws:kms is overridden with SSE-S3") {
		t.Errorf("plan on a bucket with an SSE-KMS default: exit %d\n%s%s", code, out, errOut)
	}
	e.mustRun("apply")
	sse := func(key string) s3types.ServerSideEncryption {
		h, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return h.ServerSideEncryption
	}
	if got := sse("keys.json"); got != s3types.ServerSideEncryptionAes256 {
		t.Errorf("keys.json written with %q, want AES256", got)
	}
	if code, _ := anonymousGet(t, e.issuer+"/keys.json"); code != 200 {
		t.Errorf("anonymous GET of keys.json: %d", code)
	}

	// Someone copies the JWKS over itself with a KMS key: same bytes, new encryption.
	if _, err := c.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &e.bucket, Key: aws.String("keys.json"), CopySource: aws.String(e.bucket + "/keys.json"),
		ServerSideEncryption: s3types.ServerSideEncryptionAwsKms, MetadataDirective: s3types.MetadataDirectiveCopy}); err != nil {
		t.Fatal(err)
	}
	if got := sse("keys.json"); got != s3types.ServerSideEncryptionAwsKms {
		t.Fatalf("setup: keys.json encrypted with %q after the copy, want aws:kms", got)
	}
	code, out, errOut = e.run("plan")
	if code != 2 || !strings.Contains(out, "encrypted with aws:kms: anonymous readers (STS) get 403") || strings.Contains(out, "content differs") {
		t.Errorf("plan with a KMS-encrypted JWKS: exit %d\n%s%s", code, out, errOut)
	}
	e.mustRun("apply")
	if got := sse("keys.json"); got != s3types.ServerSideEncryptionAes256 {
		t.Errorf("after apply keys.json is encrypted with %q, want AES256", got)
	}
	if code, out, errOut := e.run("plan"); code != 0 {
		t.Errorf("plan after the repair: exit %d\n%s%s", code, out, errOut)
	}
}
