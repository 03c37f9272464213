package stsgate

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRequestParameters feeds arbitrary form bodies to the parameter rules: they must not panic, and what they accept
// must be within every documented constraint.
func FuzzRequestParameters(f *testing.F) {
	f.Add("Action=AssumeRoleWithWebIdentity&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fr&RoleSessionName=s1&WebIdentityToken=a.b.c&DurationSeconds=900")
	f.Add("RoleArn=x&RoleSessionName=&WebIdentityToken=&PolicyArns.member.1.arn=a&PolicyArns.member.12.arn=b&Policy=%7B%7D&ProviderId=www.amazon.com")
	f.Add("DurationSeconds=99999999999999999999&RoleSessionName=a%20b")
	f.Fuzz(func(t *testing.T, body string) {
		params, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		req := RequestFrom(params)
		duration, err := req.validate()
		if err != nil {
			if !strings.Contains(err.Error(), "validation error") {
				t.Fatalf("validation error without STS's prefix: %v", err)
			}
			return
		}
		if duration != 0 && (duration < minDuration || duration > maxDuration) {
			t.Fatalf("accepted DurationSeconds %d", duration)
		}
		if n := utf8.RuneCountInString(req.RoleSessionName); n < minSessionName || n > maxSessionName || !roleSessionName.MatchString(req.RoleSessionName) {
			t.Fatalf("accepted RoleSessionName %q", req.RoleSessionName)
		}
		if n := utf8.RuneCountInString(req.WebIdentityToken); n < minToken || n > maxToken {
			t.Fatalf("accepted a token of %d characters", n)
		}
		if len(req.PolicyARNs) > maxPolicyARNs {
			t.Fatalf("accepted %d policy ARNs", len(req.PolicyARNs))
		}
	})
}
