// Package awsclient builds the AWS clients every stage shares: one SDK configuration with the adaptive retryer, a
// timeout on every call, an optional emulator endpoint, and a counter of the calls made, by kind.
package awsclient

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/irsa-anywhere/irsa/pipeline/proxy"
)

// Options configure the clients.
type Options struct {
	Region string
	// EndpointURL sends every call to an emulator, over the environment's endpoints; empty leaves them to the
	// environment (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, _IAM, _STS, the profile). S3 uses path-style addressing
	// whenever its endpoint is not AWS's.
	EndpointURL string
	// CABundle is PEM to trust instead of the system roots (emulators with a test CA).
	CABundle []byte
	// Profile is the shared-config profile; empty means $AWS_PROFILE or the default one.
	Profile string
	// Credentials replaces the SDK's default chain (env, shared config and SSO, web identity, IMDS).
	Credentials aws.CredentialsProvider
	// CallTimeout bounds each call, retries included. Default 30 s.
	CallTimeout time.Duration
}

// Clients are the AWS API clients irsa uses.
type Clients struct {
	S3  *s3.Client
	IAM *iam.Client
	STS *sts.Client
	// CloudFront, ACM and Route53 serve the cloudfront issuer hosting. ACM is in us-east-1 whatever the region:
	// CloudFront takes certificates from there only.
	CloudFront *cloudfront.Client
	ACM        *acm.Client
	Route53    *route53.Client
	Config     aws.Config
	// Calls counts every call made through these clients.
	Calls *CallCounter
	// LockS3 is S3 without the counter: the run's lock (package lock) is not one of the objects irsa manages, and a
	// run that changes nothing still reports no writes.
	LockS3 *s3.Client

	accountOnce sync.Once
	account     string
	accountErr  error
}

// New loads the SDK configuration and builds the clients.
func New(ctx context.Context, o Options) (*Clients, error) {
	if o.CallTimeout == 0 {
		o.CallTimeout = 30 * time.Second
	}
	counter := &CallCounter{}
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(o.Region),
		// Ten attempts: a call fails only when ten in a row are throttled or lost. Under 30 % faults
		// (TestApplyAndTeardownUnderThrottlingAndLostResponses, ~250 calls) five would lose some call with a
		// probability of about 45 % (0.3^5 per call), ten with 0.15 %. The backoff (the SDK's exponential jitter, at
		// most 20 s) keeps the retries polite.
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewAdaptiveMode(func(ao *retry.AdaptiveModeOptions) {
				ao.StandardOptions = append(ao.StandardOptions, func(so *retry.StandardOptions) { so.MaxAttempts = 10 })
			})
		}),
		// AWS_CA_BUNDLE may be set; the SDK then needs a buildable client to apply it.
		// $HTTPS_PROXY/$NO_PROXY as they are now (http.ProxyFromEnvironment, the SDK's default, reads them once).
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(o.CallTimeout).WithTransportOptions(func(tr *http.Transport) {
			tr.Proxy = proxy.FromEnvironment()
		})),
		awsconfig.WithAPIOptions([]func(*middleware.Stack) error{counter.middleware}),
	}
	if o.EndpointURL != "" {
		loadOpts = append(loadOpts, awsconfig.WithBaseEndpoint(o.EndpointURL))
	}
	if len(o.CABundle) > 0 {
		loadOpts = append(loadOpts, awsconfig.WithCustomCABundle(bytes.NewReader(o.CABundle)))
	}
	if o.Profile != "" {
		loadOpts = append(loadOpts, awsconfig.WithSharedConfigProfile(o.Profile))
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	// The SDK resolves each service's endpoint as the AWS CLI does: AWS_ENDPOINT_URL_<SERVICE>, then
	// AWS_ENDPOINT_URL, then the profile's services section and endpoint_url (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
	// turns them off); see https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html. The flag, like
	// the AWS CLI's --endpoint-url, wins over all of them, so it is set on each client after that resolution.
	var flag *string
	if o.EndpointURL != "" {
		flag = aws.String(o.EndpointURL)
	}
	uncounted := cfg.Copy()
	uncounted.APIOptions = nil // the counter is the one API option New sets
	return &Clients{
		S3: s3.NewFromConfig(cfg, func(so *s3.Options) {
			so.BaseEndpoint = cmp.Or(flag, so.BaseEndpoint)
			// An emulator serves no virtual hosts of its own (BUCKET.127.0.0.1 has no name).
			so.UsePathStyle = so.BaseEndpoint != nil
			// The SDK logs each GetObject answer without a checksum (emulators, objects written before checksums) on
			// stderr, which is irsa's progress stream and, under -o json, its error stream.
			so.DisableLogOutputChecksumValidationSkipped = true
		}),
		LockS3: s3.NewFromConfig(uncounted, func(so *s3.Options) {
			so.BaseEndpoint = cmp.Or(flag, so.BaseEndpoint)
			so.UsePathStyle = so.BaseEndpoint != nil
			so.DisableLogOutputChecksumValidationSkipped = true
		}),
		IAM:        iam.NewFromConfig(cfg, func(opts *iam.Options) { opts.BaseEndpoint = cmp.Or(flag, opts.BaseEndpoint) }),
		STS:        sts.NewFromConfig(cfg, func(so *sts.Options) { so.BaseEndpoint = cmp.Or(flag, so.BaseEndpoint) }),
		CloudFront: cloudfront.NewFromConfig(cfg, func(co *cloudfront.Options) { co.BaseEndpoint = cmp.Or(flag, co.BaseEndpoint) }),
		ACM: acm.NewFromConfig(cfg, func(ao *acm.Options) {
			ao.Region = CloudFrontCertificateRegion
			ao.BaseEndpoint = cmp.Or(flag, ao.BaseEndpoint)
		}),
		Route53: route53.NewFromConfig(cfg, func(ro *route53.Options) { ro.BaseEndpoint = cmp.Or(flag, ro.BaseEndpoint) }),
		Config:  cfg,
		Calls:   counter,
	}, nil
}

