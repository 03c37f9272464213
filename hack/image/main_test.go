package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
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
		"no ref":         {"-binary", bin, "-o", "x.tar"},
		"no tag":         {"-ref", "irsa", "-binary", bin, "-o", "x.tar"},
		"missing binary": {"-ref", "irsa:v1", "-binary", filepath.Join(dir, "nope"), "-o", "x.tar"},
		"bad file":       {"-ref", "irsa:v1", "-binary", bin, "-o", "x.tar", "-file", "nocolon"},
		"stray argument": {"-ref", "irsa:v1", "-binary", bin, "-o", "x.tar", "extra"},
	}
	for name, args := range cases {
		if _, _, err := spec(args, io.Discard); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	s, _, err := spec([]string{"-ref", "irsa:v1", "-binary", bin, "-o", "x.tar", "-user", "", "-entrypoint", "/usr/local/bin/irsa", "-entrypoint", "node"}, io.Discard)
	if err != nil || s.User != "" || !slices.Equal(s.Entrypoint, []string{"/usr/local/bin/irsa", "node"}) {
		t.Errorf("root image with entrypoint: %+v, %v", s, err)
	}
}
