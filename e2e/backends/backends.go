// Package backends selects the e2e cluster and AWS backend from the environment (E2E_CLUSTER=host|kind,
// E2E_AWS=moto|localstack|aws) and starts them in the right order, so the IRSA scenario is written once.
//
// The selector knows names, not implementations: a Registry maps names to constructors. Docker() fills in the
// Docker-based ones (kind, LocalStack, moto's container on kind's network, real AWS); the scenario adds the host
// cluster and the moto process (e2e/cluster/host, e2e/aws/moto) with Registry.With. An AWS constructor registered
// as "NAME@CLUSTER" wins over "NAME" for that cluster, which is how moto is a host process for the host cluster and
// a container on kind's network for kind.
package backends

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/irsa-anywhere/irsa/e2e/framework"
)

// Environment variables that select the backends.
const (
	ClusterEnv = "E2E_CLUSTER"
	AWSEnv     = "E2E_AWS"
	// KeepEnv=1 leaves the cluster running after the test (the AWS backend is always closed: real AWS must be
	// torn down, and the emulators' HTTPS front lives in the test process).
	KeepEnv = "KEEP"
	// NodeImageEnv replaces kind's published node image with one in the Docker daemon (hack/kind/build-node.sh
	// builds one where no registry is reachable); only with E2E_CLUSTER=kind.
	NodeImageEnv = "E2E_KIND_NODE_IMAGE"
	// AWSImageEnv replaces the emulator's published image (hack/kind/build-emulator.sh); only with
	// E2E_AWS=localstack, or moto on kind.
	AWSImageEnv = "E2E_AWS_IMAGE"
)

// The allowed names, and the defaults: a host cluster with moto runs on machines without Docker.
var (
	ClusterNames = []string{"host", "kind"}
	AWSNames     = []string{"moto", "localstack", "aws"}
)

const (
	DefaultCluster = "host"
	DefaultAWS     = "moto"
)

// Selection is which backends to run.
type Selection struct {
	Cluster string
	AWS     string
	Keep    bool
	// NodeImage and AWSImage are image references that replace the published ones; empty keeps them. A node
	// image built here also means no registry is reachable: the scenario then loads every image it runs.
	NodeImage string
	AWSImage  string
}

func (s Selection) String() string { return s.Cluster + "+" + s.AWS }

// FromEnv reads the selection through getenv (os.Getenv in tests of the scenario); unset variables take the
// defaults. Unknown names are errors that list the allowed ones.
func FromEnv(getenv func(string) string) (Selection, error) {
	s := Selection{Cluster: getenv(ClusterEnv), AWS: getenv(AWSEnv), NodeImage: getenv(NodeImageEnv), AWSImage: getenv(AWSImageEnv)}
	if s.Cluster == "" {
		s.Cluster = DefaultCluster
	}
	if s.AWS == "" {
		s.AWS = DefaultAWS
	}
	switch k := getenv(KeepEnv); k {
	case "", "0", "false":
	case "1", "true":
		s.Keep = true
	default:
		return Selection{}, fmt.Errorf("%s=%q: want 1 or 0", KeepEnv, k)
	}
	return s, s.Validate()
}

// Validate checks both names against the allowed sets.
func (s Selection) Validate() error {
	var errs []error
	if !slices.Contains(ClusterNames, s.Cluster) {
		errs = append(errs, fmt.Errorf("%s=%q: want one of %s", ClusterEnv, s.Cluster, strings.Join(ClusterNames, ", ")))
	}
	if !slices.Contains(AWSNames, s.AWS) {
		errs = append(errs, fmt.Errorf("%s=%q: want one of %s", AWSEnv, s.AWS, strings.Join(AWSNames, ", ")))
	}
	if s.NodeImage != "" {
		if s.Cluster != "kind" {
			errs = append(errs, fmt.Errorf("%s=%q: only kind runs a node image, not %s=%q", NodeImageEnv, s.NodeImage, ClusterEnv, s.Cluster))
		}
		errs = append(errs, validRef(NodeImageEnv, s.NodeImage))
	}
	if s.AWSImage != "" {
		// moto runs as a container on kind only; on the host cluster it is a process.
		if s.AWS != "localstack" && !(s.AWS == "moto" && s.Cluster == "kind") {
			errs = append(errs, fmt.Errorf("%s=%q: only LocalStack, or moto on kind, runs an image, not %s=%q with %s=%q", AWSImageEnv, s.AWSImage, AWSEnv, s.AWS, ClusterEnv, s.Cluster))
		}
		errs = append(errs, validRef(AWSImageEnv, s.AWSImage))
	}
	return errors.Join(errs...)
}

