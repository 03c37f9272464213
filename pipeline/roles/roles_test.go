package roles

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestTrustPolicyGolden(t *testing.T) {
	cases := map[string][]string{
		"trust-s3.json":       {"arn:aws:iam::123456789012:oidc-provider/prod-oidc.s3.eu-west-1.amazonaws.com", "https://prod-oidc.s3.eu-west-1.amazonaws.com", "default", "s3-echoer", "sts.amazonaws.com"},
		"trust-emulator.json": {"arn:aws:iam::123456789012:oidc-provider/127.0.0.1:4566/bucket", "https://127.0.0.1:4566/bucket", "team-a", "app", "sts.amazonaws.com"},
	}
	for file, a := range cases {
		got := TrustPolicy(a[0], a[1], a[2], a[3], a[4])
		path := filepath.Join("testdata", file)
		if *update {
			os.WriteFile(path, []byte(got), 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", file, got, want)
		}
	}
}

func TestPathAndSubject(t *testing.T) {
	if got := Path("prod-1"); got != "/irsa/prod-1/" {
		t.Errorf("Path = %q", got)
	}
	if got := Subject("ns", "sa"); got != "system:serviceaccount:ns:sa" {
		t.Errorf("Subject = %q", got)
	}
}
