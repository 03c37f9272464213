package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
	runNode func(ctx context.Context, node, op string, key *keySecret, timeout time.Duration, extraArgs ...string) (Result, error)
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
	if err := (PatchOptions{IssuerURL: opts.IssuerURL, Audience: opts.Audience}).Validate(); err != nil {
		return nil, err
	}
	if opts.SigningKey != nil {
		if _, err := publicKeyOf(opts.SigningKey); err != nil {
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
	st.runNode = st.runNodePod
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

// Plan implements stage.Stage: what Apply would change, read from the served issuer and the control-plane nodes'
// mirror pods. It creates nothing.
func (s *Stage) Plan(ctx context.Context) ([]stage.Change, error) {
	t, err := s.clusterType(ctx)
	if err != nil {
		return nil, err
	}
	switch t {
	case ClusterKubeadm:
		nodes, err := s.nodesToPatch(ctx)
		if err != nil {
			return nil, err
		}
		return nodeChanges(nodes), nil
	case ClusterEKSAnywhere:
		return s.planEKSAnywhere(ctx)
	default:
		return nil, s.verifyServed(ctx, t)
	}
}

// Apply implements stage.Stage.
func (s *Stage) Apply(ctx context.Context) ([]stage.Change, error) {
	t, err := s.clusterType(ctx)
	if err != nil {
		return nil, err
	}
	switch t {
	case ClusterKubeadm:
		return s.applyKubeadm(ctx)
	case ClusterEKSAnywhere:
		return s.applyEKSAnywhere(ctx)
	default:
		return nil, s.verifyServed(ctx, t)
	}
}

// Delete implements stage.Stage: the apiserver goes back to its previous flags, original issuer first.
func (s *Stage) Delete(ctx context.Context) ([]stage.Change, error) {
	t, err := s.clusterType(ctx)
	if err != nil {
		return nil, err
	}
	switch t {
	case ClusterKubeadm:
		return s.deleteKubeadm(ctx)
	case ClusterEKSAnywhere:
		return s.deleteEKSAnywhere(ctx)
	default:
		// The user configured the apiserver; irsa changed nothing there.
		return nil, nil
	}
}

// verifyServed is the whole stage for kind and external clusters: the apiserver must already serve the issuer.
func (s *Stage) verifyServed(ctx context.Context, clusterType string) error {
	served, err := ServedIssuer(ctx, s.client)
	if err != nil {
		return err
	}
	if served == s.opts.IssuerURL {
		return nil
	}
	switch clusterType {
	case ClusterKind:
		return fmt.Errorf("kind cluster serves issuer %q, want %q: a kind cluster gets its issuer at creation; recreate it with the configuration printed by `irsa kind-config`", served, s.opts.IssuerURL)
	default:
		return fmt.Errorf("apiserver serves issuer %q, want %q: configure kube-apiserver with --service-account-issuer=%s as the first issuer (keep %s as a second one so existing tokens stay valid) and add %s to --api-audiences, or pick --cluster-type kubeadm if irsa may edit the static pod manifests", served, s.opts.IssuerURL, s.opts.IssuerURL, served, s.opts.Audience)
	}
}

// waitServed polls the served issuer until want reports true, up to timeout. Errors are expected while an
// apiserver restarts: they are remembered for the timeout message, not returned.
func (s *Stage) waitServed(ctx context.Context, timeout time.Duration, what string, want func(issuer string) bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	observed := "no answer yet"
	for {
		issuer, err := ServedIssuer(ctx, s.client)
		if err == nil && want(issuer) {
			return issuer, nil
		}
		if ctx.Err() != nil {
			// The deadline cut this request short: report what was seen before it.
			return "", fmt.Errorf("apiserver did not serve %s within %s; last observed: %s", what, timeout, observed)
		}
		if err != nil {
			observed = "error: " + err.Error()
		} else {
			observed = fmt.Sprintf("issuer %q", issuer)
		}
		s.log.Debug("waiting for the served issuer", "want", what, "observed", observed)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("apiserver did not serve %s within %s; last observed: %s", what, timeout, observed)
		case <-time.After(s.opts.PollInterval):
		}
	}
}

// nodeState is a control-plane node and what its mirror pod says about its manifest.
type nodeState struct {
	name string
	// mirror is the node's kube-apiserver mirror pod, nil when there is none.
	mirror *corev1.Pod
	// patched: the mirror pod carries irsa's record. upToDate: Patch would change nothing. accepts: it already
	// accepts irsa's tokens (an accept-only Patch would change nothing). demoted: Demote would change nothing.
	patched, upToDate, accepts, demoted bool
	issuers                             []string
}

func (s *Stage) controlPlaneNodes(ctx context.Context) ([]nodeState, error) {
	list, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ControlPlaneLabel})
	if err != nil {
		return nil, fmt.Errorf("list control-plane nodes (label %s): %w", ControlPlaneLabel, explain(err))
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no node is labelled %s: irsa patches kube-apiserver static pods on kubeadm control-plane nodes; for a managed or hand-built control plane use --cluster-type external", ControlPlaneLabel)
	}
	var nodes []nodeState
	for _, n := range list.Items {
		st := nodeState{name: n.Name}
		mirror, err := s.client.CoreV1().Pods("kube-system").Get(ctx, "kube-apiserver-"+n.Name, metav1.GetOptions{})
		switch {
		case err == nil:
			st.mirror = mirror
		case apierrors.IsNotFound(err):
		default:
			return nil, fmt.Errorf("get mirror pod kube-system/kube-apiserver-%s: %w", n.Name, explain(err))
		}
		nodes = append(nodes, st)
	}
	slices.SortFunc(nodes, func(a, b nodeState) int { return strings.Compare(a.name, b.name) })
	return nodes, nil
}

