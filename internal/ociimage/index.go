package ociimage

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Index builds a multi-platform image: one image per spec (each with its own Architecture, all for linux) under
// one OCI image index, which a kubelet on any of those architectures pulls by the same reference.
func Index(specs ...Spec) (v1.ImageIndex, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("image index: no images")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]bool{}
	for _, s := range specs {
		if s.Architecture == "" {
			return nil, fmt.Errorf("image index %s: every image needs its Architecture", s.Ref)
		}
		if seen[s.Architecture] {
			return nil, fmt.Errorf("image index %s: architecture %q given twice", s.Ref, s.Architecture)
		}
		seen[s.Architecture] = true
		img, err := Image(s)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: s.Architecture}},
		})
	}
	return idx, nil
}

// WriteLayout writes idx as an OCI image layout in dir (created, and replaced if it exists), annotated with ref
// so that tools which import layouts (`crane push DIR REF`, `skopeo copy oci:DIR`, containerd) know its name.
func WriteLayout(dir, ref string, idx v1.ImageIndex) error {
	if _, err := name.NewTag(ref, name.StrictValidation); err != nil {
		return fmt.Errorf("image layout %s: ref %q: %w", dir, ref, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("image layout %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("image layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return fmt.Errorf("image layout %s: %w", dir, err)
	}
	return nil
}

// Push uploads idx to ref with the credentials of the default keychain (docker login, credential helpers) and
// returns its digest.
func Push(ctx context.Context, ref string, idx v1.ImageIndex) (string, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("push %q: %w", ref, err)
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", fmt.Errorf("push %s: digest: %w", ref, err)
	}
	return d.String(), nil
}