// validRef checks that an image reference names a tag or a digest explicitly: a locally built image is found by
// that exact reference, and a missing tag would silently mean :latest.
func validRef(env, ref string) error {
	if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
		return fmt.Errorf("%s=%q: want an image reference with an explicit tag or digest: %w", env, ref, err)
	}
	return nil
}

// AWSFunc starts an AWS backend for sel.
type AWSFunc func(ctx context.Context, sel Selection) (framework.AWS, error)

// ClusterFunc starts a cluster for sel. It gets the running AWS backend: the cluster's issuer URL and the network
// its pods use depend on it.
type ClusterFunc func(ctx context.Context, sel Selection, aws framework.AWS) (framework.Cluster, error)

// Registry maps backend names to constructors. AWS keys are a name or "NAME@CLUSTER".
type Registry struct {
	Clusters map[string]ClusterFunc
	AWS      map[string]AWSFunc
}

// With returns a registry holding r's entries and o's, o winning on equal keys. Neither is changed.
func (r Registry) With(o Registry) Registry {
	out := Registry{Clusters: map[string]ClusterFunc{}, AWS: map[string]AWSFunc{}}
	for _, src := range []Registry{r, o} {
		for k, v := range src.Clusters {
			out.Clusters[k] = v
		}
		for k, v := range src.AWS {
			out.AWS[k] = v
		}
	}
	return out
}

// Resolve validates sel and finds its constructors, before anything starts.
func (r Registry) Resolve(sel Selection) (ClusterFunc, AWSFunc, error) {
	if err := sel.Validate(); err != nil {
		return nil, nil, err
	}
	cluster, ok := r.Clusters[sel.Cluster]
	if !ok || cluster == nil {
		return nil, nil, fmt.Errorf("%s=%q: no constructor registered for it (registered: %s)", ClusterEnv, sel.Cluster, keys(r.Clusters))
	}
	aws, ok := r.AWS[sel.AWS+"@"+sel.Cluster]
	if !ok || aws == nil {
		aws, ok = r.AWS[sel.AWS]
	}
	if !ok || aws == nil {
		return nil, nil, fmt.Errorf("%s=%q with %s=%q: no constructor registered for it (registered: %s)", AWSEnv, sel.AWS, ClusterEnv, sel.Cluster, keys(r.AWS))
	}
	return cluster, aws, nil
}

func keys[V any](m map[string]V) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	if len(ks) == 0 {
		return "none"
	}
	return strings.Join(ks, ", ")
}

// Env is a started pair of backends.
type Env struct {
	Selection Selection
	AWS       framework.AWS
	Cluster   framework.Cluster
}

// Open starts the AWS backend, then the cluster. If the cluster fails, the AWS backend is closed again.
func (r Registry) Open(ctx context.Context, sel Selection) (*Env, error) {
	newCluster, newAWS, err := r.Resolve(sel)
	if err != nil {
		return nil, err
	}
	aws, err := newAWS(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("start AWS backend %q: %w", sel.AWS, err)
	}
	cluster, err := newCluster(ctx, sel, aws)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start cluster %q: %w", sel.Cluster, err), closeAWS(ctx, sel, aws))
	}
	return &Env{Selection: sel, AWS: aws, Cluster: cluster}, nil
}

// Close deletes the cluster (unless Keep) and then closes the AWS backend; it reports both failures.
func (e *Env) Close(ctx context.Context) error {
	var errs []error
	if !e.Selection.Keep {
		if err := e.Cluster.Delete(ctx); err != nil {
			errs = append(errs, fmt.Errorf("delete cluster %q: %w", e.Selection.Cluster, err))
		}
	}
	if err := closeAWS(ctx, e.Selection, e.AWS); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func closeAWS(ctx context.Context, sel Selection, aws framework.AWS) error {
	if err := aws.Close(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("close AWS backend %q: %w", sel.AWS, err)
	}
	return nil
}
