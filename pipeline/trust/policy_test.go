package trust

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policyCase is one file of testdata/policy: a trust policy, a request and the expected decision.
type policyCase struct {
	Policy        json.RawMessage     `json:"policy"`
	PolicyEncoded string              `json:"policyEncoded"`
	Principal     string              `json:"principal"`
	Action        string              `json:"action"`
	Context       map[string][]string `json:"context"`
	// Want is allow, deny (implicit), explicit-deny or error.
	Want string `json:"want"`
}

func TestEvaluateTrustPolicy(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "policy", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no policy cases in testdata/policy: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c policyCase
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatalf("parse %s: %v", f, err)
			}
			doc := c.PolicyEncoded
			if doc == "" {
				doc = string(c.Policy)
			}
			d, err := EvaluateTrustPolicy(doc, Request{Principal: c.Principal, Action: c.Action, Context: c.Context})
			got := "deny"
			switch {
			case err != nil:
				got = "error"
			case d.Allowed:
				got = "allow"
			case d.ExplicitDeny:
				got = "explicit-deny"
			}
			if got != c.Want {
				t.Fatalf("decision %s, want %s (reason: %s, err: %v)", got, c.Want, d.Reason, err)
			}
			if err == nil && d.Reason == "" {
				t.Errorf("decision has no reason")
			}
		})
	}
}

func TestGlob(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, value string
		fold, want     bool
	}{
		{"*", "", false, true},
		{"*", "anything", false, true},
		{"a*c", "abbbc", false, true},
		{"a*c", "abbbd", false, false},
		{"a?c", "abc", false, true},
		{"a?c", "ac", false, false},
		{"*:app", "system:serviceaccount:ns:app", false, true},
		{"*:app", "system:serviceaccount:ns:app2", false, false},
		{"a*b*c", "aXbYbZc", false, true},
		{"STS:*", "sts:AssumeRoleWithWebIdentity", true, true},
		{"STS:*", "sts:AssumeRoleWithWebIdentity", false, false},
		{"ü?", "üx", false, true},
		{"a**", "a", false, true},
		{"*a", "*a", false, true},
	}
	for _, c := range cases {
		if got := Glob(c.pattern, c.value, c.fold); got != c.want {
			t.Errorf("Glob(%q, %q, %v) = %v, want %v", c.pattern, c.value, c.fold, got, c.want)
		}
	}
}

func TestConditionKeyPrefix(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"https://oidc.eks.us-west-2.amazonaws.com/id/ABC": "oidc.eks.us-west-2.amazonaws.com/id/ABC",
		"https://bucket.s3.amazonaws.com":                 "bucket.s3.amazonaws.com",
		"https://tenant.auth0.com/":                       "tenant.auth0.com/",
		"oidc.example.com/id/X":                           "oidc.example.com/id/X",
		"https://127.0.0.1:8443/issuer":                   "127.0.0.1:8443/issuer",
	}
	for in, want := range cases {
		if got := ConditionKeyPrefix(in); got != want {
			t.Errorf("ConditionKeyPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}
