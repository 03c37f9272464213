package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/irsa-anywhere/irsa/internal/version"
)

// The images irsa deploys or runs. Every default names its registry, repository and tag explicitly, so that a
// mirror tool and the registry rewrite see the full reference.
const (
	// DefaultWebhookImage is amazon-eks-pod-identity-webhook, pinned. Since v0.6.x upstream publishes its
	// multi-arch images (linux/amd64, linux/arm64) to ECR Public only, tagged with the release tag (its
	// .github/workflows/build.yaml; Docker Hub's amazon/amazon-eks-pod-identity-webhook stopped before v0.6.17).
	DefaultWebhookImage = "public.ecr.aws/eks/amazon-eks-pod-identity-webhook:v0.6.17"
	// DefaultVerifyImage runs the verify Job: the AWS CLI's official image, pinned.
	DefaultVerifyImage = "public.ecr.aws/aws-cli/aws-cli:2.27.49"
	// IrsaImageRepository is where the release workflow publishes irsa's multi-arch image, one tag per release.
	IrsaImageRepository = "ghcr.io/irsa-anywhere/irsa"
	// DevImageTag is the irsa image tag of a build that is not a release. No registry has it: a development
	// build runs on a cluster only with an image built by `make image` and given with --image.
	DevImageTag = version.Dev
)

// DefaultIrsaImage runs the node subcommand (the apiserver manifest patch) and `irsa probe`: the image of this
// very build, so the CLI and what it runs on the nodes cannot drift.
var DefaultIrsaImage = IrsaImageFor(version.Get().Version)

// IrsaImageFor is the irsa image of the binary with version v: IrsaImageRepository tagged with v for a release
// ("v0.2.0" gives "ghcr.io/irsa-anywhere/irsa:v0.2.0"), tagged DevImageTag for anything else.
func IrsaImageFor(v string) string {
	if !version.IsRelease(v) {
		v = DevImageTag
	}
	return IrsaImageRepository + ":" + v
}

// ImagesConfig is how a cluster gets its images (irsa.yaml `images:`), for clusters that pull from a mirror.
type ImagesConfig struct {
	// Registry rewrites every image irsa deploys or runs to this mirror (see RewriteImage): a host with an
	// optional port and path prefix, such as "registry.corp.example:5000/irsa".
	Registry string `json:"registry,omitempty"`
	// PullSecrets name Secrets of type kubernetes.io/dockerconfigjson that the webhook Deployment, the node pods
	// and the verify Job pull with. Each must exist in the namespace of the pod that uses it.
	PullSecrets []string `json:"pullSecrets,omitempty"`
}

// Validate checks the mirror and the pull secret names.
func (ic ImagesConfig) Validate() error {
	if ic.Registry != "" {
		if err := ValidateImageRegistry(ic.Registry); err != nil {
			return err
		}
	}
	for _, s := range ic.PullSecrets {
		if err := ValidateDNS1123Subdomain("image pull secret", s); err != nil {
			return err
		}
	}
	return nil
}

// ValidateImageRegistry checks a mirror: host[:port][/path], no scheme, no tag, no digest.
func ValidateImageRegistry(registry string) error {
	if strings.Contains(registry, "://") {
		return fmt.Errorf("image registry %q: give host[:port][/path] without a scheme", registry)
	}
	host, path, _ := strings.Cut(registry, "/")
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return fmt.Errorf("image registry %q: %q is not a registry host (want a DNS name or IP with an optional port, such as registry.example.com:5000)", registry, host)
	}
	if path != "" {
		if _, err := name.NewRepository(host+"/"+path, name.StrictValidation); err != nil || strings.HasSuffix(path, "/") {
			return fmt.Errorf("image registry %q: path %q must be lowercase repository path components separated by /", registry, path)
		}
	}
	return nil
}

// ValidateImageReference checks that ref is an image reference a kubelet can pull: registry/repository with a
// tag or a digest. A reference without a registry is Docker Hub's, as the container runtimes read it.
func ValidateImageReference(what, ref string) error {
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("%s image %q: %w", what, ref, err)
	}
	return nil
}

