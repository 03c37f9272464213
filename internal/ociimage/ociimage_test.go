package ociimage

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestWriteTarballRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "hello")
	if err := os.WriteFile(bin, []byte("#!binary\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Ref:        "registry.k8s.io/pause:3.10.2",
		Files:      []File{{Path: "/usr/local/bin/hello", Source: bin}, {Path: "/etc/hello.conf", Data: []byte("x=1\n")}},
		Entrypoint: []string{"/usr/local/bin/hello"},
		Cmd:        []string{"--flag"},
		User:       "65532:65532",
		Env:        []string{"PATH=/usr/local/bin", "A=b"},
	}
	out := filepath.Join(dir, "img.tar")
	if err := WriteTarball(out, spec); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(spec.Ref)
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read back %s: %v", out, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform = %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !reflect.DeepEqual(cf.Config.Entrypoint, spec.Entrypoint) || !reflect.DeepEqual(cf.Config.Cmd, spec.Cmd) ||
		cf.Config.User != spec.User || !reflect.DeepEqual(cf.Config.Env, spec.Env) {
		t.Errorf("config = %+v, want entrypoint/cmd/user/env of %+v", cf.Config, spec)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(b) + "|" + os.FileMode(h.Mode).String()
		if !h.ModTime.IsZero() && h.ModTime.Unix() != 0 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want zero", h.Name, h.ModTime, h.Uid, h.Gid)
		}
	}
	want := map[string]string{
		"etc/":                "|-rwxr-xr-x",
		"etc/hello.conf":      "x=1\n|-rw-r--r--",
		"tmp/":                "|-rwxrwxrwx",
		"usr/":                "|-rwxr-xr-x",
		"usr/local/":          "|-rwxr-xr-x",
		"usr/local/bin/":      "|-rwxr-xr-x",
		"usr/local/bin/hello": "#!binary\n|-rwxr-xr-x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layer entries = %v, want %v", got, want)
	}
}

func TestImageIsDeterministic(t *testing.T) {
	t.Parallel()
	spec := Spec{Ref: "example.com/a:v1", Files: []File{{Path: "/a", Data: []byte("a")}, {Path: "/b/c", Data: []byte("c")}}, Cmd: []string{"/a"}}
	first, err := Image(spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Files[0], spec.Files[1] = spec.Files[1], spec.Files[0]
	second, err := Image(spec)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := first.Digest()
	d2, _ := second.Digest()
	if d1 != d2 {
		t.Errorf("digests differ for the same files: %s, %s", d1, d2)
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	ok := Spec{Ref: "registry.k8s.io/etcd:3.7.0-0", Files: []File{{Path: "/usr/local/bin/etcd", Data: []byte{}}}, Entrypoint: []string{"etcd"}}
	for _, tc := range []struct {
		name    string
		mutate  func(*Spec)
		wantErr string
	}{
		{"valid", func(*Spec) {}, ""},
		{"host with port", func(s *Spec) { s.Ref = "localhost:5000/x:v1" }, ""},
		{"no tag", func(s *Spec) { s.Ref = "registry.k8s.io/etcd" }, "explicit tag"},
		{"port but no tag", func(s *Spec) { s.Ref = "localhost:5000/x" }, "explicit tag"},
		{"bad ref", func(s *Spec) { s.Ref = "UPPER/case:v1" }, "image ref"},
		{"relative path", func(s *Spec) { s.Files[0].Path = "etcd" }, "absolute and clean"},
		{"unclean path", func(s *Spec) { s.Files[0].Path = "/a/../etcd" }, "absolute and clean"},
		{"duplicate", func(s *Spec) { s.Files = append(s.Files, s.Files[0]) }, "given twice"},
		{"source and data", func(s *Spec) { s.Files[0].Source = "/bin/true" }, "both Source and Data"},
		{"no command", func(s *Spec) { s.Entrypoint = nil }, "Entrypoint or a Cmd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.Files = append([]File(nil), ok.Files...)
			tc.mutate(&s)
			err := s.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
