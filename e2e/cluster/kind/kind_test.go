package kind

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/kindconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Creating a kind cluster needs Docker and a pullable node image, which the build machines lack; the workflow
// e2e-kind.yml creates one on GitHub's runners. Here the configuration handed to kind is checked.
func TestRawConfig(t *testing.T) {
	t.Parallel()
	o := Options{
		Name: "irsa-e2e",
		Config: kindconfig.Options{
			IssuerURL: "https://127.0.0.1:44321/irsa-e2e-issuer",
			Audience:  config.DefaultAudience,
			Workers:   1,
		},
	}
	raw, err := o.RawConfig()
	if err != nil {
		t.Fatalf("RawConfig: %v", err)
	}
	golden := filepath.Join("testdata", "kind-config.yaml")
	if *update {
		if err := os.WriteFile(golden, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (go test -update writes it): %v", err)
	}
	if string(raw) != string(want) {
		t.Errorf("RawConfig differs from %s:\n%s", golden, raw)
	}

	// kind's own v1alpha4 type must take it without unknown fields.
	var c v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		t.Fatalf("kind v1alpha4 rejects the config: %v", err)
	}
	if c.Name != "irsa-e2e" || len(c.Nodes) != 2 {
		t.Errorf("name %q with %d nodes, want irsa-e2e with 2", c.Name, len(c.Nodes))
	}
	for _, n := range c.Nodes {
		if n.Image != DefaultNodeImage || !strings.Contains(n.Image, "@sha256:") {
			t.Errorf("node %s image %q, want the pinned %q", n.Role, n.Image, DefaultNodeImage)
		}
	}
	if len(c.KubeadmConfigPatches) != 1 || !strings.Contains(c.KubeadmConfigPatches[0], "service-account-issuer: https://127.0.0.1:44321/irsa-e2e-issuer") {
		t.Errorf("kubeadm patches %q lack the issuer", c.KubeadmConfigPatches)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := kindconfig.Options{IssuerURL: "https://aws:443/bucket", Audience: config.DefaultAudience}
	cases := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"valid", Options{Name: "c", Config: good}, ""},
		{"no name", Options{Config: good}, "kind cluster: no name"},
		{"http issuer", Options{Name: "c", Config: kindconfig.Options{IssuerURL: "http://aws/bucket", Audience: "a"}}, `kind cluster "c": issuer URL "http://aws/bucket"`},
		{"no audience", Options{Name: "c", Config: kindconfig.Options{IssuerURL: "https://aws/bucket"}}, `kind cluster "c": audience ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.opts.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCreateValidatesFirst(t *testing.T) {
	t.Parallel()
	// Invalid options fail before kind (and Docker) is touched.
	if _, err := Create(context.Background(), Options{Name: "c"}); err == nil || !strings.Contains(err.Error(), "issuer URL") {
		t.Fatalf("Create with no issuer = %v, want an issuer URL error", err)
	}
}

func TestKeptClusterIsNotDeleted(t *testing.T) {
	t.Parallel()
	// A kept cluster never reaches the provider (nil here): Delete returns before it.
	c := &Cluster{name: "kept", keep: true}
	if err := c.Delete(context.Background()); err != nil {
		t.Fatalf("Delete of a kept cluster: %v", err)
	}
}
