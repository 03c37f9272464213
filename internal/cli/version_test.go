package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// A test binary is a development build: it says so, and names the images it would deploy.
func TestVersion(t *testing.T) {
	t.Parallel()
	code, text, errOut := runMain(t, "version")
	if code != 0 {
		t.Fatalf("irsa version: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"irsa dev\n", "go:      go1.", config.DefaultWebhookImage, config.DefaultVerifyImage,
		"ghcr.io/irsa-anywhere/irsa:dev", "note: a development build"} {
		if !strings.Contains(text, want) {
			t.Errorf("irsa version lacks %q:\n%s", want, text)
		}
	}
	if code, flagText, _ := runMain(t, "--version"); code != 0 || flagText != text {
		t.Errorf("irsa --version (exit %d) = %q, want what irsa version prints %q", code, flagText, text)
	}
	code, js, _ := runMain(t, "version", "-o", "json")
	var r struct {
		Version, GoVersion string
		Images             map[string]string
	}
	if err := json.Unmarshal([]byte(js), &r); code != 0 || err != nil {
		t.Fatalf("irsa version -o json: exit %d, %v:\n%s", code, err, js)
	}
	if r.Version != "dev" || !strings.HasPrefix(r.GoVersion, "go1.") || r.Images["webhook"] != config.DefaultWebhookImage ||
		r.Images["irsa"] != config.DefaultIrsaImage || r.Images["verify"] != config.DefaultVerifyImage {
		t.Errorf("irsa version -o json = %+v", r)
	}
}

func TestImages(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "irsa.yaml")
	if err := os.WriteFile(file, []byte("images:\n  registry: mirror.example:5000/irsa\n  pullSecrets: [mirror-creds]\nwebhook:\n  image: example.com/team/webhook:v9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"defaults, cluster type unknown", []string{"images"},
			"ghcr.io/irsa-anywhere/irsa:dev\npublic.ecr.aws/aws-cli/aws-cli:2.27.49\npublic.ecr.aws/eks/amazon-eks-pod-identity-webhook:v0.6.17\n"},
		{"kind runs no node pods", []string{"images", "--cluster-type", "kind"},
			"public.ecr.aws/aws-cli/aws-cli:2.27.49\npublic.ecr.aws/eks/amazon-eks-pod-identity-webhook:v0.6.17\n"},
		{"mirror flag", []string{"images", "--image-registry", "mirror.example"},
			"mirror.example/aws-cli/aws-cli:2.27.49\nmirror.example/eks/amazon-eks-pod-identity-webhook:v0.6.17\nmirror.example/irsa-anywhere/irsa:dev\n"},
		{"irsa.yaml, an override and its mirror", []string{"images", "-f", file},
			"mirror.example:5000/irsa/aws-cli/aws-cli:2.27.49\nmirror.example:5000/irsa/irsa-anywhere/irsa:dev\nmirror.example:5000/irsa/team/webhook:v9\n"},
		{"the flag overrides irsa.yaml", []string{"images", "-f", file, "--image-registry", "other.example", "--verify-image", "ghcr.io/irsa-anywhere/irsa:dev"},
			"other.example/irsa-anywhere/irsa:dev\nother.example/team/webhook:v9\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runMain(t, tc.args...)
			if code != 0 || out != tc.want {
				t.Errorf("irsa %v: exit %d\n%s%s\nwant\n%s", tc.args, code, out, errOut, tc.want)
			}
		})
	}
	// Flags that choose no image are not images' flags.
	if code, _, errOut := runMain(t, "images", "--bucket", "b"); code != 1 || !strings.Contains(errOut, "unknown flag: --bucket") {
		t.Errorf("images --bucket: exit %d, %s", code, errOut)
	}
	code, _, errOut := runMain(t, "images", "--image-registry", "Mirror")
	if code != 1 || !strings.Contains(errOut, `image registry "Mirror"`) {
		t.Errorf("bad mirror: exit %d, %s", code, errOut)
	}
}
