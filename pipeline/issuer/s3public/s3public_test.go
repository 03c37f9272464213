package s3public

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestBucketPolicyGolden(t *testing.T) {
	got := BucketPolicy("aws", "prod-oidc", ".well-known/openid-configuration", "keys.json")
	path := filepath.Join("testdata", "bucket-policy.json")
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("bucket policy:\n got %s\nwant %s", got, want)
	}
}
