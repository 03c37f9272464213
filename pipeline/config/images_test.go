package config

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/irsa-anywhere/irsa/internal/version"
)

// The defaults must be references a kubelet pulls as they stand: registry, repository and a pinned tag or digest,
// all explicit (strict parsing refuses any of them missing). That they exist in their registries is checked by the
// images job of .github/workflows/ci.yml, which can reach them.
func TestDefaultImagesAreFullyQualifiedAndPinned(t *testing.T) {
	t.Parallel()
	for what, ref := range map[string]string{"webhook": DefaultWebhookImage, "verify": DefaultVerifyImage, "irsa": DefaultIrsaImage} {
		r, err := name.ParseReference(ref, name.StrictValidation)
		if err != nil {
			t.Errorf("%s default %q does not parse strictly: %v", what, ref, err)
			continue
		}
		if !strings.HasPrefix(ref, r.Context().RegistryStr()+"/") {
			t.Errorf("%s default %q: registry not written out", what, ref)
		}
		if tag, ok := r.(name.Tag); ok && (tag.TagStr() == "latest" || tag.TagStr() == "") {
			t.Errorf("%s default %q: tag %q is not a pin", what, ref, tag.TagStr())
		}
	}
	if got, want := mustRepo(t, DefaultWebhookImage), "public.ecr.aws/eks/amazon-eks-pod-identity-webhook"; got != want {
		t.Errorf("webhook default repository %q, want upstream's %q", got, want)
	}
}

func mustRepo(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().Name()
}

// The irsa image is the binary's own version: a test binary is a development build, so it gets the dev tag.
func TestIrsaImageFollowsTheBinaryVersion(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]string{
		"v0.2.0":                             "ghcr.io/irsa-anywhere/irsa:v0.2.0",
		"v1.0.0-rc.1":                        "ghcr.io/irsa-anywhere/irsa:v1.0.0-rc.1",
		"dev":                                "ghcr.io/irsa-anywhere/irsa:dev",
		"v0.0.0-20261130020304-0123456789ab": "ghcr.io/irsa-anywhere/irsa:dev",
		"v0.2.0+dirty":                       "ghcr.io/irsa-anywhere/irsa:dev",
	} {
		if got := IrsaImageFor(v); got != want {
			t.Errorf("IrsaImageFor(%q) = %q, want %q", v, got, want)
		}
	}
	if want := IrsaImageFor(version.Get().Version); DefaultIrsaImage != want {
		t.Errorf("DefaultIrsaImage = %q, want the image of this build %q", DefaultIrsaImage, want)
	}
}

func TestRewriteImage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ref, registry, want string }{
		{DefaultWebhookImage, "mirror.example:5000", "mirror.example:5000/eks/amazon-eks-pod-identity-webhook:v0.6.17"},
		{DefaultWebhookImage, "mirror.example/irsa", "mirror.example/irsa/eks/amazon-eks-pod-identity-webhook:v0.6.17"},
		{"ghcr.io/irsa-anywhere/irsa:v0.2.0", "10.0.0.5:5000", "10.0.0.5:5000/irsa-anywhere/irsa:v0.2.0"},
		{"amazon/aws-cli:2.27.49", "mirror.example", "mirror.example/amazon/aws-cli:2.27.49"},
		{"busybox:1.37", "mirror.example", "mirror.example/library/busybox:1.37"},
		{"ghcr.io/a/b@sha256:" + strings.Repeat("ab", 32), "mirror.example", "mirror.example/a/b@sha256:" + strings.Repeat("ab", 32)},
		{"mirror.example/eks/x:v1", "mirror.example", "mirror.example/eks/x:v1"}, // already mirrored
		{DefaultVerifyImage, "", DefaultVerifyImage},
	} {
		got, err := RewriteImage(tc.ref, tc.registry)
		if err != nil || got != tc.want {
			t.Errorf("RewriteImage(%q, %q) = %q, %v; want %q", tc.ref, tc.registry, got, err, tc.want)
		}
	}
}