// CloudFrontCertificateRegion is where CloudFront takes ACM certificates from (CloudFront developer guide,
// "Requirements for using SSL/TLS certificates with CloudFront").
const CloudFrontCertificateRegion = "us-east-1"

// S3Endpoint is the S3 endpoint the environment configures (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or the profile's),
// as the SDK resolves it; empty for AWS's own. The default issuer of a bucket served by an emulator is on it.
func S3Endpoint(ctx context.Context, profile string) (string, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return "", fmt.Errorf("load AWS configuration (profile %q): %w", profile, err)
	}
	return aws.ToString(s3.NewFromConfig(cfg).Options().BaseEndpoint), nil
}

// DefaultRegion is the region the SDK finds as the AWS CLI does when none is configured: $AWS_REGION,
// $AWS_DEFAULT_REGION, then the profile's region in the shared configuration. Empty when there is none.
func DefaultRegion(ctx context.Context, profile string) (string, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return "", fmt.Errorf("load AWS configuration (profile %q): %w", profile, err)
	}
	if cfg.Region == "" {
		if r := os.Getenv("AWS_DEFAULT_REGION"); r != "" {
			return r, nil
		}
	}
	return cfg.Region, nil
}

// CheckCredentials fails early, before any write, when no credentials can be found.
func (c *Clients) CheckCredentials(ctx context.Context) error {
	if _, err := c.Config.Credentials.Retrieve(ctx); err != nil {
		return fmt.Errorf("no AWS credentials found (%w): set AWS_PROFILE, run `aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", err)
	}
	return nil
}

// AccountID is the caller's account, asked of STS once.
func (c *Clients) AccountID(ctx context.Context) (string, error) {
	c.accountOnce.Do(func() {
		out, err := c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			c.accountErr = fmt.Errorf("get caller identity: %w", err)
			return
		}
		c.account = aws.ToString(out.Account)
	})
	return c.account, c.accountErr
}

// Partition is the ARN partition of region.
func Partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// ErrorCode is the AWS error code of err, or "".
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool {
	switch ErrorCode(err) {
	case "NoSuchEntity", "NoSuchBucket", "NoSuchKey", "NotFound", "NoSuchBucketPolicy", "NoSuchPublicAccessBlockConfiguration",
		"NoSuchTagSet", "NoSuchTagSetError", "NoSuchDistribution", "NoSuchOriginAccessControl", "ResourceNotFoundException",
		"NoSuchHostedZone":
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 404
}

// CallCounter counts AWS calls by service and operation.
type CallCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *CallCounter) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("irsaCallCounter",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			c.add(middleware.GetServiceID(ctx) + ":" + middleware.GetOperationName(ctx))
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
}

func (c *CallCounter) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[key]++
}

// Snapshot returns the counts so far, keyed "Service:Operation".
func (c *CallCounter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Reset forgets the counts.
func (c *CallCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = nil
}

// Mutating lists the calls that change something (anything but Get, List, Head and Describe), sorted.
func (c *CallCounter) Mutating() []string {
	var out []string
	for k, n := range c.Snapshot() {
		if !IsReadOperation(k[strings.Index(k, ":")+1:]) {
			out = append(out, fmt.Sprintf("%s x%d", k, n))
		}
	}
	sort.Strings(out)
	return out
}

// Reads counts the calls that change nothing.
func (c *CallCounter) Reads() int {
	n := 0
	for k, v := range c.Snapshot() {
		if IsReadOperation(k[strings.Index(k, ":")+1:]) {
			n += v
		}
	}
	return n
}

// IsReadOperation reports whether an AWS operation only reads.
func IsReadOperation(op string) bool {
	for _, p := range []string{"Get", "List", "Head", "Describe"} {
		if strings.HasPrefix(op, p) {
			return true
		}
	}
	return false
}