// nodesToPatch returns the control-plane nodes with, for each, whether its manifest already is what Apply wants.
// A node without a readable mirror pod is assumed to need the node pod (which changes nothing if it is patched).
func (s *Stage) nodesToPatch(ctx context.Context) ([]nodeState, error) {
	nodes, err := s.controlPlaneNodes(ctx)
	if err != nil {
		return nil, err
	}
	want := PatchOptions{IssuerURL: s.opts.IssuerURL, Audience: s.opts.Audience}
	if s.opts.SigningKey != nil {
		_, _, kid, err := keyFromPEM(s.opts.SigningKey)
		if err != nil {
			return nil, err
		}
		privName, pubName := KeyFileNames(kid)
		want.SigningKey = &KeyFiles{PrivateKey: DefaultPKIDir + "/" + privName, PublicKey: DefaultPKIDir + "/" + pubName, KeyID: kid}
	}
	for i := range nodes {
		n := &nodes[i]
		if n.mirror == nil {
			continue
		}
		pod := n.mirror.DeepCopy()
		_, n.patched = pod.Annotations[RecordAnnotation]
		c, err := apiserverContainer(pod)
		if err != nil {
			return nil, fmt.Errorf("mirror pod kube-system/%s: %w", n.mirror.Name, err)
		}
		n.issuers = containerFlags(c).values(flagIssuer)
		accept := want
		accept.AcceptOnly = true
		if n.upToDate, err = noChange(n.mirror, func(p *corev1.Pod) error { return patchPod(p, want) }); err != nil {
			return nil, err
		}
		if n.accepts, err = noChange(n.mirror, func(p *corev1.Pod) error { return patchPod(p, accept) }); err != nil {
			return nil, err
		}
		if n.demoted, err = noChange(n.mirror, func(p *corev1.Pod) error { return unpatchPod(p, true) }); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

// noChange says whether change leaves a copy of the mirror pod as it is.
func noChange(mirror *corev1.Pod, change func(*corev1.Pod) error) (bool, error) {
	pod := mirror.DeepCopy()
	before, _ := jsonOf(pod)
	if err := change(pod); err != nil {
		return false, fmt.Errorf("mirror pod kube-system/%s: %w", mirror.Name, err)
	}
	after, _ := jsonOf(pod)
	return before == after, nil
}

func nodeChanges(nodes []nodeState) []stage.Change {
	var changes []stage.Change
	for _, n := range nodes {
		if n.upToDate {
			continue
		}
		detail := "mirror pod not found: the node pod will check the manifest"
		if n.mirror != nil {
			detail = fmt.Sprintf("--service-account-issuer %s", strings.Join(n.issuers, ","))
		}
		changes = append(changes, stage.Change{Action: stage.Update, Kind: "kube-apiserver-manifest", Name: n.name, Detail: detail})
	}
	return changes
}

func (s *Stage) applyKubeadm(ctx context.Context) ([]stage.Change, error) {
	nodes, err := s.nodesToPatch(ctx)
	if err != nil {
		return nil, err
	}
	var todo []nodeState
	for _, n := range nodes {
		if !n.upToDate {
			todo = append(todo, n)
		}
	}
	timeout := s.timeout(ClusterKubeadm)
	var changes []stage.Change
	if len(todo) > 0 {
		var keyMount *keySecret
		if s.opts.SigningKey != nil {
			keyMount, err = s.createKeySecret(ctx)
			if err != nil {
				return nil, err
			}
			defer s.deleteKeySecret(keyMount)
		}
		if len(nodes) > 1 {
			// First pass: every apiserver accepts irsa's tokens before any issues them, or a token issued by a
			// patched apiserver would fail on the others (and stay failing if a later node cannot be patched).
			for _, n := range nodes {
				if n.accepts {
					continue
				}
				s.log.Info("making kube-apiserver accept the irsa issuer (first pass)", "node", n.name, "issuer", s.opts.IssuerURL)
				res, err := s.runNode(ctx, n.name, NodePatchCommand, keyMount, timeout, "--accept-only")
				if err != nil {
					return changes, err
				}
				if res.Changed {
					changes = append(changes, stage.Change{Action: stage.Update, Kind: "kube-apiserver-manifest", Name: n.name,
						Detail: "accepts --service-account-issuer " + strings.Join(res.Issuers, ",")})
				}
			}
		}
		for _, n := range todo {
			s.log.Info("patching kube-apiserver", "node", n.name, "issuer", s.opts.IssuerURL)
			res, err := s.runNode(ctx, n.name, NodePatchCommand, keyMount, timeout)
			if err != nil {
				return changes, err
			}
			if res.Changed {
				changes = append(changes, stage.Change{Action: stage.Update, Kind: "kube-apiserver-manifest", Name: n.name,
					Detail: "--service-account-issuer " + strings.Join(res.Issuers, ",")})
			}
		}
	}
	s.log.Info("waiting for the apiserver to serve the issuer", "issuer", s.opts.IssuerURL)
	if _, err := s.waitServed(ctx, timeout, fmt.Sprintf("issuer %q", s.opts.IssuerURL), func(i string) bool { return i == s.opts.IssuerURL }); err != nil {
		return changes, fmt.Errorf("%w; every node reported its apiserver serving it: a load balancer in front of the apiservers may still reach an old one (irsa delete restores the previous flags)", err)
	}
	if s.opts.SigningKey != nil {
		if err := s.checkServedKey(ctx); err != nil {
			return changes, err
		}
	}
	return changes, nil
}

// checkServedKey makes sure the apiserver verifies with irsa's key, so the JWKS the issuer publishes has it.
func (s *Stage) checkServedKey(ctx context.Context) error {
	_, _, kid, err := keyFromPEM(s.opts.SigningKey)
	if err != nil {
		return err
	}
	keys, err := ServedKeys(ctx, s.client)
	if err != nil {
		return err
	}
	var served []string
	for _, k := range keys.Keys {
		if k.KeyID == kid {
			return nil
		}
		served = append(served, k.KeyID)
	}
	return fmt.Errorf("apiserver serves the issuer but not irsa's signing key %s in %s (it serves %s)", kid, JWKSPath, strings.Join(served, ", "))
}

func (s *Stage) deleteKubeadm(ctx context.Context) ([]stage.Change, error) {
	all, err := s.nodesToPatch(ctx)
	if err != nil {
		return nil, err
	}
	var nodes []nodeState
	for _, n := range all {
		// A node without a mirror pod gets the node pod, which changes nothing where irsa did not patch.
		if n.mirror == nil || n.patched {
			nodes = append(nodes, n)
		}
	}
	timeout := s.timeout(ClusterKubeadm)
	var changes []stage.Change
	if len(all) > 1 {
		// First pass: every apiserver issues with the original issuer and key again while still accepting irsa's
		// tokens, which apiservers not yet demoted keep issuing.
		for _, n := range nodes {
			if n.mirror != nil && n.demoted {
				continue
			}
			s.log.Info("making kube-apiserver issue with the original issuer (first pass)", "node", n.name)
			res, err := s.runNode(ctx, n.name, NodeRestoreCommand, nil, timeout, "--keep-accepting")
			if err != nil {
				return changes, err
			}
			if res.Changed {
				changes = append(changes, stage.Change{Action: stage.Update, Kind: "kube-apiserver-manifest", Name: n.name,
					Detail: "issues for " + res.Issuers[0] + ", still accepts " + strings.Join(res.Issuers[1:], ",")})
			}
		}
	}
	var restoredIssuer string
	for _, n := range nodes {
		s.log.Info("restoring kube-apiserver", "node", n.name)
		res, err := s.runNode(ctx, n.name, NodeRestoreCommand, nil, timeout)
		if err != nil {
			return changes, err
		}
		if res.Changed {
			restoredIssuer = res.Issuers[0]
			changes = append(changes, stage.Change{Action: stage.Update, Kind: "kube-apiserver-manifest", Name: n.name,
				Detail: "--service-account-issuer " + strings.Join(res.Issuers, ",")})
		}
	}
	if restoredIssuer == "" {
		return changes, nil
	}
	if _, err := s.waitServed(ctx, timeout, fmt.Sprintf("the original issuer %q", restoredIssuer), func(i string) bool { return i == restoredIssuer }); err != nil {
		return changes, err
	}
	return changes, nil
}
