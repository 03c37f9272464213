// Package ociimage builds container images without a daemon or a registry: files (a static binary, a few extras) in
// one uncompressed layer on an empty base, written as a docker-archive tarball that `ctr -n k8s.io images import`
// and `docker load` accept. The build machines can't pull any image, so every image the e2e cluster runs is made
// this way. Output is deterministic: the same inputs give the same image digest.
package ociimage

import (
	"archive/tar"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one regular file in the image.
type File struct {
	// Path is the absolute path in the image, such as /usr/local/bin/kube-apiserver.
	Path string
	// Source is a file on this machine to copy; when empty, Data is the content.
	Source string
	Data   []byte
	// Mode is the file's permission bits; zero means 0755 for Source and 0644 for Data.
	Mode fs.FileMode
}

// Spec describes an image.
type Spec struct {
	// Ref is the image's name and tag, such as registry.k8s.io/pause:3.10.2.
	Ref        string
	Files      []File
	Entrypoint []string
	Cmd        []string
	// User is the user (and group) the container runs as, such as "65532:65532"; empty means root.
	User       string
	Env        []string
	WorkingDir string
	// Labels are the image config's labels.
	Labels map[string]string
	// Architecture is the GOARCH the files are built for (the image is for linux); empty means this machine's.
	Architecture string
}

// Validate checks the spec before anything is written.
func (s Spec) Validate() error {
	if _, err := name.NewTag(s.Ref); err != nil {
		return fmt.Errorf("image ref %q: %w", s.Ref, err)
	}
	if strings.LastIndex(s.Ref, ":") < strings.LastIndex(s.Ref, "/") || !strings.Contains(s.Ref, ":") {
		return fmt.Errorf("image ref %q: needs an explicit tag, such as %s:v1", s.Ref, s.Ref)
	}
	seen := map[string]bool{}
	for _, f := range s.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return fmt.Errorf("image %s: file path %q must be absolute and clean", s.Ref, f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("image %s: file path %q given twice", s.Ref, f.Path)
		}
		seen[f.Path] = true
		if f.Source != "" && f.Data != nil {
			return fmt.Errorf("image %s: file %q has both Source and Data", s.Ref, f.Path)
		}
	}
	if len(s.Entrypoint) == 0 && len(s.Cmd) == 0 {
		return fmt.Errorf("image %s: needs an Entrypoint or a Cmd", s.Ref)
	}
	return nil
}

// Image builds the image described by spec, for linux on this machine's architecture.
func Image(spec Spec) (v1.Image, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	layerTar, err := layer(spec.Files)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(layerTar, types.DockerUncompressedLayer))
	if err != nil {
		return nil, fmt.Errorf("image %s: add layer: %w", spec.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", spec.Ref, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", cmp.Or(spec.Architecture, runtime.GOARCH)
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.User = spec.User
	cf.Config.WorkingDir = spec.WorkingDir
	cf.Config.Labels = spec.Labels
	cf.Config.Env = spec.Env
	if len(cf.Config.Env) == 0 {
		cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image %s: set config: %w", spec.Ref, err)
	}
	return img, nil
}

// WriteTarball writes the images as one docker-archive tarball at path (written to a temporary file first and
// renamed, so a reader never sees half a tarball).
func WriteTarball(path string, specs ...Spec) error {
	if len(specs) == 0 {
		return fmt.Errorf("write image tarball %s: no images", path)
	}
	refs := map[name.Reference]v1.Image{}
	for _, s := range specs {
		img, err := Image(s)
		if err != nil {
			return err
		}
		tag, err := name.NewTag(s.Ref)
		if err != nil {
			return fmt.Errorf("image ref %q: %w", s.Ref, err)
		}
		refs[tag] = img
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write image tarball %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write image tarball %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tarball.MultiRefWrite(refs, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write image tarball %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write image tarball %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write image tarball %s: %w", path, err)
	}
	return nil
}

// layer returns a tar stream of the files with their parent directories and /tmp, in path order, with zero
// timestamps and root ownership so that the same files always give the same digest.
func layer(files []File) ([]byte, error) {
	dirs := map[string]bool{"/tmp": true}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	type entry struct {
		path string
		dir  bool
		file File
	}
	var entries []entry
	for d := range dirs {
		entries = append(entries, entry{path: d, dir: true})
	}
	for _, f := range files {
		entries = append(entries, entry{path: f.Path, file: f})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		name := strings.TrimPrefix(e.path, "/")
		if e.dir {
			mode := int64(0o755)
			if e.path == "/tmp" {
				mode = 0o1777
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
			continue
		}
		if err := writeFile(tw, name, e.file); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeFile(tw *tar.Writer, name string, f File) error {
	mode := f.Mode
	var r io.Reader
	var size int64
	if f.Source != "" {
		src, err := os.Open(f.Source)
		if err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		defer src.Close()
		st, err := src.Stat()
		if err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("file %s: source %s is not a regular file", f.Path, f.Source)
		}
		r, size = src, st.Size()
		if mode == 0 {
			mode = 0o755
		}
	} else {
		r, size = bytes.NewReader(f.Data), int64(len(f.Data))
		if mode == 0 {
			mode = 0o644
		}
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode.Perm()), Size: size, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	if n != size {
		return fmt.Errorf("file %s: source %s changed while copying: %d of %d bytes", f.Path, f.Source, n, size)
	}
	return nil
}
