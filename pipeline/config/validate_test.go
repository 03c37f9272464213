package config

import (
	"strings"
	"testing"
)

// The DNS-1123 and policy ARN rules: each bad value is refused with an error naming the value and the rule.
func TestNameAndARNRules(t *testing.T) {
	t.Parallel()
	label := func(v string) error { return ValidateDNS1123Label("namespace", v) }
	subdomain := func(v string) error { return ValidateDNS1123Subdomain("service account name", v) }
	tests := []struct {
		name  string
		check func(string) error
		value string
		rule  string // "" means valid
	}{
		{"label", label, "kube-system", ""},
		{"label 63", label, strings.Repeat("a", 63), ""},
		{"label 64", label, strings.Repeat("a", 64), "DNS-1123 label"},
		{"label upper", label, "Kube", "DNS-1123 label"},
		{"label dot", label, "a.b", "DNS-1123 label"},
		{"label leading dash", label, "-a", "DNS-1123 label"},
		{"label empty", label, "", "DNS-1123 label"},
		{"subdomain", subdomain, "app.reader-1", ""},
		{"subdomain 254", subdomain, strings.Repeat("a", 254), "DNS-1123 subdomain"},
		{"subdomain underscore", subdomain, "app_reader", "DNS-1123 subdomain"},
		{"subdomain empty label", subdomain, "a..b", "DNS-1123 subdomain"},
		{"cluster", ValidateClusterName, "dev-1", ""},
		{"cluster upper", ValidateClusterName, "Dev", "1-63 lowercase"},
		{"cluster trailing dash", ValidateClusterName, "dev-", "1-63 lowercase"},
		{"aws policy", ValidatePolicyARN, "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", ""},
		{"account policy with path", ValidatePolicyARN, "arn:aws-us-gov:iam::123456789012:policy/team/reader", ""},
		{"role, not policy", ValidatePolicyARN, "arn:aws:iam::123456789012:role/reader", "policy ARN"},
		{"short account", ValidatePolicyARN, "arn:aws:iam::1234:policy/x", "policy ARN"},
		{"region set", ValidatePolicyARN, "arn:aws:iam:us-east-1:aws:policy/x", "policy ARN"},
		{"other service", ValidatePolicyARN, "arn:aws:s3::aws:policy/x", "policy ARN"},
		{"other partition", ValidatePolicyARN, "arn:azure:iam::aws:policy/x", "policy ARN"},
		{"no name", ValidatePolicyARN, "arn:aws:iam::aws:policy/", "policy ARN"},
		{"space in name", ValidatePolicyARN, "arn:aws:iam::aws:policy/a b", "policy ARN"},
		{"not an ARN", ValidatePolicyARN, "AmazonS3ReadOnlyAccess", "policy ARN"},
	}
	for _, tt := range tests {
		err := tt.check(tt.value)
		switch {
		case tt.rule == "" && err != nil:
			t.Errorf("%s: %q refused: %v", tt.name, tt.value, err)
		case tt.rule != "" && (err == nil || !strings.Contains(err.Error(), tt.rule) || !strings.Contains(err.Error(), "\""+tt.value+"\"")):
			t.Errorf("%s: %q: error %v, want one naming the value and %q", tt.name, tt.value, err, tt.rule)
		}
	}
}
