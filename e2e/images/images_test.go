package images

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/irsa-anywhere/irsa/pipeline/config"
)

func TestBuildOwnImagesIsCached(t *testing.T) {
	t.Parallel()
	opts := Options{CacheDir: t.TempDir(), BinDir: t.TempDir()}
	ctx := context.Background()
	first, err := Build(ctx, opts, Pause, HTTPGet)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range first {
		if img.Cached {
			t.Errorf("%s: cached on the first build", img.Name)
		}
		tag, _ := name.NewTag(img.Ref)
		i, err := tarball.ImageFromPath(img.Tarball, &tag)
		if err != nil {
			t.Fatalf("%s: read %s: %v", img.Name, img.Tarball, err)
		}
		if cf, err := i.ConfigFile(); err != nil || len(cf.Config.Entrypoint) != 1 {
			t.Errorf("%s: config %+v, %v; want one entrypoint", img.Name, cf, err)
		}
	}
	second, err := Build(ctx, opts, Pause, HTTPGet)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range second {
		if !img.Cached {
			t.Errorf("%s: rebuilt although nothing changed", img.Name)
		}
	}
}

func TestBuildMissingBinarySaysHow(t *testing.T) {
	t.Parallel()
	_, err := Build(context.Background(), Options{CacheDir: t.TempDir(), BinDir: t.TempDir()}, KubeAPIServer)
	if err == nil || !strings.Contains(err.Error(), "hack/build-kubernetes.sh") {
		t.Errorf("Build without binaries = %v, want an error naming hack/build-kubernetes.sh", err)
	}
}

func TestBuildUnknownName(t *testing.T) {
	t.Parallel()
	if _, err := Build(context.Background(), Options{CacheDir: t.TempDir(), BinDir: t.TempDir()}, "nginx"); err == nil {
		t.Error("Build(nginx) succeeded, want unknown image error")
	}
}

// The scenario's own images are built under e2e-only names, never under the references irsa deploys by default:
// those must come from their registries on a real cluster.
func TestScenarioImagesAreNotBuiltUnderDefaultNames(t *testing.T) {
	t.Parallel()
	bins := t.TempDir()
	// The webhook image only packs the binary; any file stands in for it here.
	if err := os.WriteFile(filepath.Join(bins, "amazon-eks-pod-identity-webhook"), []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := Build(context.Background(), Options{CacheDir: t.TempDir(), BinDir: bins, RepoRoot: root}, Irsa, Webhook, HTTPGet)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{Irsa: IrsaRef, Webhook: WebhookRef, HTTPGet: HTTPGetRef}
	defaults := []string{config.DefaultIrsaImage, config.DefaultWebhookImage, config.DefaultVerifyImage}
	for _, img := range imgs {
		if img.Ref != want[img.Name] {
			t.Errorf("%s built as %q, want %q", img.Name, img.Ref, want[img.Name])
		}
		ref, err := name.ParseReference(img.Ref, name.StrictValidation)
		if err != nil {
			t.Fatalf("%s: %v", img.Ref, err)
		}
		for _, d := range defaults {
			dr, _ := name.ParseReference(d)
			if ref.Context().Name() == dr.Context().Name() {
				t.Errorf("%s is built under the repository of the default %q", img.Ref, d)
			}
		}
		if ref.Context().RegistryStr() != "irsa.local" {
			t.Errorf("%s: registry %q, want the e2e-only irsa.local", img.Ref, ref.Context().RegistryStr())
		}
	}
}
