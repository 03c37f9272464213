package roles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

func TestTrustPolicyForTwoClustersGolden(t *testing.T) {
	got := TrustPolicyFor([]Provider{
		{ARN: "arn:aws:iam::123456789012:oidc-provider/prod-a-oidc.s3.eu-west-1.amazonaws.com", HostPath: "prod-a-oidc.s3.eu-west-1.amazonaws.com"},
		{ARN: "arn:aws:iam::123456789012:oidc-provider/prod-b-oidc.s3.eu-west-1.amazonaws.com", HostPath: "prod-b-oidc.s3.eu-west-1.amazonaws.com"},
	}, "team-a", "app", "sts.amazonaws.com")
	path := filepath.Join("testdata", "trust-two-clusters.json")
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// IAM counts a policy's characters without the white space between tokens; white space inside strings counts.
func TestPolicySize(t *testing.T) {
	cases := map[string]int{
		`{"a": "b"}`:              9,
		"{\n  \"a\" : \"b c\"\n}": 11,
		`{"a":"é"}`:               9,
		"not json":                8,
	}
	for doc, want := range cases {
		if got := PolicySize(doc); got != want {
			t.Errorf("PolicySize(%q) = %d, want %d", doc, got, want)
		}
	}
}

func TestMergeTrust(t *testing.T) {
	p := []Provider{{ARN: "arn:aws:iam::123456789012:oidc-provider/a.example.com", HostPath: "a.example.com"}}
	theirs := `{"Version":"2012-10-17","Statement":{"Sid":"Theirs","Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}}`
	merged, changed, err := MergeBindingTrust("c1", theirs, p, "ns", "sa", "sts.amazonaws.com")
	if err != nil || !changed {
		t.Fatalf("first merge: changed %v, err %v", changed, err)
	}
	if !strings.Contains(merged, `"Theirs"`) || !strings.Contains(merged, BindingSid("c1", "ns", "sa")+"P0") {
		t.Errorf("merged policy lacks a statement:\n%s", merged)
	}
	if _, changed, _ := MergeBindingTrust("c1", merged, p, "ns", "sa", "sts.amazonaws.com"); changed {
		t.Errorf("second merge changed the policy")
	}
	// Another cluster's binding of the same ServiceAccount, and another ServiceAccount, have their own statements.
	other, changed, _ := MergeBindingTrust("c2", merged, p, "ns", "sa", "sts.amazonaws.com")
	if !changed || strings.Count(other, "sts:AssumeRoleWithWebIdentity") != 2 {
		t.Errorf("a second cluster's binding replaced the first's:\n%s", other)
	}
	removed, changed, _ := MergeTrust(other, BindingSid("c1", "ns", "sa"), nil)
	if !changed || strings.Contains(removed, BindingSid("c1", "ns", "sa")) || !strings.Contains(removed, BindingSid("c2", "ns", "sa")) || !strings.Contains(removed, `"Theirs"`) {
		t.Errorf("removing c1's statements:\n%s", removed)
	}
	for _, sid := range []string{SidPrefix("c1"), BindingSid("c1", "ns", "sa")} {
		for _, r := range sid {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Errorf("Sid %q: IAM allows only ASCII letters and digits", sid)
			}
		}
	}
}

// The tag budget config validates against is the number of tags irsa puts on its roles.
func TestOwnershipTagCount(t *testing.T) {
	m := &Manager{ClusterName: "c"}
	if n := len(m.ownershipTags(config.Binding{Namespace: "ns", ServiceAccount: "sa"})); n != config.OwnershipTagCount {
		t.Errorf("irsa puts %d tags on a role, config.OwnershipTagCount says %d", n, config.OwnershipTagCount)
	}
}
