// Package kindconfig writes the kind cluster configuration that creates a cluster whose apiserver already issues
// service account tokens for the irsa issuer (`irsa kind-config`), so nothing on the nodes has to be patched later.
//
// The kubeadm patch is unversioned (no apiVersion) and uses the map form of extraArgs. kind generates a kubeadm
// v1beta3 config for node images below v1.36 and v1beta4 (where extraArgs is a list of {name, value}) from v1.36;
// kind applies an unversioned patch to either and converts a map-form extraArgs into the v1beta4 list
// (sigs.k8s.io/kind v0.33.0, pkg/internal/patch/kubeadm_merge.go and pkg/cluster/internal/kubeadm/config.go). A
// versioned patch would be silently ignored when its apiVersion differs from the one kind picked.
package kindconfig

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	kind "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// DefaultNodeImage is the node image kind v0.33.0 uses by default, pinned by digest.
const DefaultNodeImage = "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"

// Options describe the cluster to create.
type Options struct {
	// Name is the kind cluster name; empty leaves kind's default ("kind").
	Name string
	// NodeImage is the kind node image, pinned; empty means DefaultNodeImage.
	NodeImage string
	// IssuerURL is the service account issuer the apiserver issues tokens for.
	IssuerURL string
	// Audience is added to --api-audiences.
	Audience string
	// SigningKey, when set, holds host paths of a PEM key pair that the cluster uses as its service account key
	// (kubeadm's sa.key and sa.pub). Nil lets kubeadm generate the key; the issuer stage then publishes what the
	// apiserver serves.
	SigningKey *KeyFiles
	// Workers is the number of worker nodes.
	Workers int
}

// KeyFiles are absolute host paths of the private and public key.
type KeyFiles struct {
	PrivateKey string
	PublicKey  string
}

// Where kubeadm looks for the service account key pair inside the node. A key found there is used instead of
// generating one ("Using the existing sa key"), for the apiserver and kube-controller-manager alike.
const (
	nodePrivateKey = "/etc/kubernetes/pki/sa.key"
	nodePublicKey  = "/etc/kubernetes/pki/sa.pub"
)

// Validate checks the options.
func (o Options) Validate() error {
	u, err := url.Parse(o.IssuerURL)
	if err != nil {
		return fmt.Errorf("issuer URL %q: %w", o.IssuerURL, err)
	}
	if u.Scheme != "https" || u.Host == "" || strings.HasSuffix(o.IssuerURL, "/") {
		return fmt.Errorf("issuer URL %q: must be https://host[/path] without a trailing slash", o.IssuerURL)
	}
	if o.Audience == "" || strings.Contains(o.Audience, ",") {
		return fmt.Errorf("audience %q: must be one non-empty value without commas", o.Audience)
	}
	if o.Workers < 0 {
		return fmt.Errorf("workers %d: must not be negative", o.Workers)
	}
	if k := o.SigningKey; k != nil {
		if !filepath.IsAbs(k.PrivateKey) || !filepath.IsAbs(k.PublicKey) {
			return fmt.Errorf("signing key files %q and %q: must be absolute paths (kind resolves relative paths from its own working directory)", k.PrivateKey, k.PublicKey)
		}
	}
	return nil
}

// Generate returns the kind cluster configuration (kind.x-k8s.io/v1alpha4) as YAML.
//
// The apiserver gets --service-account-issuer=IssuerURL and --api-audiences=IssuerURL,Audience: the issuer is what
// the apiserver would accept by default, the audience is the one irsa's webhook projects. A provided key pair is
// mounted on the first control-plane node only: a joining control-plane node receives the key from kubeadm and
// writes it, which a read-only mount would refuse.
func Generate(o Options) ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	image := o.NodeImage
	if image == "" {
		image = DefaultNodeImage
	}
	patch, err := yaml.Marshal(map[string]any{
		"kind": "ClusterConfiguration",
		"apiServer": map[string]any{
			"extraArgs": map[string]string{
				"service-account-issuer": o.IssuerURL,
				"api-audiences":          o.IssuerURL + "," + o.Audience,
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("encode kubeadm config patch: %w", err)
	}
	controlPlane := kind.Node{Role: kind.ControlPlaneRole, Image: image}
	if k := o.SigningKey; k != nil {
		controlPlane.ExtraMounts = []kind.Mount{
			{HostPath: k.PrivateKey, ContainerPath: nodePrivateKey, Readonly: true},
			{HostPath: k.PublicKey, ContainerPath: nodePublicKey, Readonly: true},
		}
	}
	// kind's defaults (kind.SetDefaultsCluster) are left to kind: the file holds only what irsa decides.
	c := kind.Cluster{
		TypeMeta:             kind.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:                 o.Name,
		Nodes:                []kind.Node{controlPlane},
		KubeadmConfigPatches: []string{string(patch)},
	}
	for range o.Workers {
		c.Nodes = append(c.Nodes, kind.Node{Role: kind.WorkerRole, Image: image})
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode kind cluster config: %w", err)
	}
	header := "# kind cluster configuration generated by `irsa kind-config`: the apiserver issues tokens for\n# " + o.IssuerURL + "\n"
	return append([]byte(header), out...), nil
}