func TestImageSet(t *testing.T) {
	t.Parallel()
	c := &Config{Images: ImagesConfig{Registry: "mirror.example:5000", PullSecrets: []string{"mirror-creds"}}}
	c.Verify.Image = "ghcr.io/irsa-anywhere/irsa:v0.2.0"
	c.Image = "ghcr.io/irsa-anywhere/irsa:v0.2.0"
	set, err := c.ImageSet()
	if err != nil {
		t.Fatal(err)
	}
	want := ImageSet{
		Irsa:        "mirror.example:5000/irsa-anywhere/irsa:v0.2.0",
		Webhook:     "mirror.example:5000/eks/amazon-eks-pod-identity-webhook:v0.6.17",
		Verify:      "mirror.example:5000/irsa-anywhere/irsa:v0.2.0",
		PullSecrets: []string{"mirror-creds"},
	}
	if set.Irsa != want.Irsa || set.Webhook != want.Webhook || set.Verify != want.Verify || !slices.Equal(set.PullSecrets, want.PullSecrets) {
		t.Errorf("ImageSet() = %+v, want %+v", set, want)
	}
	if got := set.References(); !slices.Equal(got, []string{want.Webhook, want.Irsa}) {
		t.Errorf("References() = %q: want each image once, sorted", got)
	}
	if c.Image != "ghcr.io/irsa-anywhere/irsa:v0.2.0" || c.Webhook.Image != "" {
		t.Errorf("ImageSet changed the configuration: %+v", c)
	}
	if err := c.ApplyImages(); err != nil || c.Webhook.Image != want.Webhook || c.Image != want.Irsa {
		t.Errorf("ApplyImages: %v, config images %q %q", err, c.Image, c.Webhook.Image)
	}
	if err := c.ApplyImages(); err != nil || c.Webhook.Image != want.Webhook {
		t.Errorf("ApplyImages twice must not prefix twice: %v, %q", err, c.Webhook.Image)
	}
}

func TestImageSetRejectsBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		c       Config
		wantErr string
	}{
		{"scheme in the mirror", Config{Images: ImagesConfig{Registry: "https://mirror.example"}}, `image registry "https://mirror.example": give host[:port][/path] without a scheme`},
		{"mirror without a host", Config{Images: ImagesConfig{Registry: "irsa"}}, `image registry "irsa": "irsa" is not a registry host`},
		{"uppercase mirror path", Config{Images: ImagesConfig{Registry: "mirror.example/Irsa"}}, `image registry "mirror.example/Irsa": path "Irsa"`},
		{"pull secret name", Config{Images: ImagesConfig{PullSecrets: []string{"Mirror_Creds"}}}, `image pull secret "Mirror_Creds"`},
		{"webhook image", Config{Webhook: WebhookConfig{Image: "public.ecr.aws/eks/Webhook:v1"}}, `webhook image "public.ecr.aws/eks/Webhook:v1"`},
		{"irsa image", Config{Image: "ghcr.io/x/irsa:"}, `irsa image "ghcr.io/x/irsa:"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := tc.c
			_, err := c.ImageSet()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ImageSet() error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// A configuration file carries the images section; unknown keys in it are errors like everywhere else.
func TestLoadImagesSection(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/irsa.yaml"
	writeFile(t, path, "clusterName: c\nimages:\n  registry: mirror.example:5000\n  pullSecrets: [mirror-creds]\n")
	c, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Images.Registry != "mirror.example:5000" || !slices.Equal(c.Images.PullSecrets, []string{"mirror-creds"}) {
		t.Errorf("images section = %+v", c.Images)
	}
	writeFile(t, path, "images:\n  mirror: x\n")
	if _, _, err := Load(path); err == nil || !strings.Contains(err.Error(), "mirror") {
		t.Errorf("unknown key under images: error %v, want one naming it", err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDeployedByClusterType(t *testing.T) {
	t.Parallel()
	s := ImageSet{Irsa: "r/irsa:v1", Webhook: "r/webhook:v1", Verify: "r/aws-cli:2"}
	for _, tc := range []struct {
		clusterType string
		set         ImageSet
		want        []string
	}{
		{"", s, []string{"r/aws-cli:2", "r/irsa:v1", "r/webhook:v1"}},
		{"kubeadm", s, []string{"r/aws-cli:2", "r/irsa:v1", "r/webhook:v1"}},
		{"kind", s, []string{"r/aws-cli:2", "r/webhook:v1"}},
		{"eks-anywhere", s, []string{"r/aws-cli:2", "r/webhook:v1"}},
		{"eks-anywhere", ImageSet{Irsa: "r/irsa:v1", Webhook: "r/webhook:v1", Verify: "r/irsa:v1"}, []string{"r/irsa:v1", "r/webhook:v1"}},
	} {
		if got := tc.set.Deployed(tc.clusterType); !slices.Equal(got, tc.want) {
			t.Errorf("Deployed(%q) of %+v = %q, want %q", tc.clusterType, tc.set, got, tc.want)
		}
	}
}