// RewriteImage puts ref under the mirror registry, keeping its repository path and its tag or digest:
//
//	public.ecr.aws/eks/amazon-eks-pod-identity-webhook:v0.6.17 + mirror.example:5000/irsa
//	  -> mirror.example:5000/irsa/eks/amazon-eks-pod-identity-webhook:v0.6.17
//	amazon/aws-cli:2.27.49 (Docker Hub) + mirror.example -> mirror.example/amazon/aws-cli:2.27.49
//
// This is the layout `crane copy SRC mirror/PATH` and registry mirrors (EKS Anywhere's registryMirrorConfiguration
// among them) use. A reference already under the mirror, and any reference when registry is empty, is returned
// unchanged.
func RewriteImage(ref, registry string) (string, error) {
	if registry == "" || strings.HasPrefix(ref, registry+"/") {
		return ref, nil
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	out := registry + "/" + r.Context().RepositoryStr()
	switch r := r.(type) {
	case name.Digest:
		out += "@" + r.DigestStr()
	case name.Tag:
		out += ":" + r.TagStr()
	}
	return out, nil
}

// ImageSet is every image one configuration deploys or runs, after the mirror rewrite.
type ImageSet struct {
	// Irsa runs the node pods of the apiserver stage on kubeadm clusters.
	Irsa string `json:"irsa"`
	// Webhook is the pod identity webhook Deployment's image.
	Webhook string `json:"webhook"`
	// Verify is the verify Job's image.
	Verify string `json:"verify"`
	// PullSecrets go into the imagePullSecrets of all three.
	PullSecrets []string `json:"pullSecrets,omitempty"`
}

// ImageSet returns the images of c: its image fields, or the defaults where they are empty, rewritten to
// c.Images.Registry, and c.Images.PullSecrets. It errors on a reference that does not parse or a bad mirror, naming
// the value; it changes nothing in c.
func (c *Config) ImageSet() (ImageSet, error) {
	if err := c.Images.Validate(); err != nil {
		return ImageSet{}, err
	}
	set := ImageSet{PullSecrets: slices.Clone(c.Images.PullSecrets)}
	for _, im := range []struct {
		what, ref, def string
		dst            *string
	}{
		{"irsa", c.Image, DefaultIrsaImage, &set.Irsa},
		{"webhook", c.Webhook.Image, DefaultWebhookImage, &set.Webhook},
		{"verify", c.Verify.Image, DefaultVerifyImage, &set.Verify},
	} {
		ref := cmp.Or(im.ref, im.def)
		if err := ValidateImageReference(im.what, ref); err != nil {
			return ImageSet{}, err
		}
		out, err := RewriteImage(ref, c.Images.Registry)
		if err != nil {
			return ImageSet{}, fmt.Errorf("%s image: %w", im.what, err)
		}
		*im.dst = out
	}
	return set, nil
}

// ApplyImages rewrites c's image fields (filling the defaults first) to the mirror in c.Images.Registry, so that
// the stages built from c deploy the mirrored references. Call it once, after Defaults.
func (c *Config) ApplyImages() error {
	set, err := c.ImageSet()
	if err != nil {
		return err
	}
	c.Image, c.Webhook.Image, c.Verify.Image = set.Irsa, set.Webhook, set.Verify
	return nil
}

// References lists each distinct image once, sorted: the input of a mirror tool.
func (s ImageSet) References() []string {
	refs := []string{s.Irsa, s.Webhook, s.Verify}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// Deployed lists, each once and sorted, the images a cluster of clusterType pulls: the irsa image runs on the nodes
// of kubeadm clusters only (kind and EKS Anywhere configure the apiserver themselves, "external" is left alone),
// unless the verify Job runs it. An empty clusterType is detected at apply time, so it lists them all.
func (s ImageSet) Deployed(clusterType string) []string {
	if clusterType == "" || clusterType == "kubeadm" || s.Verify == s.Irsa {
		return s.References()
	}
	refs := []string{s.Webhook, s.Verify}
	slices.Sort(refs)
	return slices.Compact(refs)
}
