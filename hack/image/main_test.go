package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestRunWritesImportableTarball(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "irsa")
	if err := os.WriteFile(bin, []byte("#!not really a binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "irsa-image.tar")
	if err := run([]string{"-ref", "ghcr.io/irsa-anywhere/irsa:v0.1.0", "-binary", bin, "-o", out}, io.Discard); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("ghcr.io/irsa-anywhere/irsa:v0.1.0")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read back %s: %v", out, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != DefaultUser || !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/irsa"}) || cf.OS != "linux" {
		t.Errorf("config = %+v", cf.Config)
	}
}

func TestSpecRejectsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "irsa")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"no ref":               {"-binary", bin, "-o", "x.tar"},
		"no tag":               {"-ref", "irsa", "-binary", bin, "-o", "x.tar"},
		"missing binary":       {"-ref", "irsa:v1", "-binary", filepath.Join(dir, "nope"), "-o", "x.tar"},
		"bad file":             {"-ref", "irsa:v1", "-binary", bin, "-o", "x.tar", "-file", "nocolon"},
		"platform shape":       {"-ref", "irsa:v1", "-platform", bin, "-layout", dir},
		"platform no out":      {"-ref", "irsa:v1", "-platform", "amd64=" + bin},
		"platform and -binary": {"-ref", "irsa:v1", "-platform", "amd64=" + bin, "-binary", bin, "-layout", dir},
		"stray argument":       {"-ref", "irsa:v1", "-binary", bin, "-o", "x.tar", "extra"},
	}
	for name, args := range cases {
		if _, _, _, err := spec(args, io.Discard); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	s, _, _, err := spec([]string{"-ref", "irsa:v1", "-binary", bin, "-o", "x.tar", "-user", "", "-entrypoint", "/usr/local/bin/irsa", "-entrypoint", "node"}, io.Discard)
	if err != nil || s.User != "" || !slices.Equal(s.Entrypoint, []string{"/usr/local/bin/irsa", "node"}) {
		t.Errorf("root image with entrypoint: %+v, %v", s, err)
	}
}

// The release's image: one binary per architecture under one OCI index, written as a layout that names it.
func TestRunWritesMultiPlatformLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bins := map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		bins[arch] = filepath.Join(dir, arch, "irsa")
		os.MkdirAll(filepath.Dir(bins[arch]), 0o755)
		if err := os.WriteFile(bins[arch], []byte("binary for "+arch), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "oci")
	ref := "ghcr.io/irsa-anywhere/irsa:v0.2.0"
	if err := run([]string{"-ref", ref, "-path", "/usr/local/bin/irsa", "-platform", "arm64=" + bins["arm64"], "-platform", "amd64=" + bins["amd64"], "-layout", out}, io.Discard); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	om, err := outer.IndexManifest()
	if err != nil || len(om.Manifests) != 1 || om.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != ref {
		t.Fatalf("layout index = %+v, %v; want one index named %s", om, err, ref)
	}
	idx, err := outer.ImageIndex(om.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if m.Platform == nil || m.Platform.Architecture != cf.Architecture || cf.OS != "linux" || cf.Config.User != DefaultUser {
			t.Errorf("manifest %s: platform %+v, config %s/%s user %q", m.Digest, m.Platform, cf.OS, cf.Architecture, cf.Config.User)
		}
		got = append(got, cf.Architecture)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"amd64", "arm64"}) {
		t.Errorf("architectures %v, want amd64 and arm64", got)
	}
}
