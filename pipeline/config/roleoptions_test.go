package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestValidateTags(t *testing.T) {
	many := map[string]string{}
	for i := 0; i < MaxRoleTags-OwnershipTagCount; i++ {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []struct {
		name string
		tags map[string]string
		want string // "" means valid
	}{
		{"none", nil, ""},
		{"empty value", map[string]string{"team": ""}, ""},
		{"unicode letters and spaces", map[string]string{"équipe paiements": "Zürich 1"}, ""},
		{"key of 128 and value of 256", map[string]string{strings.Repeat("k", 128): strings.Repeat("v", 256)}, ""},
		{"47 tags", many, ""},
		{"key of 129", map[string]string{strings.Repeat("k", 129): "v"}, "must be 1-128 characters"},
		{"value of 257", map[string]string{"k": strings.Repeat("v", 257)}, "value of 257 characters"},
		{"empty key", map[string]string{"": "v"}, "must be 1-128"},
		{"aws: prefix any case", map[string]string{"Aws:x": "v"}, "reserved for AWS"},
		{"irsa key", map[string]string{"irsa.irsa-anywhere.io/anything": "v"}, "irsa sets this key itself"},
		{"managed-by key", map[string]string{"app.kubernetes.io/managed-by": "me"}, "irsa sets this key itself"},
		{"case duplicates", map[string]string{"Team": "a", "team": "b"}, "differ only in case"},
		{"bad key character", map[string]string{"a*b": "v"}, "may use only"},
		{"bad value character", map[string]string{"k": "a,b"}, "may use only"},
	}
	tooMany := map[string]string{"extra": "v"}
	for k, v := range many {
		tooMany[k] = v
	}
	cases = append(cases, struct {
		name string
		tags map[string]string
		want string
	}{"48 tags", tooMany, "48 tags: IAM allows 50 per role"})
	for _, tc := range cases {
		err := ValidateTags(tc.tags)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestValidateTrustProviderAndRoleARN(t *testing.T) {
	good := []string{
		"arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/ABC",
		"arn:aws-cn:iam::123456789012:oidc-provider/127.0.0.1:4566/bucket",
		"https://prod-b-oidc.s3.eu-west-1.amazonaws.com",
	}
	for _, p := range good {
		if err := ValidateTrustProvider(p); err != nil {
			t.Errorf("ValidateTrustProvider(%q): %v", p, err)
		}
	}
	for _, p := range []string{"oidc.example.com", "http://oidc.example.com", "arn:aws:iam::123456789012:oidc-provider/", "arn:aws:iam::aws:oidc-provider/x.example.com", "arn:aws:s3:::bucket", "https://x.example.com/a/"} {
		if err := ValidateTrustProvider(p); err == nil {
			t.Errorf("ValidateTrustProvider(%q): no error", p)
		}
	}
	for arn, want := range map[string][2]string{
		"arn:aws:iam::123456789012:role/app":           {"/", "app"},
		"arn:aws:iam::123456789012:role/teams/a/app":   {"/teams/a/", "app"},
		"arn:aws:iam::123456789012:role/irsa/other/x":  {"/irsa/other/", "x"},
		"arn:aws-us-gov:iam::123456789012:role/p/app@": {"/p/", "app@"},
	} {
		path, name := SplitRoleARN(arn)
		if path != want[0] || name != want[1] {
			t.Errorf("SplitRoleARN(%q) = %q, %q", arn, path, name)
		}
		if err := ValidateRoleARN(arn); err != nil {
			t.Errorf("ValidateRoleARN(%q): %v", arn, err)
		}
	}
	for _, arn := range []string{"arn:aws:iam::123456789012:user/app", "arn:aws:iam::123456789012:role/", "arn:aws:iam::12345:role/app", "arn:aws:iam::123456789012:role/" + strings.Repeat("r", 65), "role/app"} {
		if err := ValidateRoleARN(arn); err == nil {
			t.Errorf("ValidateRoleARN(%q): no error", arn)
		}
	}
}
