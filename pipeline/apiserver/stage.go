package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/irsa-anywhere/irsa/pipeline/apiserver/manifest"
	"github.com/irsa-anywhere/irsa/pipeline/apiserver/node"
	"github.com/irsa-anywhere/irsa/pipeline/config"
	"github.com/irsa-anywhere/irsa/pipeline/stage"
)

// Defaults of Options.
const (
	DefaultTimeout            = 3 * time.Minute
	DefaultEKSAnywhereTimeout = 30 * time.Minute
	DefaultNamespace          = "kube-system"
	defaultPollInterval       = 2 * time.Second
	// ControlPlaneLabel marks the nodes that run a kube-apiserver static pod.
	ControlPlaneLabel = "node-role.kubernetes.io/control-plane"
)

// Options configure the stage.
type Options struct {
	// IssuerURL is the issuer the apiserver must issue tokens for; Audience is added to its --api-audiences.
	IssuerURL string
	Audience  string
	// ClusterType is one of ClusterTypes; empty means DetectClusterType.
	ClusterType string
	// Image runs the node subcommand on kubeadm nodes. Default config.DefaultIrsaImage.
	Image string
	// ImagePullSecrets name Secrets in Namespace the node pods pull Image with (a private mirror).
	ImagePullSecrets []string
	// SigningKey is a PEM private key the apiserver must sign tokens with (kubeadm only), installed on every
	// control-plane node; nil keeps the cluster's own key, whose public keys ServedKeys returns.
	SigningKey []byte
	// Timeout bounds the wait for each node pod and for the apiserver to serve the issuer. Default DefaultTimeout,
	// DefaultEKSAnywhereTimeout for EKS Anywhere (which replaces the control-plane machines).
	Timeout time.Duration
	// PollInterval is how often the stage looks at pods and the served issuer. Default 2s.
	PollInterval time.Duration
	// Namespace runs the node pods and holds the signing key Secret while they run. Default kube-system.
	Namespace string
	// ClusterName labels the objects the stage creates (config.ClusterLabel).
	ClusterName string
	// EKSAnywhereCluster is namespace/name (or name, in namespace default) of the EKS Anywhere Cluster object;
	// empty picks the only one there is.
	EKSAnywhereCluster string
	// AcceptIssuerReplacement lets Apply replace the issuer of an EKS Anywhere cluster, which holds one issuer only:
	// tokens pods hold stop authenticating until the kubelet refreshes them. Without it Apply refuses.
	AcceptIssuerReplacement bool
	// ManagementConfig reaches the EKS Anywhere management cluster holding the Cluster object; nil means the
	// cluster itself (a standalone or management cluster).
	ManagementConfig *rest.Config
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Stage makes the apiserver issue tokens for the irsa issuer (see the package documentation).
type Stage struct {
	client kubernetes.Interface
	config *rest.Config
	opts   Options
	log    *slog.Logger
	// runNode runs the node subcommand on a node: runNodePod, replaced in tests of the pass order (no kubelet
	// runs pods there).
	runNode func(ctx context.Context, nodeName, op string, key *keySecret, timeout time.Duration, extraArgs ...string) (node.Result, error)
}

var _ stage.Stage = (*Stage)(nil)

// New validates the options and returns the stage. Nothing is read from the cluster until Plan, Apply or Delete.
func New(client kubernetes.Interface, cfg *rest.Config, opts Options) (*Stage, error) {
	if client == nil {
		return nil, errors.New("apiserver stage: no Kubernetes client")
	}
	if opts.ClusterType != "" && !slices.Contains(ClusterTypes, opts.ClusterType) {
		return nil, fmt.Errorf("cluster type %q: want one of %s", opts.ClusterType, strings.Join(ClusterTypes, ", "))
	}
	if err := (manifest.PatchOptions{IssuerURL: opts.IssuerURL, Audience: opts.Audience}).Validate(); err != nil {
		return nil, err
	}
	if opts.SigningKey != nil {
		if _, _, _, err := node.ParseSigningKey(opts.SigningKey); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		if opts.ClusterType != "" && opts.ClusterType != ClusterKubeadm {
			return nil, fmt.Errorf("signing key: only the kubeadm cluster type installs a key on the nodes; for %s use the cluster's key (--signing-key cluster)", opts.ClusterType)
		}
	}
	if opts.Image == "" {
		opts.Image = config.DefaultIrsaImage
	}
	for _, ps := range opts.ImagePullSecrets {
		if err := config.ValidateDNS1123Subdomain("image pull secret", ps); err != nil {
			return nil, err
		}
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("timeout %s: must not be negative", opts.Timeout)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &Stage{client: client, config: cfg, opts: opts, log: log}
	st.runNode = kubeadm{st}.runNodePod
	return st, nil
}

// Name implements stage.Stage.
func (s *Stage) Name() string { return stage.APIServer }

func (s *Stage) clusterType(ctx context.Context) (string, error) {
	if s.opts.ClusterType != "" {
		return s.opts.ClusterType, nil
	}
	t, err := DetectClusterType(ctx, s.client)
	if err != nil {
		return "", err
	}
	s.log.Info("detected cluster type", "type", t)
	if s.opts.SigningKey != nil && t != ClusterKubeadm {
		return "", fmt.Errorf("signing key: detected cluster type %s, but only kubeadm clusters get a key installed: use the cluster's key (--signing-key cluster)", t)
	}
	return t, nil
}

func (s *Stage) timeout(clusterType string) time.Duration {
	switch {
	case s.opts.Timeout > 0:
		return s.opts.Timeout
	case clusterType == ClusterEKSAnywhere:
		return DefaultEKSAnywhereTimeout
	default:
		return DefaultTimeout
	}
}

// platform is how one kind of cluster gets its apiserver to issue tokens for the issuer: kubeadm (node pods edit
// the static pod manifests, kubeadm.go), EKS Anywhere (the Cluster object, eksanywhere.go), kind (set at creation,
// kind.go) and external (configured by the user, external.go). Each has the stage's contract.
type platform interface {
	Plan(ctx context.Context) ([]stage.Change, error)
	Apply(ctx context.Context) ([]stage.Change, error)
	Delete(ctx context.Context) ([]stage.Change, error)
}

// platform picks the cluster type's platform, detecting the type when Options.ClusterType is empty.
func (s *Stage) platform(ctx context.Context) (platform, error) {
	t, err := s.clusterType(ctx)
	if err != nil {
		return nil, err
	}
	switch t {
	case ClusterKubeadm:
		return kubeadm{s}, nil
	case ClusterEKSAnywhere:
		return eksAnywhere{s}, nil
	case ClusterKind:
		return kindPlatform(s), nil
	default:
		return externalPlatform(s), nil
	}
}

// Plan implements stage.Stage: what Apply would change (see the platform's Plan). It creates nothing.
func (s *Stage) Plan(ctx context.Context) ([]stage.Change, error) {
	leftover, err := s.planKeySecret(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.platform(ctx)
	if err != nil {
		return leftover, err
	}
	changes, err := p.Plan(ctx)
	return append(leftover, changes...), err
}

// Apply implements stage.Stage. A signing key Secret left by an interrupted run is deleted first.
func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	leftover, err := s.removeKeySecret(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.platform(ctx)
	if err != nil {
		return leftover, err
	}
	changes, err := p.Apply(ctx)
	return append(leftover, changes...), err
}

// Delete implements stage.Stage: the apiserver goes back to its previous flags, original issuer first. A signing key
// Secret left by an interrupted run is deleted first.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) {
	leftover, err := s.removeKeySecret(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.platform(ctx)
	if err != nil {
		return leftover, err
	}
	changes, err := p.Delete(ctx)
	return append(leftover, changes...), err
}

// waitServed polls the served issuer until want reports true, up to timeout. Errors are expected while an
// apiserver restarts: they are remembered for the timeout message, not returned.
func (s *Stage) waitServed(ctx context.Context, timeout time.Duration, what string, want func(issuer string) bool) (string, error) {
	observed := "no answer yet"
	var served string
	err := wait.PollUntilContextTimeout(ctx, s.opts.PollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		issuer, err := ServedIssuer(ctx, s.client)
		switch {
		case err == nil && want(issuer):
			served = issuer
			return true, nil
		case cutShort(ctx):
			// The deadline cut this request short: the timeout error reports what was seen before it.
			return false, nil
		case err != nil:
			observed = "error: " + err.Error()
		default:
			observed = fmt.Sprintf("issuer %q", issuer)
		}
		s.log.Debug("waiting for the served issuer", "want", what, "observed", observed)
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("apiserver did not serve %s within %s; last observed: %s", what, timeout, observed)
	}
	return served, nil
}

// cutShort says whether the poll's deadline has come, so that a failed request says nothing about the cluster:
// the context may not be done yet when client-go's rate limiter already refuses a request because of its deadline.
func cutShort(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(deadline))
}
