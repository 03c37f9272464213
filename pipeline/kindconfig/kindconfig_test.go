package kindconfig

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kindv1alpha4 "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the expected files in testdata/ from the current output")

// Each directory under testdata/ is a case: options.yaml (Options) and expected.yaml (the generated config).
func TestGenerate(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob("testdata/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases in testdata/: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join(dir, "options.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var o Options
			if err := yaml.UnmarshalStrict(raw, &o); err != nil {
				t.Fatalf("options.yaml: %v", err)
			}
			got, err := Generate(o)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			expected := filepath.Join(dir, "expected.yaml")
			if *update {
				if err := os.WriteFile(expected, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(expected)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("Generate differs from %s:\n--- got\n%s\n--- want\n%s", expected, got, want)
			}
			// The output must be a config kind itself accepts: parse it with kind's own type, strictly.
			var c kindv1alpha4.Cluster
			if err := yaml.UnmarshalStrict(got, &c); err != nil {
				t.Fatalf("output is not a kind v1alpha4 Cluster: %v", err)
			}
			if c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" {
				t.Errorf("kind %q apiVersion %q", c.Kind, c.APIVersion)
			}
			if len(c.KubeadmConfigPatches) != 1 || !strings.Contains(c.KubeadmConfigPatches[0], "service-account-issuer: "+o.IssuerURL) {
				t.Errorf("kubeadm patch %q does not set the issuer %q", c.KubeadmConfigPatches, o.IssuerURL)
			}
		})
	}
}

func TestGenerateRejectsBadInput(t *testing.T) {
	t.Parallel()
	good := Options{IssuerURL: "https://bucket.s3.eu-west-1.amazonaws.com/cluster", Audience: "sts.amazonaws.com"}
	tests := []struct {
		name   string
		modify func(*Options)
		want   string
	}{
		{"http issuer", func(o *Options) { o.IssuerURL = "http://example.com" }, `issuer URL "http://example.com"`},
		{"trailing slash", func(o *Options) { o.IssuerURL += "/" }, "must not end with '/'"},
		{"empty audience", func(o *Options) { o.Audience = "" }, `audience ""`},
		{"two audiences", func(o *Options) { o.Audience = "a,b" }, `audience "a,b"`},
		{"negative workers", func(o *Options) { o.Workers = -1 }, "workers -1"},
		{"relative key", func(o *Options) { o.SigningKey = &KeyFiles{PrivateKey: "sa.key", PublicKey: "/k/sa.pub"} }, "absolute paths"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := good
			tt.modify(&o)
			_, err := Generate(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Generate error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
