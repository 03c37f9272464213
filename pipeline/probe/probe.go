// Package probe is the verify Job's check in irsa's own image (`irsa probe`), for clusters that can't pull the
// aws-cli image: it calls STS GetCallerIdentity and S3 ListBuckets with the SDK's default credential chain (the web
// identity the pod identity webhook injected) and prints exactly what `aws sts get-caller-identity --output json &&
// aws s3 ls` prints, so one parser (verify.ParseOutput) reads both.
package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// DefaultRegion is used when neither the environment nor the shared config names one (the webhook normally injects
// AWS_REGION).
const DefaultRegion = "us-east-1"

// Run prints the caller identity as JSON, then one "YYYY-MM-DD HH:MM:SS bucket" line per bucket (UTC). The SDK reads
// AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_S3 and AWS_CA_BUNDLE from the
// environment; with an S3 endpoint override (an emulator) S3 uses path-style addressing.
func Run(ctx context.Context, w io.Writer) error {
	// Without the injected web identity the SDK would fall back to the instance metadata service: fail at once
	// instead, with the reason, and never send traffic to 169.254.169.254.
	for _, v := range []string{"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		if os.Getenv(v) == "" {
			return fmt.Errorf("%s is not set: the pod identity webhook did not inject a web identity into this pod (is its ServiceAccount annotated with eks.amazonaws.com/role-arn, and is the webhook reachable?)", v)
		}
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	if err != nil {
		return fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return fmt.Errorf("get caller identity: %w", err)
	}
	// aws-cli's key order and four-space indent.
	identity := struct {
		UserID  string `json:"UserId"`
		Account string `json:"Account"`
		Arn     string `json:"Arn"`
	}{aws.ToString(id.UserId), aws.ToString(id.Account), aws.ToString(id.Arn)}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "    ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(identity); err != nil {
		return err
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}

	pathStyle := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle })
	pages := s3.NewListBucketsPaginator(client, &s3.ListBucketsInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list buckets: %w", err)
		}
		for _, b := range page.Buckets {
			created := ""
			if b.CreationDate != nil {
				created = b.CreationDate.UTC().Format("2006-01-02 15:04:05")
			}
			if _, err := fmt.Fprintf(w, "%s %s\n", created, aws.ToString(b.Name)); err != nil {
				return err
			}
		}
	}
	return nil
}
