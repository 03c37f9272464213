package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/irsa-anywhere/irsa/pipeline/awsclient"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/provider"
)

// Teardown finds what the cluster owns by its tags, not by today's configuration: after the bucket (and with it the
// issuer URL) changed twice, it removes the old buckets and the old providers too. In an old bucket it deletes only
// the documents irsa wrote there (named by irsa's bucket policy statement) and keeps the bucket when it holds
// something else. Decoys survive: a bucket and a provider tagged for another cluster, a bucket with the cluster's name
// prefix and no tags.
func TestTeardownFindsWhatTheClusterOwnsByTags(t *testing.T) {
	ctx := context.Background()
	c := clients(t)
	e := newEnv(t)
	account, err := c.AccountID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	providerARN := func(bucket string) string {
		return provider.ARN("aws", account, moto.URL+"/"+bucket)
	}
	first, second := e.bucket, e.bucket+"-b"
	e.mustRun("apply")
	// Someone's object in the first bucket: its documents go, the bucket and the object stay.
	if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &first, Key: aws.String("theirs/data"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	e.bucket, e.issuer = second, moto.URL+"/"+second
	e.mustRun("apply")
	third := e.bucket[:len(e.bucket)-2] + "-c"
	e.bucket, e.issuer = third, moto.URL+"/"+third
	e.mustRun("apply")

	// Decoys.
	decoyTagged, decoyUntagged := "decoy-"+e.cluster+"-tagged", "irsa-"+e.cluster+"-untagged"
	for _, b := range []string{decoyTagged, decoyUntagged} {
		if _, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b),
			CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("keys.json"), Body: strings.NewReader("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.S3.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: &decoyTagged, Tagging: &s3types.Tagging{TagSet: []s3types.Tag{
		{Key: aws.String(config.OwnerTagKey), Value: aws.String(e.cluster + "x")}}}}); err != nil {
		t.Fatal(err)
	}
	decoyProvider, err := c.IAM.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String("https://decoy.example/" + e.cluster), ClientIDList: []string{"sts.amazonaws.com"}, ThumbprintList: []string{strings.Repeat("a", 40)},
		Tags: []iamtypes.Tag{{Key: aws.String(config.OwnerTagKey), Value: aws.String(e.cluster + "x")}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.IAM.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: decoyProvider.OpenIDConnectProviderArn})
	})

	out := e.mustRun("teardown", "--yes", "--aws-only")
	for _, b := range []string{second, third} {
		if _, err := c.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b)}); !awsclient.IsNotFound(err) {
			t.Errorf("teardown left bucket %s (err %v)\n%s", b, err, out)
		}
	}
	objs, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &first})
	if err != nil {
		t.Fatalf("teardown deleted the first bucket, which holds someone's object: %v", err)
	}
	if len(objs.Contents) != 1 || aws.ToString(objs.Contents[0].Key) != "theirs/data" {
		var keys []string
		for _, o := range objs.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		t.Errorf("first bucket after teardown holds %v; want only theirs/data", keys)
	}
	if !strings.Contains(out, "(theirs/data)") {
		t.Errorf("teardown does not report the bucket it kept:\n%s", out)
	}
	for _, b := range []string{first, second, third} {
		if _, err := c.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(providerARN(b))}); !awsclient.IsNotFound(err) {
			t.Errorf("teardown left provider %s (err %v)", providerARN(b), err)
		}
	}
	for _, b := range []string{decoyTagged, decoyUntagged} {
		if _, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("keys.json")}); err != nil {
			t.Errorf("decoy bucket %s lost its object: %v", b, err)
		}
	}
	if _, err := c.IAM.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: decoyProvider.OpenIDConnectProviderArn}); err != nil {
		t.Errorf("decoy provider tagged for another cluster: %v", err)
	}
}
