package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// AWS_ENDPOINT_URL and the per-service AWS_ENDPOINT_URL_<SERVICE> variables are honoured as the AWS CLI honours them
// (the SDK's own resolution): a per-service variable wins over AWS_ENDPOINT_URL, --aws-endpoint-url wins over both,
// and the default issuer is on the S3 endpoint the environment names. A dead endpoint (127.0.0.1:1) stands where a
// variable must lose: were it used, the run would fail.
func TestEndpointsFromTheEnvironment(t *testing.T) {
	const dead = "https://127.0.0.1:1"
	cases := []struct {
		name  string
		env   map[string]string
		flags []string
	}{
		{"AWS_ENDPOINT_URL", map[string]string{"AWS_ENDPOINT_URL": moto.URL}, nil},
		{"per service over AWS_ENDPOINT_URL", map[string]string{"AWS_ENDPOINT_URL": dead,
			"AWS_ENDPOINT_URL_S3": moto.URL, "AWS_ENDPOINT_URL_IAM": moto.URL, "AWS_ENDPOINT_URL_STS": moto.URL}, nil},
		{"flag over the environment", map[string]string{"AWS_ENDPOINT_URL": dead, "AWS_ENDPOINT_URL_S3": dead,
			"AWS_ENDPOINT_URL_IAM": dead, "AWS_ENDPOINT_URL_STS": dead}, []string{"--aws-endpoint-url", moto.URL}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			e := newEnv(t)
			args := append([]string{"apply", "--cluster-name", e.cluster, "--region", "eu-west-1", "--bucket", e.bucket,
				"--key-dir", e.keyDir}, tc.flags...)
			var out, errOut bytes.Buffer
			if code := Main(context.Background(), args, &out, &errOut); code != 0 {
				t.Fatalf("apply: exit %d\n%s%s", code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), "+ iam-oidc-provider") {
				t.Errorf("apply report:\n%s", out.String())
			}
			// The bucket is in moto, and the issuer is moto's URL of it.
			if _, err := clients(t).S3.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: &e.bucket}); err != nil {
				t.Errorf("bucket %s not in moto: %v", e.bucket, err)
			}
			if code, _ := anonymousGet(t, e.issuer+"/.well-known/openid-configuration"); code != 200 {
				t.Errorf("discovery at %s: status %d", e.issuer, code)
			}
			out.Reset()
			errOut.Reset()
			if code := Main(context.Background(), append([]string{"status", "-o", "json"}, args[1:]...), &out, &errOut); code != 0 ||
				!strings.Contains(out.String(), `"issuer": "`+e.issuer+`"`) {
				t.Errorf("status: exit %d, want issuer %s\n%s%s", code, e.issuer, out.String(), errOut.String())
			}
		})
	}
}
