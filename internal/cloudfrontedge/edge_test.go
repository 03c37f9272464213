package cloudfrontedge

import (
	"testing"

	"github.com/irsa-anywhere/irsa/pipeline/issuer/cloudfront"
)

// The edge serves an object only when the bucket policy grants this distribution, by service principal and
// AWS:SourceArn, GetObject on it, and nothing denies it.
func TestGrants(t *testing.T) {
	const dist = "arn:aws:cloudfront::123456789012:distribution/E1"
	const doc = "arn:aws:s3:::b/keys.json"
	irsa := cloudfront.BucketPolicy("aws", "b", ".well-known/openid-configuration", "keys.json", dist)
	cases := map[string]struct {
		policy, resource string
		ok, anonymous    bool
	}{
		"irsa's policy":                   {irsa, doc, true, false},
		"another key":                     {irsa, "arn:aws:s3:::b/other", false, false},
		"another distribution":            {cloudfront.BucketPolicy("aws", "b", "d", "keys.json", "arn:aws:cloudfront::123456789012:distribution/E2"), doc, false, false},
		"no SourceArn condition":          {`{"Statement":[{"Effect":"Allow","Principal":{"Service":"cloudfront.amazonaws.com"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}`, doc, false, false},
		"public":                          {`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`, doc, false, true},
		"public by AWS *":                 {`{"Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:Get*"],"Resource":["arn:aws:s3:::b/*"]}]}`, doc, false, true},
		"wildcard resource and ArnEquals": {`{"Statement":[{"Effect":"Allow","Principal":{"Service":["cloudfront.amazonaws.com"]},"Action":"s3:*","Resource":"arn:aws:s3:::b/*","Condition":{"ArnEquals":{"aws:SourceArn":"` + dist + `"}}}]}`, doc, true, false},
		"denied": {`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/keys.json"},` +
			`{"Effect":"Allow","Principal":{"Service":"cloudfront.amazonaws.com"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"AWS:SourceArn":"` + dist + `"}}}]}`, doc, false, false},
		"not JSON": {`{`, doc, false, false},
	}
	for name, tc := range cases {
		why := Grants(tc.policy, dist, tc.resource)
		if (why == "") != tc.ok {
			t.Errorf("%s: Grants = %q, want granted %v", name, why, tc.ok)
		}
		if got := Anonymous(tc.policy, tc.resource); got != tc.anonymous {
			t.Errorf("%s: Anonymous = %v, want %v", name, got, tc.anonymous)
		}
	}
}

func TestBucketOf(t *testing.T) {
	for domain, want := range map[string]string{"b.s3.eu-west-1.amazonaws.com": "b", "b.s3.amazonaws.com": "b", "b.example.com": "", "s3.amazonaws.com": ""} {
		if got, _ := bucketOf(domain); got != want {
			t.Errorf("bucketOf(%q) = %q, want %q", domain, got, want)
		}
	}
}
