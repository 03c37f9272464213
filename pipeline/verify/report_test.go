package verify

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const testRoleARN = "arn:aws:iam::123456789012:role/irsa/test/irsa-test-default-irsa-verify"

func readPod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &p
}

func readText(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, pod, logs string
		failed          []string
	}{
		{"pass", "pod-mutated.yaml", "awscli-pass.txt", nil},
		{"pass-probe", "pod-mutated.yaml", "probe-pass.txt", nil},
		{"node-role", "pod-mutated.yaml", "awscli-node-role.txt", []string{CheckCaller}},
		{"no-bucket", "pod-mutated.yaml", "awscli-no-bucket.txt", []string{CheckBucket}},
		{"no-provider", "pod-mutated.yaml", "awscli-no-provider.txt", []string{CheckCaller, CheckBucket}},
		{"wrong-audience", "pod-wrong-audience.yaml", "awscli-pass.txt", []string{CheckTokenVolume}},
		{"not-mutated", "pod-unmutated.yaml", "awscli-no-credentials.txt", []string{CheckPod, CheckInjectedEnv, CheckTokenVolume, CheckCaller, CheckBucket}},
		{"no-pod", "", "", []string{CheckPod, CheckInjectedEnv, CheckTokenVolume, CheckCaller, CheckBucket}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var pod *corev1.Pod
			if tc.pod != "" {
				pod = readPod(t, tc.pod)
			}
			logs := ""
			if tc.logs != "" {
				logs = readText(t, tc.logs)
			}
			r := Evaluate(pod, logs, Expect{RoleARN: testRoleARN, Audience: config.DefaultAudience, Bucket: "irsa-test-issuer", Container: "verify"})
			if got := r.Failed(); !slices.Equal(got, tc.failed) {
				t.Errorf("failed checks = %v, want %v", got, tc.failed)
			}
			if r.Pass != (len(tc.failed) == 0) {
				t.Errorf("pass = %v", r.Pass)
			}
			if len(r.Checks) != 5 {
				t.Errorf("%d checks, want 5", len(r.Checks))
			}
			golden(t, "report-"+tc.name+".golden", []byte(r.Text()))
		})
	}
}

func TestReportJSON(t *testing.T) {
	t.Parallel()
	r := Evaluate(readPod(t, "pod-mutated.yaml"), readText(t, "awscli-pass.txt"),
		Expect{RoleARN: testRoleARN, Audience: config.DefaultAudience, Bucket: "irsa-test-issuer", Container: "verify"})
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "report-pass.json.golden", b)
}

func TestParseOutput(t *testing.T) {
	t.Parallel()
	out, err := ParseOutput(readText(t, "awscli-pass.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Account != "123456789012" || out.Arn != "arn:aws:sts::123456789012:assumed-role/irsa-test-default-irsa-verify/botocore-session-1764106800" ||
		!slices.Equal(out.Buckets, []string{"irsa-test-issuer", "team-data"}) {
		t.Errorf("out = %+v", out)
	}
	// Warnings before the identity and CRLF line ends (logs read on Windows) don't matter.
	noisy := "urllib3 warning: something\r\n" + readText(t, "awscli-pass.txt")
	if out, err := ParseOutput(noisy); err != nil || len(out.Buckets) != 2 {
		t.Errorf("noisy: %+v, %v", out, err)
	}
	for _, bad := range []string{"", "{\n  \"Arn\": \n}\n", readText(t, "awscli-no-credentials.txt")} {
		if _, err := ParseOutput(bad); err == nil {
			t.Errorf("ParseOutput(%q): no error", bad)
		}
	}
}

func TestAssumedRoleARN(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"arn:aws:iam::123456789012:role/app":                  "arn:aws:sts::123456789012:assumed-role/app",
		"arn:aws:iam::123456789012:role/irsa/test/app":        "arn:aws:sts::123456789012:assumed-role/app",
		"arn:aws-us-gov:iam::123456789012:role/app":           "arn:aws-us-gov:sts::123456789012:assumed-role/app",
		"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess":      "",
		"arn:aws:sts::123456789012:assumed-role/app/session1": "",
		"arn:aws:iam::123456789012:role/":                     "",
		"role/app":                                            "",
	}
	for in, want := range cases {
		got, err := AssumedRoleARN(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("AssumedRoleARN(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
