package images

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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
