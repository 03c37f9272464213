package s3public

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
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

// MergePolicy sets irsa's statement by Sid and keeps every other statement in its order.
func TestMergePolicy(t *testing.T) {
	want := BucketPolicy("aws", "b", "d", "j")
	irsa := `{"Action":"s3:GetObject","Effect":"Allow","Principal":"*","Resource":["arn:aws:s3:::b/d","arn:aws:s3:::b/j"],"Sid":"IrsaPublicIssuerDocuments"}`
	theirs := `{"Sid":"Theirs","Effect":"Deny","Principal":"*","Action":"s3:DeleteBucket","Resource":"arn:aws:s3:::b"}`
	cases := map[string]struct{ existing, out string }{
		"none":           {"", want},
		"theirs only":    {`{"Version":"2012-10-17","Statement":[` + theirs + `]}`, `{"Statement":[` + theirs + `,` + irsa + `],"Version":"2012-10-17"}`},
		"lone statement": {`{"Version":"2012-10-17","Statement":` + theirs + `}`, `{"Statement":[` + theirs + `,` + irsa + `],"Version":"2012-10-17"}`},
		"stale irsa statement": {`{"Version":"2012-10-17","Statement":[{"Sid":"IrsaPublicIssuerDocuments","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},` + theirs + `]}`,
			`{"Statement":[` + theirs + `,` + irsa + `],"Version":"2012-10-17"}`},
	}
	for name, tc := range cases {
		got, err := MergePolicy(tc.existing, want)
		if err != nil || got != tc.out {
			t.Errorf("%s:\n got %s (%v)\nwant %s", name, got, err, tc.out)
		}
	}
	if _, err := MergePolicy("{not json", want); err == nil || !strings.Contains(err.Error(), `bucket policy "{not json"`) {
		t.Errorf("bad policy: %v", err)
	}
}
