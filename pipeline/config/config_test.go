package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoleNameFor(t *testing.T) {
	if got := RoleNameFor("prod", "default", "app"); got != "irsa-prod-default-app" {
		t.Errorf("short name: %q", got)
	}
	long := RoleNameFor("a-very-long-cluster-name", "a-very-long-namespace-name", "a-very-long-service-account-name")
	if len(long) != 64 || ValidateRoleName(long) != nil {
		t.Errorf("long name %q (%d characters) is not a valid 64-character role name", long, len(long))
	}
	if other := RoleNameFor("a-very-long-cluster-name", "a-very-long-namespace-name", "a-very-long-service-account-nam2"); other == long {
		t.Errorf("two long bindings share the role name %q", long)
	}
}

func TestBucketIssuerURL(t *testing.T) {
	if got := BucketIssuerURL("b1", "us-east-1"); got != "https://b1.s3.amazonaws.com" {
		t.Errorf("us-east-1: %q", got)
	}
	if got := BucketIssuerURL("b1", "eu-west-1"); got != "https://b1.s3.eu-west-1.amazonaws.com" {
		t.Errorf("eu-west-1: %q", got)
	}
}

func TestDefaultsAndValidate(t *testing.T) {
	c := &Config{ClusterName: "prod", Region: "eu-west-1", Bucket: "prod-oidc", Bindings: []Binding{{Namespace: "default", ServiceAccount: "app"}}}
	c.Defaults()
	if c.IssuerURL != "https://prod-oidc.s3.eu-west-1.amazonaws.com" || c.Audience != DefaultAudience || c.Bindings[0].RoleName != "irsa-prod-default-app" {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	c.Bindings = append(c.Bindings, c.Bindings[0])
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `binding "default/app" is listed twice`) {
		t.Errorf("duplicate binding: %v", err)
	}
	emu := &Config{ClusterName: "x", Region: "us-east-1", Bucket: "bkt", AWSEndpointURL: "https://127.0.0.1:4566/"}
	emu.Defaults()
	if emu.IssuerURL != "https://127.0.0.1:4566/bkt" {
		t.Errorf("emulator issuer %q", emu.IssuerURL)
	}
}

func TestLoadRejectsUnknownFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "irsa.yaml")
	os.WriteFile(path, []byte("clusterName: prod\nbukcet: typo\n"), 0o644)
	if _, _, err := Load(path); err == nil || !strings.Contains(err.Error(), "bukcet") {
		t.Errorf("Load with a typo: %v", err)
	}
}

func TestLoadVersions(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr, wantWarning string
	}{
		{"versioned", "apiVersion: irsa.irsa-anywhere.io/v1alpha1\nkind: Config\nclusterName: prod\n", "", ""},
		{"unversioned", "clusterName: prod\n", "", "unversioned files are deprecated"},
		{"other version", "apiVersion: irsa.irsa-anywhere.io/v2\nkind: Config\n", `apiVersion "irsa.irsa-anywhere.io/v2": must be irsa.irsa-anywhere.io/v1alpha1`, ""},
		{"other kind", "apiVersion: irsa.irsa-anywhere.io/v1alpha1\nkind: Cluster\n", `kind "Cluster": must be Config`, ""},
	}
	for _, tc := range cases {
		path := filepath.Join(t.TempDir(), "irsa.yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o644)
		c, warnings, err := Load(path)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErr)
			continue
		}
		if got := strings.Join(warnings, "\n"); (tc.wantWarning == "") != (got == "") || !strings.Contains(got, tc.wantWarning) {
			t.Errorf("%s: warnings %q, want %q", tc.name, got, tc.wantWarning)
		}
		if err == nil && c.ClusterName != "prod" && tc.name != "other version" {
			t.Errorf("%s: cluster name %q", tc.name, c.ClusterName)
		}
	}
}
